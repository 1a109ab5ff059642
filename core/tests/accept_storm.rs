//! An accept storm past RLIMIT_NOFILE, on both backends: a client process opens far more
//! connections than the server may hold descriptors. At the limit the loop must not spin (a
//! listener stays readable, or a multishot accept fails at once), and once descriptors are free
//! again, service resumes. One test in this binary: it lowers the process's descriptor limit.
//! (io_uring's multishot accept reads the limit when it is armed, so the limit is lowered first.)
mod common;

use common::*;
use evloop::{BindOptions, Handle, Read, RunMode, Stream};
use std::cell::RefCell;
use std::io::{BufRead, Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

const CLIENTS: usize = 400;
/// Descriptors the server may open beyond what the process holds when the storm starts.
const HEADROOM: u64 = 48;

fn open_fds() -> u64 {
    std::fs::read_dir("/proc/self/fd").unwrap().count() as u64
}

fn nofile() -> libc::rlimit {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills the struct.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) }, 0);
    r
}

fn set_nofile(r: libc::rlimit) {
    // SAFETY: a valid limit (the soft limit never above the hard one).
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &r) }, 0);
}

/// CPU time this thread has used.
fn thread_cpu() -> Duration {
    // SAFETY: getrusage fills the struct.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut u) }, 0);
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    Duration::from_micros(us(u.ru_utime) + us(u.ru_stime))
}

/// The client side, in a process of its own: opens the connections, sends a byte on each, says
/// so, and holds them until its standard input closes.
fn storm_client(addr: &str) {
    // The lowered limit is inherited: lift it again for the client.
    let r = nofile();
    set_nofile(libc::rlimit {
        rlim_cur: r.rlim_max,
        rlim_max: r.rlim_max,
    });
    let mut held = Vec::new();
    for _ in 0..CLIENTS {
        if let Ok(mut c) = TcpStream::connect(addr) {
            let _ = c.write_all(b"x");
            held.push(c);
        }
    }
    println!("connected {}", held.len());
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}

#[test]
fn accept_storm_past_the_descriptor_limit() {
    if let Ok(addr) = std::env::var("EVLOOP_STORM_CLIENT") {
        return storm_client(&addr);
    }
    let original = nofile();
    for kind in backends() {
        eprintln!("-- backend {kind:?}");
        let mut lp = new_loop(kind);
        let lp = &mut lp;
        let server = Stream::tcp_bind(lp, "127.0.0.1:0".parse().unwrap(), BindOptions::default()).unwrap();
        let addr = server.local_addr(lp).unwrap();
        // The limit first: io_uring's multishot accept reads it once, when it is armed.
        set_nofile(libc::rlimit {
            rlim_cur: open_fds() + HEADROOM,
            rlim_max: original.rlim_max,
        });
        let held: Rc<RefCell<Vec<Stream>>> = Rc::default();
        let refused = Rc::new(RefCell::new(0u64));
        let (h, r) = (held.clone(), refused.clone());
        server
            .listen(lp, 1024, move |lp, _, conn| match conn {
                Ok(conn) => {
                    conn.read_start(lp, |lp, c, r| {
                        if let Read::Data(b) = r {
                            let _ = c.write(lp, b, None);
                        }
                    })
                    .unwrap();
                    h.borrow_mut().push(conn);
                }
                Err(e) => {
                    assert!(e == evloop::Error::EMFILE || e == evloop::Error::ENFILE, "{e}");
                    *r.borrow_mut() += 1;
                }
            })
            .unwrap();
        lp.run(RunMode::NoWait).unwrap();
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "accept_storm_past_the_descriptor_limit", "--nocapture"])
            .env("EVLOOP_STORM_CLIENT", addr.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            while out.read_line(&mut line).is_ok_and(|n| n > 0) {
                if line.starts_with("connected") {
                    let _ = tx.send(line.clone());
                }
                line.clear();
            }
        });
        let mut connected = None;
        run_until(lp, LIMIT, |_| {
            connected = connected.take().or_else(|| rx.try_recv().ok());
            connected.is_some() && *refused.borrow() > 0
        });
        eprintln!("client: {}", connected.unwrap().trim());
        let at_limit = held.borrow().len();
        assert!(
            at_limit > 0 && (at_limit as u64) <= HEADROOM + 4,
            "{at_limit} held"
        );
        // At the limit, with the rest of the storm dropped: the loop sleeps.
        let (iterations, cpu) = (lp.stats().iterations, thread_cpu());
        let until = Instant::now() + Duration::from_millis(500);
        run_until(lp, LIMIT, |_| Instant::now() >= until);
        let spent_iterations = lp.stats().iterations - iterations;
        let spent_cpu = thread_cpu() - cpu;
        eprintln!("{kind:?}: {at_limit} held, {spent_iterations} iterations and {spent_cpu:?} CPU in 500 ms at the limit");
        assert!(
            spent_iterations < 500,
            "the loop spins at the limit: {spent_iterations} iterations"
        );
        assert!(
            spent_cpu < Duration::from_millis(200),
            "the loop burns CPU at the limit: {spent_cpu:?}"
        );
        // Free the descriptors: service resumes.
        for c in held.borrow_mut().drain(..) {
            c.close(lp, None).unwrap();
        }
        lp.run(RunMode::NoWait).unwrap();
        let mut fresh = TcpStream::connect(addr).unwrap();
        fresh.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        fresh.write_all(b"after the storm").unwrap();
        let (tx2, rx2) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 15];
            let _ = tx2.send(fresh.read_exact(&mut buf).map(|_| buf));
        });
        let mut echoed = None;
        run_until(lp, LIMIT, |_| {
            echoed = echoed.take().or_else(|| rx2.try_recv().ok());
            echoed.is_some()
        });
        reader.join().unwrap();
        assert_eq!(&echoed.unwrap().unwrap(), b"after the storm");
        drop(child.stdin.take());
        child.wait().unwrap();
        set_nofile(original);
        for c in held.borrow_mut().drain(..) {
            c.close(lp, None).unwrap();
        }
        server.close(lp, None).unwrap();
        lp.run(RunMode::Default).unwrap();
    }
}
