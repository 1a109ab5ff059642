//! fork + exec for child processes, and the pidfd calls that watch and signal them.
//!
//! Everything the child needs (argv, envp, the candidate paths, the descriptors) is prepared
//! before `fork`, because the child of a multi-threaded process may only make async-signal-safe
//! calls: no allocation, no locks. An exec failure travels back to the parent as an errno over
//! a close-on-exec pipe (libuv's technique): the parent reads EOF when exec succeeds.

use crate::error::{Error, Result};
use crate::sys::cvt;
use std::ffi::CString;
use std::os::fd::RawFd;

/// What the child gets on one of its standard descriptors.
#[derive(Clone, Copy, Debug)]
pub(crate) enum ChildFd {
    /// The parent's own descriptor, as it is.
    Inherit,
    /// This descriptor (duplicated onto the slot).
    Use(RawFd),
}

/// A child ready to start: every pointer it needs, made before fork.
pub(crate) struct Prepared {
    pub(crate) candidates: Vec<CString>,
    pub(crate) argv: Vec<CString>,
    pub(crate) envp: Option<Vec<CString>>,
    pub(crate) cwd: Option<CString>,
    pub(crate) uid: Option<u32>,
    pub(crate) gid: Option<u32>,
    pub(crate) detached: bool,
    pub(crate) stdio: [ChildFd; 3],
}

fn ptrs(v: &[CString]) -> Vec<*const libc::c_char> {
    v.iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

extern "C" {
    static environ: *const *const libc::c_char;
}

/// Forks and execs; returns the child's pid once exec succeeded, or the errno that stopped it
/// (the failed child is reaped here).
pub(crate) fn spawn(p: &Prepared) -> Result<libc::pid_t> {
    let argv = ptrs(&p.argv);
    let envp_owned = p.envp.as_deref().map(ptrs);
    // SAFETY: reading the process environment pointer; not modified while we hold it (the
    // caller's thread is the only one spawning, and setenv from other threads is their race).
    let envp = envp_owned.as_ref().map_or(unsafe { environ }, |v| v.as_ptr());
    let cands: Vec<*const libc::c_char> = p.candidates.iter().map(|c| c.as_ptr()).collect();
    let mut errpipe = [0 as RawFd; 2];
    // SAFETY: a two-element array for the new descriptors.
    cvt(unsafe { libc::pipe2(errpipe.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: fork itself is safe to call; the child below only makes async-signal-safe calls
    // on memory prepared before the fork.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        let e = Error::last_os_error();
        crate::sys::close(errpipe[0]);
        crate::sys::close(errpipe[1]);
        return Err(e);
    }
    if pid == 0 {
        // SAFETY: the child; see `child`.
        unsafe { child(p, &argv, envp, &cands, errpipe[1]) }
    }
    crate::sys::close(errpipe[1]);
    let mut errno = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        // SAFETY: reading into a local buffer.
        let n = unsafe { libc::read(errpipe[0], errno[got..].as_mut_ptr().cast(), 4 - got) };
        if n < 0 && Error::last_os_error() == Error::EINTR {
            continue;
        }
        if n <= 0 {
            break;
        }
        got += n as usize;
    }
    crate::sys::close(errpipe[0]);
    if got == 4 {
        let mut status = 0;
        // SAFETY: reaps our own child, which is exiting after the failed exec.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        return Err(Error::from_errno(i32::from_ne_bytes(errno)));
    }
    Ok(pid)
}

/// The child after fork: set up, exec, or report errno and exit.
///
/// # Safety
/// Only in the child of `fork`; every pointer is valid (prepared before the fork).
unsafe fn child(
    p: &Prepared,
    argv: &[*const libc::c_char],
    envp: *const *const libc::c_char,
    cands: &[*const libc::c_char],
    errfd: RawFd,
) -> ! {
    let fail = |err: i32| -> ! {
        let b = err.to_ne_bytes();
        // SAFETY: async-signal-safe write and _exit.
        unsafe {
            libc::write(errfd, b.as_ptr().cast(), 4);
            libc::_exit(127)
        }
    };
    let errno = || {
        std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO)
    };
    // SAFETY (block): async-signal-safe calls on prepared data.
    unsafe {
        // Handlers and masks of the parent (Python's, Node's, ours) must not leak into the
        // program: default dispositions, nothing blocked.
        for sig in 1..libc::SIGRTMAX() {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::pthread_sigmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
        if p.detached && libc::setsid() < 0 {
            fail(errno());
        }
        // Move sources out of 0..3 first, so one slot's dup2 cannot clobber another's source.
        let mut src = [-1; 3];
        for (i, s) in p.stdio.iter().enumerate() {
            if let ChildFd::Use(fd) = *s {
                src[i] = if fd < 3 {
                    libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3)
                } else {
                    fd
                };
                if src[i] < 0 {
                    fail(errno());
                }
            }
        }
        for (slot, &fd) in src.iter().enumerate() {
            if fd >= 0 && libc::dup2(fd, slot as i32) < 0 {
                fail(errno());
            }
        }
        if let Some(dir) = &p.cwd {
            if libc::chdir(dir.as_ptr()) < 0 {
                fail(errno());
            }
        }
        if p.uid.is_some() || p.gid.is_some() {
            // Drop supplementary groups when changing identity (EPERM if unprivileged: ignored,
            // setgid/setuid below then decide).
            libc::setgroups(0, std::ptr::null());
        }
        if let Some(gid) = p.gid {
            if libc::setgid(gid) < 0 {
                fail(errno());
            }
        }
        if let Some(uid) = p.uid {
            if libc::setuid(uid) < 0 {
                fail(errno());
            }
        }
        // Try each candidate path as execvp does: a missing file moves on; a file that exists
        // but cannot run is remembered as EACCES.
        let mut err = libc::ENOENT;
        let mut saw_eacces = false;
        for &c in cands {
            libc::execve(c, argv.as_ptr(), envp);
            err = errno();
            match err {
                libc::EACCES => saw_eacces = true,
                libc::ENOENT | libc::ENOTDIR => {}
                _ => break,
            }
        }
        fail(if saw_eacces && matches!(err, libc::ENOENT | libc::ENOTDIR) {
            libc::EACCES
        } else {
            err
        })
    }
}

/// A descriptor that refers to process `pid` and polls readable when it exits.
pub(crate) fn pidfd_open(pid: libc::pid_t) -> Result<RawFd> {
    // SAFETY: plain syscall.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        Err(Error::last_os_error())
    } else {
        // pidfds are close-on-exec from birth.
        Ok(fd as RawFd)
    }
}

