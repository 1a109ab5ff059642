mod common;

use common::*;
use evloop::{ready, Async, Error, FdWatcher, Handle, RunMode, Signal};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

#[test]
fn wakeups_from_eight_threads_coalesce_and_none_is_lost() {
    each_backend(|lp| {
        let sent = Arc::new(AtomicUsize::new(0));
        let calls = Rc::new(Cell::new(0usize));
        let seen_all = Rc::new(Cell::new(false));
        let (s, c, all) = (sent.clone(), calls.clone(), seen_all.clone());
        let handle = Async::new(lp, move |_, _| {
            c.set(c.get() + 1);
            if s.load(Ordering::SeqCst) == 80_000 {
                all.set(true);
            }
        })
        .unwrap();
        let waker = handle.waker(lp).unwrap();
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (w, s) = (waker.clone(), sent.clone());
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        s.fetch_add(1, Ordering::SeqCst);
                        w.wake();
                    }
                })
            })
            .collect();
        run_until(lp, LIMIT, |_| seen_all.get());
        for t in threads {
            t.join().unwrap();
        }
        assert!(calls.get() >= 1);
        assert!(calls.get() < 80_000, "wakes coalesce ({} calls)", calls.get());
        // After everything settled, one more wake means exactly one more call.
        let before = calls.get();
        waker.wake();
        waker.wake();
        run_until(lp, LIMIT, |_| calls.get() > before);
        lp.run(RunMode::NoWait).unwrap();
        assert_eq!(calls.get(), before + 1);
        handle.close(lp, None).unwrap();
        lp.run(RunMode::Default).unwrap();
        assert!(!lp.alive());
        waker.wake(); // after close: harmless
    });
}

#[test]
fn signals_reach_every_watcher_and_bad_numbers_are_refused() {
    each_backend(|lp| {
        let got = Rc::new(RefCell::new(Vec::new()));
        let (a, b) = (Signal::new(lp).unwrap(), Signal::new(lp).unwrap());
        for (h, tag) in [(a, "a"), (b, "b")] {
            let g = got.clone();
            h.start(lp, libc::SIGUSR1, move |_, _, signum| {
                g.borrow_mut().push((tag, signum))
            })
            .unwrap();
        }
        assert_eq!(a.signum(lp), libc::SIGUSR1);
        // SAFETY: sends SIGUSR1 to this process, which now has a handler for it.
        unsafe { libc::kill(libc::getpid(), libc::SIGUSR1) };
        run_until(lp, LIMIT, |_| got.borrow().len() == 2);
        let mut v = got.borrow().clone();
        v.sort();
        assert_eq!(v, vec![("a", libc::SIGUSR1), ("b", libc::SIGUSR1)]);
        for bad in [0, -1, 65, libc::SIGKILL, libc::SIGSTOP] {
            assert_eq!(a.start(lp, bad, |_, _, _| {}), Err(Error::EINVAL));
        }
        // After the last watcher stops, the default disposition is back.
        a.close(lp, None).unwrap();
        b.stop(lp).unwrap();
        b.close(lp, None).unwrap();
        lp.run(RunMode::Default).unwrap();
        // SAFETY: reads the current disposition without changing it.
        let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
        unsafe { libc::sigaction(libc::SIGUSR1, std::ptr::null(), &mut old) };
        assert_eq!(old.sa_sigaction, libc::SIG_DFL);
    });
}

