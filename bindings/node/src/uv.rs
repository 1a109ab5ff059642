//! The few libuv calls the addon makes on Node's own loop. Node exports libuv's symbols to
//! addons and napi-rs binds none of them, so they are declared here, once. Handles are
//! allocated with the size libuv reports (`uv_handle_size`), so this file needs no copy of
//! libuv's struct layouts.

use std::ffi::{c_int, c_void};

/// `uv_loop_t`, only ever behind a pointer.
pub(crate) type UvLoop = napi::sys::uv_loop_s;

const UV_POLL: c_int = 8;
const UV_PREPARE: c_int = 9;
const UV_TIMER: c_int = 13;
const UV_READABLE: c_int = 1;

pub(crate) type PollCb = extern "C" fn(handle: *mut c_void, status: c_int, events: c_int);
pub(crate) type PlainCb = extern "C" fn(handle: *mut c_void);

extern "C" {
    fn uv_handle_size(kind: c_int) -> usize;
    fn uv_poll_init(lp: *mut UvLoop, handle: *mut c_void, fd: c_int) -> c_int;
    fn uv_poll_start(handle: *mut c_void, events: c_int, cb: PollCb) -> c_int;
    fn uv_timer_init(lp: *mut UvLoop, handle: *mut c_void) -> c_int;
    fn uv_timer_start(handle: *mut c_void, cb: PlainCb, timeout: u64, repeat: u64) -> c_int;
    fn uv_timer_stop(handle: *mut c_void) -> c_int;
    fn uv_prepare_init(lp: *mut UvLoop, handle: *mut c_void) -> c_int;
    fn uv_prepare_start(handle: *mut c_void, cb: PlainCb) -> c_int;
    fn uv_ref(handle: *mut c_void);
    fn uv_unref(handle: *mut c_void);
    fn uv_close(handle: *mut c_void, cb: Option<PlainCb>);
}

/// Fresh zeroed memory for a libuv handle of `kind`, 16-byte aligned.
fn alloc_handle(kind: c_int) -> *mut c_void {
    // SAFETY: uv_handle_size only reads its argument.
    let words = unsafe { uv_handle_size(kind) }.div_ceil(16).max(1);
    Box::into_raw(vec![0u128; words].into_boxed_slice()) as *mut u128 as *mut c_void
}

/// Frees what `alloc_handle(kind)` gave.
///
/// # Safety
/// `handle` came from `alloc_handle(kind)` and libuv no longer uses it.
unsafe fn free_handle(handle: *mut c_void, kind: c_int) {
    // SAFETY: same size computation as alloc_handle; the caller guarantees the origin.
    unsafe {
        let words = uv_handle_size(kind).div_ceil(16).max(1);
        drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(
            handle as *mut u128,
            words,
        )));
    }
}

extern "C" fn free_poll(handle: *mut c_void) {
    // SAFETY: only passed to uv_close for the poll handle, which libuv has finished with.
    unsafe { free_handle(handle, UV_POLL) }
}

extern "C" fn free_timer(handle: *mut c_void) {
    // SAFETY: as free_poll, for the timer.
    unsafe { free_handle(handle, UV_TIMER) }
}

extern "C" fn free_prepare(handle: *mut c_void) {
    // SAFETY: as free_poll, for the prepare handle.
    unsafe { free_handle(handle, UV_PREPARE) }
}

fn check(rc: c_int) -> Result<(), i32> {
    if rc < 0 {
        Err(rc)
    } else {
        Ok(())
    }
}

/// The handles that embed evloop in Node's loop: a poll on evloop's backend fd, a timer for
/// its next deadline, and a prepare hook that, before Node blocks, runs work that JS queued
/// since the last run (io_uring submissions wait in the ring until then, so all the writes
/// of one Node iteration go to the kernel in one enter).
pub(crate) struct Driver {
    poll: *mut c_void,
    timer: *mut c_void,
    prepare: *mut c_void,
    on_timer: PlainCb,
    referenced: bool,
    armed: bool,
}

impl Driver {
    /// Starts the handles on `lp`, unreferenced: evloop keeps Node alive only while it has
    /// referenced work ([`Driver::set_referenced`]).
    ///
    /// # Safety
    /// `lp` is the loop of the Node environment running on this thread.
    pub(crate) unsafe fn start(
        lp: *mut UvLoop,
        fd: i32,
        on_ready: PollCb,
        on_timer: PlainCb,
        on_prepare: PlainCb,
    ) -> Result<Driver, i32> {
        let d = Driver {
            poll: alloc_handle(UV_POLL),
            timer: alloc_handle(UV_TIMER),
            prepare: alloc_handle(UV_PREPARE),
            on_timer,
            referenced: true,
            armed: false,
        };
        // SAFETY: each handle is fresh memory of the size libuv asked for, initialised once on
        // the caller's loop before any other call on it.
        unsafe {
            check(uv_poll_init(lp, d.poll, fd))?;
            check(uv_timer_init(lp, d.timer))?;
            check(uv_prepare_init(lp, d.prepare))?;
            check(uv_poll_start(d.poll, UV_READABLE, on_ready))?;
            check(uv_prepare_start(d.prepare, on_prepare))?;
            // The prepare hook never keeps Node alive by itself.
            uv_unref(d.prepare);
        }
        let mut d = d;
        d.set_referenced(false);
        Ok(d)
    }

    /// Whether the poll and the timer keep Node's loop alive.
    pub(crate) fn set_referenced(&mut self, on: bool) {
        if self.referenced == on {
            return;
        }
        self.referenced = on;
        // SAFETY: both handles were initialised in `start` and are not closed before `close`.
        unsafe {
            if on {
                uv_ref(self.poll);
                uv_ref(self.timer);
            } else {
                uv_unref(self.poll);
                uv_unref(self.timer);
            }
        }
    }

    /// Arms the timer for `ms` milliseconds from now (negative: disarms it).
    pub(crate) fn arm(&mut self, ms: i32) {
        // SAFETY: the timer was initialised in `start`.
        unsafe {
            match u64::try_from(ms) {
                Ok(ms) => {
                    uv_timer_start(self.timer, self.on_timer, ms, 0);
                    self.armed = true;
                }
                Err(_) if self.armed => {
                    uv_timer_stop(self.timer);
                    self.armed = false;
                }
                Err(_) => {}
            }
        }
    }

    /// The timer fired: it is no longer armed.
    pub(crate) fn timer_fired(&mut self) {
        self.armed = false;
    }

    /// Closes the handles; their memory is freed by libuv's close callbacks.
    pub(crate) fn close(self) {
        // SAFETY: each handle is open (started in `start`) and closed once, here.
        unsafe {
            uv_close(self.poll, Some(free_poll));
            uv_close(self.timer, Some(free_timer));
            uv_close(self.prepare, Some(free_prepare));
        }
    }
}
