//! Shared test harness: every loop test runs once per backend.
#![allow(dead_code)]

use evloop::{BackendKind, Config, Handle, Loop, RunMode, Timer};
use std::cell::RefCell;
use std::rc::Rc;
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
    listen_echo_with(lp, server, false);
}

/// `listen_echo`, with Nagle's algorithm off on each connection if `nodelay` (as
/// request/response servers have it: each piece of a reply leaves at once).
pub fn listen_echo_with(lp: &mut Loop, server: evloop::Stream, nodelay: bool) {
    use evloop::Read;
    server
        .listen(lp, 1024, move |lp, _, conn| {
            let conn = conn.unwrap();
            if nodelay {
                conn.set_nodelay(lp, true).unwrap();
            }
            conn.read_start(lp, |lp, c, r| match r {
                Read::Data(b) => {
                    c.write(lp, b, None).unwrap();
                }
                Read::Eof | Read::Error(_) => c.close(lp, None).unwrap(),
            })
            .unwrap();
        })
        .unwrap();
}

/// Makes `close` of `c` send a reset instead of a FIN (SO_LINGER with a zero timeout).
pub fn reset_on_close(c: &std::net::TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket and option struct.
    let rc = unsafe {
        libc::setsockopt(
            c.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as u32,
        )
    };
    assert_eq!(rc, 0);
}

/// Connections an echo server has accepted, and how many are still open.
#[derive(Clone, Default)]
pub struct EchoCounts {
    pub accepted: std::rc::Rc<std::cell::Cell<u64>>,
    pub open: std::rc::Rc<std::cell::Cell<i64>>,
}

/// A loopback echo server whose connections close at EOF or an error, counting both.
pub fn counting_echo_server(lp: &mut Loop) -> (evloop::Stream, std::net::SocketAddr, EchoCounts) {
    use evloop::{BindOptions, Read, Stream};
    let server = Stream::tcp_bind(lp, "127.0.0.1:0".parse().unwrap(), BindOptions::default()).unwrap();
    let addr = server.local_addr(lp).unwrap();
    let counts = EchoCounts::default();
    let c = counts.clone();
    server
        .listen(lp, 1024, move |lp, _, conn| {
            let Ok(conn) = conn else { return };
            c.accepted.set(c.accepted.get() + 1);
            c.open.set(c.open.get() + 1);
            let open = c.open.clone();
            conn.read_start(lp, move |lp, s, r| match r {
                Read::Data(b) => {
                    let _ = s.write(lp, b, None);
                }
                Read::Eof | Read::Error(_) => {
                    open.set(open.get() - 1);
                    s.close(lp, None).unwrap();
                }
            })
            .unwrap();
        })
        .unwrap();
    (server, addr, counts)
}

/// Makes system call `nr` fail with EPERM on the calling thread only (a seccomp filter without
/// TSYNC), as a container's profile does. The filter stays for the thread's life: call it on a
/// thread of its own.
pub fn refuse_syscall_on_this_thread(nr: libc::c_long) {
    #[cfg(target_arch = "x86_64")]
    const ARCH: u32 = 0xc000_003e;
    #[cfg(target_arch = "aarch64")]
    const ARCH: u32 = 0xc000_00b7;
    const LD_W_ABS: u16 = 0x20;
    const JEQ_K: u16 = 0x15;
    const RET_K: u16 = 0x06;
    const ALLOW: u32 = 0x7fff_0000;
    const ERRNO: u32 = 0x0005_0000;
    let f = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
    let filter = [
        f(LD_W_ABS, 0, 0, 4), // seccomp_data.arch
        f(JEQ_K, 1, 0, ARCH),
        f(RET_K, 0, 0, ALLOW),
        f(LD_W_ABS, 0, 0, 0), // seccomp_data.nr
        f(JEQ_K, 0, 1, nr as u32),
        f(RET_K, 0, 0, ERRNO | libc::EPERM as u32),
        f(RET_K, 0, 0, ALLOW),
    ];
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: prctl with a valid filter program that outlives the calls.
    unsafe {
        assert_eq!(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
        assert_eq!(
            libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER,
                &prog as *const libc::sock_fprog
            ),
            0
        );
    }
}

/// A connected pair of Unix stream sockets (close-on-exec, blocking).
pub fn socket_pair() -> (i32, i32) {
    let mut fds = [-1; 2];
    // SAFETY: socketpair fills the two-element array.
    let rc = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    assert_eq!(rc, 0, "socketpair");
    (fds[0], fds[1])
}

/// A request's result (a write's, a shutdown's), once its callback has run.
pub type Outcome = Rc<RefCell<Option<evloop::Result<()>>>>;

/// A request's callback, for a handle of type `H` (a stream's `DoneCb`, a UDP socket's…).
pub type RequestCb<H> = Box<dyn FnOnce(&mut Loop, H, evloop::Result<()>)>;

/// A request callback that records its result in `outcome`.
pub fn record_into<H: 'static>(outcome: &Outcome) -> RequestCb<H> {
    let r = outcome.clone();
    Box::new(move |_, _, res| *r.borrow_mut() = Some(res))
}
