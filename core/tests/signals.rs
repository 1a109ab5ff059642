//! Signals across loops, and a signal pending when its watcher closes (libuv's
//! signal_multiple_loops, signal_pending_on_close). One test in this binary: signal
//! dispositions are process-wide.
mod common;

use common::*;
use evloop::{Handle, RunMode, Signal};
use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

fn signal_process(signum: i32) {
    // SAFETY: sends a signal to this process; a watcher's handler is installed.
    assert_eq!(unsafe { libc::kill(libc::getpid(), signum) }, 0);
}

#[test]
fn signals_reach_every_loop_and_none_runs_after_close() {
    // Every loop watching a signal hears it, whichever thread the kernel delivers it to.
    let kinds = backends();
    let loops = 4;
    let ready = Arc::new(Barrier::new(loops + 1));
    let raised = Arc::new(Barrier::new(loops + 1));
    let heard = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..loops)
        .map(|n| {
            let (ready, raised, heard) = (ready.clone(), raised.clone(), heard.clone());
            let kind = kinds[n % kinds.len()];
            std::thread::spawn(move || {
                let mut lp = new_loop(kind);
                let lp = &mut lp;
                let got = Rc::new(Cell::new(0));
                let g = got.clone();
                let s = Signal::new(lp).unwrap();
                s.start(lp, libc::SIGUSR2, move |lp, s, signum| {
                    assert_eq!(signum, libc::SIGUSR2);
                    g.set(g.get() + 1);
                    s.close(lp, None).unwrap();
                })
                .unwrap();
                ready.wait();
                raised.wait();
                let deadline = Instant::now() + Duration::from_secs(20);
                while got.get() == 0 {
                    assert!(Instant::now() < deadline, "loop {n} never heard the signal");
                    lp.run(RunMode::Once).unwrap();
                }
                lp.run(RunMode::Default).unwrap();
                heard.fetch_add(got.get(), Ordering::SeqCst);
            })
        })
        .collect();
    ready.wait();
    signal_process(libc::SIGUSR2);
    raised.wait();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(heard.load(Ordering::SeqCst), loops, "each loop heard it once");

    // A signal that arrives while its watcher is active but before the loop runs, then the
    // watcher closes: no callback runs, the close callback does, and the process lives on
    // (the previous disposition returned only after the signal was taken).
    each_backend(|lp| {
        let s = Signal::new(lp).unwrap();
        s.start(lp, libc::SIGUSR1, |_, _, _| {
            panic!("a closed watcher's callback ran")
        })
        .unwrap();
        // To this thread: handled before `raise` returns, while the watcher is still there.
        // SAFETY: the watcher's handler is installed.
        assert_eq!(unsafe { libc::raise(libc::SIGUSR1) }, 0);
        let closed = Rc::new(Cell::new(false));
        let c = closed.clone();
        s.close(lp, Some(Box::new(move |_| c.set(true)))).unwrap();
        lp.run(RunMode::Default).unwrap();
        assert!(closed.get());
        assert!(!lp.alive());
    });
}
