//! Behaviours libuv's own suite checks (test/test-list.h) that evloop has and had not tested;
//! each test names the libuv tests it mirrors. TESTING.md maps the whole list.
mod common;

use common::*;
use evloop::{ready, BindOptions, Error, FdWatcher, Handle, RunMode, Stream, Timer, Udp, UdpBindOptions};
use std::cell::{Cell, RefCell};
use std::os::fd::AsRawFd;
use std::rc::Rc;

/// tcp_bind_error_addrinuse_listen, tcp_bind6_error_addrinuse, multiple_listen.
#[test]
fn binding_a_listening_port_again_fails_with_eaddrinuse() {
    each_backend(|lp| {
        for any in ["127.0.0.1:0", "[::1]:0"] {
            let first = Stream::tcp_bind(lp, any.parse().unwrap(), BindOptions::default()).unwrap();
            first.listen(lp, 8, |_, _, _| {}).unwrap();
            assert_eq!(
                first.listen(lp, 8, |_, _, _| {}),
                Err(Error::EALREADY),
                "listen twice"
            );
            let addr = first.local_addr(lp).unwrap();
            let again = Stream::tcp_bind(lp, addr, BindOptions::default())
                .and_then(|s| s.listen(lp, 8, |_, _, _| {}).map(|_| s));
            assert_eq!(again.err(), Some(Error::EADDRINUSE), "{any}");
            first.close(lp, None).unwrap();
        }
        lp.run(RunMode::Default).unwrap();
    });
}

/// tcp_close_while_connecting, connection_fail_doesnt_auto_close: the connect callback runs
/// once, before the close callback, and the handle stays the caller's until closed.
#[test]
fn closing_while_connecting_runs_the_connect_callback_once_before_the_close_callback() {
    each_backend(|lp| {
        let server = Stream::tcp_bind(lp, "127.0.0.1:0".parse().unwrap(), BindOptions::default()).unwrap();
        server
            .listen(lp, 8, |lp, _, c| c.unwrap().close(lp, None).unwrap())
            .unwrap();
        let addr = server.local_addr(lp).unwrap();
        let order = Rc::new(RefCell::new(Vec::new()));
        let o = order.clone();
        let c = Stream::tcp_connect(lp, addr, move |_, _, r| {
            assert!(r.is_ok() || r == Err(Error::ECANCELED), "{r:?}");
            o.borrow_mut().push("connect");
        })
        .unwrap();
        let o = order.clone();
        c.close(lp, Some(Box::new(move |_| o.borrow_mut().push("close"))))
            .unwrap();
        server.close(lp, None).unwrap();
        lp.run(RunMode::Default).unwrap();
        assert_eq!(*order.borrow(), ["connect", "close"]);
    });
}

/// timer_start_twice: a restarted timer fires once, for the second start.
#[test]
fn a_timer_started_twice_fires_once() {
    each_backend(|lp| {
        let fired = Rc::new(Cell::new(0));
        let t = Timer::new(lp);
        t.start(lp, 100_000, 0, |_, _| panic!("the first start was replaced"))
            .unwrap();
        let f = fired.clone();
        t.start(lp, 10, 0, move |_, _| f.set(f.get() + 1)).unwrap();
        lp.run(RunMode::Default).unwrap();
        assert_eq!(fired.get(), 1);
        t.close(lp, None).unwrap();
        lp.run(RunMode::Default).unwrap();
    });
}

