//! Child processes on every backend: exit codes, signals, pipes, errors, environment.
mod common;

use common::*;
use evloop::{Error, ExitStatus, Handle, Loop, Process, Read, RunMode, SpawnOptions, Stdio, Stream};
use std::cell::RefCell;
use std::rc::Rc;

type Output = Rc<RefCell<(Vec<u8>, bool)>>;
type StatusSlot = Rc<RefCell<Option<ExitStatus>>>;

/// Collects everything `s` delivers; the flag turns true at EOF.
fn collect(lp: &mut Loop, s: Stream) -> Output {
    let out: Output = Rc::new(RefCell::new((Vec::new(), false)));
    let o = out.clone();
    s.read_start(lp, move |lp, s, r| match r {
        Read::Data(b) => o.borrow_mut().0.extend_from_slice(b),
        Read::Eof | Read::Error(_) => {
            o.borrow_mut().1 = true;
            s.close(lp, None).unwrap();
        }
    })
    .unwrap();
    out
}

fn exit_slot() -> (StatusSlot, impl FnOnce(&mut Loop, Process, ExitStatus)) {
    let slot = Rc::new(RefCell::new(None));
    let s = slot.clone();
    (slot, move |lp: &mut Loop, p: Process, st| {
        *s.borrow_mut() = Some(st);
        p.close(lp, None).unwrap();
    })
}

fn sh(script: &str) -> SpawnOptions {
    SpawnOptions::new("sh", ["-c", script])
}

#[test]
fn exit_codes_and_stdout_through_a_pipe() {
    each_backend(|lp| {
        let mut o = sh("echo hello; echo oops >&2; exit 3");
        o.stdio = [Stdio::Ignore, Stdio::Pipe, Stdio::Pipe];
        let (status, on_exit) = exit_slot();
        let sp = Process::spawn(lp, &o, on_exit).unwrap();
        assert!(sp.process.pid(lp).unwrap() > 0);
        assert!(sp.stdio[0].is_none());
        let out = collect(lp, sp.stdio[1].unwrap());
        let err = collect(lp, sp.stdio[2].unwrap());
        run_until(lp, LIMIT, |_| {
            status.borrow().is_some() && out.borrow().1 && err.borrow().1
        });
        assert_eq!(*status.borrow(), Some(ExitStatus::Exited(3)));
        assert_eq!(out.borrow().0, b"hello\n");
        assert_eq!(err.borrow().0, b"oops\n");
        lp.run(RunMode::Default).unwrap();
        assert!(!lp.alive());
    });
}

#[test]
fn stdin_pipe_env_and_cwd() {
    each_backend(|lp| {
        let mut o = sh("read line; echo \"$line $FOO\"; pwd");
        o.env = Some(vec!["FOO=bar".into(), "PATH=/usr/bin:/bin".into()]);
        o.cwd = Some("/tmp".into());
        o.stdio = [Stdio::Pipe, Stdio::Pipe, Stdio::Inherit];
        let (status, on_exit) = exit_slot();
        let sp = Process::spawn(lp, &o, on_exit).unwrap();
        let stdin = sp.stdio[0].unwrap();
        stdin.write(lp, b"hi there\n", None).unwrap();
        stdin
            .shutdown(lp, Some(Box::new(|lp, s, _| s.close(lp, None).unwrap())))
            .unwrap();
        let out = collect(lp, sp.stdio[1].unwrap());
        run_until(lp, LIMIT, |_| status.borrow().is_some() && out.borrow().1);
        assert_eq!(*status.borrow(), Some(ExitStatus::Exited(0)));
        assert_eq!(String::from_utf8_lossy(&out.borrow().0), "hi there bar\n/tmp\n");
    });
}

#[test]
fn kill_reports_the_signal_and_esrch_after_exit() {
    each_backend(|lp| {
        let o = SpawnOptions::new("sleep", ["30"]);
        let status = Rc::new(RefCell::new(None));
        let s = status.clone();
        let sp = Process::spawn(lp, &o, move |_, _, st| *s.borrow_mut() = Some(st)).unwrap();
        let p = sp.process;
        p.kill(lp, libc::SIGTERM).unwrap();
        assert_eq!(p.kill(lp, 1000), Err(Error::EINVAL));
        run_until(lp, LIMIT, |_| status.borrow().is_some());
        assert_eq!(*status.borrow(), Some(ExitStatus::Signaled(libc::SIGTERM)));
        assert_eq!(p.kill(lp, libc::SIGTERM), Err(Error::ESRCH));
        assert!(
            !p.is_active(lp),
            "an exited process no longer keeps the loop alive"
        );
        p.close(lp, None).unwrap();
        lp.run(RunMode::Default).unwrap();
        assert_eq!(p.pid(lp), Err(Error::EBADF));
    });
}

#[test]
fn output_is_kept_when_the_child_exits_before_it_is_read() {
    each_backend(|lp| {
        // 40 KB fits in the socket pair's buffer, so the child exits before anything is read.
        let mut o = sh("head -c 40000 /dev/zero");
        o.stdio[1] = Stdio::Pipe;
        let (status, on_exit) = exit_slot();
        let sp = Process::spawn(lp, &o, on_exit).unwrap();
        // Start reading only once the exit has been reported.
        run_until(lp, LIMIT, |_| status.borrow().is_some());
        assert_eq!(*status.borrow(), Some(ExitStatus::Exited(0)));
        let out = collect(lp, sp.stdio[1].unwrap());
        run_until(lp, LIMIT, |_| out.borrow().1);
        assert_eq!(out.borrow().0.len(), 40000);
        lp.run(RunMode::Default).unwrap();
    });
}

