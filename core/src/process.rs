//! Child processes (libuv's `uv_process_t`, Node's `child_process.spawn`).
//!
//! Exit is detected through a pidfd watched like any fd (a multishot poll on io_uring, epoll
//! otherwise), then reaped with `waitid(P_PIDFD)`. There is no SIGCHLD handler, so nothing
//! fights the host runtime's own, and a pidfd cannot be confused by a recycled pid. Standard
//! descriptors can be inherited, sent to /dev/null, or connected to a Unix socket pair whose
//! parent end is a [`Stream`] of the loop (libuv uses socket pairs too: the stream code sends
//! and receives with socket calls).

use crate::backend::{Completion, Op, OpKind};
use crate::error::{Error, Result};
use crate::event_loop::{gen_matches, token, Loop};
use crate::handle::{handle_type, CloseCb, Common, Kind, RawHandle};
use crate::stream::Stream;
use crate::sys::spawn::{self, ChildFd, Exit, Prepared};
use crate::sys::{self, cvt};
use std::ffi::{CString, OsStr, OsString};
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

handle_type!(
    /// A child process started by [`Process::spawn`].
    Process,
    Kind::Process
);

/// What a child's standard descriptor is connected to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Stdio {
    /// The parent's own descriptor.
    #[default]
    Inherit,
    /// /dev/null.
    Ignore,
    /// A socket pair; the parent's end comes back as a [`Stream`].
    Pipe,
}

/// How a child ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    /// It called exit with this code.
    Exited(i32),
    /// A signal ended it.
    Signaled(i32),
    /// It ended, but something else in the process reaped it first (a `waitpid` of its own, a
    /// SIGCHLD handler of another library), so how is not known. The loop reports the end
    /// rather than watching a pidfd that stays readable forever.
    Unknown,
}

/// Runs once, when the child has exited and been reaped.
pub type ExitCb = Box<dyn FnOnce(&mut Loop, Process, ExitStatus)>;

/// What to run and how.
#[derive(Clone, Debug, Default)]
pub struct SpawnOptions {
    /// The program: a path (with a `/`), or a name looked up in `PATH` (the child's `PATH` if
    /// `env` sets one, else the parent's).
    pub program: OsString,
    /// The whole argument vector, `argv[0]` included (empty: just the program).
    pub args: Vec<OsString>,
    /// The child's environment as `KEY=value` entries; `None` inherits the parent's.
    pub env: Option<Vec<OsString>>,
    /// Working directory; `None` keeps the parent's.
    pub cwd: Option<PathBuf>,
    /// Run as this user (needs privilege).
    pub uid: Option<u32>,
    /// Run as this group (needs privilege).
    pub gid: Option<u32>,
    /// Start a new session (setsid), so the child outlives the parent's terminal and process
    /// group; it can still be waited for and killed.
    pub detached: bool,
    /// stdin, stdout, stderr.
    pub stdio: [Stdio; 3],
}

impl SpawnOptions {
    /// Options to run `program` with `args` (after `argv[0]`), inheriting everything.
    pub fn new<S: AsRef<OsStr>>(
        program: impl AsRef<OsStr>,
        args: impl IntoIterator<Item = S>,
    ) -> SpawnOptions {
        let program = program.as_ref().to_os_string();
        let mut argv = vec![program.clone()];
        argv.extend(args.into_iter().map(|a| a.as_ref().to_os_string()));
        SpawnOptions {
            program,
            args: argv,
            ..SpawnOptions::default()
        }
    }
}

/// A started child and the parent's ends of its pipes (`None` where not [`Stdio::Pipe`]).
pub struct Spawned {
    /// The process handle.
    pub process: Process,
    /// stdin, stdout, stderr pipes.
    pub stdio: [Option<Stream>; 3],
}

pub(crate) struct ProcessEntry {
    pub(crate) common: Common,
    pid: libc::pid_t,
    pidfd: RawFd,
    exited: bool,
    on_exit: Option<ExitCb>,
}

fn c_string(s: &OsStr) -> Result<CString> {
    CString::new(s.as_bytes()).map_err(|_| Error::EINVAL)
}

