//! Contracts real programs rely on, found broken by embedding C client libraries and by fault
//! probes (issue 13). Each test names the finding it guards; every one runs on both backends.
mod common;

use common::*;
use evloop::{ready, BindOptions, Error, FdWatcher, Handle, Loop, RunMode, Stream, Timer};
use std::cell::{Cell, RefCell};
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::{Duration, Instant};

fn read_some(fd: RawFd, max: usize) -> isize {
    let mut buf = vec![0u8; max];
    // SAFETY: reads into a buffer of `max` bytes.
    unsafe { libc::read(fd, buf.as_mut_ptr().cast(), max) }
}

/// Finding 1: a watcher started on an fd whose previous watcher is still closing fires, and
/// closes; the old watcher's clean-up leaves the new registration alone.
#[test]
fn rewatching_an_fd_whose_watcher_is_closing_works() {
    each_backend(|lp| {
        let (a, b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        let fd = a.as_raw_fd();
        let old = FdWatcher::new(lp, fd).unwrap();
        old.start(lp, ready::READABLE, |_, _, _| {}).unwrap();
        lp.run(RunMode::NoWait).unwrap();
        // Close and re-watch the same fd number in one iteration (from a callback, as a client
        // library does when it swaps its socket callbacks).
        let fired = Rc::new(Cell::new(0));
        let closed = Rc::new(Cell::new(false));
        let (f, c) = (fired.clone(), closed.clone());
        lp.call_soon(move |lp| {
            old.close(lp, None).unwrap();
            let new = FdWatcher::new(lp, fd).unwrap();
            new.start(lp, ready::READABLE, move |lp, w, r| {
                assert_eq!(r.unwrap() & ready::READABLE, ready::READABLE);
                f.set(f.get() + 1);
                assert!(read_some(fd, 64) > 0);
                let c = c.clone();
                w.close(lp, Some(Box::new(move |_| c.set(true)))).unwrap();
            })
            .unwrap();
        });
        lp.run(RunMode::NoWait).unwrap();
        (&b).write_all(b"ping").unwrap();
        run_until(lp, LIMIT, |_| closed.get());
        assert_eq!(fired.get(), 1);
        lp.run(RunMode::Default).unwrap();
        assert!(!lp.alive());
    });
}

/// Finding 1, second form: the fd number is reused by a new socket (the old one closed behind
/// the loop's back) while the old watcher closes.
#[test]
fn watching_a_reused_fd_number_works() {
    each_backend(|lp| {
        let (a, _b) = UnixStream::pair().unwrap();
        let fd = a.as_raw_fd();
        let old = FdWatcher::new(lp, fd).unwrap();
        old.start(lp, ready::READABLE, |_, _, _| {}).unwrap();
        lp.run(RunMode::NoWait).unwrap();
        old.close(lp, None).unwrap();
        drop(a);
        drop(_b);
        // The lowest free number is the one just freed.
        let (c, d) = UnixStream::pair().unwrap();
        assert_eq!(c.as_raw_fd(), fd, "fd number reused");
        c.set_nonblocking(true).unwrap();
        let got = Rc::new(Cell::new(false));
        let g = got.clone();
        let new = FdWatcher::new(lp, fd).unwrap();
        new.start(lp, ready::READABLE, move |lp, w, r| {
            assert!(r.is_ok());
            assert!(read_some(fd, 64) > 0);
            g.set(true);
            w.close(lp, None).unwrap();
        })
        .unwrap();
        (&d).write_all(b"x").unwrap();
        run_until(lp, LIMIT, |_| got.get());
        lp.run(RunMode::Default).unwrap();
        assert!(!lp.alive());
        // The same after the old file was replaced while its watcher was only stopped.
        let w = FdWatcher::new(lp, fd).unwrap();
        w.start(lp, ready::READABLE, |_, _, _| {}).unwrap();
        lp.run(RunMode::NoWait).unwrap();
        w.stop(lp).unwrap();
        drop(c);
        drop(d);
        let (e, f) = UnixStream::pair().unwrap();
        assert_eq!(e.as_raw_fd(), fd);
        let got = Rc::new(Cell::new(false));
        let g = got.clone();
        w.start(lp, ready::READABLE | ready::WRITABLE, move |lp, w, r| {
            assert!(r.unwrap() & ready::WRITABLE != 0);
            g.set(true);
            w.stop(lp).unwrap();
        })
        .unwrap();
        run_until(lp, LIMIT, |_| got.get());
        w.close(lp, None).unwrap();
        lp.run(RunMode::Default).unwrap();
        drop((e, f));
    });
}

/// Finding 2: fd watchers are level-triggered on both backends: data left unread is reported
/// again.
#[test]
fn fd_watchers_are_level_triggered() {
    each_backend(|lp| {
        let (a, b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        let fd = a.as_raw_fd();
        let calls = Rc::new(Cell::new(0));
        let bytes = Rc::new(Cell::new(0isize));
        let (c, n) = (calls.clone(), bytes.clone());
        let w = FdWatcher::new(lp, fd).unwrap();
        w.start(lp, ready::READABLE, move |_, _, r| {
            assert!(r.unwrap() & ready::READABLE != 0);
            c.set(c.get() + 1);
            // One chunk per callback, as a client library with a bounded read does.
            let got = read_some(fd, 100);
            if got > 0 {
                n.set(n.get() + got);
            }
        })
        .unwrap();
        for _ in 0..4 {
            (&b).write_all(&[7u8; 100]).unwrap();
        }
        run_until(lp, LIMIT, |_| bytes.get() == 400);
        assert!(calls.get() >= 4, "{} callbacks for 4 chunks", calls.get());
        // Nothing left: no more callbacks while idle.
        let before = calls.get();
        let deadline = Instant::now() + Duration::from_millis(100);
        run_until(lp, LIMIT, |_| Instant::now() >= deadline);
        assert!(calls.get() <= before + 1, "callbacks while idle");
        // Writable is level-triggered too: reported on every iteration while it is wanted.
        let writable = Rc::new(Cell::new(0));
        let wr = writable.clone();
        w.start(lp, ready::WRITABLE, move |_, _, r| {
            assert!(r.unwrap() & ready::WRITABLE != 0);
            wr.set(wr.get() + 1);
        })
        .unwrap();
        run_until(lp, LIMIT, |_| writable.get() >= 5);
        w.close(lp, None).unwrap();
        lp.run(RunMode::Default).unwrap();
        drop(b);
    });
}

/// Finding 3: starting with no events stops the watcher, as libuv's uv_poll_start does.
#[test]
fn fd_watcher_start_with_no_events_stops_it() {
    each_backend(|lp| {
        let (a, b) = UnixStream::pair().unwrap();
        let w = FdWatcher::new(lp, a.as_raw_fd()).unwrap();
        let calls = Rc::new(Cell::new(0));
        let c = calls.clone();
        w.start(lp, ready::READABLE, move |_, _, _| c.set(c.get() + 1))
            .unwrap();
        assert!(w.is_active(lp));
        w.start(lp, 0, |_, _, _| panic!("no events were asked for"))
            .unwrap();
        assert!(!w.is_active(lp));
        (&b).write_all(b"x").unwrap();
        lp.run(RunMode::NoWait).unwrap();
        lp.run(RunMode::NoWait).unwrap();
        assert!(!lp.alive());
        assert_eq!(calls.get(), 0);
        assert_eq!(w.start(lp, 1 << 20, |_, _, _| {}).unwrap_err(), Error::EINVAL);
        w.close(lp, None).unwrap();
        lp.run(RunMode::Default).unwrap();
    });
}

fn bind_any(lp: &mut Loop) -> (Stream, SocketAddr) {
    let s = Stream::tcp_bind(lp, "127.0.0.1:0".parse().unwrap(), BindOptions::default()).unwrap();
    let addr = s.local_addr(lp).unwrap();
    (s, addr)
}

/// Reads from `c` until EOF or a reset; fails if the peer keeps the connection open.
fn expect_peer_closed(c: &mut TcpStream) {
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 64];
    loop {
        match c.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return,
            Err(e) => panic!("peer still open: {e}"),
        }
    }
}

