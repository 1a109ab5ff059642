//! Child processes.

use crate::handle::{call_c, create, evl_process_t, evl_stream_t, new_handle, with_open, Handle, Id};
use crate::loop_::evl_loop_t;
use evloop::{ExitStatus, Process, SpawnOptions, Stdio};
use libc::{c_char, c_int, c_uint, c_void};
use std::ffi::{CStr, OsStr, OsString};
use std::os::unix::ffi::OsStrExt;

/// evl_process_options_t.stdio: the parent's own descriptor (the default, 0).
pub const EVL_STDIO_INHERIT: c_int = 0;
/// evl_process_options_t.stdio: /dev/null.
pub const EVL_STDIO_IGNORE: c_int = 1;
/// evl_process_options_t.stdio: a socket pair; the parent's end comes back as a stream.
pub const EVL_STDIO_PIPE: c_int = 2;

/// evl_process_options_t.flags: run as `uid` (needs privilege).
pub const EVL_PROCESS_SETUID: c_uint = 1;
/// evl_process_options_t.flags: run as `gid` (needs privilege).
pub const EVL_PROCESS_SETGID: c_uint = 2;
/// evl_process_options_t.flags: start a new session (setsid); the child can still be waited
/// for and killed.
pub const EVL_PROCESS_DETACHED: c_uint = 4;

/// What evl_spawn runs, and how. Zero-initialise it and set what you need.
#[repr(C)]
pub struct evl_process_options_t {
    /// The program: a path containing '/', or a name looked up in PATH (the child's PATH if
    /// `env` sets one, else the parent's). Required.
    pub file: *const c_char,
    /// NULL-terminated argument vector, argv[0] included; NULL runs `file` with no arguments.
    pub args: *const *const c_char,
    /// NULL-terminated "KEY=value" environment; NULL inherits the parent's.
    pub env: *const *const c_char,
    /// Working directory; NULL keeps the parent's.
    pub cwd: *const c_char,
    /// EVL_PROCESS_* bits.
    pub flags: c_uint,
    /// User id, with EVL_PROCESS_SETUID.
    pub uid: u32,
    /// Group id, with EVL_PROCESS_SETGID.
    pub gid: u32,
    /// stdin, stdout, stderr: EVL_STDIO_INHERIT, EVL_STDIO_IGNORE or EVL_STDIO_PIPE.
    pub stdio: [c_int; 3],
}

/// Runs once, when the child has exited and been reaped: `exit_status` is its exit code (0
/// when a signal ended it), `term_signal` the signal that ended it (0 when it exited).
/// `exit_status` is -ECHILD when something else in the program reaped the child first (a
/// `waitpid` of its own), so how it ended is not known.
pub type evl_exit_cb = Option<
    unsafe extern "C" fn(
        process: *mut evl_process_t,
        exit_status: i64,
        term_signal: c_int,
        user_data: *mut c_void,
    ),
>;

unsafe fn os(p: *const c_char) -> OsString {
    // SAFETY: a NUL-terminated string (contract).
    OsStr::from_bytes(unsafe { CStr::from_ptr(p) }.to_bytes()).to_os_string()
}

unsafe fn list(mut p: *const *const c_char) -> Vec<OsString> {
    let mut out = Vec::new();
    // SAFETY: a NULL-terminated array of strings (contract).
    unsafe {
        while !(*p).is_null() {
            out.push(os(*p));
            p = p.add(1);
        }
    }
    out
}

unsafe fn options(o: &evl_process_options_t) -> Result<SpawnOptions, c_int> {
    if o.file.is_null() {
        return Err(-libc::EINVAL);
    }
    let mut stdio = [Stdio::Inherit; 3];
    for (i, s) in o.stdio.iter().enumerate() {
        stdio[i] = match *s {
            EVL_STDIO_INHERIT => Stdio::Inherit,
            EVL_STDIO_IGNORE => Stdio::Ignore,
            EVL_STDIO_PIPE => Stdio::Pipe,
            _ => return Err(-libc::EINVAL),
        };
    }
    if o.flags & !(EVL_PROCESS_SETUID | EVL_PROCESS_SETGID | EVL_PROCESS_DETACHED) != 0 {
        return Err(-libc::EINVAL);
    }
    // SAFETY: strings and arrays as the contract describes.
    unsafe {
        Ok(SpawnOptions {
            program: os(o.file),
            args: if o.args.is_null() {
                Vec::new()
            } else {
                list(o.args)
            },
            env: (!o.env.is_null()).then(|| list(o.env)),
            cwd: (!o.cwd.is_null()).then(|| os(o.cwd).into()),
            uid: (o.flags & EVL_PROCESS_SETUID != 0).then_some(o.uid),
            gid: (o.flags & EVL_PROCESS_SETGID != 0).then_some(o.gid),
            detached: o.flags & EVL_PROCESS_DETACHED != 0,
            stdio,
        })
    }
}

