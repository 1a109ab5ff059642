//! What every handle shares: the record behind the opaque pointers, and the life-cycle
//! functions that work on any handle (evl_close, evl_ref, evl_unref, evl_is_*, user data).

use crate::guard;
use crate::loop_::{evl_loop_t, lend, loop_mut, state};
use evloop::{Handle as _, Loop};
use libc::{c_int, c_void};
use std::ptr;

// Opaque handle types, written out (cbindgen does not expand macros). All point to a `Handle`.
/// Any handle; cast a specific handle pointer to it for the functions below.
pub struct evl_handle_t {
    _private: [u8; 0],
}

/// A timer.
pub struct evl_timer_t {
    _private: [u8; 0],
}

/// A stream socket: a TCP or Unix listener or connection.
pub struct evl_stream_t {
    _private: [u8; 0],
}

/// A UDP socket.
pub struct evl_udp_t {
    _private: [u8; 0],
}

/// A watcher of readiness on an fd the caller owns.
pub struct evl_poll_t {
    _private: [u8; 0],
}

/// A wake-up handle other threads signal with evl_async_send().
pub struct evl_async_t {
    _private: [u8; 0],
}

/// A signal watcher.
pub struct evl_signal_t {
    _private: [u8; 0],
}

/// A child process.
pub struct evl_process_t {
    _private: [u8; 0],
}

const HANDLE_MAGIC: u32 = 0x6576_6c68;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Kind {
    Timer,
    Stream,
    Udp,
    Poll,
    Async,
    Signal,
    Process,
}

#[derive(Clone)]
pub(crate) enum Id {
    /// The timer and the C callback its last start gave.
    Timer(evloop::Timer, crate::timer::evl_timer_cb),
    /// The stream and the C callback its last read start gave.
    Stream(evloop::Stream, crate::stream::evl_read_cb),
    Udp(evloop::Udp),
    Poll(evloop::FdWatcher),
    Async(evloop::Async, evloop::Waker),
    Signal(evloop::Signal),
    Process(evloop::Process),
}

/// The record behind every opaque handle pointer; freed after the close callback. `repr(C)`
/// keeps the magic number first, where a check can read it.
#[repr(C)]
pub(crate) struct Handle {
    magic: u32,
    pub(crate) kind: Kind,
    pub(crate) closing: bool,
    pub(crate) l: *mut evl_loop_t,
    pub(crate) data: *mut c_void,
    pub(crate) id: Id,
}

impl Id {
    fn kind(&self) -> Kind {
        match self {
            Id::Timer(..) => Kind::Timer,
            Id::Stream(..) => Kind::Stream,
            Id::Udp(_) => Kind::Udp,
            Id::Poll(_) => Kind::Poll,
            Id::Async(..) => Kind::Async,
            Id::Signal(_) => Kind::Signal,
            Id::Process(_) => Kind::Process,
        }
    }
}

/// Wraps a new core handle in a record owned by the library; returns the pointer C sees.
pub(crate) unsafe fn new_handle<T>(l: *mut evl_loop_t, id: Id, data: *mut c_void) -> *mut T {
    let h = Box::new(Handle {
        magic: HANDLE_MAGIC,
        kind: id.kind(),
        closing: false,
        l,
        data,
        id,
    });
    // SAFETY: `l` was validated by the caller; only its counter is touched.
    unsafe { *ptr::addr_of_mut!((*state(l)).handles) += 1 };
    Box::into_raw(h).cast()
}

/// The body of every constructor: validates the loop and `out`, makes the core handle, and
/// stores the new record's pointer in `*out`.
pub(crate) fn create<T>(
    l: *mut evl_loop_t,
    out: *mut *mut T,
    data: *mut c_void,
    make: impl FnOnce(&mut Loop) -> evloop::Result<Id>,
) -> c_int {
    guard(-libc::EIO, || {
        // SAFETY: `l` validated by loop_mut, `out` checked for NULL and writable (contract).
        unsafe {
            let lp = match loop_mut(l) {
                Ok(lp) => lp,
                Err(e) => return e,
            };
            if out.is_null() {
                return -libc::EINVAL;
            }
            match make(lp) {
                Ok(id) => {
                    *out = new_handle(l, id, data);
                    0
                }
                Err(e) => e.code(),
            }
        }
    })
}

