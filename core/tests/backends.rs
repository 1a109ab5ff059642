//! Backend selection and the io_uring edge cases; the stress cases run on every backend.
mod common;

use common::*;
use evloop::{
    ready, BackendKind, BindOptions, Config, Error, FdWatcher, Handle, Loop, Read, RunMode, Stream,
};
use std::cell::{Cell, RefCell};
use std::rc::Rc;

#[test]
fn backend_names_and_bad_environment() {
    for kind in backends() {
        let lp = new_loop(kind);
        let want = if kind == BackendKind::Epoll {
            "epoll"
        } else {
            "uring"
        };
        assert_eq!(lp.backend_name(), want);
    }
    assert_eq!(BackendKind::parse("io_uring"), Some(BackendKind::Uring));
    assert_eq!(BackendKind::parse("kqueue"), None);
}

#[test]
fn auto_falls_back_to_epoll_when_seccomp_refuses_io_uring() {
    let outcome = std::thread::spawn(|| {
        refuse_syscall_on_this_thread(libc::SYS_io_uring_setup);
        let forced = Loop::with_config(Config {
            backend: BackendKind::Uring,
            ..Config::default()
        });
        let auto = Loop::with_config(Config {
            backend: BackendKind::Auto,
            ..Config::default()
        });
        (forced.err(), auto.map(|lp| lp.backend_name()))
    })
    .join()
    .unwrap();
    assert_eq!(
        outcome.0,
        Some(Error::EPERM),
        "forced io_uring reports the refusal"
    );
    // Auto honours EVLOOP_BACKEND when set; otherwise it must have fallen back.
    match std::env::var("EVLOOP_BACKEND").ok().as_deref() {
        Some("uring") => assert_eq!(outcome.1, Err(Error::EPERM)),
        _ => assert_eq!(outcome.1, Ok("epoll")),
    }
}

fn config(kind: BackendKind) -> Config {
    Config {
        backend: kind,
        ..Config::default()
    }
}

/// Echoes `per_conn` bytes on each of `conns` connections at once and checks every byte.
fn many_connections_echo(lp: &mut Loop, conns: usize, per_conn: usize) {
    let server = Stream::tcp_bind(lp, "127.0.0.1:0".parse().unwrap(), BindOptions::default()).unwrap();
    let addr = server.local_addr(lp).unwrap();
    listen_echo(lp, server);
    let done = Rc::new(Cell::new(0usize));
    let payload: Rc<Vec<u8>> = Rc::new((0..per_conn).map(|i| (i % 251) as u8).collect());
    let mut clients = Vec::new();
    for _ in 0..conns {
        let got = Rc::new(RefCell::new(Vec::with_capacity(per_conn)));
        let (g, d, p) = (got.clone(), done.clone(), payload.clone());
        let client = Stream::tcp_connect(lp, addr, |_, _, r| r.unwrap()).unwrap();
        client
            .read_start(lp, move |lp, c, r| {
                let Read::Data(b) = r else {
                    panic!("unexpected {r:?}")
                };
                g.borrow_mut().extend_from_slice(b);
                if g.borrow().len() == p.len() {
                    assert!(g.borrow()[..] == p[..], "echoed bytes differ");
                    d.set(d.get() + 1);
                    c.close(lp, None).unwrap();
                }
            })
            .unwrap();
        client.write(lp, &payload, None).unwrap();
        clients.push(client);
    }
    run_until(lp, LIMIT, |_| done.get() == conns);
    server.close(lp, None).unwrap();
    lp.run(RunMode::Default).unwrap();
    assert!(!lp.alive());
}

#[test]
fn receive_buffer_exhaustion_loses_nothing() {
    for kind in backends() {
        // Four 256-byte buffers for 40 connections echoing 64 KiB each: io_uring runs out of
        // provided buffers constantly and must re-arm without losing or reordering data.
        let mut lp = Loop::with_config(Config {
            ring_buffers: 4,
            ring_buffer_size: 256,
            ..config(kind)
        })
        .unwrap();
        many_connections_echo(&mut lp, 40, 64 * 1024);
        if kind == BackendKind::Uring {
            assert!(
                lp.stats().receive_buffer_exhaustions > 0,
                "the ring never ran dry: {:?}",
                lp.stats()
            );
        }
    }
}

