mod common;

use common::*;
use evloop::{Error, Handle, Loop, RunMode, Timer};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

#[test]
fn timers_fire_in_deadline_order_within_bounds() {
    each_backend(|lp| {
        let order = Rc::new(RefCell::new(Vec::new()));
        let started = Instant::now();
        for ms in [30u64, 10, 20, 10] {
            let t = Timer::new(lp);
            let order = order.clone();
            t.start(lp, ms, 0, move |lp, t| {
                order.borrow_mut().push((ms, started.elapsed()));
                t.close(lp, None).unwrap();
            })
            .unwrap();
        }
        lp.run(RunMode::Default).unwrap();
        let order = order.borrow();
        assert_eq!(
            order.iter().map(|o| o.0).collect::<Vec<_>>(),
            vec![10, 10, 20, 30]
        );
        for &(ms, at) in order.iter() {
            assert!(
                at >= Duration::from_millis(ms),
                "{ms} ms timer fired early, at {at:?}"
            );
            assert!(
                at < Duration::from_millis(ms + 2000),
                "{ms} ms timer fired far too late, at {at:?}"
            );
        }
    });
}

#[test]
fn hundred_thousand_timers_fire_in_deadline_then_start_order() {
    each_backend(|lp| {
        let fired = Rc::new(RefCell::new(Vec::with_capacity(100_000)));
        let mut x: u64 = 0x2545F4914F6CDD1D;
        for i in 0..100_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let ms = x % 300;
            let t = Timer::new(lp);
            let fired = fired.clone();
            let deadline = lp.now() + ms;
            t.start(lp, ms, 0, move |lp, t| {
                fired.borrow_mut().push((deadline, i));
                t.close(lp, None).unwrap();
            })
            .unwrap();
        }
        lp.run(RunMode::Default).unwrap();
        let fired = fired.borrow();
        assert_eq!(fired.len(), 100_000);
        for pair in fired.windows(2) {
            assert!(
                pair[0] < pair[1],
                "out of order: {:?} then {:?}",
                pair[0],
                pair[1]
            );
        }
    });
}

#[test]
fn stopping_a_due_timer_from_an_earlier_callback_cancels_it() {
    each_backend(|lp| {
        let b_fired = Rc::new(Cell::new(false));
        let a = Timer::new(lp);
        let b = Timer::new(lp);
        a.start(lp, 10, 0, move |lp, a| {
            b.stop(lp).unwrap();
            b.close(lp, None).unwrap();
            a.close(lp, None).unwrap();
        })
        .unwrap();
        let flag = b_fired.clone();
        b.start(lp, 10, 0, move |_, _| flag.set(true)).unwrap();
        lp.run(RunMode::Default).unwrap();
        assert!(!b_fired.get());
        assert_eq!(b.stop(lp), Err(Error::EBADF), "a closed timer's id is stale");
    });
}

#[test]
fn repeat_and_again() {
    each_backend(|lp| {
        let t = Timer::new(lp);
        assert_eq!(t.again(lp), Err(Error::EINVAL), "again before start");
        let count = Rc::new(Cell::new(0));
        let c = count.clone();
        t.start(lp, 5, 5, move |lp, t| {
            c.set(c.get() + 1);
            if c.get() == 5 {
                t.stop(lp).unwrap();
            }
        })
        .unwrap();
        assert_eq!(t.repeat(lp), Ok(5));
        lp.run(RunMode::Default).unwrap();
        assert_eq!(count.get(), 5);
        assert!(!t.is_active(lp));
        // again() restarts it with the repeat interval.
        t.again(lp).unwrap();
        assert!(t.is_active(lp));
        t.set_repeat(lp, 0).unwrap();
        lp.run(RunMode::Default).unwrap();
        assert_eq!(count.get(), 6, "fired once more, then stopped as a one-shot");
        // again() leaves a non-repeating timer as it is, running or stopped (as libuv does).
        t.again(lp).unwrap();
        assert!(!t.is_active(lp));
        t.start(lp, 5, 0, |_, _| {}).unwrap();
        t.again(lp).unwrap();
        assert!(t.is_active(lp), "a running one-shot keeps running");
        t.close(lp, None).unwrap();
        lp.run(RunMode::Default).unwrap();
    });
}