/// The record behind `p`, if it is a handle of `kind` (any kind for `None`).
pub(crate) unsafe fn record<'a, T>(p: *mut T, kind: Option<Kind>) -> Result<&'a mut Handle, c_int> {
    if p.is_null() {
        return Err(-libc::EINVAL);
    }
    let h = p.cast::<Handle>();
    // SAFETY: `p` is a handle pointer the library returned and whose close callback has not run
    // (the header's contract); the magic check catches pointers of other types.
    unsafe {
        if ptr::addr_of!((*h).magic).read() != HANDLE_MAGIC {
            return Err(-libc::EINVAL);
        }
        let h = &mut *h;
        match kind {
            Some(k) if k != h.kind => Err(-libc::EINVAL),
            _ => Ok(h),
        }
    }
}

/// The record and its loop, for operations on an open handle (closed ones give -EBADF).
pub(crate) unsafe fn open<'a, T>(p: *mut T, kind: Kind) -> Result<(&'a mut Handle, &'a mut Loop), c_int> {
    // SAFETY: see `record` and `loop_mut`.
    unsafe {
        let h = record(p, Some(kind))?;
        if h.closing {
            return Err(-libc::EBADF);
        }
        let lp = loop_mut(h.l)?;
        Ok((h, lp))
    }
}

/// Calls `f` (a C callback) with `lp` lent to calls made from inside it.
pub(crate) unsafe fn call_c<R>(h: *mut Handle, lp: &mut Loop, f: impl FnOnce(*mut c_void) -> R) -> R {
    // SAFETY: `h` is alive: core runs a handle's callbacks only before its close callback, and
    // the record is freed only after that.
    unsafe {
        let (l, data) = ((*h).l, (*h).data);
        lend(l, lp, || f(data))
    }
}

/// Validates `$p` as an open handle of `$kind`, binds its core id with `$pat`, and evaluates
/// `$body` (a `c_int`), inside the panic guard.
macro_rules! with_open {
    ($p:expr, $kind:ident, |$h:ident, $lp:ident, $pat:pat_param| $body:expr) => {
        $crate::guard(-libc::EIO, || {
            // SAFETY: validated by `open`.
            match unsafe { $crate::handle::open($p, $crate::handle::Kind::$kind) } {
                #[allow(unused_variables)]
                Ok(($h, $lp)) => match $h.id.clone() {
                    $pat => $body,
                    _ => -libc::EINVAL,
                },
                Err(e) => e,
            }
        })
    };
}
pub(crate) use with_open;

/// Runs after a handle is closed.
pub type evl_close_cb = Option<unsafe extern "C" fn(handle: *mut evl_handle_t, user_data: *mut c_void)>;

/// A generic handle operation.
#[derive(Clone, Copy)]
enum Op {
    Ref,
    Unref,
    HasRef,
    IsActive,
}

fn apply<H: evloop::Handle>(h: H, lp: &mut Loop, op: Op) -> c_int {
    match op {
        Op::Ref => crate::code(h.ref_(lp)),
        Op::Unref => crate::code(h.unref(lp)),
        Op::HasRef => c_int::from(h.has_ref(lp)),
        Op::IsActive => c_int::from(h.is_active(lp)),
    }
}

fn generic(p: *mut evl_handle_t, op: Op) -> c_int {
    guard(-libc::EIO, || {
        // SAFETY: validated by `record` / `loop_mut`.
        let (h, lp) = match unsafe {
            record(p, None).and_then(|h| {
                let l = h.l;
                Ok((h, loop_mut(l)?))
            })
        } {
            Ok(x) => x,
            Err(e) => return e,
        };
        if h.closing && matches!(op, Op::Ref | Op::Unref) {
            return -libc::EBADF;
        }
        match &h.id {
            Id::Timer(t, _) => apply(*t, lp, op),
            Id::Stream(s, _) => apply(*s, lp, op),
            Id::Udp(u) => apply(*u, lp, op),
            Id::Poll(w) => apply(*w, lp, op),
            Id::Async(a, _) => apply(*a, lp, op),
            Id::Signal(s) => apply(*s, lp, op),
            Id::Process(p) => apply(*p, lp, op),
        }
    })
}

