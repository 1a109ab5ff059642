//! The loop: create, run, stop, time, embedding, call-soon.

use crate::guard;
use evloop::{BackendKind, Config, Loop, RunMode};
use libc::{c_char, c_int, c_void, size_t};
use std::ptr;

/// Run until nothing is alive or evl_stop() is called.
pub const EVL_RUN_DEFAULT: c_int = 0;
/// Run one iteration, blocking for I/O at most once.
pub const EVL_RUN_ONCE: c_int = 1;
/// Run one iteration without blocking.
pub const EVL_RUN_NOWAIT: c_int = 2;
/// Run one iteration without blocking, even if the loop is not alive: for a foreign loop driving
/// this one through evl_backend_fd(), which asks evl_loop_alive() whether to keep running.
/// Unreferenced handles still get their events (EVL_RUN_NOWAIT, as in libuv, does nothing on a
/// loop that is not alive).
pub const EVL_RUN_READY: c_int = 3;

/// io_uring where the kernel allows it, else epoll (EVLOOP_BACKEND=auto|uring|epoll overrides).
pub const EVL_BACKEND_AUTO: c_int = 0;
/// epoll.
pub const EVL_BACKEND_EPOLL: c_int = 1;
/// io_uring; evl_loop_new() fails with the kernel's error where it cannot run.
pub const EVL_BACKEND_URING: c_int = 2;

/// The state behind a loop pointer (validated separately).
pub(crate) fn state(l: *mut evl_loop_t) -> *mut LoopState {
    l.cast()
}

const LOOP_MAGIC: u64 = 0x6576_6c5f_6c6f_6f70;

/// An event loop. One per thread; only evl_async_send() may touch it from other threads.
pub struct evl_loop_t {
    _private: [u8; 0],
}

/// The state behind an `evl_loop_t *`; `repr(C)` keeps the magic number first, where a check
/// can read it.
#[repr(C)]
pub(crate) struct LoopState {
    magic: u64,
    pub(crate) lp: Loop,
    /// The loop as lent to the callback running now: calls made from inside callbacks use it.
    pub(crate) active: *mut Loop,
    /// Handles not yet freed: evl_loop_free() refuses while any remain.
    pub(crate) handles: usize,
    /// Buffers of finished evl_fs_read_file calls, whose data is only lent to the callback,
    /// kept for the next calls so that reading files allocates no buffers once warm.
    read_buffers: Vec<Vec<u8>>,
}

/// How many spare read_file buffers a loop keeps, and the largest it keeps.
const READ_BUFFERS_KEPT: usize = 256;
const READ_BUFFER_KEPT_MAX: usize = 256 * 1024;

/// A spare read_file buffer of `l`'s, or a new empty one.
pub(crate) unsafe fn take_read_buffer(l: *mut evl_loop_t) -> Vec<u8> {
    // SAFETY: `l` is a live loop (its requests' contract); only this field is touched, and no
    // other reference to it exists (it is used nowhere else).
    unsafe { (*ptr::addr_of_mut!((*state(l)).read_buffers)).pop() }.unwrap_or_default()
}

/// Keeps a finished read_file buffer for the next call, unless enough are kept or it is large.
pub(crate) unsafe fn give_read_buffer(l: *mut evl_loop_t, buf: Vec<u8>) {
    // SAFETY: as in take_read_buffer.
    let spare = unsafe { &mut *ptr::addr_of_mut!((*state(l)).read_buffers) };
    if spare.len() < READ_BUFFERS_KEPT && buf.capacity() <= READ_BUFFER_KEPT_MAX {
        spare.push(buf);
    }
}

/// The loop to act on: the one lent to the running callback, or the loop itself.
pub(crate) unsafe fn loop_mut<'a>(l: *mut evl_loop_t) -> Result<&'a mut Loop, c_int> {
    if l.is_null() {
        return Err(-libc::EINVAL);
    }
    let l = state(l);
    // SAFETY: `l` is NULL (handled) or a loop from evl_loop_new (the header's contract). Fields
    // are reached through the raw pointer so no reference to the whole struct is made while
    // evl_run holds `lp`.
    unsafe {
        if ptr::addr_of!((*l).magic).read() != LOOP_MAGIC {
            return Err(-libc::EINVAL);
        }
        let active = ptr::addr_of!((*l).active).read();
        Ok(if active.is_null() {
            &mut *ptr::addr_of_mut!((*l).lp)
        } else {
            &mut *active
        })
    }
}

