//! Behaviours libuv's own suite checks (test/test-list.h) that evloop has and had not tested;
//! each test names the libuv tests it mirrors. TESTING.md maps the whole list.
mod common;

use common::*;
use evloop::{ready, BindOptions, Error, FdWatcher, Handle, RunMode, Stream, Timer, Udp, UdpBindOptions};
use std::cell::{Cell, RefCell};
use std::os::fd::AsRawFd;
use std::rc::Rc;

/// tcp_bind_error_addrinuse_listen, tcp_bind6_error_addrinuse.
#[test]
fn binding_a_listening_port_again_fails_with_eaddrinuse() {
    each_backend(|lp| {
        for any in ["127.0.0.1:0", "[::1]:0"] {
            let first = Stream::tcp_bind(lp, any.parse().unwrap(), BindOptions::default()).unwrap();
            first.listen(lp, 8, |_, _, _| {}).unwrap();
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
        let result = Rc::new(RefCell::new(None));
        let r = result.clone();
        let sent = u.send_to(
            lp,
            &vec![0u8; 70_000],
            to,
            Some(Box::new(move |_, _, res| *r.borrow_mut() = Some(res))),
        );
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
