//! Shared test harness: every loop test runs once per backend.
#![allow(dead_code)]

use evloop::{BackendKind, Config, Handle, Loop, RunMode, Timer};
use std::time::{Duration, Instant};

/// The backends to test: those this machine runs, narrowed by `EVLOOP_BACKEND=epoll|uring`.
pub fn backends() -> Vec<BackendKind> {
    let only = std::env::var("EVLOOP_BACKEND")
        .ok()
        .and_then(|v| BackendKind::parse(&v));
    let mut out = Vec::new();
    for kind in [BackendKind::Epoll, BackendKind::Uring] {
        if matches!(only, Some(k) if k != BackendKind::Auto && k != kind) {
            continue;
        }
        match Loop::with_config(Config {
            backend: kind,
            ..Config::default()
        }) {
            Ok(_) => out.push(kind),
            Err(e) if kind == BackendKind::Uring => {
                eprintln!("io_uring backend not available: {e}")
            }
            Err(e) => panic!("{kind:?} backend failed to start: {e}"),
        }
    }
    assert!(!out.is_empty(), "no backend to test");
    out
}

pub fn new_loop(kind: BackendKind) -> Loop {
    Loop::with_config(Config {
        backend: kind,
        ..Config::default()
    })
    .expect("loop")
}

/// Runs `body` once per backend with a fresh loop.
pub fn each_backend(mut body: impl FnMut(&mut Loop)) {
    for kind in backends() {
        eprintln!("-- backend {kind:?}");
        let mut lp = new_loop(kind);
        body(&mut lp);
    }
}

/// Runs the loop until `done()` holds; fails the test after `limit`. A small unreferenced
/// timer keeps each iteration from blocking for long, so the limit is checked.
pub fn run_until(lp: &mut Loop, limit: Duration, mut done: impl FnMut(&mut Loop) -> bool) {
    let tick = Timer::new(lp);
    tick.start(lp, 20, 20, |_, _| {}).unwrap();
    tick.unref(lp).unwrap();
    let start = Instant::now();
    while !done(lp) {
        assert!(start.elapsed() < limit, "condition not reached within {limit:?}");
        lp.run(RunMode::Once).unwrap();
    }
    tick.close(lp, None).unwrap();
    lp.run(RunMode::NoWait).unwrap();
}

pub const LIMIT: Duration = Duration::from_secs(20);

/// Makes `server` (bound, not yet listening) an echo server: every connection writes back what
/// it reads and closes at EOF or on an error.
pub fn listen_echo(lp: &mut Loop, server: evloop::Stream) {
    use evloop::Read;
    server
        .listen(lp, 1024, |lp, _, conn| {
            conn.unwrap()
                .read_start(lp, |lp, c, r| match r {
                    Read::Data(b) => {
                        c.write(lp, b, None).unwrap();
                    }
                    Read::Eof | Read::Error(_) => c.close(lp, None).unwrap(),
                })
                .unwrap();
        })
        .unwrap();
}