/// Finding 4: a listener closed inside its connection callback closes the connections the
/// kernel had already accepted for it.
#[test]
fn listener_closed_in_its_callback_leaves_no_accepted_connection_open() {
    each_backend(|lp| {
        let (server, addr) = bind_any(lp);
        let calls = Rc::new(Cell::new(0));
        let c = calls.clone();
        server
            .listen(lp, 128, move |lp, listener, conn| {
                c.set(c.get() + 1);
                conn.unwrap().close(lp, None).unwrap();
                if listener.is_alive(lp) && !listener.is_closing(lp) {
                    listener.close(lp, None).unwrap();
                }
            })
            .unwrap();
        // All seven are queued in the kernel before the loop accepts any.
        let mut clients: Vec<TcpStream> = (0..7).map(|_| TcpStream::connect(addr).unwrap()).collect();
        lp.run(RunMode::Default).unwrap();
        assert_eq!(calls.get(), 1, "no callback after the listener's close");
        for c in &mut clients {
            expect_peer_closed(c);
        }
    });
}

/// Finding 5: when `run` returns after a close callback, the fd is closed: the peer sees EOF and
/// a closed listener's port is free.
#[test]
fn closed_sockets_are_closed_when_run_returns() {
    each_backend(|lp| {
        let (server, addr) = bind_any(lp);
        let accepted = Rc::new(RefCell::new(None));
        let a = accepted.clone();
        server
            .listen(lp, 16, move |_, _, conn| *a.borrow_mut() = Some(conn.unwrap()))
            .unwrap();
        let mut client = TcpStream::connect(addr).unwrap();
        run_until(lp, LIMIT, |_| accepted.borrow().is_some());
        let conn = accepted.borrow_mut().take().unwrap();
        let sockets: Vec<(RawFd, String)> = [conn, server]
            .iter()
            .map(|s| {
                let fd = s.fd(lp).unwrap();
                (fd, socket_identity(fd).unwrap())
            })
            .collect();
        let done = Rc::new(Cell::new(0));
        for h in [conn, server] {
            let d = done.clone();
            h.close(lp, Some(Box::new(move |_| d.set(d.get() + 1)))).unwrap();
        }
        lp.run(RunMode::Default).unwrap();
        assert_eq!(done.get(), 2);
        // No further iteration: what the close callbacks promised holds now.
        client.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(client.read(&mut buf).unwrap(), 0, "peer sees EOF");
        // The listener's socket is gone too (its number may already serve another socket).
        for (fd, identity) in sockets {
            assert_ne!(socket_identity(fd), Some(identity), "fd {fd} still open");
        }
    });
}

