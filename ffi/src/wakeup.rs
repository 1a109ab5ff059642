//! Cross-thread wake-ups.

use crate::guard;
use crate::handle::{call_c, evl_async_t, new_async, record, Handle, Kind};
use crate::loop_::evl_loop_t;
use libc::{c_int, c_void};

/// Runs on the loop's thread after one or more evl_async_send() calls.
pub type evl_async_cb = Option<unsafe extern "C" fn(handle: *mut evl_async_t, user_data: *mut c_void)>;

/// A wake-up handle; other threads call evl_async_send() on it. It keeps the loop alive until
/// closed or unref'd.
#[no_mangle]
pub unsafe extern "C" fn evl_async_init(
    l: *mut evl_loop_t,
    out: *mut *mut evl_async_t,
    cb: evl_async_cb,
    user_data: *mut c_void,
) -> c_int {
    crate::request(l, cb, |lp, cb| {
        if out.is_null() {
            return Err(-libc::EINVAL);
        }
        // The callback needs the record, which exists only after the handle: a cell carries it.
        let cell = std::rc::Rc::new(std::cell::Cell::new(0usize));
        let c = cell.clone();
        let a = evloop::Async::new(lp, move |lp, _| {
            let h = c.get() as *mut Handle;
            // SAFETY: the record lives while core runs its callbacks.
            unsafe { call_c(h, lp, |data| cb(h.cast(), data)) }
        })
        .map_err(|e| e.code())?;
        let waker = a.waker(lp).map_err(|e| e.code())?;
        // SAFETY: `l` was validated by `request`; `out` checked for NULL, writable (contract).
        unsafe {
            let h = new_async(l, a, waker, user_data);
            cell.set(h as usize);
            *out = h;
        }
        Ok(0)
    })
}

/// Wakes the handle: its callback runs soon on the loop's thread. Many calls before it runs
/// coalesce into one; a call after it started causes another. Safe from any thread, and from
/// signal handlers' point of view it only writes to an eventfd. -EBADF once evl_close() was
/// called on the handle (until its close callback; after that the pointer is invalid), -EINVAL
/// for a pointer that is not a wake-up handle.
#[no_mangle]
pub unsafe extern "C" fn evl_async_send(a: *mut evl_async_t) -> c_int {
    guard(-libc::EIO, || {
        // Only the record's immutable parts are read: this may run on any thread.
        // SAFETY: validated by `record` (the handle must not have been closed: contract).
        match unsafe { record(a, Some(Kind::Async)) } {
            Ok(h) if h.closing() => -libc::EBADF,
            Ok(h) => match h.waker() {
                Some(waker) => crate::code(waker.try_wake()),
                None => -libc::EINVAL,
            },
            Err(e) => e,
        }
    })
}