/// Closes any handle: stops it, cancels its operations, and calls `cb(handle, user_data)` once
/// (it may be NULL) after everything the handle lent the kernel is back and its fd is closed.
/// After evl_close() none of the handle's own callbacks (read, connection, timer, poll, signal,
/// async, exit) runs. Requests it had started (evl_write, evl_shutdown, a pending connect,
/// evl_udp_send) each still get their callback once, as in libuv: with their result if they had
/// finished, else with -ECANCELED, and before `cb`, which runs last; so their buffers can be
/// freed there. The library frees the handle after `cb` returns. Closing from inside the
/// handle's own callback is fine. Returns -EBADF if the handle is already closing.
#[no_mangle]
pub unsafe extern "C" fn evl_close(p: *mut evl_handle_t, cb: evl_close_cb) -> c_int {
    guard(-libc::EIO, || {
        // SAFETY: validated by `record` / `loop_mut`.
        let (h, lp) = match unsafe {
            record(p, None).and_then(|h| {
                let l = h.l;
                Ok((h, loop_mut(l)?))
            })
        } {
            Ok(x) => x,
            Err(e) => return e,
        };
        if h.closing {
            return -libc::EBADF;
        }
        h.closing = true;
        let raw = h as *mut Handle as usize;
        let close_cb: evloop::CloseCb = Box::new(move |lp| {
            let h = raw as *mut Handle;
            if let Some(cb) = cb {
                // SAFETY: the record is alive until freed just below.
                unsafe { call_c(h, lp, |data| cb(h.cast(), data)) };
            }
            // SAFETY: the core handle is gone, so nothing refers to the record any more.
            unsafe {
                let l = (*h).l;
                ptr::addr_of_mut!((*h).magic).write(0);
                drop(Box::from_raw(h));
                *ptr::addr_of_mut!((*state(l)).handles) -= 1;
            }
        });
        let r = match &h.id {
            Id::Timer(t, _) => t.close(lp, Some(close_cb)),
            Id::Stream(s, _) => s.close(lp, Some(close_cb)),
            Id::Udp(u) => u.close(lp, Some(close_cb)),
            Id::Poll(w) => w.close(lp, Some(close_cb)),
            Id::Async(a, _) => a.close(lp, Some(close_cb)),
            Id::Signal(s) => s.close(lp, Some(close_cb)),
            Id::Process(p) => p.close(lp, Some(close_cb)),
        };
        crate::code(r)
    })
}

/// Lets an active handle keep the loop alive (the default).
#[no_mangle]
pub unsafe extern "C" fn evl_ref(p: *mut evl_handle_t) -> c_int {
    generic(p, Op::Ref)
}

/// Stops a handle from keeping the loop alive on its own.
#[no_mangle]
pub unsafe extern "C" fn evl_unref(p: *mut evl_handle_t) -> c_int {
    generic(p, Op::Unref)
}

/// 1 if the handle keeps the loop alive when active, 0 if not; negative errno for a bad handle.
#[no_mangle]
pub unsafe extern "C" fn evl_has_ref(p: *mut evl_handle_t) -> c_int {
    generic(p, Op::HasRef)
}

/// 1 if the handle is doing something (timer started, socket reading or writing...), else 0.
#[no_mangle]
pub unsafe extern "C" fn evl_is_active(p: *mut evl_handle_t) -> c_int {
    generic(p, Op::IsActive)
}

/// 1 if evl_close() was called (until the close callback has run), else 0.
#[no_mangle]
pub unsafe extern "C" fn evl_is_closing(p: *mut evl_handle_t) -> c_int {
    // SAFETY: validated by `record`.
    guard(-libc::EIO, || {
        unsafe { record(p, None) }.map_or_else(|e| e, |h| c_int::from(h.closing))
    })
}

/// The handle's user_data (set at creation or with evl_handle_set_data); NULL for a bad handle.
#[no_mangle]
pub unsafe extern "C" fn evl_handle_get_data(p: *mut evl_handle_t) -> *mut c_void {
    // SAFETY: validated by `record`.
    guard(ptr::null_mut(), || {
        unsafe { record(p, None) }.map_or(ptr::null_mut(), |h| h.data)
    })
}

/// Sets the handle's user_data, passed to its callbacks from now on.
#[no_mangle]
pub unsafe extern "C" fn evl_handle_set_data(p: *mut evl_handle_t, user_data: *mut c_void) -> c_int {
    // SAFETY: validated by `record`.
    guard(-libc::EIO, || match unsafe { record(p, None) } {
        Ok(h) => {
            h.data = user_data;
            0
        }
        Err(e) => e,
    })
}

/// The loop a handle belongs to; NULL for a bad handle.
#[no_mangle]
pub unsafe extern "C" fn evl_handle_get_loop(p: *mut evl_handle_t) -> *mut evl_loop_t {
    // SAFETY: validated by `record`.
    guard(ptr::null_mut(), || {
        unsafe { record(p, None) }.map_or(ptr::null_mut(), |h| h.l)
    })
}