/// timer_zero_timeout, timer_no_double_call_once, timer_no_double_call_nowait, timer_run_once:
/// a zero-timeout timer that restarts itself fires once per iteration, never twice in one.
#[test]
fn a_zero_timeout_timer_fires_once_per_iteration() {
    each_backend(|lp| {
        let fired = Rc::new(Cell::new(0));
        let t = Timer::new(lp);
        let f = fired.clone();
        t.start(lp, 0, 0, move |lp, t| {
            f.set(f.get() + 1);
            t.start(lp, 0, 0, |_, _| {}).unwrap();
        })
        .unwrap();
        lp.run(RunMode::NoWait).unwrap();
        assert_eq!(fired.get(), 1, "NoWait");
        let f = fired.clone();
        t.start(lp, 0, 0, move |_, _| f.set(f.get() + 1)).unwrap();
        lp.run(RunMode::Once).unwrap();
        assert_eq!(fired.get(), 2, "Once");
        let f = fired.clone();
        t.start(lp, 1, 0, move |_, _| f.set(f.get() + 1)).unwrap();
        assert!(!lp.run(RunMode::Once).unwrap() || fired.get() == 2);
        run_until(lp, LIMIT, |_| fired.get() == 3);
        t.close(lp, None).unwrap();
        lp.run(RunMode::Default).unwrap();
    });
}

/// loop_stop, loop_stop_before_run: stop makes run return after the current iteration with
/// the loop still alive; the next run goes on.
#[test]
fn stop_returns_from_run_and_the_next_run_goes_on() {
    each_backend(|lp| {
        let ticks = Rc::new(Cell::new(0));
        let t = Timer::new(lp);
        let k = ticks.clone();
        t.start(lp, 1, 1, move |lp, t| {
            k.set(k.get() + 1);
            if k.get() == 3 {
                lp.stop();
            }
            if k.get() == 6 {
                t.close(lp, None).unwrap();
            }
        })
        .unwrap();
        lp.stop();
        assert!(lp.run(RunMode::Default).unwrap(), "stopped before running: alive");
        assert!(ticks.get() <= 1);
        assert!(lp.run(RunMode::Default).unwrap(), "stopped by the third tick");
        assert_eq!(ticks.get(), 3);
        assert!(!lp.run(RunMode::Default).unwrap());
        assert_eq!(ticks.get(), 6);
    });
}

/// timer_is_closing, active, has_ref: the life-cycle queries through close.
#[test]
fn life_cycle_queries_follow_the_handle_through_close() {
    each_backend(|lp| {
        let t = Timer::new(lp);
        assert!(t.is_alive(lp) && !t.is_active(lp) && !t.is_closing(lp) && t.has_ref(lp));
        t.start(lp, 1000, 0, |_, _| {}).unwrap();
        assert!(t.is_active(lp));
        t.unref(lp).unwrap();
        assert!(!t.has_ref(lp) && !lp.alive());
        t.close(lp, None).unwrap();
        assert!(t.is_closing(lp) && !t.is_active(lp) && t.is_alive(lp));
        assert_eq!(t.close(lp, None), Err(Error::EBADF));
        assert_eq!(t.start(lp, 1, 0, |_, _| {}), Err(Error::EBADF));
        lp.run(RunMode::Default).unwrap();
        assert!(!t.is_alive(lp) && !t.is_closing(lp));
        assert_eq!(t.stop(lp), Err(Error::EBADF), "a stale handle");
    });
}

/// udp_dgram_too_big: a datagram over the protocol's limit fails with EMSGSIZE.
#[test]
fn an_oversized_datagram_fails_with_emsgsize() {
    each_backend(|lp| {
        let u = Udp::bind(lp, "127.0.0.1:0".parse().unwrap(), UdpBindOptions::default()).unwrap();
        let to = u.local_addr(lp).unwrap();
        let result = Outcome::default();
        let sent = u.send_to(lp, &vec![0u8; 70_000], to, Some(record_into(&result)));
        match sent {
            Err(e) => assert_eq!(e, Error::EMSGSIZE),
            Ok(()) => {
                run_until(lp, LIMIT, |_| result.borrow().is_some());
                assert_eq!(result.borrow_mut().take().unwrap(), Err(Error::EMSGSIZE));
            }
        }
        u.close(lp, None).unwrap();
        lp.run(RunMode::Default).unwrap();
    });
}