#[test]
fn spawn_errors_come_back_at_once() {
    each_backend(|lp| {
        let missing = SpawnOptions::new("evloop-no-such-program", ["x"]);
        assert_eq!(
            Process::spawn(lp, &missing, |_, _, _| {}).err(),
            Some(Error::ENOENT)
        );
        let abs = SpawnOptions::new("/nonexistent/prog", Vec::<&str>::new());
        assert_eq!(Process::spawn(lp, &abs, |_, _, _| {}).err(), Some(Error::ENOENT));
        // A file that exists but is not executable (root too needs an x bit).
        let path = std::env::temp_dir().join(format!(
            "evloop-noexec-{}-{}",
            std::process::id(),
            lp.backend_name()
        ));
        std::fs::write(&path, b"#!/bin/sh\n").unwrap();
        let noexec = SpawnOptions::new(&path, Vec::<&str>::new());
        assert_eq!(
            Process::spawn(lp, &noexec, |_, _, _| {}).err(),
            Some(Error::EACCES)
        );
        std::fs::remove_file(&path).unwrap();
        let mut badcwd = SpawnOptions::new("true", Vec::<&str>::new());
        badcwd.cwd = Some("/nonexistent-dir".into());
        assert_eq!(
            Process::spawn(lp, &badcwd, |_, _, _| {}).err(),
            Some(Error::ENOENT)
        );
        let nul = SpawnOptions::new("tr\0ue", Vec::<&str>::new());
        assert_eq!(Process::spawn(lp, &nul, |_, _, _| {}).err(), Some(Error::EINVAL));
        assert!(!lp.alive(), "failed spawns leave nothing behind");
    });
}

#[test]
fn detached_starts_a_session_and_uid_needs_privilege() {
    each_backend(|lp| {
        let mut o = sh("cut -d' ' -f6 /proc/$$/stat");
        o.detached = true;
        o.stdio[1] = Stdio::Pipe;
        let (status, on_exit) = exit_slot();
        let sp = Process::spawn(lp, &o, on_exit).unwrap();
        let pid = sp.process.pid(lp).unwrap();
        let out = collect(lp, sp.stdio[1].unwrap());
        run_until(lp, LIMIT, |_| status.borrow().is_some() && out.borrow().1);
        let sid: i32 = String::from_utf8_lossy(&out.borrow().0).trim().parse().unwrap();
        assert_eq!(sid, pid, "the child leads its own session");

        let mut o = sh("id -u; id -g");
        o.uid = Some(65534);
        o.gid = Some(65534);
        o.stdio[1] = Stdio::Pipe;
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            let (status, on_exit) = exit_slot();
            let sp = Process::spawn(lp, &o, on_exit).unwrap();
            let out = collect(lp, sp.stdio[1].unwrap());
            run_until(lp, LIMIT, |_| status.borrow().is_some() && out.borrow().1);
            assert_eq!(String::from_utf8_lossy(&out.borrow().0), "65534\n65534\n");
        } else {
            assert_eq!(Process::spawn(lp, &o, |_, _, _| {}).err(), Some(Error::EPERM));
        }
        lp.run(RunMode::Default).unwrap();
    });
}

/// A child started outside the loop (here by std's `Command`, as Python's `subprocess` starts
/// them) is watched like a spawned one: its exit code, a signal through its pidfd.
#[test]
// The loop reaps the children (that is the point), not `Child::wait`.
#[allow(clippy::zombie_processes)]
fn adopted_children_report_their_exit_and_take_signals() {
    each_backend(|lp| {
        let child = std::process::Command::new("sh")
            .args(["-c", "exit 7"])
            .spawn()
            .unwrap();
        let (status, on_exit) = exit_slot();
        Process::adopt(lp, child.id() as i32, on_exit).unwrap();
        run_until(lp, LIMIT, |_| status.borrow().is_some());
        assert_eq!(*status.borrow(), Some(ExitStatus::Exited(7)));

        let sleeper = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let (status, on_exit) = exit_slot();
        let p = Process::adopt(lp, sleeper.id() as i32, on_exit).unwrap();
        assert_eq!(p.pid(lp).unwrap(), sleeper.id() as i32);
        p.kill(lp, libc::SIGTERM).unwrap();
        run_until(lp, LIMIT, |_| status.borrow().is_some());
        assert_eq!(*status.borrow(), Some(ExitStatus::Signaled(libc::SIGTERM)));
        lp.run(RunMode::Default).unwrap();
        assert!(!lp.alive());

        // Not a child of this process, or not a pid at all.
        assert_eq!(Process::adopt(lp, 1, |_, _, _| {}).err(), Some(Error::ECHILD));
        assert_eq!(Process::adopt(lp, 0, |_, _, _| {}).err(), Some(Error::EINVAL));
        assert_eq!(Process::adopt(lp, -5, |_, _, _| {}).err(), Some(Error::EINVAL));
    });
}

/// A child that something else reaps first (a `waitpid` of the program's own) is reported as
/// ended with an unknown status, instead of leaving the loop watching a pidfd that stays
/// readable: the loop finishes.
#[test]
fn a_child_reaped_behind_the_loops_back_ends_with_an_unknown_status() {
    each_backend(|lp| {
        let (status, on_exit) = exit_slot();
        let sp = Process::spawn(lp, &sh("exit 4"), on_exit).unwrap();
        let pid = sp.process.pid(lp).unwrap();
        let mut raw = 0;
        // SAFETY: waits for our own child, as a program's SIGCHLD handler would.
        assert_eq!(unsafe { libc::waitpid(pid, &mut raw, 0) }, pid);
        run_until(lp, LIMIT, |_| status.borrow().is_some());
        assert_eq!(*status.borrow(), Some(ExitStatus::Unknown));
        lp.run(RunMode::Default).unwrap();
        assert!(!lp.alive());
    });
}
