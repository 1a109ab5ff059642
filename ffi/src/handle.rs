//! What every handle shares: the record behind the opaque pointers, and the life-cycle
//! functions that work on any handle (evl_close, evl_ref, evl_unref, evl_is_*, user data).

use crate::guard;
use crate::loop_::{evl_loop_t, lend, loop_mut, state};
use evloop::{Handle as _, Loop};
use libc::{c_int, c_void};
use std::mem::ManuallyDrop;
use std::ptr;
use std::sync::atomic::{AtomicU32, Ordering};

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

/// The first word of every live record; the flags below are or-ed into its low bits.
const HANDLE_MAGIC: u32 = 0x6576_6c68;
/// evl_close was called.
const CLOSING: u32 = 1;
/// The record is in memory the caller owns (evl_*_init_in) and is never freed by the library.
const IN_CALLER_MEMORY: u32 = 2;
const FLAGS: u32 = CLOSING | IN_CALLER_MEMORY;
const _: () = assert!(HANDLE_MAGIC & FLAGS == 0);

/// A timer, for evl_handle_size(). The kinds of handle that can live in caller memory are
/// numbered from 1; timers are the only one so far.
pub const EVL_HANDLE_TIMER: c_int = 1;

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

/// The core handle behind a record. Every core handle is two `u32`s, so with its tag this is
/// 12 bytes aligned to 4, and fits beside the record's first word.
#[derive(Clone, Copy)]
pub(crate) enum Id {
    Timer(evloop::Timer),
    Stream(evloop::Stream),
    Udp(evloop::Udp),
    Poll(evloop::FdWatcher),
    Async(evloop::Async),
    Signal(evloop::Signal),
    Process(evloop::Process),
}

/// The one word a kind keeps beside its core handle: which field is live follows `Handle::id`,
/// and only the accessors on `Handle` read it.
union Extra {
    /// Timers: the callback their last start gave.
    timer_cb: crate::timer::evl_timer_cb,
    /// Streams: the callback their last read start gave.
    read_cb: crate::stream::evl_read_cb,
    /// Wake-up handles: what other threads signal.
    waker: ManuallyDrop<evloop::Waker>,
    none: (),
}

/// The record behind every opaque handle pointer; freed after the close callback unless it lives
/// in the caller's memory. Every idle
/// connection a C program holds pays for one, so it is kept to 40 bytes (a 48-byte malloc
/// chunk): the kind is `id`'s tag and the closing flag a bit of the first word. `repr(C)`
/// keeps that word first, where a check can read it.
#[repr(C)]
pub(crate) struct Handle {
    /// `HANDLE_MAGIC` with the flags above. Atomic because evl_async_send
    /// reads it from other threads while the loop's thread may be closing the handle.
    state: AtomicU32,
    pub(crate) id: Id,
    pub(crate) l: *mut evl_loop_t,
    pub(crate) data: *mut c_void,
    extra: Extra,
}

const _: () = assert!(std::mem::size_of::<Handle>() == 40);

impl Id {
    fn kind(&self) -> Kind {
        match self {
            Id::Timer(_) => Kind::Timer,
            Id::Stream(_) => Kind::Stream,
            Id::Udp(_) => Kind::Udp,
            Id::Poll(_) => Kind::Poll,
            Id::Async(_) => Kind::Async,
            Id::Signal(_) => Kind::Signal,
            Id::Process(_) => Kind::Process,
        }
    }
}

impl Handle {
    pub(crate) fn kind(&self) -> Kind {
        self.id.kind()
    }

    pub(crate) fn closing(&self) -> bool {
        self.state.load(Ordering::Relaxed) & CLOSING != 0
    }

    fn set_closing(&self) {
        self.state.fetch_or(CLOSING, Ordering::Relaxed);
    }

    pub(crate) fn in_caller_memory(&self) -> bool {
        self.state.load(Ordering::Relaxed) & IN_CALLER_MEMORY != 0
    }

    /// The timer's callback (None for other kinds, or before its first start).
    pub(crate) fn timer_cb(&self) -> crate::timer::evl_timer_cb {
        match self.id {
            // SAFETY: a timer's record always holds `timer_cb` (set by `new_handle`).
            Id::Timer(_) => unsafe { self.extra.timer_cb },
            _ => None,
        }
    }

    pub(crate) fn set_timer_cb(&mut self, cb: crate::timer::evl_timer_cb) {
        if let Id::Timer(_) = self.id {
            self.extra = Extra { timer_cb: cb };
        }
    }

    /// The stream's read callback (None for other kinds, or before its first read start).
    pub(crate) fn read_cb(&self) -> crate::stream::evl_read_cb {
        match self.id {
            // SAFETY: a stream's record always holds `read_cb` (set by `new_handle`).
            Id::Stream(_) => unsafe { self.extra.read_cb },
            _ => None,
        }
    }