#[test]
fn tiny_ring_completion_overflow_loses_nothing() {
    for kind in backends() {
        // Four SQ entries and sixteen CQ entries against 60 busy connections.
        let mut lp = Loop::with_config(Config {
            ring_entries: 4,
            ..config(kind)
        })
        .unwrap();
        many_connections_echo(&mut lp, 60, 16 * 1024);
        let stats = lp.stats();
        assert!(stats.completions > 0 && stats.kernel_waits > 0 && stats.iterations > 0);
        // And 100 fd watchers becoming ready in the same instant.
        let mut pipes = Vec::new();
        let fired = Rc::new(Cell::new(0));
        for _ in 0..100 {
            let mut fds = [0; 2];
            // SAFETY: valid array for pipe2.
            assert_eq!(
                unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) },
                0
            );
            let w = FdWatcher::new(&mut lp, fds[0]).unwrap();
            let f = fired.clone();
            w.start(&mut lp, ready::READABLE, move |lp, w, r| {
                assert!(r.unwrap() & ready::READABLE != 0);
                f.set(f.get() + 1);
                w.close(lp, None).unwrap();
            })
            .unwrap();
            pipes.push(fds);
        }
        lp.run(RunMode::NoWait).unwrap();
        for fds in &pipes {
            // SAFETY: one byte into our own pipe.
            assert_eq!(unsafe { libc::write(fds[1], b"x".as_ptr().cast(), 1) }, 1);
        }
        run_until(&mut lp, LIMIT, |_| fired.get() == 100);
        lp.run(RunMode::Default).unwrap();
        if kind == BackendKind::Uring {
            assert!(
                lp.stats().completion_overflow_flushes > 0,
                "the CQ never overflowed: {:?}",
                lp.stats()
            );
        }
        for fds in pipes {
            // SAFETY: closing our own pipes.
            unsafe {
                libc::close(fds[0]);
                libc::close(fds[1]);
            }
        }
    }
}

#[test]
fn close_with_reads_and_writes_in_flight() {
    each_backend(|lp| {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let connected = Rc::new(Cell::new(false));
        let c = connected.clone();
        let client = Stream::tcp_connect(lp, addr, move |_, _, r| {
            r.unwrap();
            c.set(true)
        })
        .unwrap();
        run_until(lp, LIMIT, |_| connected.get());
        let (peer, _) = listener.accept().unwrap();
        let after_close = Rc::new(Cell::new(0));
        let a = after_close.clone();
        client.read_start(lp, move |_, _, _| a.set(a.get() + 1)).unwrap();
        // 8 MiB the peer never reads: the send stays in flight.
        let write_result = Rc::new(RefCell::new(None));
        let w = write_result.clone();
        client
            .write(
                lp,
                &vec![1u8; 8 << 20],
                Some(Box::new(move |_, _, r| *w.borrow_mut() = Some(r))),
            )
            .unwrap();
        lp.run(RunMode::NoWait).unwrap();
        let closed = Rc::new(Cell::new(0));
        let c = closed.clone();
        client
            .close(lp, Some(Box::new(move |_| c.set(c.get() + 1))))
            .unwrap();
        // Data arriving now must not reach the read callback.
        use std::io::Write;
        let _ = (&peer).write_all(b"too late");
        let reads_at_close = after_close.get();
        lp.run(RunMode::Default).unwrap();
        assert_eq!(closed.get(), 1);
        assert_eq!(after_close.get(), reads_at_close, "no read callback after close");
        let r = write_result.borrow_mut().take().expect("the write callback ran");
        assert!(r.is_ok() || r == Err(Error::ECANCELED), "{r:?}");
        assert!(!lp.alive());
    });
}