#[test]
fn closing_a_repeating_timer_inside_its_callback() {
    each_backend(|lp| {
        let fired = Rc::new(Cell::new(0));
        let closed = Rc::new(Cell::new(0));
        let t = Timer::new(lp);
        let (f, c) = (fired.clone(), closed.clone());
        t.start(lp, 1, 1, move |lp, t| {
            f.set(f.get() + 1);
            let c = c.clone();
            t.close(lp, Some(Box::new(move |_| c.set(c.get() + 1)))).unwrap();
            assert_eq!(t.close(lp, None), Err(Error::EBADF), "double close");
        })
        .unwrap();
        lp.run(RunMode::Default).unwrap();
        assert_eq!(fired.get(), 1);
        assert_eq!(closed.get(), 1);
        assert!(!t.is_alive(lp));
    });
}

#[test]
fn stop_from_a_callback_returns_from_run() {
    each_backend(|lp| {
        let count = Rc::new(Cell::new(0));
        let t = Timer::new(lp);
        let c = count.clone();
        t.start(lp, 1, 1, move |lp, _| {
            c.set(c.get() + 1);
            if c.get() == 3 {
                lp.stop();
            }
        })
        .unwrap();
        let alive = lp.run(RunMode::Default).unwrap();
        assert!(alive, "the repeating timer still keeps the loop alive");
        assert_eq!(count.get(), 3);
        t.close(lp, None).unwrap();
        assert!(!lp.run(RunMode::Default).unwrap());
    });
}

#[test]
fn loop_exits_when_only_unreferenced_handles_remain() {
    each_backend(|lp| {
        let background = Timer::new(lp);
        background.start(lp, 1, 1, |_, _| {}).unwrap();
        background.unref(lp).unwrap();
        assert!(!background.has_ref(lp));
        let done = Rc::new(Cell::new(false));
        let d = done.clone();
        let one = Timer::new(lp);
        one.start(lp, 20, 0, move |_, _| d.set(true)).unwrap();
        let alive = lp.run(RunMode::Default).unwrap();
        assert!(done.get());
        assert!(!alive);
        assert!(background.is_active(lp), "unref'd timer is still running");
        background.ref_(lp).unwrap();
        assert!(lp.alive());
        background.close(lp, None).unwrap();
        one.close(lp, None).unwrap();
        assert!(!lp.run(RunMode::Default).unwrap());
    });
}

#[test]
fn call_soon_is_fifo_and_does_not_starve_io_or_timers() {
    each_backend(|lp| {
        let order = Rc::new(RefCell::new(Vec::new()));
        for i in 0..100 {
            let order = order.clone();
            lp.call_soon(move |_| order.borrow_mut().push(i));
        }
        lp.run(RunMode::Default).unwrap();
        assert_eq!(*order.borrow(), (0..100).collect::<Vec<_>>());

        // A callback that re-queues itself forever must not keep a timer from firing.
        let timer_fired = Rc::new(Cell::new(false));
        let spins = Rc::new(Cell::new(0u64));
        fn spin(lp: &mut Loop, fired: Rc<Cell<bool>>, spins: Rc<Cell<u64>>) {
            spins.set(spins.get() + 1);
            if !fired.get() {
                lp.call_soon(move |lp| spin(lp, fired, spins));
            }
        }
        let (f, s) = (timer_fired.clone(), spins.clone());
        lp.call_soon(move |lp| spin(lp, f, s));
        let t = Timer::new(lp);
        let f = timer_fired.clone();
        t.start(lp, 15, 0, move |_, _| f.set(true)).unwrap();
        lp.run(RunMode::Default).unwrap();
        assert!(timer_fired.get());
        assert!(spins.get() > 1);
        // One iteration runs only what was queued before it started.
        let ran = Rc::new(Cell::new(0));
        let r = ran.clone();
        lp.call_soon(move |lp| {
            r.set(r.get() + 1);
            let r = r.clone();
            lp.call_soon(move |_| r.set(r.get() + 1));
        });
        lp.run(RunMode::NoWait).unwrap();
        assert_eq!(ran.get(), 1);
        assert_eq!(lp.pending_calls(), 1);
        lp.run(RunMode::NoWait).unwrap();
        assert_eq!(ran.get(), 2);
        t.close(lp, None).unwrap();
        lp.run(RunMode::Default).unwrap();
    });
}