/// The paths exec should try for `program`, as execvp would.
fn candidates(program: &OsStr, env: Option<&[OsString]>) -> Result<Vec<CString>> {
    if program.is_empty() {
        return Err(Error::ENOENT);
    }
    if program.as_bytes().contains(&b'/') {
        return Ok(vec![c_string(program)?]);
    }
    let from_env = env.and_then(|e| {
        e.iter().find_map(|kv| {
            kv.as_bytes()
                .strip_prefix(b"PATH=")
                .map(|p| OsStr::from_bytes(p).to_os_string())
        })
    });
    let path = from_env
        .or_else(|| std::env::var_os("PATH"))
        .unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    let mut out = Vec::new();
    for dir in path.as_bytes().split(|&b| b == b':') {
        let mut full = if dir.is_empty() {
            b".".to_vec()
        } else {
            dir.to_vec()
        };
        full.push(b'/');
        full.extend_from_slice(program.as_bytes());
        out.push(CString::new(full).map_err(|_| Error::EINVAL)?);
    }
    Ok(out)
}

/// Descriptors made for a spawn, closed on every path out.
#[derive(Default)]
struct Fds(Vec<RawFd>);

impl Fds {
    fn keep(&mut self, fd: RawFd) -> RawFd {
        self.0.push(fd);
        fd
    }

    /// Hands the descriptors to their new owner: dropping no longer closes them.
    fn disown(mut self) {
        self.0.clear();
    }
}

impl Drop for Fds {
    fn drop(&mut self) {
        for &fd in &self.0 {
            sys::close(fd);
        }
    }
}

fn socket_pair() -> Result<[RawFd; 2]> {
    let mut fds = [0; 2];
    // SAFETY: a two-element array for the new descriptors.
    cvt(unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    })?;
    Ok(fds)
}