#[test]
fn fd_watcher_on_a_pipe() {
    each_backend(|lp| {
        let mut fds = [0; 2];
        // SAFETY: valid array for pipe2.
        assert_eq!(
            unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) },
            0
        );
        let (rd, wr) = (fds[0], fds[1]);
        let events = Rc::new(RefCell::new(Vec::new()));
        let reader = FdWatcher::new(lp, rd).unwrap();
        let e = events.clone();
        reader
            .start(lp, ready::READABLE, move |lp, w, r| {
                let bits = r.unwrap();
                let mut buf = [0u8; 64];
                // SAFETY: reads into a local buffer.
                let n = unsafe { libc::read(rd, buf.as_mut_ptr().cast(), 64) };
                e.borrow_mut().push((bits, n));
                if n == 0 {
                    w.stop(lp).unwrap();
                }
            })
            .unwrap();
        let writable = Rc::new(Cell::new(false));
        let wv = writable.clone();
        let writer = FdWatcher::new(lp, wr).unwrap();
        writer
            .start(lp, ready::WRITABLE, move |lp, w, r| {
                assert!(r.unwrap() & ready::WRITABLE != 0);
                wv.set(true);
                w.stop(lp).unwrap();
            })
            .unwrap();
        run_until(lp, LIMIT, |_| writable.get());
        assert!(events.borrow().is_empty(), "nothing to read yet");
        // SAFETY: writes 5 bytes from a literal.
        assert_eq!(unsafe { libc::write(wr, b"hello".as_ptr().cast(), 5) }, 5);
        run_until(lp, LIMIT, |_| !events.borrow().is_empty());
        assert_eq!(events.borrow()[0], (ready::READABLE, 5));
        // Hang-up of the write end reads as readable with EOF.
        writer.close(lp, None).unwrap();
        // SAFETY: closing our own pipe end.
        unsafe { libc::close(wr) };
        run_until(lp, LIMIT, |_| events.borrow().len() == 2);
        assert_eq!(events.borrow()[1].1, 0);
        assert!(events.borrow()[1].0 & ready::READABLE != 0);
        // Changing interest while started, and misuse.
        assert_eq!(reader.start(lp, 0, |_, _, _| {}), Ok(()), "no events: stopped");
        assert!(!reader.is_active(lp));
        assert_eq!(reader.start(lp, 1 << 9, |_, _, _| {}), Err(Error::EINVAL));
        assert_eq!(FdWatcher::new(lp, -1).err(), Some(Error::EBADF));
        reader.close(lp, None).unwrap();
        lp.run(RunMode::Default).unwrap();
        // SAFETY: the watcher did not close the caller's fd: fcntl still succeeds.
        assert!(unsafe { libc::fcntl(rd, libc::F_GETFD) } >= 0);
        unsafe { libc::close(rd) };
    });
}

#[test]
fn poll_stop_and_restart_inside_the_callback() {
    each_backend(|lp| {
        let mut fds = [0; 2];
        // SAFETY: valid array for pipe2.
        assert_eq!(
            unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) },
            0
        );
        let calls = Rc::new(Cell::new(0));
        let w = FdWatcher::new(lp, fds[1]).unwrap();
        let c = calls.clone();
        w.start(lp, ready::WRITABLE, move |lp, w, _| {
            c.set(c.get() + 1);
            w.stop(lp).unwrap();
            if c.get() < 3 {
                let c = c.clone();
                w.start(lp, ready::WRITABLE, move |lp, w, _| {
                    c.set(c.get() + 10);
                    w.stop(lp).unwrap();
                })
                .unwrap();
            }
        })
        .unwrap();
        run_until(lp, LIMIT, |_| calls.get() >= 11);
        assert_eq!(calls.get(), 11);
        w.close(lp, None).unwrap();
        lp.run(RunMode::Default).unwrap();
        // SAFETY: closing our own pipe.
        unsafe {
            libc::close(fds[0]);
            libc::close(fds[1]);
        }
    });
}

/// A binding (Python, Node) handles readiness after `run` returns: the fd it drains there must
/// not be reported again by the next run, and one it leaves ready must be.
#[test]
fn readiness_handled_after_run_returns_is_not_reported_twice() {
    each_backend(|lp| {
        let (a, b) = socket_pair();
        let w = FdWatcher::new(lp, a).unwrap();
        let reports = Rc::new(Cell::new(0u32));
        let r = reports.clone();
        w.start(lp, ready::READABLE, move |_, _, res| {
            res.unwrap();
            r.set(r.get() + 1);
        })
        .unwrap();
        let mut buf = [0u8; 16];
        for round in 1..=50u32 {
            // SAFETY: `b` is an open socket; one byte from a static buffer.
            assert_eq!(unsafe { libc::write(b, b"x".as_ptr().cast(), 1) }, 1);
            while reports.get() < round {
                lp.run(RunMode::Once).unwrap();
            }
            // Handled "outside" the loop, as a binding's callback queue does.
            // SAFETY: `a` is an open socket; `buf` is writable for its length.
            assert_eq!(unsafe { libc::read(a, buf.as_mut_ptr().cast(), buf.len()) }, 1);
            for _ in 0..3 {
                lp.run(RunMode::NoWait).unwrap();
            }
            assert_eq!(
                reports.get(),
                round,
                "round {round}: a drained fd was reported again"
            );
        }
        // Left unread, it stays ready: reported on each of the next runs (level-triggered).
        // SAFETY: as above.
        assert_eq!(unsafe { libc::write(b, b"y".as_ptr().cast(), 1) }, 1);
        let before = reports.get();
        while reports.get() < before + 3 {
            lp.run(RunMode::Once).unwrap();
        }
        w.close(lp, None).unwrap();
        lp.run(RunMode::NoWait).unwrap();
        // SAFETY: the pair's fds, closed once; the watcher is closed.
        unsafe {
            libc::close(a);
            libc::close(b);
        }
    });
}
