//! The C ABI of evloop. `include/evloop.h` is generated from this crate by cbindgen.
//!
//! Every exported function takes pointers the library handed out (or NULL), checks them
//! (NULL, a handle of another kind, a closed handle) and returns a negative errno instead of
//! crashing; a panic inside the library is caught at the boundary and returned as `-EIO`, so
//! nothing unwinds into C. The safety contract of every `unsafe extern "C"` function here is the
//! same and is stated once: pointer arguments are NULL or valid for what the header documents,
//! and handles are used only until their close callback has run.
#![allow(non_camel_case_types, clippy::missing_safety_doc)]

mod error;
mod fs;
mod handle;
mod loop_;
mod poll;
mod process;
mod signal;
mod stream;
mod timer;
mod udp;
mod wakeup;
mod work;

pub use error::*;
pub use fs::*;
pub use handle::*;
pub use loop_::*;
pub use poll::*;
pub use process::*;
pub use signal::*;
pub use stream::*;
pub use timer::*;
pub use udp::*;
pub use wakeup::*;
pub use work::*;

/// The body of a call that starts a request on loop `l` with the callback `cb`, inside the panic
/// guard: an invalid loop or a NULL callback is refused; `f` returns the call's result (0, or
/// whatever else it returns on success) or a negative errno.
pub(crate) fn request<C: Copy>(
    l: *mut loop_::evl_loop_t,
    cb: Option<C>,
    f: impl FnOnce(&mut evloop::Loop, C) -> Result<libc::c_int, libc::c_int>,
) -> libc::c_int {
    with_loop(l, |lp| {
        let cb = cb.ok_or(-libc::EINVAL)?;
        f(lp, cb)
    })
}

/// The body of a call on loop `l`, inside the panic guard: an invalid loop is refused; `f`
/// returns the call's result or a negative errno.
pub(crate) fn with_loop(
    l: *mut loop_::evl_loop_t,
    f: impl FnOnce(&mut evloop::Loop) -> Result<libc::c_int, libc::c_int>,
) -> libc::c_int {
    guard(-libc::EIO, || {
        // SAFETY: validated by loop_mut.
        let lp = match unsafe { loop_::loop_mut(l) } {
            Ok(lp) => lp,
            Err(e) => return e,
        };
        f(lp).unwrap_or_else(|e| e)
    })
}

/// Runs `f`, turning a panic into `fallback` (the panic message goes to stderr).
pub(crate) fn guard<R>(fallback: R, f: impl FnOnce() -> R) -> R {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(fallback)
}

/// The sum of buffer lengths a C caller passed, or -EINVAL if it exceeds SSIZE_MAX: no count the
/// kernel would refuse reaches a slice or a system call.
pub(crate) fn checked_total(lens: impl IntoIterator<Item = usize>) -> Result<usize, libc::c_int> {
    lens.into_iter()
        .try_fold(0usize, |sum, n| sum.checked_add(n))
        .filter(|&total| total <= isize::MAX as usize)
        .ok_or(-libc::EINVAL)
}

/// `0` or the negative errno of a core result.
pub(crate) fn code(r: evloop::Result<()>) -> libc::c_int {
    match r {
        Ok(()) => 0,
        Err(e) => e.code(),
    }
}