/// Runs `f` (which calls into C) with `lp` recorded as the loop lent to callbacks.
pub(crate) unsafe fn lend<R>(l: *mut evl_loop_t, lp: &mut Loop, f: impl FnOnce() -> R) -> R {
    let l = state(l);
    // SAFETY: `l` is the live loop owning the handle whose callback runs; only the `active`
    // field is touched.
    unsafe {
        let slot = ptr::addr_of_mut!((*l).active);
        let previous = slot.read();
        slot.write(lp as *mut Loop);
        let r = f();
        slot.write(previous);
        r
    }
}

/// Creates a loop with `backend` (EVL_BACKEND_*) and stores it in `*out`. Errors: -EINVAL
/// (NULL `out`, unknown backend), the kernel's error for a backend that cannot run (-ENOSYS,
/// -EPERM), -EMFILE/-ENOMEM.
#[no_mangle]
pub unsafe extern "C" fn evl_loop_new(out: *mut *mut evl_loop_t, backend: c_int) -> c_int {
    guard(-libc::EIO, || {
        if out.is_null() {
            return -libc::EINVAL;
        }
        let backend = match backend {
            EVL_BACKEND_AUTO => BackendKind::Auto,
            EVL_BACKEND_EPOLL => BackendKind::Epoll,
            EVL_BACKEND_URING => BackendKind::Uring,
            _ => return -libc::EINVAL,
        };
        match Loop::with_config(Config {
            backend,
            ..Config::default()
        }) {
            Ok(lp) => {
                let l = Box::new(LoopState {
                    magic: LOOP_MAGIC,
                    lp,
                    active: ptr::null_mut(),
                    handles: 0,
                    read_buffers: Vec::new(),
                });
                // SAFETY: `out` is non-NULL and writable (contract).
                unsafe { *out = Box::into_raw(l).cast() };
                0
            }
            Err(e) => e.code(),
        }
    })
}

/// Frees a loop. -EBUSY while it has anything left to do: handles (close them and run the loop
/// until their close callbacks have run), evl_call_soon() callbacks not yet run, queued work,
/// file requests or name look-ups in flight (run the loop until they are done; nothing is
/// dropped unrun). -EINVAL for NULL or a pointer that is not a loop.
#[no_mangle]
pub unsafe extern "C" fn evl_loop_free(l: *mut evl_loop_t) -> c_int {
    guard(-libc::EIO, || {
        // SAFETY: validated like every loop argument.
        if let Err(e) = unsafe { loop_mut(l) } {
            return e;
        }
        let l = state(l);
        // SAFETY: validated above.
        unsafe {
            if !ptr::addr_of!((*l).active).read().is_null() {
                return -libc::EBUSY; // inside one of its own callbacks
            }
            if ptr::addr_of!((*l).handles).read() > 0 || (*ptr::addr_of!((*l).lp)).alive() {
                return -libc::EBUSY;
            }
            ptr::addr_of_mut!((*l).magic).write(0);
            drop(Box::from_raw(l));
        }
        0
    })
}

/// Runs the loop (`mode`: EVL_RUN_*). Returns 1 if it still has work (alive), 0 if not, or a
/// negative errno. Calling it from inside one of its own callbacks gives -EBUSY.
#[no_mangle]
pub unsafe extern "C" fn evl_run(l: *mut evl_loop_t, mode: c_int) -> c_int {
    guard(-libc::EIO, || {
        let mode = match mode {
            EVL_RUN_DEFAULT => RunMode::Default,
            EVL_RUN_ONCE => RunMode::Once,
            EVL_RUN_NOWAIT => RunMode::NoWait,
            EVL_RUN_READY => RunMode::Ready,
            _ => return -libc::EINVAL,
        };
        // SAFETY: validated by loop_mut.
        let lp = match unsafe { loop_mut(l) } {
            Ok(lp) => lp,
            Err(e) => return e,
        };
        // SAFETY: reading the field of a validated loop.
        if unsafe { !ptr::addr_of!((*state(l)).active).read().is_null() } {
            return -libc::EBUSY;
        }
        match lp.run(mode) {
            Ok(alive) => c_int::from(alive),
            Err(e) => e.code(),
        }
    })
}

macro_rules! with_loop {
    ($l:expr, $fallback:expr, |$lp:ident| $body:expr) => {
        guard($fallback, || match unsafe { loop_mut($l) } {
            Ok($lp) => $body,
            Err(_) => $fallback,
        })
    };
}

/// Makes evl_run() return after the current iteration.
#[no_mangle]
pub unsafe extern "C" fn evl_stop(l: *mut evl_loop_t) {
    with_loop!(l, (), |lp| lp.stop())
}