/// Starts a child process. `cb` runs once it has exited; until then the handle keeps the loop
/// alive. For each EVL_STDIO_PIPE slot, `stdio_out[i]` receives a new stream handle (the
/// parent's end; close it like any stream); other slots get NULL. `stdio_out` may be NULL only
/// when no slot is a pipe. Exec failures are returned here: -ENOENT (no such program), -EACCES
/// (not executable), -EPERM (uid/gid without privilege)...; then nothing was created.
#[no_mangle]
pub unsafe extern "C" fn evl_spawn(
    l: *mut evl_loop_t,
    out: *mut *mut evl_process_t,
    options_: *const evl_process_options_t,
    cb: evl_exit_cb,
    stdio_out: *mut *mut evl_stream_t,
    user_data: *mut c_void,
) -> c_int {
    // The record is made after core's handle; the exit callback finds it through this cell.
    let record = std::rc::Rc::new(std::cell::Cell::new(0usize));
    let rec = record.clone();
    let r = create(l, out, user_data, |lp| {
        let bad = evloop::Error::EINVAL;
        let Some(cb) = cb else { return Err(bad) };
        if options_.is_null() {
            return Err(bad);
        }
        // SAFETY: a valid options struct (contract).
        let opts = unsafe { options(&*options_) }.map_err(|e| evloop::Error::from_errno(-e))?;
        if stdio_out.is_null() && opts.stdio.contains(&Stdio::Pipe) {
            return Err(bad);
        }
        let spawned = Process::spawn(lp, &opts, exited(rec, cb))?;
        for (i, s) in spawned.stdio.iter().enumerate() {
            if !stdio_out.is_null() {
                let p = match s {
                    // SAFETY: `l` is validated; the stream is the loop's.
                    Some(s) => unsafe { new_handle::<evl_stream_t>(l, Id::Stream(*s), std::ptr::null_mut()) },
                    None => std::ptr::null_mut(),
                };
                // SAFETY: `stdio_out` holds three pointers (contract).
                unsafe { *stdio_out.add(i) = p };
            }
        }
        Ok(Id::Process(spawned.process))
    });
    if r == 0 {
        // SAFETY: `create` succeeded, so `out` holds the new record.
        record.set(unsafe { *out } as usize);
    }
    r
}

/// The exit callback of a process handle whose record `rec` will hold once it is made.
fn exited(
    rec: std::rc::Rc<std::cell::Cell<usize>>,
    cb: unsafe extern "C" fn(*mut evl_process_t, i64, c_int, *mut c_void),
) -> impl FnOnce(&mut evloop::Loop, Process, ExitStatus) {
    move |lp, _, status| {
        let h = rec.get() as *mut Handle;
        let (code, sig) = match status {
            ExitStatus::Exited(c) => (c as i64, 0),
            ExitStatus::Signaled(s) => (0, s),
            ExitStatus::Unknown => (-libc::ECHILD as i64, 0),
        };
        // SAFETY: the record lives while core runs its callbacks.
        unsafe { call_c(h, lp, |data| cb(h.cast(), code, sig, data)) }
    }
}

/// Watches `pid`, a child the program started itself (`fork`), as if evl_spawn had started it:
/// `cb` runs once it has exited and been reaped, evl_process_kill signals it through a pidfd,
/// and the handle keeps the loop alive until then. -ECHILD if `pid` is not a child of this
/// process (or was reaped already).
#[no_mangle]
pub unsafe extern "C" fn evl_process_adopt(
    l: *mut evl_loop_t,
    out: *mut *mut evl_process_t,
    pid: c_int,
    cb: evl_exit_cb,
    user_data: *mut c_void,
) -> c_int {
    let record = std::rc::Rc::new(std::cell::Cell::new(0usize));
    let rec = record.clone();
    let r = create(l, out, user_data, |lp| {
        let cb = cb.ok_or(evloop::Error::EINVAL)?;
        Ok(Id::Process(Process::adopt(lp, pid, exited(rec, cb))?))
    });
    if r == 0 {
        // SAFETY: `create` succeeded, so `out` holds the new record.
        record.set(unsafe { *out } as usize);
    }
    r
}

/// The child's process id.
#[no_mangle]
pub unsafe extern "C" fn evl_process_pid(p: *mut evl_process_t) -> c_int {
    with_open!(p, Process, |h, lp, Id::Process(proc_)| match proc_.pid(lp) {
        Ok(pid) => pid,
        Err(e) => e.code(),
    })
}

/// Sends `signum` to the child (through its pidfd, so never to a recycled pid). -ESRCH once it
/// has exited.
#[no_mangle]
pub unsafe extern "C" fn evl_process_kill(p: *mut evl_process_t, signum: c_int) -> c_int {
    with_open!(p, Process, |h, lp, Id::Process(proc_)| crate::code(
        proc_.kill(lp, signum)
    ))
}