/// Sends `sig` through a pidfd: the signal cannot reach a recycled pid.
pub(crate) fn pidfd_send_signal(pidfd: RawFd, sig: i32) -> Result<()> {
    // SAFETY: plain syscall with no info struct.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_send_signal, pidfd, sig, std::ptr::null::<u8>(), 0) };
    if r < 0 {
        Err(Error::last_os_error())
    } else {
        Ok(())
    }
}

/// How a child ended.
pub(crate) enum Exit {
    Code(i32),
    Signal(i32),
}

/// Reaps the child behind `pidfd` if it has exited; `None` while it runs.
/// Whether `pid` is a child of this process that has not been reaped (`ECHILD` if not); a child
/// that has exited stays reapable (WNOWAIT).
pub(crate) fn check_child(pid: libc::pid_t) -> Result<()> {
    // SAFETY: a zeroed siginfo is a valid out-parameter.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: waitid with WNOWAIT only reads the child's state.
    cvt(unsafe {
        libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    })?;
    Ok(())
}

pub(crate) fn reap(pidfd: RawFd) -> Result<Option<Exit>> {
    // SAFETY: a zeroed siginfo is a valid out-parameter.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: waitid on our own child's pidfd.
    let r = unsafe {
        libc::waitid(
            libc::P_PIDFD,
            pidfd as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG,
        )
    };
    if r < 0 {
        return Err(Error::last_os_error());
    }
    // SAFETY: waitid filled `info` (si_pid stays 0 if nothing had exited).
    let (pid, status) = unsafe { (info.si_pid(), info.si_status()) };
    if pid == 0 {
        return Ok(None);
    }
    Ok(Some(if info.si_code == libc::CLD_EXITED {
        Exit::Code(status)
    } else {
        Exit::Signal(status)
    }))
}