/// udp_bind_reuseaddr, udp_reuseport: two sockets share a port only when both ask.
#[test]
fn udp_sockets_share_a_port_only_when_asked() {
    each_backend(|lp| {
        let opts = UdpBindOptions {
            reuse_addr: true,
            ..UdpBindOptions::default()
        };
        let a = Udp::bind(lp, "127.0.0.1:0".parse().unwrap(), opts).unwrap();
        let addr = a.local_addr(lp).unwrap();
        let b = Udp::bind(lp, addr, opts).unwrap();
        assert_eq!(
            Udp::bind(lp, addr, UdpBindOptions::default()).err(),
            Some(Error::EADDRINUSE)
        );
        for u in [a, b] {
            u.close(lp, None).unwrap();
        }
        lp.run(RunMode::Default).unwrap();
    });
}

/// poll_bad_fdtype: a regular file or a directory cannot be watched (epoll refuses it, and a
/// ring poll would report it ready for ever): EPERM on both backends, as libuv's uv_poll_init.
#[test]
fn watching_a_regular_file_is_refused() {
    each_backend(|lp| {
        let f = std::fs::File::open("/proc/self/exe").unwrap();
        assert_eq!(FdWatcher::new(lp, f.as_raw_fd()).err(), Some(Error::EPERM));
        let d = std::fs::File::open("/").unwrap();
        assert_eq!(FdWatcher::new(lp, d.as_raw_fd()).err(), Some(Error::EPERM));
        // Sockets, pipes and character devices are fine.
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let w = FdWatcher::new(lp, a.as_raw_fd()).unwrap();
        w.start(lp, ready::WRITABLE, |lp, w, _| w.close(lp, None).unwrap())
            .unwrap();
        lp.run(RunMode::Default).unwrap();
    });
}

/// tcp_bind_error_addrnotavail_1, _2, tcp_bind6_error_addrnotavail: binding to an address this
/// machine does not have (no packet is sent: bind is local).
#[test]
fn binding_an_address_this_machine_lacks_fails_with_eaddrnotavail() {
    each_backend(|lp| {
        for addr in ["4.4.4.4:0", "[4:4:4:4:4:4:4:4]:0"] {
            let r = Stream::tcp_bind(lp, addr.parse().unwrap(), BindOptions::default());
            assert_eq!(r.err(), Some(Error::EADDRNOTAVAIL), "{addr}");
        }
        let r = Udp::bind(lp, "4.4.4.4:0".parse().unwrap(), UdpBindOptions::default());
        assert_eq!(r.err(), Some(Error::EADDRNOTAVAIL));
        lp.run(RunMode::Default).unwrap();
    });
}

/// poll_nested_epoll (and the embedding Node's addon relies on): one loop watches another's
/// `backend_fd()`; when it polls readable, a no-wait run of the inner loop finds the work. Every
/// pairing of backends.
#[test]
fn a_loop_watched_through_its_backend_fd_from_another_loop() {
    for outer_kind in backends() {
        for inner_kind in backends() {
            eprintln!("-- outer {outer_kind:?}, inner {inner_kind:?}");
            let mut outer = new_loop(outer_kind);
            let inner = Rc::new(RefCell::new(new_loop(inner_kind)));
            let woken = Rc::new(Cell::new(0));
            let w = woken.clone();
            let wake = {
                let lp = &mut *inner.borrow_mut();
                let a = evloop::Async::new(lp, move |lp, a| {
                    w.set(w.get() + 1);
                    a.close(lp, None).unwrap();
                })
                .unwrap();
                a.waker(lp).unwrap()
            };
            // An embedder asks for the fd before the inner loop first runs.
            let fd = inner.borrow_mut().backend_fd().unwrap();
            // Settle the inner loop: its wake-up read is in the kernel before it is watched.
            inner.borrow_mut().run(RunMode::NoWait).unwrap();
            let watcher = FdWatcher::new(&mut outer, fd).unwrap();
            let (i, w) = (inner.clone(), woken.clone());
            watcher
                .start(&mut outer, ready::READABLE, move |lp, watcher, r| {
                    assert!(r.is_ok());
                    i.borrow_mut().run(RunMode::NoWait).unwrap();
                    if w.get() > 0 {
                        watcher.close(lp, None).unwrap();
                    }
                })
                .unwrap();
            let t = std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(20));
                wake.wake();
            });
            run_until(&mut outer, LIMIT, |_| woken.get() == 1);
            t.join().unwrap();
            outer.run(RunMode::Default).unwrap();
            assert!(!outer.alive());
        }
    }
}