#[test]
fn time_and_embedding_hooks() {
    each_backend(|lp| {
        let before = lp.now();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(lp.now(), before, "time is cached");
        lp.update_time();
        assert!(lp.now() >= before + 5);
        assert!(lp.now_ns() / 1_000_000 >= lp.now());
        let fd = lp.backend_fd().unwrap();
        assert!(fd >= 0);
        assert_eq!(lp.backend_fd().unwrap(), fd, "the same fd every time");
        assert_eq!(lp.backend_timeout(), -1, "nothing scheduled");
        let t = Timer::new(lp);
        t.start(lp, 50, 0, |_, _| {}).unwrap();
        let timeout = lp.backend_timeout();
        assert!((0..=50).contains(&timeout), "timeout {timeout}");
        // Drive the loop as a foreign loop would: poll the fd with the timeout, then NoWait.
        let start = Instant::now();
        while t.is_active(lp) {
            let mut pfd = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            unsafe { libc::poll(&mut pfd, 1, lp.backend_timeout()) };
            lp.run(RunMode::NoWait).unwrap();
            assert!(start.elapsed() < LIMIT);
        }
        assert!(start.elapsed() >= Duration::from_millis(45));
        t.close(lp, None).unwrap();
        lp.run(RunMode::Default).unwrap();
    });
}

/// Many timers started, restarted, stopped and closed in random order (closed ones' slots are
/// reused by new ones) fire exactly when a model says they should: the ones left running, once
/// each.
#[test]
fn random_starts_stops_and_closes_fire_exactly_the_running_timers() {
    each_backend(|lp| {
        let mut x: u64 = 0x9E3779B97F4A7C15;
        let mut rng = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let fired = Rc::new(RefCell::new(Vec::<u32>::new()));
        let start = |lp: &mut Loop, t: Timer, id: u32, ms: u64| {
            let fired = fired.clone();
            t.start(lp, ms, 0, move |_, _| fired.borrow_mut().push(id))
                .unwrap();
        };
        // (timer, id, running)
        let mut live: Vec<(Timer, u32, bool)> = Vec::new();
        let mut next_id = 0u32;
        for round in 0..20 {
            for _ in 0..500 {
                let pick = |r: u64, n: usize| (r % n.max(1) as u64) as usize;
                match rng() % 5 {
                    0 | 1 => {
                        let t = Timer::new(lp);
                        start(lp, t, next_id, rng() % 5);
                        live.push((t, next_id, true));
                        next_id += 1;
                    }
                    2 if !live.is_empty() => {
                        let i = pick(rng(), live.len());
                        live[i].0.stop(lp).unwrap();
                        live[i].2 = false;
                    }
                    3 if !live.is_empty() => {
                        let i = pick(rng(), live.len());
                        let (t, id, _) = live[i];
                        start(lp, t, id, rng() % 5);
                        live[i].2 = true;
                    }
                    4 if !live.is_empty() => {
                        let i = pick(rng(), live.len());
                        let (t, _, _) = live.swap_remove(i);
                        t.close(lp, None).unwrap();
                    }
                    _ => {}
                }
            }
            let mut expected: Vec<u32> = live.iter().filter(|l| l.2).map(|l| l.1).collect();
            run_until(lp, Duration::from_secs(20), |_| {
                fired.borrow().len() >= expected.len()
            });
            // Stopped and closed timers would have fired within the same few milliseconds.
            let until = Instant::now() + Duration::from_millis(20);
            run_until(lp, Duration::from_secs(5), |_| Instant::now() >= until);
            let mut got = std::mem::take(&mut *fired.borrow_mut());
            got.sort_unstable();
            expected.sort_unstable();
            assert_eq!(got, expected, "round {round}");
            for l in &mut live {
                l.2 = false;
            }
        }
        for (t, _, _) in live {
            t.close(lp, None).unwrap();
        }
        lp.run(RunMode::Default).unwrap();
        assert!(!lp.alive());
    });
}

