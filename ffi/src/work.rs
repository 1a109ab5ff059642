//! The thread pool and name resolution.

use crate::guard;
use crate::loop_::{evl_loop_t, lend, loop_mut};
use crate::stream::{from_std, to_std};
use evloop::{Family, ResolveOptions, WorkId};
use libc::{c_char, c_int, c_uint, c_void, size_t, sockaddr, sockaddr_storage, socklen_t};
use std::ffi::{CStr, CString};

/// Runs on a thread-pool thread (not the loop's): it must not call evl_* functions other than
/// evl_async_send.
pub type evl_work_fn = Option<unsafe extern "C" fn(user_data: *mut c_void)>;
/// Runs on the loop's thread after the work: `status` 0, -ECANCELED (evl_cancel_work stopped it
/// before it started) or -EIO.
pub type evl_after_work_cb =
    Option<unsafe extern "C" fn(l: *mut evl_loop_t, status: c_int, user_data: *mut c_void)>;
/// Receives resolved addresses (`count` of them at `addrs`, lent for the call) with `status` 0,
/// or an error: -ENOENT (no such name), -EAGAIN (try again), -ECANCELED, ...
pub type evl_getaddrinfo_cb = Option<
    unsafe extern "C" fn(
        l: *mut evl_loop_t,
        status: c_int,
        addrs: *const sockaddr_storage,
        count: size_t,
        user_data: *mut c_void,
    ),
>;
/// Receives the host and service names (lent for the call) with `status` 0, or an error (both
/// NULL).
pub type evl_getnameinfo_cb = Option<
    unsafe extern "C" fn(
        l: *mut evl_loop_t,
        status: c_int,
        host: *const c_char,
        service: *const c_char,
        user_data: *mut c_void,
    ),
>;

/// evl_getaddrinfo flag: IPv4 addresses only.
pub const EVL_GAI_IPV4: c_uint = 1;
/// evl_getaddrinfo flag: IPv6 addresses only.
pub const EVL_GAI_IPV6: c_uint = 2;
/// evl_getaddrinfo flag: accept only a numeric host; never ask a resolver.
pub const EVL_GAI_NUMERICHOST: c_uint = 4;

/// A C pointer moved to a worker thread; the caller promised it may be used there.
struct SendPtr(*mut c_void);
// SAFETY: evl_queue_work's contract: `user_data` may be used from a pool thread.
unsafe impl Send for SendPtr {}

/// 0 with the id stored in `*id_out` (if not NULL), or the error.
fn queued(r: evloop::Result<WorkId>, id_out: *mut u64) -> c_int {
    match r {
        Ok(id) => {
            if !id_out.is_null() {
                // SAFETY: a non-NULL `id_out` is writable (contract).
                unsafe { *id_out = id.0 };
            }
            0
        }
        Err(e) => e.code(),
    }
}

/// Runs `work(user_data)` on the thread pool, then `after(loop, status, user_data)` on the loop's
/// thread. The id for evl_cancel_work goes to `*id_out` if it is not NULL. Queued work keeps the
/// loop alive. The pool has EVLOOP_THREADPOOL_SIZE threads (default 4).
#[no_mangle]
pub unsafe extern "C" fn evl_queue_work(
    l: *mut evl_loop_t,
    work: evl_work_fn,
    after: evl_after_work_cb,
    user_data: *mut c_void,
    id_out: *mut u64,
) -> c_int {
    crate::request(l, after, |lp, after| {
        let Some(work) = work else {
            return Err(-libc::EINVAL);
        };
        let data = SendPtr(user_data);
        let r = lp.queue_work(
            move || {
                let data = data;
                // SAFETY: the caller's work function with its own pointer.
                unsafe { work(data.0) }
            },
            move |lp, r| {
                // SAFETY: `l` outlives its pending work (it cannot be freed while alive).
                unsafe { lend(l, lp, || after(l, crate::code(r), user_data)) }
            },
        );
        Ok(queued(r, id_out))
    })
}