    pub(crate) fn set_read_cb(&mut self, cb: crate::stream::evl_read_cb) {
        if let Id::Stream(_) = self.id {
            self.extra = Extra { read_cb: cb };
        }
    }

    /// The wake-up handle's waker (None for other kinds).
    pub(crate) fn waker(&self) -> Option<&evloop::Waker> {
        match self.id {
            // SAFETY: a wake-up handle's record always holds `waker` (given to `new_async`).
            Id::Async(_) => Some(unsafe { &self.extra.waker }),
            _ => None,
        }
    }
}

impl Handle {
    /// Drops what the kind keeps in `extra` (a wake-up handle's waker), leaving nothing to drop.
    fn release_extra(&mut self) {
        if let Id::Async(_) = self.id {
            // SAFETY: a wake-up handle's record holds `waker` until here, and `none` after.
            unsafe { ManuallyDrop::drop(&mut self.extra.waker) };
            self.extra = Extra { none: () };
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.release_extra();
    }
}

/// Wraps a new core handle in a record owned by the library; returns the pointer C sees.
pub(crate) unsafe fn new_handle<T>(l: *mut evl_loop_t, id: Id, data: *mut c_void) -> *mut T {
    // SAFETY: forwarded from the caller.
    unsafe { into_record(l, id, data, extra_for(id), None) }
}

fn extra_for(id: Id) -> Extra {
    match id {
        Id::Timer(_) => Extra { timer_cb: None },
        Id::Stream(_) => Extra { read_cb: None },
        _ => Extra { none: () },
    }
}

/// `new_handle` for a wake-up handle, whose record keeps the waker other threads use.
pub(crate) unsafe fn new_async(
    l: *mut evl_loop_t,
    a: evloop::Async,
    waker: evloop::Waker,
    data: *mut c_void,
) -> *mut evl_async_t {
    let extra = Extra {
        waker: ManuallyDrop::new(waker),
    };
    // SAFETY: forwarded from the caller.
    unsafe { into_record(l, Id::Async(a), data, extra, None) }
}

/// Writes a record into `memory` (the caller's, checked by `caller_memory`) or a new allocation.
unsafe fn into_record<T>(
    l: *mut evl_loop_t,
    id: Id,
    data: *mut c_void,
    extra: Extra,
    memory: Option<*mut T>,
) -> *mut T {
    let flags = if memory.is_some() { IN_CALLER_MEMORY } else { 0 };
    let record = Handle {
        state: AtomicU32::new(HANDLE_MAGIC | flags),
        id,
        l,
        data,
        extra,
    };
    // SAFETY: `l` was validated by the caller; only its counter is touched. `memory` is
    // writable for a record and aligned for it (`caller_memory` checked the alignment; the size
    // is the header's contract, from evl_handle_size).
    unsafe {
        *ptr::addr_of_mut!((*state(l)).handles) += 1;
        match memory {
            Some(m) => {
                ptr::write(m.cast::<Handle>(), record);
                m
            }
            None => Box::into_raw(Box::new(record)).cast(),
        }
    }
}

/// Checks memory a caller offers for a new record: NULL and misaligned memory give -EINVAL.
/// What the memory holds is not read: it is usually fresh from malloc, and a check of its
/// contents would be a read of uninitialised memory in every valgrind or MSan run of the
/// caller's program.
fn caller_memory<T>(memory: *mut T) -> Result<(), c_int> {
    let h = memory.cast::<Handle>();
    if h.is_null() || (h as usize) & (std::mem::align_of::<Handle>() - 1) != 0 {
        return Err(-libc::EINVAL);
    }
    Ok(())
}

/// Where a constructor puts the new record.
enum Destination<T> {
    /// A new allocation, whose pointer goes to `*out`.
    Library(*mut *mut T),
    /// Memory the caller owns (the evl_*_init_in constructors); the handle pointer is the memory.
    Caller(*mut T),
}

/// The body of every constructor: validates the loop and the destination, makes the core
/// handle, and puts its record there.
fn construct<T>(
    l: *mut evl_loop_t,
    destination: Destination<T>,
    data: *mut c_void,
    make: impl FnOnce(&mut Loop) -> evloop::Result<Id>,
) -> c_int {
    crate::with_loop(l, |lp| {
        let memory = match destination {
            Destination::Library(out) if out.is_null() => return Err(-libc::EINVAL),
            Destination::Library(_) => None,
            Destination::Caller(memory) => caller_memory(memory).map(|()| Some(memory))?,
        };
        let id = make(lp).map_err(|e| e.code())?;
        // SAFETY: `l` was validated by with_loop, the memory by caller_memory.
        let record = unsafe { into_record(l, id, data, extra_for(id), memory) };
        if let Destination::Library(out) = destination {
            // SAFETY: checked for NULL above, writable (the header's contract).
            unsafe { *out = record };
        }
        Ok(0)
    })
}

/// A constructor's body, for a record the library allocates and stores in `*out`.
pub(crate) fn create<T>(
    l: *mut evl_loop_t,
    out: *mut *mut T,
    data: *mut c_void,
    make: impl FnOnce(&mut Loop) -> evloop::Result<Id>,
) -> c_int {
    construct(l, Destination::Library(out), data, make)
}

/// A constructor's body, for a record in `memory`, which the caller owns.
pub(crate) fn create_in<T>(
    l: *mut evl_loop_t,
    memory: *mut T,
    data: *mut c_void,
    make: impl FnOnce(&mut Loop) -> evloop::Result<Id>,
) -> c_int {
    construct(l, Destination::Caller(memory), data, make)
}

/// Where, in caller memory, the core's state of a timer follows its record: the whole timer is
/// one block, so a start or a stop fetches that block and nothing else of the timer's.
const TIMER_PLACE_OFFSET: usize =
    std::mem::size_of::<Handle>().next_multiple_of(std::mem::align_of::<evloop::TimerPlace>());
const TIMER_IN_CALLER_MEMORY: usize = TIMER_PLACE_OFFSET + std::mem::size_of::<evloop::TimerPlace>();
const _: () = assert!(std::mem::align_of::<evloop::TimerPlace>() <= 8 && std::mem::align_of::<Handle>() <= 8);

/// The core's part of a timer in caller memory (after its record).
pub(crate) fn timer_place(record: *mut Handle) -> std::ptr::NonNull<evloop::TimerPlace> {
    // SAFETY: the record is the start of a block of TIMER_IN_CALLER_MEMORY bytes; never NULL.
    unsafe { std::ptr::NonNull::new_unchecked(record.cast::<u8>().wrapping_add(TIMER_PLACE_OFFSET).cast()) }
}

/// Bytes of caller memory a handle of `kind` (EVL_HANDLE_*) needs for its evl_*_init_in
/// constructor, aligned to 8 bytes (malloc()'s alignment suffices); 0 for a kind without one.
/// The size belongs to the library build, not to the ABI: ask at run time and never hard-code
/// it (as with libuv's uv_handle_size()).
#[no_mangle]
pub extern "C" fn evl_handle_size(kind: c_int) -> usize {
    match kind {
        EVL_HANDLE_TIMER => TIMER_IN_CALLER_MEMORY,
        _ => 0,
    }
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
        if (*ptr::addr_of!((*h).state)).load(Ordering::Relaxed) & !FLAGS != HANDLE_MAGIC {
            return Err(-libc::EINVAL);
        }
        let h = &mut *h;
        match kind {
            Some(k) if k != h.kind() => Err(-libc::EINVAL),
            _ => Ok(h),
        }
    }
}

