//! The flag both cross-thread hand-offs rest on (wake-up handles, and the thread pool's queue of
//! finished work): many raises between two takes cost one kernel write, and nothing raised after
//! a take is lost. Under `--cfg loom` it is built on loom's atomics, and the models below check
//! those two promises over every interleaving.

#[cfg(loom)]
use loom::sync::atomic::{fence, AtomicBool, Ordering};
#[cfg(not(loom))]
use std::sync::atomic::{fence, AtomicBool, Ordering};

/// A wake-up requested and not yet taken by the loop.
pub(crate) struct WakeFlag(AtomicBool);

impl WakeFlag {
    pub(crate) fn new() -> WakeFlag {
        WakeFlag(AtomicBool::new(false))
    }

    /// Marks work for the loop. `true` if the flag was clear: the caller must signal the loop
    /// (write its eventfd); otherwise a signal is already on its way.
    ///
    /// A flag already raised is seen with a plain read: many threads raising at once then share
    /// its cache line instead of taking turns to own it (a swap each). The fence keeps the
    /// promise: either the read sees the loop's latest take (false, and this raise swaps and
    /// signals), or it comes before that take in the single order of sequentially consistent
    /// operations, and whatever the caller published under a lock before raising is visible
    /// to the loop once it takes the flag and takes that lock.
    #[inline]
    pub(crate) fn raise(&self) -> bool {
        fence(Ordering::SeqCst);
        if self.0.load(Ordering::Relaxed) {
            return false;
        }
        !self.0.swap(true, Ordering::SeqCst)
    }

    /// Clears the flag; `true` if it was raised. The loop takes it before it looks at the work
    /// the flag stands for, so work added after that look raises it, and signals, again.
    #[inline]
    pub(crate) fn take(&self) -> bool {
        self.0.swap(false, Ordering::SeqCst)
    }
}

#[cfg(all(test, loom))]
mod models {
    use super::WakeFlag;
    use loom::sync::atomic::{AtomicUsize, Ordering};
    use loom::sync::{Arc, Mutex};
    use loom::thread;

    /// The eventfd: a counter the raisers add to and the loop empties.
    struct Loop {
        flag: WakeFlag,
        eventfd: AtomicUsize,
        finished: Mutex<Vec<u32>>,
    }

    impl Loop {
        fn signal(&self) {
            self.eventfd.fetch_add(1, Ordering::AcqRel);
        }

        /// One wake-up of the loop's thread pool dispatch (`Loop::work_dispatch`).
        fn dispatch(&self, seen: &mut Vec<u32>) {
            if self.eventfd.swap(0, Ordering::AcqRel) > 0 {
                self.flag.take();
                seen.append(&mut self.finished.lock().unwrap());
            }
        }
    }

    /// The thread pool's finished-work queue: whatever two workers finish is either taken by the
    /// loop or has a wake-up pending, whatever the interleaving.
    #[test]
    fn finished_work_is_never_left_without_a_wake_up() {
        loom::model(|| {
            let lp = Arc::new(Loop {
                flag: WakeFlag::new(),
                eventfd: AtomicUsize::new(0),
                finished: Mutex::new(Vec::new()),
            });
            let workers: Vec<_> = (0..2)
                .map(|id| {
                    let lp = lp.clone();
                    thread::spawn(move || {
                        lp.finished.lock().unwrap().push(id);
                        if lp.flag.raise() {
                            lp.signal();
                        }
                    })
                })
                .collect();
            let mut seen = Vec::new();
            lp.dispatch(&mut seen);
            for w in workers {
                w.join().unwrap();
            }
            let left = lp.finished.lock().unwrap().len();
            assert!(
                left == 0 || lp.eventfd.load(Ordering::Acquire) > 0,
                "work stranded"
            );
            lp.dispatch(&mut seen);
            assert_eq!(seen.len(), 2);
        });
    }

    /// Wake-up handles: a wake is never swallowed (after the threads are done, a raised flag has
    /// a signal pending), and wakes coalesce (at most one signal per raise that found it clear).
    #[test]
    fn wakes_coalesce_and_none_is_lost() {
        loom::model(|| {
            let lp = Arc::new(Loop {
                flag: WakeFlag::new(),
                eventfd: AtomicUsize::new(0),
                finished: Mutex::new(Vec::new()),
            });
            let signals = Arc::new(AtomicUsize::new(0));
            let wakers: Vec<_> = (0..2)
                .map(|_| {
                    let (lp, signals) = (lp.clone(), signals.clone());
                    thread::spawn(move || {
                        if lp.flag.raise() {
                            signals.fetch_add(1, Ordering::AcqRel);
                            lp.signal();
                        }
                    })
                })
                .collect();
            // The loop's sweep (`Loop::wake_completion`): a callback per taken flag.
            let mut calls = 0;
            if lp.eventfd.swap(0, Ordering::AcqRel) > 0 && lp.flag.take() {
                calls += 1;
            }
            for w in wakers {
                w.join().unwrap();
            }
            if lp.flag.take() {
                assert!(lp.eventfd.load(Ordering::Acquire) > 0, "a wake was swallowed");
                calls += 1;
            }
            assert!(calls >= 1, "two wakes, no callback");
            assert!(signals.load(Ordering::Acquire) <= 2);
        });
    }
}
