//! Watchers of readiness on fds the caller owns.

use crate::handle::{call_c, create, evl_poll_t, with_open, Handle, Id};
use crate::loop_::evl_loop_t;
use evloop::ready;
use libc::{c_int, c_uint, c_void};

/// Readable.
pub const EVL_READABLE: c_uint = 1;
/// Writable.
pub const EVL_WRITABLE: c_uint = 2;
/// The peer hung up.
pub const EVL_DISCONNECT: c_uint = 4;
/// Urgent data.
pub const EVL_PRIORITIZED: c_uint = 8;
/// An error condition on the fd (reported, never requested).
pub const EVL_POLL_ERROR: c_uint = 16;

// Literals above so cbindgen can print them; they must stay equal to core's bits.
const _: () = assert!(
    EVL_READABLE == ready::READABLE
        && EVL_WRITABLE == ready::WRITABLE
        && EVL_DISCONNECT == ready::DISCONNECT
        && EVL_PRIORITIZED == ready::PRIORITIZED
        && EVL_POLL_ERROR == ready::ERROR
);

/// Receives the readiness seen (`events`, EVL_* bits) with `status` 0, or an error (`status` < 0).
pub type evl_poll_cb = Option<
    unsafe extern "C" fn(poll: *mut evl_poll_t, status: c_int, events: c_uint, user_data: *mut c_void),
>;

/// A watcher for `fd`, which stays the caller's (closing the watcher does not close it).
#[no_mangle]
pub unsafe extern "C" fn evl_poll_init(
    l: *mut evl_loop_t,
    out: *mut *mut evl_poll_t,
    fd: c_int,
    user_data: *mut c_void,
) -> c_int {
    create(l, out, user_data, |lp| {
        Ok(Id::Poll(evloop::FdWatcher::new(lp, fd)?))
    })
}

/// Starts (or changes) watching for `events` (EVL_READABLE | EVL_WRITABLE | ...). Readiness is
/// level-triggered on both backends, as with uv_poll_t. `events` 0 stops the watcher. -EEXIST
/// while another watcher of this loop is active on the same fd; -EINVAL for unknown bits.
#[no_mangle]
pub unsafe extern "C" fn evl_poll_start(p: *mut evl_poll_t, events: c_uint, cb: evl_poll_cb) -> c_int {
    with_open!(p, Poll, |h, lp, Id::Poll(w)| {
        let Some(cb) = cb else { return -libc::EINVAL };
        let raw = h as *mut Handle as usize;
        crate::code(w.start(lp, events, move |lp, _, r| {
            let h = raw as *mut Handle;
            let (status, ev) = match r {
                Ok(bits) => (0, bits),
                Err(e) => (e.code(), 0),
            };
            // SAFETY: the record lives while core runs its callbacks.
            unsafe { call_c(h, lp, |data| cb(h.cast(), status, ev, data)) }
        }))
    })
}

/// Stops watching.
#[no_mangle]
pub unsafe extern "C" fn evl_poll_stop(p: *mut evl_poll_t) -> c_int {
    with_open!(p, Poll, |h, lp, Id::Poll(w)| crate::code(w.stop(lp)))
}