/// The record and its loop, for operations on an open handle (closed ones give -EBADF).
pub(crate) unsafe fn open<'a, T>(p: *mut T, kind: Kind) -> Result<(&'a mut Handle, &'a mut Loop), c_int> {
    // SAFETY: see `record` and `loop_mut`.
    unsafe {
        let h = record(p, Some(kind))?;
        if h.closing() {
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
                Ok(($h, $lp)) => match $h.id {
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
        if h.closing() && matches!(op, Op::Ref | Op::Unref) {
            return -libc::EBADF;
        }
        match &h.id {
            Id::Timer(t) => apply(*t, lp, op),
            Id::Stream(s) => apply(*s, lp, op),
            Id::Udp(u) => apply(*u, lp, op),
            Id::Poll(w) => apply(*w, lp, op),
            Id::Async(a) => apply(*a, lp, op),
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
        if h.closing() {
            return -libc::EBADF;
        }
        h.set_closing();
        let raw = h as *mut Handle as usize;
        let in_caller_memory = h.in_caller_memory();
        let close_cb: evloop::CloseCb = Box::new(move |lp| {
            let h = raw as *mut Handle;
            // SAFETY: the core handle is gone, so nothing but this callback refers to the record,
            // which stays readable until `cb` returns. Caller memory may be freed or reused from
            // the close callback on, so the library finishes with such a record first; its own
            // records are freed after the callback.
            unsafe {
                let l = (*h).l;
                if in_caller_memory {
                    (*h).release_extra();
                }
                if let Some(cb) = cb {
                    call_c(h, lp, |data| cb(h.cast(), data));
                }
                if !in_caller_memory {
                    (*ptr::addr_of!((*h).state)).store(0, Ordering::Relaxed);
                    drop(Box::from_raw(h));
                }
                *ptr::addr_of_mut!((*state(l)).handles) -= 1;
            }
        });
        let r = match &h.id {
            Id::Timer(t) => t.close(lp, Some(close_cb)),
            Id::Stream(s) => s.close(lp, Some(close_cb)),
            Id::Udp(u) => u.close(lp, Some(close_cb)),
            Id::Poll(w) => w.close(lp, Some(close_cb)),
            Id::Async(a) => a.close(lp, Some(close_cb)),
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
        unsafe { record(p, None) }.map_or_else(|e| e, |h| c_int::from(h.closing()))
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