impl Process {
    /// Starts a child. `on_exit` runs once it has exited (and been reaped); until then the
    /// handle keeps the loop alive. Errors from exec (`ENOENT` for a missing program, `EACCES`
    /// for one that cannot run) come back here, not through `on_exit`.
    pub fn spawn(
        lp: &mut Loop,
        opts: &SpawnOptions,
        on_exit: impl FnOnce(&mut Loop, Process, ExitStatus) + 'static,
    ) -> Result<Spawned> {
        let args = if opts.args.is_empty() {
            std::slice::from_ref(&opts.program)
        } else {
            &opts.args[..]
        };
        let argv = args.iter().map(|a| c_string(a)).collect::<Result<Vec<_>>>()?;
        let envp = match &opts.env {
            Some(e) => Some(e.iter().map(|a| c_string(a)).collect::<Result<Vec<_>>>()?),
            None => None,
        };
        let cwd = match &opts.cwd {
            Some(d) => Some(c_string(d.as_os_str())?),
            None => None,
        };
        let candidates = candidates(&opts.program, opts.env.as_deref())?;
        // Child ends close when this spawn returns; parent ends move into streams on success.
        let mut child_ends = Fds::default();
        let mut parent_ends = Fds::default();
        let mut stdio = [ChildFd::Inherit; 3];
        let mut pipes = [None; 3];
        for (i, s) in opts.stdio.iter().enumerate() {
            match s {
                Stdio::Inherit => {}
                Stdio::Ignore => {
                    let null = c"/dev/null";
                    // SAFETY: a constant path.
                    let fd = cvt(unsafe { libc::open(null.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) })?;
                    stdio[i] = ChildFd::Use(child_ends.keep(fd));
                }
                Stdio::Pipe => {
                    let [mine, theirs] = socket_pair()?;
                    pipes[i] = Some(parent_ends.keep(mine));
                    stdio[i] = ChildFd::Use(child_ends.keep(theirs));
                    // Only the parent's end: the two ends are separate open files.
                    sys::set_nonblocking(mine)?;
                }
            }
        }
        let prepared = Prepared {
            candidates,
            argv,
            envp,
            cwd,
            uid: opts.uid,
            gid: opts.gid,
            detached: opts.detached,
            stdio,
        };
        let pid = spawn::spawn(&prepared)?;
        drop(child_ends);
        let pidfd = match spawn::pidfd_open(pid) {
            Ok(fd) => fd,
            Err(e) => {
                // Cannot watch it: do not leave it running unseen.
                // SAFETY: our own child, just started.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                    libc::waitpid(pid, std::ptr::null_mut(), 0);
                }
                return Err(e);
            }
        };
        let mut streams = [None; 3];
        for (i, fd) in pipes.iter().enumerate() {
            if let Some(fd) = *fd {
                streams[i] = Some(lp.stream_insert(fd, libc::AF_UNIX));
            }
        }
        parent_ends.disown(); // owned by the streams now
        Ok(Spawned {
            process: lp.process_insert(pid, pidfd, Box::new(on_exit)),
            stdio: streams,
        })
    }

    /// Watches `pid`, a child this process started some other way (`fork`, a language's own
    /// process module with options `spawn` does not have), as if `spawn` had started it: its
    /// exit is seen through a pidfd, `on_exit` runs once it has exited and been reaped, and
    /// `kill` signals it through the pidfd. `ECHILD` if `pid` is not a child of this process
    /// (or was reaped already); a child that has exited but not been reaped is reported at the
    /// next iteration.
    pub fn adopt(
        lp: &mut Loop,
        pid: i32,
        on_exit: impl FnOnce(&mut Loop, Process, ExitStatus) + 'static,
    ) -> Result<Process> {
        if pid <= 0 {
            return Err(Error::EINVAL);
        }
        spawn::check_child(pid)?;
        let pidfd = spawn::pidfd_open(pid)?;
        Ok(lp.process_insert(pid, pidfd, Box::new(on_exit)))
    }

    /// The child's process id.
    pub fn pid(self, lp: &Loop) -> Result<i32> {
        lp.processes
            .get(self.idx, self.gen)
            .map(|e| e.pid)
            .ok_or(Error::EBADF)
    }

    /// Sends `signal` (through the pidfd, so never to a recycled pid). `ESRCH` once the child
    /// has exited.
    pub fn kill(self, lp: &mut Loop, signal: i32) -> Result<()> {
        let e = lp.processes.get(self.idx, self.gen).ok_or(Error::EBADF)?;
        if e.exited {
            return Err(Error::ESRCH);
        }
        if !(0..=64).contains(&signal) {
            return Err(Error::EINVAL);
        }
        spawn::pidfd_send_signal(e.pidfd, signal)
    }
}

/// Operation number of the poll that reaps a child whose handle closed first.
const OP_ORPHAN: u8 = 1;

impl Loop {
    /// A handle for the running child `pid`, watched through `pidfd` (which it owns).
    fn process_insert(&mut self, pid: libc::pid_t, pidfd: RawFd, on_exit: ExitCb) -> Process {
        let mut common = Common::new();
        common.set_active(&mut self.alive_refs, true);
        let (idx, gen) = self.processes.insert(ProcessEntry {
            common,
            pid,
            pidfd,
            exited: false,
            on_exit: Some(on_exit),
        });
        self.process_watch(idx, gen);
        Process { idx, gen }
    }

    fn process_watch(&mut self, idx: u32, gen: u32) {
        let Some(e) = self.processes.get_mut(idx, gen) else {
            return;
        };
        let op = Op::Poll {
            fd: e.pidfd,
            events: crate::ready::READABLE,
        };
        match self.backend.submit(token(Kind::Process, 0, idx, gen), op) {
            None => e.common.inflight += 1,
            // Polling a fresh pidfd cannot fail short of a broken kernel; reap now instead.
            Some(_) => self.process_exited(idx, gen),
        }
    }

    pub(crate) fn process_completion(&mut self, idx: u32, op: u8, c: &Completion) {
        if op == OP_ORPHAN {
            self.orphan_completion(idx, c);
            return;
        }
        let Some((gen, e)) = self.processes.get_by_index(idx) else {
            return;
        };
        if !gen_matches(gen, c.token) {
            return;
        }
        if !c.more && Loop::op_finished(&mut e.common) {
            self.maybe_finish_close(RawHandle {
                kind: Kind::Process,
                idx,
                gen,
            });
            return;
        }
        if c.res >= 0 && !e.exited && !e.common.closing {
            self.process_exited(idx, gen);
            // A multishot poll the kernel ended while the child still runs: watch again.
            if let Some(e) = self.processes.get(idx, gen) {
                if !c.more && !e.exited && e.common.inflight == 0 && !e.common.closing {
                    self.process_watch(idx, gen);
                }
            }
        }
    }