/// What an fd refers to (`socket:[inode]`), while it is open.
fn socket_identity(fd: RawFd) -> Option<String> {
    std::fs::read_link(format!("/proc/self/fd/{fd}"))
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

/// Finding 6: connections reset by the peer right after sending always end with EOF or an
/// error, so the server closes every one of them.
#[test]
fn every_reset_connection_gets_eof_or_an_error() {
    each_backend(|lp| {
        let (server, addr, counts) = counting_echo_server(lp);
        let connections: u64 = std::env::var("EVLOOP_RESET_CONNECTIONS").map_or(3000, |v| v.parse().unwrap());
        let client = std::thread::spawn(move || {
            for i in 0..connections {
                let mut c = TcpStream::connect(addr).unwrap();
                c.write_all(&[i as u8; 64]).unwrap();
                if i % 3 != 0 {
                    reset_on_close(&c);
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        run_until(lp, Duration::from_secs(90), |_| {
            let done = counts.accepted.get() == connections && counts.open.get() == 0;
            assert!(
                done || Instant::now() < deadline,
                "{} of {connections} accepted, {} still open",
                counts.accepted.get(),
                counts.open.get()
            );
            done
        });
        client.join().unwrap();
        server.close(lp, None).unwrap();
        lp.run(RunMode::Default).unwrap();
    });
}

/// Finding 9: timeouts and repeats saturate instead of wrapping around.
#[test]
fn huge_timeouts_and_repeats_saturate() {
    each_backend(|lp| {
        let fired = Rc::new(Cell::new(0));
        let f = fired.clone();
        let t = Timer::new(lp);
        t.start(lp, 5, u64::MAX, move |_, _| f.set(f.get() + 1)).unwrap();
        let deadline = Instant::now() + Duration::from_millis(150);
        run_until(lp, LIMIT, |_| Instant::now() >= deadline);
        assert_eq!(fired.get(), 1, "a repeat of u64::MAX ms fires once in 150 ms");
        assert!(t.is_active(lp));
        assert!(t.due_in(lp).unwrap() > 1 << 40);
        let never = Timer::new(lp);
        never.start(lp, u64::MAX, 0, |_, _| panic!("fired")).unwrap();
        assert!(
            lp.backend_timeout() > 1000 || lp.backend_timeout() == -1 || lp.backend_timeout() == i32::MAX
        );
        lp.run(RunMode::NoWait).unwrap();
        t.again(lp).unwrap();
        lp.run(RunMode::NoWait).unwrap();
        assert_eq!(fired.get(), 1);
        for h in [t, never] {
            h.close(lp, None).unwrap();
        }
        lp.run(RunMode::Default).unwrap();
    });
}

/// Findings 7 and 8: whole-file reads are bounded, and bad paths fail through the callback.
#[test]
fn whole_file_reads_are_bounded_and_bad_paths_fail() {
    each_backend(|lp| {
        type Outcome = (String, Result<usize, Error>);
        let results: Rc<RefCell<Vec<Outcome>>> = Rc::default();
        let long = "a/".repeat(2100);
        let cases = [
            ("/dev/zero".to_string(), Err(Error::EFBIG)),
            (String::new(), Err(Error::ENOENT)),
            (long.clone(), Err(Error::ENAMETOOLONG)),
            ("/proc/self/status".to_string(), Ok(())),
        ];
        lp.set_read_file_limit(1 << 20);
        assert_eq!(lp.read_file_limit(), 1 << 20);
        for (path, _) in &cases {
            let r = results.clone();
            let p = path.clone();
            evloop::fs::read_file(lp, path, move |_, res| {
                r.borrow_mut().push((p, res.map(|b| b.len())))
            })
            .unwrap();
        }
        run_until(lp, LIMIT, |_| results.borrow().len() == cases.len());
        for (path, want) in &cases {
            let got = results.borrow().iter().find(|(p, _)| p == path).unwrap().1;
            match want {
                Ok(()) => assert!(got.unwrap() > 0, "{path}: {got:?}"),
                Err(e) => assert_eq!(got, Err(*e), "{:.20}", path),
            }
        }
        // A file exactly at the limit is read; one byte more is refused.
        let dir = std::env::temp_dir().join(format!(
            "evloop-limit-{}-{}",
            std::process::id(),
            lp.backend_name()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let (at, over) = (dir.join("at"), dir.join("over"));
        std::fs::write(&at, vec![1u8; 1 << 20]).unwrap();
        std::fs::write(&over, vec![1u8; (1 << 20) + 1]).unwrap();
        let sizes: Rc<RefCell<Vec<Result<usize, Error>>>> = Rc::default();
        for p in [&at, &over] {
            let s = sizes.clone();
            evloop::fs::read_file(lp, p, move |_, r| s.borrow_mut().push(r.map(|b| b.len()))).unwrap();
            run_until(lp, LIMIT, |_| sizes.borrow().len() == 1);
            let r = sizes.borrow_mut().pop().unwrap();
            if p == &at {
                assert_eq!(r, Ok(1 << 20));
            } else {
                assert_eq!(r, Err(Error::EFBIG));
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
        lp.run(RunMode::Default).unwrap();
    });
}

/// Finding 10: where io_uring_setup works but io_uring_enter is refused, `Auto` picks epoll and
/// runs, and asking for io_uring fails at once with the kernel's error. On a thread of its own:
/// the filter stays for the thread's life.
#[test]
fn auto_falls_back_to_epoll_when_the_ring_cannot_enter() {
    if common::backends().len() < 2 {
        eprintln!("io_uring not available here: nothing to fall back from");
        return;
    }
    std::thread::spawn(|| {
        refuse_syscall_on_this_thread(libc::SYS_io_uring_enter);
        let forced = Loop::with_config(evloop::Config {
            backend: evloop::BackendKind::Uring,
            ..evloop::Config::default()
        });
        assert_eq!(forced.err(), Some(Error::EPERM));
        let mut lp = Loop::with_config(evloop::Config {
            backend: evloop::BackendKind::Auto,
            ..evloop::Config::default()
        })
        .unwrap();
        if std::env::var("EVLOOP_BACKEND").is_err() {
            assert_eq!(lp.backend_name(), "epoll");
        }
        let fired = Rc::new(Cell::new(false));
        let f = fired.clone();
        Timer::new(&mut lp)
            .start(&mut lp, 1, 0, move |lp, t| {
                f.set(true);
                t.close(lp, None).unwrap();
            })
            .unwrap();
        lp.run(RunMode::Default).unwrap();
        assert!(fired.get());
    })
    .join()
    .unwrap();
}

/// Waking a closing wake-up handle is refused, as every other call on a closed handle is.
#[test]
fn waking_a_closed_async_handle_is_refused() {
    each_backend(|lp| {
        let calls = Rc::new(Cell::new(0));
        let c = calls.clone();
        let a = evloop::Async::new(lp, move |_, _| c.set(c.get() + 1)).unwrap();
        let waker = a.waker(lp).unwrap();
        assert_eq!(waker.try_wake(), Ok(()));
        run_until(lp, LIMIT, |_| calls.get() == 1);
        a.close(lp, None).unwrap();
        assert_eq!(waker.try_wake(), Err(Error::EBADF));
        lp.run(RunMode::Default).unwrap();
        assert_eq!(waker.try_wake(), Err(Error::EBADF));
        assert_eq!(calls.get(), 1);
    });
}

/// A watcher stopped or closed outside `run` lets go of its fd in the kernel at once: the caller
/// may close the fd next and expect it gone (a listener refusing connections), as with libuv.
/// A poll still in flight in the ring would otherwise keep the socket open until the next run.
#[test]
fn a_watcher_stopped_outside_run_lets_go_of_its_fd() {
    for close_it in [false, true] {
        each_backend(|lp| {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            listener.set_nonblocking(true).unwrap();
            let w = FdWatcher::new(lp, listener.as_raw_fd()).unwrap();
            w.start(lp, ready::READABLE, |_, _, _| {}).unwrap();
            lp.run(RunMode::NoWait).unwrap();
            if close_it {
                w.close(lp, None).unwrap();
            } else {
                w.stop(lp).unwrap();
            }
            drop(listener);
            let err = TcpStream::connect(addr).expect_err("the listener is closed");
            assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
            if !close_it {
                w.close(lp, None).unwrap();
            }
            lp.run(RunMode::Default).unwrap();
        });
    }
}

/// The wait hook runs around each wait that may block, and only then: a host that releases a
/// lock there (Python's GIL) pays nothing for non-blocking runs, and no callback runs between
/// the two calls.
#[test]
fn the_wait_hook_brackets_blocking_waits_only() {
    struct Count(Rc<RefCell<Vec<&'static str>>>);
    impl evloop::WaitHook for Count {
        fn has_pending_work(&mut self) -> bool {
            self.0.borrow().last() == Some(&"host work")
        }
        fn before_wait(&mut self) {
            self.0.borrow_mut().push("before");
        }
        fn after_wait(&mut self) {
            self.0.borrow_mut().push("after");
        }
    }
    each_backend(|lp| {
        let log = Rc::new(RefCell::new(Vec::new()));
        lp.set_wait_hook(Some(Box::new(Count(log.clone()))));
        let t = Timer::new(lp);
        let seen = log.clone();
        t.start(lp, 5, 0, move |_, _| seen.borrow_mut().push("timer"))
            .unwrap();
        lp.run(RunMode::NoWait).unwrap();
        assert!(
            log.borrow().is_empty(),
            "a non-blocking run does not call the hook"
        );
        lp.run(RunMode::Default).unwrap();
        let seen = log.borrow().clone();
        // One wait normally; more if a signal cut one short. Always in pairs, timer last.
        assert_eq!(seen.last(), Some(&"timer"));
        let waits = &seen[..seen.len() - 1];
        assert!(!waits.is_empty() && waits.len() % 2 == 0, "{seen:?}");
        assert!(waits.chunks(2).all(|p| p == ["before", "after"]), "{seen:?}");
        // Work queued in the host's own queue by a callback: the wait does not block.
        let host = log.clone();
        t.start(lp, 1, 0, move |_, _| host.borrow_mut().push("host work"))
            .unwrap();
        let other = Timer::new(lp);
        other.start(lp, 60_000, 0, |_, _| {}).unwrap();
        let started = Instant::now();
        lp.run(RunMode::Once).unwrap(); // the 1 ms timer fires, after a wait
        while log.borrow().last() != Some(&"host work") {
            lp.run(RunMode::Once).unwrap();
        }
        let before = log.borrow().len();
        lp.run(RunMode::Once).unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "blocked with host work pending"
        );
        assert_eq!(log.borrow().len(), before, "no blocking wait, so no hook calls");
        other.close(lp, None).unwrap();
        lp.set_wait_hook(None);
        t.close(lp, None).unwrap();
        let before = log.borrow().len();
        lp.run(RunMode::Default).unwrap();
        assert_eq!(log.borrow().len(), before, "a removed hook is not called");
    });
}

/// Closing a timer lets go of its callback at once, not when the close completes: what the
/// callback holds (a binding's objects) is freed with the cancellation.
#[test]
fn closing_a_timer_drops_its_callback_at_once() {
    each_backend(|lp| {
        let held = Rc::new(());
        let in_cb = held.clone();
        let t = Timer::new(lp);
        t.start(lp, 60_000, 0, move |_, _| {
            let _ = &in_cb;
        })
        .unwrap();
        assert_eq!(Rc::strong_count(&held), 2);
        t.close(lp, None).unwrap();
        assert_eq!(Rc::strong_count(&held), 1, "dropped by close, before any run");
        lp.run(RunMode::Default).unwrap();
        // Closing inside its own callback works too.
        let t = Timer::new(lp);
        let fired = Rc::new(Cell::new(0));
        let f = fired.clone();
        t.start(lp, 1, 1, move |lp, t| {
            f.set(f.get() + 1);
            t.close(lp, None).unwrap();
        })
        .unwrap();
        lp.run(RunMode::Default).unwrap();
        assert_eq!(fired.get(), 1);
    });
}

/// Found by the Node addon: on io_uring a loop driven from Node's loop answered a lone
/// connection late (p99 16 ms, against 0.1 ms on epoll) and, when the peer wrote from the
/// foreign loop's own thread, not at all: its DEFER_TASKRUN ring kept the receive for the loop's
/// own enter, and the eventfd the foreign loop sleeps on was signalled late or never. No timer
/// of either loop is armed here, so each exchange finishes only if the fd reports it.
#[test]
fn every_message_of_a_lone_connection_wakes_a_foreign_loop() {
    each_backend(|lp| {
        let fd = lp.backend_fd().unwrap();
        let server = Stream::tcp_bind(lp, "127.0.0.1:0".parse().unwrap(), BindOptions::default()).unwrap();
        let addr = server.local_addr(lp).unwrap();
        listen_echo(lp, server);
        let mut client = TcpStream::connect(addr).unwrap();
        client.set_nodelay(true).unwrap();
        client.set_nonblocking(true).unwrap();
        for i in 0..2000u32 {
            let message = [(i % 251) as u8; 64];
            client.write_all(&message).unwrap();
            let mut reply = [0u8; 64];
            let mut got = 0;
            run_as_foreign_loop(
                lp,
                fd,
                |_| {
                    if let Ok(n) = client.read(&mut reply[got..]) {
                        got += n;
                    }
                    got == reply.len()
                },
                &format!("the reply to message {i}"),
            );
            assert_eq!(reply, message, "reply {i}");
        }
        drop(client);
        server.close(lp, None).unwrap();
        run_as_foreign_loop(lp, fd, |lp| !lp.alive(), "the closes");
    });
}

/// `end_pass` from a callback: the run dispatches nothing more of its pass, and the rest is
/// still ready, without a wait, for the runs that follow, in order. `pass_size` tells how many
/// the wait brought.
#[test]
fn end_pass_leaves_the_rest_of_the_pass_ready() {
    each_backend(|lp| {
        let server = Stream::tcp_bind(lp, "127.0.0.1:0".parse().unwrap(), BindOptions::default()).unwrap();
        let addr = server.local_addr(lp).unwrap();
        let conns = Rc::new(RefCell::new(Vec::new()));
        let c = conns.clone();
        server
            .listen(lp, 16, move |_, _, conn| c.borrow_mut().push(conn.unwrap()))
            .unwrap();
        let mut clients: Vec<TcpStream> = (0..4).map(|_| TcpStream::connect(addr).unwrap()).collect();
        run_until(lp, LIMIT, |_| conns.borrow().len() == 4);
        let reads = Rc::new(RefCell::new(Vec::new()));
        for (i, s) in conns.borrow().iter().enumerate() {
            let r = reads.clone();
            s.read_start(lp, move |lp, _, read| {
                if let evloop::Read::Data(d) = read {
                    r.borrow_mut().push((i, d.to_vec()));
                    lp.end_pass();
                }
            })
            .unwrap();
        }
        lp.run(RunMode::NoWait).unwrap();
        for (i, client) in clients.iter_mut().enumerate() {
            client.write_all(&[i as u8; 8]).unwrap();
        }
        // The first run whose wait brings the data dispatches one read of it.
        let start = Instant::now();
        while reads.borrow().is_empty() {
            lp.run(RunMode::Once).unwrap();
            assert!(start.elapsed() < LIMIT, "no data");
        }
        assert_eq!(reads.borrow().len(), 1, "one read per pass");
        let first_pass = lp.pass_size();
        // The rest is there without waiting: each no-wait run brings the next read. (Should
        // the kernel have split the data over two waits, later passes are waited for.)
        assert!(first_pass >= 1);
        while reads.borrow().len() < 4 {
            let before = reads.borrow().len();
            if before < first_pass {
                assert_eq!(lp.backend_timeout(), 0, "the pass's other reads are ready");
                lp.run(RunMode::NoWait).unwrap();
                assert_eq!(reads.borrow().len(), before + 1, "one read per run");
            } else {
                lp.run(RunMode::Once).unwrap();
            }
            assert!(start.elapsed() < LIMIT, "reads missing");
        }
        let mut seen: Vec<usize> = reads
            .borrow()
            .iter()
            .map(|(i, d)| {
                assert_eq!(d, &vec![*i as u8; 8]);
                *i
            })
            .collect();
        seen.sort();
        assert_eq!(seen, vec![0, 1, 2, 3]);
        drop(clients);
        for s in conns.borrow().iter() {
            s.close(lp, None).unwrap();
        }
        server.close(lp, None).unwrap();
        lp.run(RunMode::Default).unwrap();
    });
}

/// On io_uring the first `backend_fd` sets the ring up for a foreign loop, which can only be
/// done before the kernel has seen its operations: asked after a run, it fails with EBUSY and
/// the loop goes on as it was. epoll's fd serves either way.
#[test]
fn backend_fd_after_the_first_run() {
    each_backend(|lp| {
        let (server, addr, accepted) = counting_listener(lp);
        lp.run(RunMode::NoWait).unwrap();
        let fd = lp.backend_fd();
        match lp.backend_name() {
            "uring" => assert_eq!(fd, Err(Error::EBUSY)),
            _ => assert!(fd.unwrap() >= 0),
        }
        let _client = TcpStream::connect(addr).unwrap();
        run_until(lp, LIMIT, |_| accepted.get() == 1);
        server.close(lp, None).unwrap();
        lp.run(RunMode::Default).unwrap();
    });
}

/// A TCP listener on a loopback port that counts (and closes) what it accepts.
fn counting_listener(lp: &mut Loop) -> (Stream, SocketAddr, Rc<Cell<u32>>) {
    let server = Stream::tcp_bind(lp, "127.0.0.1:0".parse().unwrap(), BindOptions::default()).unwrap();
    let addr = server.local_addr(lp).unwrap();
    let accepted = Rc::new(Cell::new(0));
    let a = accepted.clone();
    server
        .listen(lp, 16, move |lp, _, conn| {
            a.set(a.get() + 1);
            conn.unwrap().close(lp, None).unwrap();
        })
        .unwrap();
    (server, addr, accepted)
}

/// Drives `lp` as a foreign loop does (sleep in poll(2) on `fd` for `backend_timeout`, then run
/// `RunMode::NoWait`) until `done`; fails if the foreign loop would have slept for ever.
fn run_as_foreign_loop(lp: &mut Loop, fd: RawFd, mut done: impl FnMut(&Loop) -> bool, what: &str) {
    let start = Instant::now();
    while !done(lp) {
        let timeout = lp.backend_timeout();
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let ready = unsafe { libc::poll(&mut pfd, 1, if timeout < 0 { 5_000 } else { timeout }) };
        assert!(
            ready != 0 || timeout >= 0,
            "a foreign loop would sleep for ever: {what}"
        );
        lp.run(RunMode::NoWait).unwrap();
        assert!(start.elapsed() < LIMIT, "too slow: {what}");
    }
}

/// Found by the Node addon, which drives the loop from libuv's: on epoll, a listener started
/// outside `run` stayed unregistered (interest changes wait for the next `epoll_wait`) while
/// `backend_timeout` said -1, so a foreign loop polling `backend_fd` slept for ever. Work
/// armed outside `run` now makes `backend_timeout` 0 until a run hands it to the kernel, and
/// every run ends with its interests registered.
#[test]
fn a_foreign_loop_learns_of_work_armed_outside_run() {
    each_backend(|lp| {
        let (server, addr, accepted) = counting_listener(lp);
        assert_eq!(
            lp.backend_timeout(),
            0,
            "the listener waits for a run to reach the kernel"
        );
        let _client = TcpStream::connect(addr).unwrap();
        // Asked for after the listener was made (its accept waits in the queue): still fine.
        let fd = lp.backend_fd().unwrap();
        run_as_foreign_loop(lp, fd, |_| accepted.get() > 0, "the pending connection");
        server.close(lp, None).unwrap();
        lp.run(RunMode::Default).unwrap();
    });
}

/// Found by the Node addon (a socket ending after its peer reset the connection mid-transfer
/// never closed): a shutdown requested while writes were queued waited for ever once a send
/// failed, since the failed queue never drains. It now finishes with the send's error.
#[test]
fn shutdown_after_a_failed_send_finishes_with_its_error() {
    each_backend(|lp| {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let connected = Rc::new(Cell::new(false));
        let c = connected.clone();
        let client = Stream::tcp_connect(lp, addr, move |_, _, r| c.set(r.is_ok())).unwrap();
        // io_uring submits the connect on the next run.
        lp.run(RunMode::NoWait).unwrap();
        let (peer, _) = listener.accept().unwrap();
        let start = Instant::now();
        while !connected.get() {
            lp.run(RunMode::Once).unwrap();
            assert!(start.elapsed() < LIMIT, "never connected");
        }
        // The peer resets the connection: linger 0, then close.
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // SAFETY: a valid fd and option struct of the size passed.
        unsafe {
            libc::setsockopt(
                peer.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                (&linger as *const libc::linger).cast(),
                std::mem::size_of::<libc::linger>() as u32,
            )
        };
        let data = vec![7u8; 8 << 20];
        client.write(lp, &data, None).unwrap();
        drop(peer);
        let result = Outcome::default();
        client.shutdown(lp, Some(record_into(&result))).unwrap();
        // A ticking timer keeps each run short, so a callback that never comes fails the test
        // instead of hanging it.
        let tick = Timer::new(lp);
        tick.start(lp, 50, 50, |_, _| {}).unwrap();
        let start = Instant::now();
        while result.borrow().is_none() {
            lp.run(RunMode::Once).unwrap();
            assert!(start.elapsed() < LIMIT, "the shutdown callback never ran");
        }
        tick.close(lp, None).unwrap();
        let res = result.borrow_mut().take().unwrap();
        assert!(
            matches!(res, Err(Error::ECONNRESET) | Err(Error::EPIPE)),
            "shutdown result {res:?}"
        );
        client.close(lp, None).unwrap();
        lp.run(RunMode::Default).unwrap();
    });
}

/// Found by the Node addon: on io_uring, a batch of file reads and writes (several in flight)
/// never finished under a foreign loop that sleeps on `backend_fd` for `backend_timeout`:
/// deferred work past the kernel's 20 items per enter, and completions of the offload ring,
/// woke nobody. An embedded loop now runs all deferred work in each zero-timeout enter and
/// keeps its file operations on its own ring.
#[test]
fn file_batches_finish_under_a_foreign_loop() {
    each_backend(|lp| {
        // An embedder asks for the fd first.
        let fd = lp.backend_fd().unwrap();
        let dir = std::env::temp_dir().join(format!(
            "evloop-foreign-files-{}-{}",
            std::process::id(),
            lp.backend_name()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let n = 64;
        let paths: Vec<_> = (0..n).map(|i| dir.join(format!("f{i}"))).collect();
        for (i, p) in paths.iter().enumerate() {
            std::fs::write(p, format!("file {i}")).unwrap();
        }
        let done = Rc::new(Cell::new(0));
        // Each finished read starts the next, as a batch with a window does.
        fn read_next(
            lp: &mut Loop,
            paths: Rc<Vec<std::path::PathBuf>>,
            next: Rc<Cell<usize>>,
            done: Rc<Cell<usize>>,
        ) {
            let i = next.get();
            if i >= paths.len() {
                return;
            }
            next.set(i + 1);
            let p = paths[i].clone();
            if i & 1 == 0 {
                evloop::fs::read_file(lp, &p, move |lp, res| {
                    assert_eq!(res.unwrap(), format!("file {i}").into_bytes());
                    done.set(done.get() + 1);
                    read_next(lp, paths, next, done);
                })
                .unwrap();
            } else {
                evloop::fs::write_file(lp, &p, format!("new {i}").into_bytes(), move |lp, res| {
                    res.unwrap();
                    done.set(done.get() + 1);
                    read_next(lp, paths, next, done);
                })
                .unwrap();
            }
        }
        let paths = Rc::new(paths);
        let next = Rc::new(Cell::new(0));
        for _ in 0..8 {
            read_next(lp, paths.clone(), next.clone(), done.clone());
        }
        run_as_foreign_loop(lp, fd, |_| done.get() == n, "the batch of reads and writes");
        // The closes that follow finish too, and the loop is no longer alive: a foreign loop
        // that counts it among its live handles can exit.
        run_as_foreign_loop(lp, fd, |lp| !lp.alive(), "the closes after the batch");
        std::fs::remove_dir_all(&dir).unwrap();
    });
}

/// Found by the Node addon: an embedder whose own loop stays alive (Node's) could not run an
/// unreferenced handle of this loop, since `NoWait` does nothing on a loop that is not alive
/// (libuv's rule, kept). `RunMode::Ready` runs the iteration whatever `alive()` says.
#[test]
fn ready_mode_runs_unreferenced_handles() {
    each_backend(|lp| {
        let (server, addr, accepted) = counting_listener(lp);
        server.unref(lp).unwrap();
        assert!(!lp.alive());
        let _client = TcpStream::connect(addr).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        assert!(!lp.run(RunMode::NoWait).unwrap());
        assert_eq!(
            accepted.get(),
            0,
            "NoWait leaves a loop that is not alive alone, as libuv does"
        );
        let start = Instant::now();
        while accepted.get() == 0 {
            assert!(!lp.run(RunMode::Ready).unwrap(), "still not alive");
            std::thread::sleep(Duration::from_millis(1));
            assert!(
                start.elapsed() < LIMIT,
                "the unreferenced listener never accepted"
            );
        }
        server.close(lp, None).unwrap();
        lp.run(RunMode::Default).unwrap();
    });
}