#[test]
fn data_arriving_after_read_stop_is_kept_in_order() {
    each_backend(|lp| {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let client = Stream::tcp_connect(lp, addr, |_, _, r| r.unwrap()).unwrap();
        let got = Rc::new(RefCell::new(Vec::new()));
        let pauses = Rc::new(Cell::new(0));
        let (g, p) = (got.clone(), pauses.clone());
        // Stops reading after every chunk; a timer starts it again.
        fn reader(
            g: Rc<RefCell<Vec<u8>>>,
            p: Rc<Cell<u32>>,
        ) -> impl FnMut(&mut Loop, Stream, Read<'_>) + 'static {
            move |lp, s, r| {
                if let Read::Data(b) = r {
                    g.borrow_mut().extend_from_slice(b);
                    s.read_stop(lp).unwrap();
                    p.set(p.get() + 1);
                    let t = evloop::Timer::new(lp);
                    let (g, p) = (g.clone(), p.clone());
                    t.start(lp, 1, 0, move |lp, t| {
                        if s.is_closing(lp) || !s.is_alive(lp) {
                            assert_eq!(s.read_start(lp, |_, _, _| {}), Err(Error::EBADF));
                        } else {
                            s.read_start(lp, reader(g.clone(), p.clone())).unwrap();
                        }

                        t.close(lp, None).unwrap();
                    })
                    .unwrap();
                }
            }
        }
        client.read_start(lp, reader(g, p)).unwrap();
        lp.run(RunMode::NoWait).unwrap(); // io_uring starts the connect when it enters the kernel
        let (peer, _) = listener.accept().unwrap();

        let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
        let writer = {
            let payload = payload.clone();
            std::thread::spawn(move || {
                use std::io::Write;
                for chunk in payload.chunks(1000) {
                    (&peer).write_all(chunk).unwrap();
                }
                peer
            })
        };
        run_until(lp, LIMIT, |_| got.borrow().len() == payload.len());
        let _peer = writer.join().unwrap();
        assert!(got.borrow()[..] == payload[..], "bytes lost or reordered");
        assert!(pauses.get() > 1);
        client.close(lp, None).unwrap();
        lp.run(RunMode::Default).unwrap();
    });
}

/// In a child process with a low descriptor limit: accept until EMFILE, keep going for a while,
/// and check the loop waited instead of spinning.
fn emfile_child(kind: BackendKind) {
    let limit = libc::rlimit {
        rlim_cur: 48,
        rlim_max: 20_000,
    };
    // SAFETY: lowers this (child) process's soft descriptor limit.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0);
    let mut lp = Loop::with_config(config(kind)).unwrap();
    let server = Stream::tcp_bind(&mut lp, "127.0.0.1:0".parse().unwrap(), BindOptions::default()).unwrap();
    let port = server.local_addr(&lp).unwrap().port();
    let (accepted, refused) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(0)));
    let (a, r) = (accepted.clone(), refused.clone());
    let mut kept = Vec::new();
    server
        .listen(&mut lp, 1024, move |_, _, conn| match conn {
            Ok(c) => {
                a.set(a.get() + 1);
                kept.push(c); // hold every fd until the limit is reached
            }
            Err(e) => {
                assert!(e == Error::EMFILE || e == Error::ENFILE, "{e}");
                r.set(r.get() + 1);
            }
        })
        .unwrap();
    println!("PORT {port}");
    use std::io::Write;
    std::io::stdout().flush().unwrap();
    let stop = evloop::Timer::new(&mut lp);
    stop.start(&mut lp, 1500, 0, |lp, _| lp.stop()).unwrap();
    lp.run(RunMode::Default).unwrap();
    let stats = lp.stats();
    assert!(accepted.get() > 0, "accepted nothing");
    assert!(refused.get() > 0, "never reached the descriptor limit");
    // A spinning loop makes hundreds of thousands of iterations in 1.5 s.
    assert!(
        stats.iterations < 5_000,
        "the loop spun at the descriptor limit: {stats:?}"
    );
}

#[test]
fn descriptor_exhaustion_does_not_spin() {
    if let Ok(kind) = std::env::var("EVLOOP_EMFILE_CHILD") {
        return emfile_child(BackendKind::parse(&kind).unwrap());
    }
    for kind in backends() {
        let name = if kind == BackendKind::Uring {
            "uring"
        } else {
            "epoll"
        };
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "descriptor_exhaustion_does_not_spin",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("EVLOOP_EMFILE_CHILD", name)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut port = None;
        let mut line = String::new();
        use std::io::BufRead;
        while port.is_none() && out.read_line(&mut line).unwrap() > 0 {
            // libtest may print "test <name> ... " on the same line first.
            port = line
                .split("PORT ")
                .nth(1)
                .and_then(|p| p.trim().parse::<u16>().ok());
            line.clear();
        }
        let port = port.expect("child printed its port");
        // Far more connections than the child has descriptors for; kept open meanwhile.
        let clients: Vec<_> = (0..120)
            .filter_map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).ok())
            .collect();
        assert!(clients.len() > 48);
        let status = child.wait().unwrap();
        assert!(status.success(), "{name}: child failed: {status}");
    }
}
