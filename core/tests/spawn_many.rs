//! Many children at once, and no zombie left behind. A test binary of its own: it checks that
//! this process has no child left, which other tests spawning at the same time would upset.
mod common;

use common::*;
use evloop::{ExitStatus, Handle, Process, RunMode, SpawnOptions, Timer};
use std::cell::RefCell;
use std::rc::Rc;

fn no_children_left() -> bool {
    // SAFETY: a zeroed siginfo is a valid out-parameter; WNOHANG never blocks.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let r = unsafe {
        libc::waitid(
            libc::P_ALL,
            0,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    r < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ECHILD)
}

#[test]
fn a_thousand_concurrent_spawns_and_closed_handles_leave_no_zombie() {
    each_backend(|lp| {
        let n = 1000;
        let exits = Rc::new(RefCell::new(Vec::new()));
        let t = SpawnOptions::new("true", Vec::<&str>::new());
        for _ in 0..n {
            let e = exits.clone();
            Process::spawn(lp, &t, move |lp, p, st| {
                e.borrow_mut().push(st);
                p.close(lp, None).unwrap();
            })
            .unwrap();
        }
        lp.run(RunMode::Default).unwrap();
        assert_eq!(exits.borrow().len(), n);
        assert!(exits.borrow().iter().all(|s| *s == ExitStatus::Exited(0)));
        assert!(no_children_left());

        // A handle closed while its child runs: the loop still reaps the child when it ends.
        let sp = Process::spawn(lp, &SpawnOptions::new("sleep", ["0.2"]), |_, _, _| {
            panic!("closed")
        })
        .unwrap();
        let pid = sp.process.pid(lp).unwrap();
        sp.process.close(lp, None).unwrap();
        let timer = Timer::new(lp);
        timer.start(lp, 1500, 0, |_, _| {}).unwrap();
        lp.run(RunMode::Default).unwrap();
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "child {pid} was reaped"
        );
        assert!(no_children_left());
        timer.close(lp, None).unwrap();
        lp.run(RunMode::Default).unwrap();
    });
}