/// Timers whose state lives in memory the test owns (`Timer::new_in`), beside timers in the
/// loop's table: the same firing order, stops that never fire, restarts, and closes that hand the
/// memory back.
#[test]
fn timers_in_places_fire_like_any_timer() {
    use evloop::TimerPlace;
    use std::mem::MaybeUninit;
    use std::ptr::NonNull;
    each_backend(|lp| {
        const N: usize = 500;
        let mut places: Vec<MaybeUninit<TimerPlace>> = (0..N).map(|_| MaybeUninit::uninit()).collect();
        let fired: Rc<RefCell<Vec<usize>>> = Rc::new(RefCell::new(Vec::new()));
        fn on_fire(_: &mut Loop, _: Timer, data: usize) {
            // SAFETY: `data` is the address of the test's `RefCell`, alive while the loop runs.
            unsafe { (*(data as *const RefCell<Vec<usize>>)).borrow_mut().push(0) };
        }
        let mut timers = Vec::new();
        for (i, place) in places.iter_mut().enumerate() {
            let place = NonNull::from(place).cast::<TimerPlace>();
            // SAFETY: the places outlive the loop's use of them (closed below before they go).
            let t = unsafe { Timer::new_in(lp, place) };
            let inline = Timer::new(lp);
            timers.push((t, place, inline, i));
        }
        let log = Rc::new(RefCell::new(Vec::new()));
        for &(t, place, inline, i) in &timers {
            // SAFETY: the place the timer was made in, not closed.
            unsafe {
                t.start_fn_in(
                    lp,
                    place,
                    5 + (i % 3) as u64,
                    0,
                    on_fire,
                    Rc::as_ptr(&fired) as usize,
                )
            }
            .unwrap();
            let log = log.clone();
            inline
                .start(lp, 5 + (i % 3) as u64, 0, move |_, _| log.borrow_mut().push(i))
                .unwrap();
        }
        // Every fourth placed timer is stopped; one of them is restarted.
        for &(t, place, _, i) in &timers {
            if i % 4 == 0 {
                // SAFETY: as above.
                unsafe { t.stop_in(lp, place) }.unwrap();
                assert!(!t.is_active(lp));
            }
        }
        let (t0, place0, _, _) = timers[0];
        // SAFETY: as above.
        unsafe { t0.start_fn_in(lp, place0, 1, 0, on_fire, Rc::as_ptr(&fired) as usize) }.unwrap();
        lp.run(RunMode::Default).unwrap();
        let stopped = (0..N).filter(|i| i % 4 == 0).count();
        assert_eq!(fired.borrow().len(), N - stopped + 1);
        assert_eq!(log.borrow().len(), N);
        // An id reaches a placed timer like any other.
        assert_eq!(t0.repeat(lp), Ok(0));
        assert_eq!(t0.stop(lp), Ok(()));
        let closed = Rc::new(Cell::new(0));
        for &(t, _, inline, _) in &timers {
            let c = closed.clone();
            t.close(lp, Some(Box::new(move |_| c.set(c.get() + 1)))).unwrap();
            inline.close(lp, None).unwrap();
        }
        // Closing: the places are not used, and the ids are stale, once the callbacks ran.
        lp.run(RunMode::Default).unwrap();
        assert_eq!(closed.get(), N);
        assert_eq!(t0.stop(lp), Err(Error::EBADF));
        drop(places);
    });
}

/// A loop dropped with timers still open in places drops what they hold (a boxed callback here)
/// and leaves the places alone.
#[test]
fn a_loop_dropped_with_timers_in_places_drops_their_callbacks() {
    use evloop::TimerPlace;
    use std::mem::MaybeUninit;
    use std::ptr::NonNull;
    for backend in backends() {
        let mut place = MaybeUninit::<TimerPlace>::uninit();
        let held = Rc::new(());
        {
            let mut lp = new_loop(backend);
            // SAFETY: the place outlives the loop.
            let t = unsafe { Timer::new_in(&mut lp, NonNull::from(&mut place).cast()) };
            let h = held.clone();
            t.start(&mut lp, 60_000, 0, move |_, _| assert!(Rc::strong_count(&h) > 1))
                .unwrap();
            assert_eq!(Rc::strong_count(&held), 2);
        }
        assert_eq!(Rc::strong_count(&held), 1, "the loop dropped the callback");
    }
}