/// Cancels work (or a name lookup) that has not started: its callback runs with -ECANCELED.
/// -EBUSY if it is running or done, -EBADF if the id is not pending on this loop.
#[no_mangle]
pub unsafe extern "C" fn evl_cancel_work(l: *mut evl_loop_t, id: u64) -> c_int {
    guard(-libc::EIO, || match unsafe { loop_mut(l) } {
        Ok(lp) => crate::code(lp.cancel_work(WorkId(id))),
        Err(e) => e,
    })
}

/// Resolves `host` (NUL-terminated) to addresses with `port`, on the thread pool. `flags`:
/// EVL_GAI_*. The id for evl_cancel_work goes to `*id_out` if it is not NULL.
#[no_mangle]
pub unsafe extern "C" fn evl_getaddrinfo(
    l: *mut evl_loop_t,
    host: *const c_char,
    port: u16,
    flags: c_uint,
    cb: evl_getaddrinfo_cb,
    user_data: *mut c_void,
    id_out: *mut u64,
) -> c_int {
    crate::request(l, cb, |lp, cb| {
        if host.is_null() {
            return Err(-libc::EINVAL);
        }
        // SAFETY: a NUL-terminated string (contract).
        let Ok(host) = unsafe { CStr::from_ptr(host) }.to_str() else {
            return Err(-libc::EINVAL);
        };
        let family = match flags & (EVL_GAI_IPV4 | EVL_GAI_IPV6) {
            0 => Family::Any,
            EVL_GAI_IPV4 => Family::V4,
            EVL_GAI_IPV6 => Family::V6,
            _ => return Err(-libc::EINVAL),
        };
        let opts = ResolveOptions {
            family,
            numeric_host: flags & EVL_GAI_NUMERICHOST != 0,
        };
        let r = lp.getaddrinfo(host, port, opts, move |lp, r| {
            let mut storage: Vec<sockaddr_storage> = Vec::new();
            let status = match r {
                Ok(addrs) => {
                    for a in addrs {
                        // SAFETY: an all-zero sockaddr_storage, filled by from_std.
                        let mut s: sockaddr_storage = unsafe { std::mem::zeroed() };
                        unsafe { from_std(a, &mut s, std::ptr::null_mut()) };
                        storage.push(s);
                    }
                    0
                }
                Err(e) => e.code(),
            };
            let ptr = if storage.is_empty() {
                std::ptr::null()
            } else {
                storage.as_ptr()
            };
            // SAFETY: `l` outlives its pending work; the array is valid for the call.
            unsafe { lend(l, lp, || cb(l, status, ptr, storage.len(), user_data)) }
        });
        Ok(queued(r, id_out))
    })
}

/// Looks up the host and service names of an IPv4 or IPv6 address on the thread pool (numeric
/// forms when no name is known).
#[no_mangle]
pub unsafe extern "C" fn evl_getnameinfo(
    l: *mut evl_loop_t,
    addr: *const sockaddr,
    addrlen: socklen_t,
    cb: evl_getnameinfo_cb,
    user_data: *mut c_void,
    id_out: *mut u64,
) -> c_int {
    crate::request(l, cb, |lp, cb| {
        // SAFETY: `to_std` checks the pointer and length.
        let a = unsafe { to_std(addr, addrlen) }?;
        let r = lp.getnameinfo(a, move |lp, r| {
            let (status, host, service) = match r {
                Ok((h, s)) => (0, CString::new(h).ok(), CString::new(s).ok()),
                Err(e) => (e.code(), None, None),
            };
            let p = |c: &Option<CString>| c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
            // SAFETY: `l` outlives its pending work; the strings are valid for the call.
            unsafe { lend(l, lp, || cb(l, status, p(&host), p(&service), user_data)) }
        });
        Ok(queued(r, id_out))
    })
}