    /// The pidfd polled readable: reap the child and report its end.
    fn process_exited(&mut self, idx: u32, gen: u32) {
        let Some(e) = self.processes.get_mut(idx, gen) else {
            return;
        };
        let status = match spawn::reap(e.pidfd) {
            Ok(Some(Exit::Code(c))) => ExitStatus::Exited(c),
            Ok(Some(Exit::Signal(s))) => ExitStatus::Signaled(s),
            Ok(None) => return, // spurious readiness: still running
            Err(Error::ECHILD) => ExitStatus::Unknown,
            Err(_) => return,
        };
        e.exited = true;
        e.common.set_active(&mut self.alive_refs, false);
        let (pidfd, armed) = (e.pidfd, e.common.inflight > 0);
        if armed {
            self.backend
                .cancel(token(Kind::Process, 0, idx, gen), pidfd, OpKind::Poll);
        }
        let cb = self.processes.get_mut(idx, gen).and_then(|e| e.on_exit.take());
        if let Some(cb) = cb {
            cb(self, Process { idx, gen }, status);
        }
    }

    pub(crate) fn process_cancel(&mut self, idx: u32, gen: u32) {
        let Some(e) = self.processes.get(idx, gen) else {
            return;
        };
        if e.common.inflight > 0 && !e.exited {
            let fd = e.pidfd;
            self.backend
                .cancel(token(Kind::Process, 0, idx, gen), fd, OpKind::Poll);
        }
    }

    pub(crate) fn process_release(&mut self, idx: u32, gen: u32) -> Option<CloseCb> {
        let mut e = self.processes.remove(idx, gen)?;
        self.backend.release_fd(e.pidfd, true);
        if e.exited {
            self.backend.close_fd(e.pidfd);
        } else {
            // Still running: keep watching, unreferenced, so it is reaped when it ends and
            // leaves no zombie.
            let (oidx, ogen) = self.orphans.insert(e.pidfd);
            let op = Op::Poll {
                fd: e.pidfd,
                events: crate::ready::READABLE,
            };
            if self
                .backend
                .submit(token(Kind::Process, OP_ORPHAN, oidx, ogen), op)
                .is_some()
            {
                self.orphans.remove(oidx, ogen);
                let _ = spawn::reap(e.pidfd);
                self.backend.close_fd(e.pidfd);
            }
        }
        e.common.take_close_cb()
    }

    /// Closes the pidfds of a loop being dropped (children still running are left to run).
    pub(crate) fn process_loop_dropped(&mut self) {
        let mut live = Vec::new();
        self.processes.live(&mut live);
        for &(i, g) in &live {
            if let Some(e) = self.processes.get(i, g) {
                sys::close(e.pidfd);
            }
        }
        self.orphans.live(&mut live);
        for &(i, g) in &live {
            if let Some(&fd) = self.orphans.get(i, g) {
                sys::close(fd);
            }
        }
    }

    fn orphan_completion(&mut self, idx: u32, c: &Completion) {
        let Some((gen, &mut pidfd)) = self.orphans.get_by_index(idx) else {
            return;
        };
        if !gen_matches(gen, c.token) {
            return;
        }
        let reaped = matches!(spawn::reap(pidfd), Ok(Some(_)) | Err(Error::ECHILD));
        if reaped && c.more {
            // Reaped while the multishot poll is still armed: end it; the final completion
            // releases the pidfd.
            self.backend
                .cancel(token(Kind::Process, OP_ORPHAN, idx, gen), pidfd, OpKind::Poll);
        }
        if !c.more {
            self.orphans.remove(idx, gen);
            self.backend.release_fd(pidfd, true);
            self.backend.close_fd(pidfd);
        }
    }
}