/// The loop's cached time in milliseconds (updated once per iteration); 0 for a bad loop.
#[no_mangle]
pub unsafe extern "C" fn evl_now(l: *mut evl_loop_t) -> u64 {
    with_loop!(l, 0, |lp| lp.now())
}

/// The loop's cached time in nanoseconds, same clock as evl_now().
#[no_mangle]
pub unsafe extern "C" fn evl_now_ns(l: *mut evl_loop_t) -> u64 {
    with_loop!(l, 0, |lp| lp.now_ns())
}

/// Refreshes the cached time.
#[no_mangle]
pub unsafe extern "C" fn evl_update_time(l: *mut evl_loop_t) {
    with_loop!(l, (), |lp| lp.update_time())
}

/// 1 if the loop has active referenced handles or pending callbacks, 0 if not, -EINVAL.
#[no_mangle]
pub unsafe extern "C" fn evl_loop_alive(l: *mut evl_loop_t) -> c_int {
    with_loop!(l, -libc::EINVAL, |lp| c_int::from(lp.alive()))
}

/// For embedding in another loop: an fd that polls readable when this loop has work. Poll it,
/// then call evl_run(loop, EVL_RUN_READY). On io_uring call it before the loop first runs (the
/// first call sets the ring up to wake a foreign loop); later it fails with -EBUSY. Handles
/// made before the call are fine.
#[no_mangle]
pub unsafe extern "C" fn evl_backend_fd(l: *mut evl_loop_t) -> c_int {
    with_loop!(l, -libc::EINVAL, |lp| match lp.backend_fd() {
        Ok(fd) => fd,
        Err(e) => e.code(),
    })
}

/// For embedding: hands the kernel what was asked for since the loop last waited (replies a
/// busy pass gathered, operations queued for io_uring). evl_run() does this as it returns; a
/// foreign loop that writes on this loop's handles outside evl_run() calls it after them so
/// the writes leave now rather than with the next run. 0 or a negative errno.
#[no_mangle]
pub unsafe extern "C" fn evl_loop_flush(l: *mut evl_loop_t) -> c_int {
    with_loop!(l, -libc::EINVAL, |lp| crate::code(lp.flush()))
}

/// For embedding: milliseconds until the loop must run again (-1: no deadline; 0: now).
#[no_mangle]
pub unsafe extern "C" fn evl_backend_timeout(l: *mut evl_loop_t) -> c_int {
    with_loop!(l, -libc::EINVAL, |lp| lp.backend_timeout())
}

/// "uring" or "epoll" (static string); NULL for a bad loop.
#[no_mangle]
pub unsafe extern "C" fn evl_backend_name(l: *mut evl_loop_t) -> *const c_char {
    with_loop!(l, ptr::null(), |lp| match lp.backend_name() {
        "uring" => c"uring".as_ptr(),
        _ => c"epoll".as_ptr(),
    })
}

/// Sets the largest file evl_fs_read_file() reads whole (default 1 GiB, EVL_READ_FILE_LIMIT); a
/// longer file, or one that never ends such as /dev/zero, fails with -EFBIG, so no file can make
/// the loop allocate without bound. Reads already started keep the limit they began with.
#[no_mangle]
pub unsafe extern "C" fn evl_loop_set_read_file_limit(l: *mut evl_loop_t, bytes: size_t) -> c_int {
    with_loop!(l, -libc::EINVAL, |lp| {
        lp.set_read_file_limit(bytes);
        0
    })
}

/// The default limit of evl_loop_set_read_file_limit(): 1 GiB.
pub const EVL_READ_FILE_LIMIT: size_t = 1 << 30;
const _: () = assert!(EVL_READ_FILE_LIMIT == evloop::DEFAULT_READ_FILE_LIMIT);

/// Called once by evl_call_soon().
pub type evl_call_cb = Option<unsafe extern "C" fn(l: *mut evl_loop_t, user_data: *mut c_void)>;

/// Runs `cb(loop, user_data)` on the next iteration, after I/O is polled. Callbacks queued
/// while the queue drains wait for the following iteration. -EINVAL for a NULL `cb`.
#[no_mangle]
pub unsafe extern "C" fn evl_call_soon(l: *mut evl_loop_t, cb: evl_call_cb, user_data: *mut c_void) -> c_int {
    with_loop!(l, -libc::EINVAL, |lp| {
        let Some(cb) = cb else { return -libc::EINVAL };
        let data = user_data as usize;
        lp.call_soon(move |lp| {
            // SAFETY: `l` outlives its queued callbacks (it cannot be freed while it has work).
            unsafe { lend(l, lp, || cb(l, data as *mut c_void)) }
        });
        0
    })
}