/// threadpool_multiple_event_loops: loops on several threads share the pool; each gets its own
/// results.
#[test]
fn loops_on_several_threads_share_the_pool() {
    let kinds = backends();
    let threads: Vec<_> = (0..4)
        .map(|n| {
            let kind = kinds[n % kinds.len()];
            std::thread::spawn(move || {
                let mut lp = new_loop(kind);
                let sum = Rc::new(Cell::new(0u64));
                for i in 0..50u64 {
                    let s = sum.clone();
                    lp.queue_work(
                        move || i * 1000 + n as u64,
                        move |_, r| s.set(s.get() + r.unwrap()),
                    )
                    .unwrap();
                }
                lp.run(RunMode::Default).unwrap();
                assert_eq!(sum.get(), (0..50u64).map(|i| i * 1000 + n as u64).sum());
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

/// fs_file_open_append, fs_file_pos_append, fs_file_loop: writes to a file opened with O_APPEND
/// land at its end, and a symlink loop fails with ELOOP.
#[test]
fn append_writes_and_symlink_loops() {
    each_backend(|lp| {
        let dir = std::env::temp_dir().join(format!(
            "evloop-append-{}-{}",
            std::process::id(),
            lp.backend_name()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("log");
        std::fs::write(&path, b"one ").unwrap();
        let fd = Rc::new(Cell::new(-1));
        let f = fd.clone();
        evloop::fs::open(lp, &path, libc::O_WRONLY | libc::O_APPEND, 0, move |_, r| {
            f.set(r.unwrap())
        })
        .unwrap();
        run_until(lp, LIMIT, |_| fd.get() >= 0);
        let done = Rc::new(Cell::new(0));
        for word in [&b"two "[..], &b"three"[..]] {
            let d = done.clone();
            evloop::fs::write(lp, fd.get(), word.to_vec(), None, move |_, r, _| {
                r.unwrap();
                d.set(d.get() + 1);
            })
            .unwrap();
            let want = done.get() + 1;
            run_until(lp, LIMIT, |_| done.get() == want);
        }
        evloop::fs::close(lp, fd.get(), |_, r| r.unwrap()).unwrap();
        lp.run(RunMode::Default).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"one two three");
        let (a, b) = (dir.join("a"), dir.join("b"));
        std::os::unix::fs::symlink(&b, &a).unwrap();
        std::os::unix::fs::symlink(&a, &b).unwrap();
        let got = Rc::new(RefCell::new(None));
        let g = got.clone();
        evloop::fs::read_file(lp, &a, move |_, r| *g.borrow_mut() = Some(r.map(|v| v.len()))).unwrap();
        run_until(lp, LIMIT, |_| got.borrow().is_some());
        assert_eq!(got.borrow_mut().take().unwrap(), Err(Error::ELOOP));
        std::fs::remove_dir_all(&dir).unwrap();
    });
}

/// poll_oob, tcp_oob: urgent data reports PRIORITIZED to a watcher that asked for it.
#[test]
fn urgent_data_reports_prioritized() {
    each_backend(|lp| {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        let seen = Rc::new(Cell::new(0u32));
        let s = seen.clone();
        let w = FdWatcher::new(lp, server.as_raw_fd()).unwrap();
        w.start(lp, ready::PRIORITIZED, move |lp, w, r| {
            s.set(r.unwrap());
            w.close(lp, None).unwrap();
        })
        .unwrap();
        // SAFETY: sends one byte from a literal, flagged urgent.
        let sent = unsafe { libc::send(client.as_raw_fd(), b"!".as_ptr().cast(), 1, libc::MSG_OOB) };
        assert_eq!(sent, 1);
        run_until(lp, LIMIT, |_| seen.get() != 0);
        assert_eq!(seen.get() & ready::PRIORITIZED, ready::PRIORITIZED);
        lp.run(RunMode::Default).unwrap();
    });
}

/// threadpool_cancel_getaddrinfo, threadpool_cancel_getnameinfo: resolutions still queued
/// behind busy workers can be cancelled; their callbacks get ECANCELED.
#[test]
fn queued_resolutions_can_be_cancelled() {
    each_backend(|lp| {
        // Occupy every worker until the resolutions are queued and cancelled.
        let gate = std::sync::Arc::new((std::sync::Mutex::new(false), std::sync::Condvar::new()));
        let blockers = 128; // at least the pool's size (EVLOOP_THREADPOOL_SIZE is at most 128)
        for _ in 0..blockers {
            let g = gate.clone();
            lp.queue_work(
                move || {
                    let (lock, cv) = &*g;
                    let mut open = lock.lock().unwrap();
                    while !*open {
                        open = cv.wait(open).unwrap();
                    }
                },
                |_, r| r.unwrap(),
            )
            .unwrap();
        }
        let results = Rc::new(RefCell::new(Vec::new()));
        let (r1, r2) = (results.clone(), results.clone());
        let a = lp
            .getaddrinfo("localhost", 80, Default::default(), move |_, r| {
                r1.borrow_mut().push(r.err())
            })
            .unwrap();
        let n = lp
            .getnameinfo("127.0.0.1:80".parse().unwrap(), move |_, r| {
                r2.borrow_mut().push(r.err())
            })
            .unwrap();
        lp.run(RunMode::NoWait).unwrap();
        assert_eq!(lp.cancel_work(a), Ok(()));
        assert_eq!(lp.cancel_work(n), Ok(()));
        assert_eq!(lp.cancel_work(n), Err(Error::EBADF), "cancelled already");
        let (lock, cv) = &*gate;
        *lock.lock().unwrap() = true;
        cv.notify_all();
        lp.run(RunMode::Default).unwrap();
        assert_eq!(
            *results.borrow(),
            vec![Some(Error::ECANCELED), Some(Error::ECANCELED)]
        );
    });
}

/// fs_write_alotof_bufs, fs_partial_write: a vectored call of more buffers than writev(2)
/// takes (1,024) is refused with EINVAL, as the kernel would refuse it (libuv splits it; evloop
/// leaves the split to the caller), 1,024 are written whole; and a write into a non-blocking
/// pipe with less room than asked gives a short count.
#[test]
fn vectored_writes_of_many_buffers_and_short_writes() {
    each_backend(|lp| {
        let dir =
            std::env::temp_dir().join(format!("evloop-iov-{}-{}", std::process::id(), lp.backend_name()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("many");
        let file = std::fs::File::create(&path).unwrap();
        let fd = file.as_raw_fd();
        let bufs = |n: usize| -> Vec<Vec<u8>> { (0..n).map(|i| vec![(i % 251) as u8; 3]).collect() };
        let refused = evloop::fs::writev(lp, fd, bufs(1025), Some(0), |_, _, _| panic!("not started"));
        assert_eq!(refused.err(), Some(Error::EINVAL));
        let got = Rc::new(RefCell::new(None));
        let g = got.clone();
        evloop::fs::writev(lp, fd, bufs(1024), Some(0), move |_, r, _| {
            *g.borrow_mut() = Some(r)
        })
        .unwrap();
        run_until(lp, LIMIT, |_| got.borrow().is_some());
        assert_eq!(got.borrow_mut().take().unwrap(), Ok(1024 * 3));
        let want: Vec<u8> = bufs(1024).concat();
        assert_eq!(std::fs::read(&path).unwrap(), want);
        drop(file);
        std::fs::remove_dir_all(&dir).unwrap();

        let mut p = [0; 2];
        // SAFETY: a two-element array for the new pipe.
        assert_eq!(
            unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) },
            0
        );
        let written = Rc::new(RefCell::new(None));
        let w = written.clone();
        evloop::fs::write(lp, p[1], vec![7u8; 1 << 20], None, move |_, r, _| {
            *w.borrow_mut() = Some(r)
        })
        .unwrap();
        run_until(lp, LIMIT, |_| written.borrow().is_some());
        let n = written.borrow_mut().take().unwrap().unwrap();
        assert!(n > 0 && n < 1 << 20, "a short count, not {n}");
        // SAFETY: closing the pipe this test made.
        unsafe {
            libc::close(p[0]);
            libc::close(p[1]);
        }
    });
}

/// poll_multiple_handles: a second watcher may not start on an fd another watcher of the loop
/// is active on (EEXIST, on both backends); once the first stops, it may.
#[test]
fn one_active_watcher_per_fd() {
    each_backend(|lp| {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let (first, second) = (
            FdWatcher::new(lp, a.as_raw_fd()).unwrap(),
            FdWatcher::new(lp, a.as_raw_fd()).unwrap(),
        );
        first.start(lp, ready::WRITABLE, |_, _, _| {}).unwrap();
        assert_eq!(
            second.start(lp, ready::WRITABLE, |_, _, _| {}),
            Err(Error::EEXIST)
        );
        first.start(lp, ready::READABLE, |_, _, _| {}).unwrap(); // changing its own events is fine
        first.stop(lp).unwrap();
        let fired = Rc::new(Cell::new(false));
        let f = fired.clone();
        second
            .start(lp, ready::WRITABLE, move |_, _, r| {
                assert!(r.unwrap() & ready::WRITABLE != 0);
                f.set(true);
            })
            .unwrap();
        assert_eq!(first.start(lp, ready::WRITABLE, |_, _, _| {}), Err(Error::EEXIST));
        run_until(lp, LIMIT, |_| fired.get());
        second.close(lp, None).unwrap();
        first
            .start(lp, ready::WRITABLE, |lp, w, _| w.close(lp, None).unwrap())
            .unwrap();
        lp.run(RunMode::Default).unwrap();
        assert!(!lp.alive());
    });
}

/// udp_multicast_join6: joining and leaving an IPv6 group on the loopback interface (or a
/// clean error where this sandbox's loopback has no IPv6 multicast); leaving a group not
/// joined fails.
#[test]
fn ipv6_multicast_membership_on_loopback() {
    each_backend(|lp| {
        let opts = UdpBindOptions {
            reuse_addr: true,
            ..UdpBindOptions::default()
        };
        let u = Udp::bind(lp, "[::]:0".parse().unwrap(), opts).unwrap();
        let group: std::net::IpAddr = "ff02::1:3".parse().unwrap();
        let any = std::net::Ipv4Addr::UNSPECIFIED;
        // SAFETY: a NUL-terminated interface name.
        let lo = unsafe { libc::if_nametoindex(c"lo".as_ptr()) };
        match u.set_membership(lp, group, any, lo, true) {
            Err(e) => assert!(
                e == Error::ENODEV || e == Error::EADDRNOTAVAIL || e == Error::EINVAL,
                "{e}"
            ),
            Ok(()) => {
                u.set_membership(lp, group, any, lo, false).unwrap();
                assert!(u.set_membership(lp, group, any, lo, false).is_err(), "left twice");
            }
        }
        u.close(lp, None).unwrap();
        lp.run(RunMode::Default).unwrap();
    });
}
