//! Signal watchers.

use crate::handle::{call_c, create, evl_signal_t, with_open, Handle, Id};
use crate::loop_::evl_loop_t;
use libc::{c_int, c_void};

/// Runs on the loop's thread with the signal number, once per batch of deliveries.
pub type evl_signal_cb =
    Option<unsafe extern "C" fn(handle: *mut evl_signal_t, signum: c_int, user_data: *mut c_void)>;

/// A stopped signal watcher.
#[no_mangle]
pub unsafe extern "C" fn evl_signal_init(
    l: *mut evl_loop_t,
    out: *mut *mut evl_signal_t,
    user_data: *mut c_void,
) -> c_int {
    create(l, out, user_data, |lp| Ok(Id::Signal(evloop::Signal::new(lp)?)))
}

/// Watches `signum` (replacing a signal watched before). The previous disposition returns after
/// the last watcher of the signal stops. -EINVAL for SIGKILL, SIGSTOP or numbers outside 1..64.
#[no_mangle]
pub unsafe extern "C" fn evl_signal_start(s: *mut evl_signal_t, cb: evl_signal_cb, signum: c_int) -> c_int {
    with_open!(s, Signal, |h, lp, Id::Signal(sig)| {
        let Some(cb) = cb else { return -libc::EINVAL };
        let raw = h as *mut Handle as usize;
        crate::code(sig.start(lp, signum, move |lp, _, n| {
            let h = raw as *mut Handle;
            // SAFETY: the record lives while core runs its callbacks.
            unsafe { call_c(h, lp, |data| cb(h.cast(), n, data)) }
        }))
    })
}

/// Stops watching.
#[no_mangle]
pub unsafe extern "C" fn evl_signal_stop(s: *mut evl_signal_t) -> c_int {
    with_open!(s, Signal, |h, lp, Id::Signal(sig)| crate::code(sig.stop(lp)))
}
