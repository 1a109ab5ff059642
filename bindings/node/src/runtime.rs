//! One evloop [`Loop`] per Node environment (the main thread, or a worker), driven from Node's
//! own libuv loop, and the path by which its completions reach JavaScript.
//!
//! Core callbacks never call JavaScript. They run inside `Loop::run` and only record an
//! [`Event`] (creating the `Buffer` a read delivers, in the handle scope of the run). When the
//! run returns, the events are dispatched in order, each through `napi_make_callback`, which
//! is what Node does for its own handles: microtasks and `process.nextTick` callbacks run
//! after each one. JavaScript called from there may use the loop freely, since no borrow of
//! it is held.

use std::cell::{Cell, RefCell};
use std::ffi::c_void;
use std::ptr;

use evloop::{Handle, Loop, RunMode, Stream, Udp};
use napi::sys;

use crate::uv::Driver;

/// What happened, as the JavaScript dispatcher (`lib/native.js`) numbers it.
pub(crate) mod kind {
    pub const DATA: i32 = 1;
    pub const EOF: i32 = 2;
    pub const READ_ERROR: i32 = 3;
    pub const CONNECTION: i32 = 4;
    pub const ACCEPT_ERROR: i32 = 5;
    pub const CONNECT: i32 = 6;
    pub const WRITE_DONE: i32 = 7;
    pub const DRAIN: i32 = 8;
    pub const SHUTDOWN: i32 = 9;
    pub const CLOSE: i32 = 10;
    pub const MESSAGE: i32 = 11;
    pub const RECV_ERROR: i32 = 12;
    pub const SEND_DONE: i32 = 13;
    pub const DATA_IN_SLAB: i32 = 14;
}

/// What an event carries besides its numbers.
pub(crate) enum Extra {
    None,
    /// A file operation's promise, to resolve (`true`) or reject with the event's `a`.
    Settle(sys::napi_deferred, bool),
}

/// One completion on its way to JavaScript: `dispatch(owner, kind, a, b, n)`.
pub(crate) struct Event {
    pub kind: i32,
    pub slot: u32,
    pub a: sys::napi_value,
    pub b: sys::napi_value,
    pub n: i32,
    pub extra: Extra,
}

impl Event {
    pub(crate) fn new(kind: i32, slot: u32) -> Event {
        Event {
            kind,
            slot,
            a: ptr::null_mut(),
            b: ptr::null_mut(),
            n: 0,
            extra: Extra::None,
        }
    }

    pub(crate) fn with_n(mut self, n: i32) -> Event {
        self.n = n;
        self
    }
}

/// A core handle owned by a JavaScript object.
#[derive(Clone, Copy)]
pub(crate) enum Owned {
    Stream(Stream),
    Udp(Udp),
}

struct Slot {
    gen: u32,
    used: bool,
    /// Its write settings (high-water mark, drain event) are in place; made at the first write
    /// of an accepted connection, so an idle one carries no write state.
    write_ready: bool,
    owned: Option<Owned>,
    /// Strong reference to the JavaScript object events go to; null until `own` sets it.
    owner: sys::napi_ref,
}

/// Slot indices take the low bits of a handle number, the slot's generation the rest, so a
/// number kept after its handle closed never reaches the handle that reuses the slot.
const INDEX_BITS: u32 = 21;
const INDEX_MASK: u32 = (1 << INDEX_BITS) - 1;
const GEN_MASK: u32 = (1 << (31 - INDEX_BITS)) - 1;

pub(crate) struct Runtime {
    pub(crate) env: sys::napi_env,
    lp: RefCell<Loop>,
    events: RefCell<Vec<Event>>,
    spare: RefCell<Vec<Event>>,
    slots: RefCell<Vec<Slot>>,
    free: RefCell<Vec<u32>>,
    dispatch: sys::napi_ref,
    resource: sys::napi_ref,
    async_ctx: sys::napi_async_context,
    driver: RefCell<Option<Driver>>,
    driving: Cell<bool>,
    slab: RefCell<Slab>,
}

/// Read data lands in a shared `ArrayBuffer` slab, which JavaScript views as `Buffer`s
/// (`Buffer.from(slab, offset, length)`): a read costs a copy and a small view object, not a
/// backing store of its own (a `malloc`, a registration with the GC, a sweep), as Node's own
/// `Buffer.allocUnsafe` pool does for small buffers. A view kept by the user keeps its slab.
struct Slab {
    buffer: sys::napi_ref,
    data: *mut u8,
    used: usize,
}

/// How many runs one libuv callback makes while the loop has work ready. Reads come to
/// JavaScript one at a time (each ends its pass, see net.rs), so this bounds how long Node's
/// own work waits for a busy evloop.
const RUNS_PER_DRIVE: usize = 64;

/// Size of each slab; reads larger than half of it get a `Buffer` of their own.
const SLAB_SIZE: usize = 64 * 1024;

thread_local! {
    static RUNTIME: Cell<*const Runtime> = const { Cell::new(ptr::null()) };
}

/// The calling thread's runtime, if `init` ran on it.
pub(crate) fn runtime() -> Option<&'static Runtime> {
    let p = RUNTIME.with(Cell::get);
    // SAFETY: a non-null pointer is the leaked box `install` made; it is cleared before the
    // box is freed at environment teardown, after which no JavaScript runs on this thread.
    unsafe { p.as_ref() }
}

/// An error napi-rs turns into a JavaScript exception.
pub(crate) fn js_error(msg: &str) -> napi::Error {
    napi::Error::new(napi::Status::GenericFailure, msg.to_string())
}

/// The runtime, or the exception a call before `init` deserves.
pub(crate) fn rt() -> napi::Result<&'static Runtime> {
    runtime().ok_or_else(|| js_error("evloop: the native module was loaded without init()"))
}

macro_rules! napi_call {
    ($e:expr) => {{
        // SAFETY (for every use): called on the environment's own thread with values of
        // this environment, the conditions every N-API function requires.
        let status = unsafe { $e };
        if status != sys::Status::napi_ok {
            Err(status)
        } else {
            Ok(())
        }
    }};
}
pub(crate) use napi_call;

/// Creates the calling environment's runtime and starts driving it from Node's loop.
pub(crate) fn install(env: sys::napi_env, dispatch: sys::napi_value) -> napi::Result<&'static Runtime> {
    if let Some(rt) = runtime() {
        return Ok(rt);
    }
    let mut lp =
        Loop::new().map_err(|e| js_error(&format!("evloop: cannot create the loop: {}", e.message())))?;
    // Asked for before anything runs: on io_uring this sets the ring up to wake Node's loop.
    let fd = lp
        .backend_fd()
        .map_err(|e| js_error(&format!("evloop: cannot embed the loop: {}", e.message())))?;
    let fail = |what: &str| js_error(&format!("evloop: {what} failed"));
    let mut dispatch_ref = ptr::null_mut();
    napi_call!(sys::napi_create_reference(env, dispatch, 1, &mut dispatch_ref))
        .map_err(|_| fail("napi_create_reference"))?;
    let mut resource = ptr::null_mut();
    napi_call!(sys::napi_create_object(env, &mut resource)).map_err(|_| fail("napi_create_object"))?;
    let mut resource_ref = ptr::null_mut();
    napi_call!(sys::napi_create_reference(env, resource, 1, &mut resource_ref))
        .map_err(|_| fail("napi_create_reference"))?;
    let mut name = ptr::null_mut();
    napi_call!(sys::napi_create_string_utf8(
        env,
        c"evloop".as_ptr(),
        6,
        &mut name
    ))
    .map_err(|_| fail("napi_create_string_utf8"))?;
    let mut async_ctx = ptr::null_mut();
    napi_call!(sys::napi_async_init(env, resource, name, &mut async_ctx))
        .map_err(|_| fail("napi_async_init"))?;
    let mut uv_loop = ptr::null_mut();
    napi_call!(sys::napi_get_uv_event_loop(env, &mut uv_loop)).map_err(|_| fail("napi_get_uv_event_loop"))?;
    let rt: &'static Runtime = Box::leak(Box::new(Runtime {
        env,
        lp: RefCell::new(lp),
        events: RefCell::new(Vec::with_capacity(256)),
        spare: RefCell::new(Vec::with_capacity(256)),
        slots: RefCell::new(Vec::new()),
        free: RefCell::new(Vec::new()),
        dispatch: dispatch_ref,
        resource: resource_ref,
        async_ctx,
        driver: RefCell::new(None),
        driving: Cell::new(false),
        slab: RefCell::new(Slab {
            buffer: ptr::null_mut(),
            data: ptr::null_mut(),
            used: SLAB_SIZE,
        }),
    }));
    RUNTIME.with(|r| r.set(rt));
    // SAFETY: uv_loop is this environment's loop and this is its thread.
    let driver = unsafe { Driver::start(uv_loop.cast(), fd, on_backend_ready, on_timer, on_prepare) }
        .map_err(|rc| js_error(&format!("evloop: starting the libuv handles failed ({rc})")))?;
    *rt.driver.borrow_mut() = Some(driver);
    napi_call!(sys::napi_add_env_cleanup_hook(
        env,
        Some(teardown),
        ptr::null_mut()
    ))
    .map_err(|_| fail("napi_add_env_cleanup_hook"))?;
    Ok(rt)
}

unsafe extern "C" fn teardown(_arg: *mut c_void) {
    let p = RUNTIME.with(|r| r.replace(ptr::null()));
    if p.is_null() {
        return;
    }
    // SAFETY: `p` is the box `install` leaked; it is no longer reachable through RUNTIME, and
    // the environment runs no more JavaScript or libuv callbacks of ours.
    let rt = unsafe { Box::from_raw(p as *mut Runtime) };
    if let Some(d) = rt.driver.borrow_mut().take() {
        d.close();
    }
    // The loop's drop closes its fds; references into the dying environment are not deleted
    // (the environment frees them with itself).
    drop(rt);
}

/// Runs `f` for a libuv callback: a panic must not unwind into libuv, so it becomes an
/// uncaught JavaScript exception (the process reports it as Node reports any).
fn guarded(f: impl FnOnce(&'static Runtime)) {
    let Some(rt) = runtime() else { return };
    if let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(rt))) {
        rt.driving.set(false);
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        rt.fatal(&format!("evloop: internal error: {what}"));
    }
}

extern "C" fn on_backend_ready(_h: *mut c_void, _status: i32, _events: i32) {
    guarded(|rt| rt.drive());
}

extern "C" fn on_timer(_h: *mut c_void) {
    guarded(|rt| {
        if let Some(d) = rt.driver.borrow_mut().as_mut() {
            d.timer_fired();
        }
        rt.drive();
    });
}

extern "C" fn on_prepare(_h: *mut c_void) {
    guarded(|rt| {
        let due = rt
            .lp
            .try_borrow()
            .map(|lp| lp.backend_timeout() == 0)
            .unwrap_or(false);
        if due {
            rt.drive();
        }
    });
}

impl Runtime {
    /// Runs `f` on the loop, then lets Node's loop know whether evloop still has referenced
    /// work. Fails with `EBUSY` only if called from inside a core callback, which never runs
    /// JavaScript.
    pub(crate) fn with_loop<R>(&self, f: impl FnOnce(&mut Loop) -> R) -> Result<R, evloop::Error> {
        let r = {
            let mut lp = self.lp.try_borrow_mut().map_err(|_| evloop::Error::EBUSY)?;
            f(&mut lp)
        };
        self.sync_ref();
        Ok(r)
    }

    /// Records an event for dispatch after the current run.
    pub(crate) fn push(&self, ev: Event) {
        self.events.borrow_mut().push(ev);
    }

    /// Keeps Node alive exactly while the loop has referenced work.
    fn sync_ref(&self) {
        let alive = match self.lp.try_borrow() {
            Ok(lp) => lp.alive(),
            Err(_) => return,
        };
        if let Some(d) = self.driver.borrow_mut().as_mut() {
            d.set_referenced(alive);
        }
    }

    /// Non-blocking runs of the loop while it has work ready (at most [`RUNS_PER_DRIVE`]), each
    /// run's events dispatched to JavaScript and what JavaScript wrote for them handed to the
    /// kernel, then the timer re-armed for the loop's next deadline.
    fn drive(&self) {
        if self.driving.replace(true) {
            return;
        }
        let env = self.env;
        let mut scope = ptr::null_mut();
        if napi_call!(sys::napi_open_handle_scope(env, &mut scope)).is_err() {
            self.driving.set(false);
            return;
        }
        for _ in 0..RUNS_PER_DRIVE {
            let ran = match self.lp.try_borrow_mut() {
                Ok(mut lp) => lp.run(RunMode::Ready).map(|_| ()),
                Err(_) => Ok(()),
            };
            self.dispatch_events();
            // What JavaScript wrote for these events leaves now, not when the prepare hook runs
            // the loop again at the end of Node's iteration.
            let flushed = match self.lp.try_borrow_mut() {
                Ok(mut lp) => lp.flush(),
                Err(_) => Ok(()),
            };
            if let Err(e) = ran.and(flushed) {
                self.fatal(&format!(
                    "evloop: the loop failed: {} ({})",
                    e.message(),
                    e.name()
                ));
                break;
            }
            // A read ends its pass (net.rs): the pass's other completions are still ready.
            if self.lp.try_borrow().map_or(true, |lp| lp.backend_timeout() != 0) {
                break;
            }
        }
        let _ = napi_call!(sys::napi_close_handle_scope(env, scope));
        self.driving.set(false);
        let timeout = self.lp.try_borrow().map(|lp| lp.backend_timeout()).unwrap_or(0);
        if let Some(d) = self.driver.borrow_mut().as_mut() {
            d.arm(timeout);
        }
        self.sync_ref();
    }

    /// Hands the events the last run recorded to JavaScript, in order.
    fn dispatch_events(&self) {
        let mut batch = std::mem::take(&mut *self.spare.borrow_mut());
        std::mem::swap(&mut *self.events.borrow_mut(), &mut batch);
        if !batch.is_empty() {
            let (func, undefined) = (self.reference_value(self.dispatch), self.undefined());
            for ev in batch.drain(..) {
                self.dispatch(ev, func, undefined);
            }
        }
        *self.spare.borrow_mut() = batch;
    }

    /// Calls `func` (the JavaScript dispatcher) for `ev`; `undefined` stands for absent values.
    /// Both are looked up once per batch, not per event.
    fn dispatch(&self, mut ev: Event, func: sys::napi_value, undefined: sys::napi_value) {
        let env = self.env;
        match std::mem::replace(&mut ev.extra, Extra::None) {
            Extra::Settle(deferred, ok) => {
                self.settle(deferred, ok, ev.a);
                return;
            }
            Extra::None => {}
        }
        let owner = self.owner_value(ev.slot);
        if !owner.is_null() {
            let or_undefined = |v: sys::napi_value| if v.is_null() { undefined } else { v };
            let argv = [
                owner,
                self.number(ev.kind as f64),
                or_undefined(ev.a),
                or_undefined(ev.b),
                self.number(ev.n as f64),
            ];
            let mut result = ptr::null_mut();
            let status = unsafe {
                // SAFETY: main thread, values of this environment, argv outlives the call.
                sys::napi_make_callback(
                    env,
                    self.async_ctx,
                    owner,
                    func,
                    argv.len(),
                    argv.as_ptr(),
                    &mut result,
                )
            };
            if status == sys::Status::napi_pending_exception {
                self.rethrow_uncaught();
            }
        }
        if ev.kind == kind::CLOSE {
            self.remove(ev.slot);
        }
    }

    /// Resolves or rejects a file operation's promise; its reactions run when the callback
    /// scope closes, as after any Node callback.
    fn settle(&self, deferred: sys::napi_deferred, ok: bool, value: sys::napi_value) {
        let env = self.env;
        let value = if value.is_null() { self.undefined() } else { value };
        let resource = self.reference_value(self.resource);
        let mut scope = ptr::null_mut();
        let opened = napi_call!(sys::napi_open_callback_scope(
            env,
            resource,
            self.async_ctx,
            &mut scope
        ))
        .is_ok();
        let _ = if ok {
            napi_call!(sys::napi_resolve_deferred(env, deferred, value))
        } else {
            napi_call!(sys::napi_reject_deferred(env, deferred, value))
        };
        if opened {
            let status = unsafe {
                // SAFETY: closes the scope opened above, on the same thread.
                sys::napi_close_callback_scope(env, scope)
            };
            if status == sys::Status::napi_pending_exception {
                self.rethrow_uncaught();
            }
        }
    }

    /// An exception escaped a callback: Node's rule for event handlers applies
    /// (`'uncaughtException'`, or the process ends with the error, as with a throwing
    /// `net` handler).
    fn rethrow_uncaught(&self) {
        let mut err = ptr::null_mut();
        if napi_call!(sys::napi_get_and_clear_last_exception(self.env, &mut err)).is_ok() && !err.is_null() {
            let _ = napi_call!(sys::napi_fatal_exception(self.env, err));
        }
    }

    fn fatal(&self, msg: &str) {
        let mut text = ptr::null_mut();
        let mut err = ptr::null_mut();
        if napi_call!(sys::napi_create_string_utf8(
            self.env,
            msg.as_ptr().cast(),
            msg.len(),
            &mut text
        ))
        .is_ok()
            && napi_call!(sys::napi_create_error(self.env, ptr::null_mut(), text, &mut err)).is_ok()
        {
            let _ = napi_call!(sys::napi_fatal_exception(self.env, err));
        }
    }

    pub(crate) fn undefined(&self) -> sys::napi_value {
        let mut v = ptr::null_mut();
        let _ = napi_call!(sys::napi_get_undefined(self.env, &mut v));
        v
    }

    pub(crate) fn number(&self, n: f64) -> sys::napi_value {
        let mut v = ptr::null_mut();
        let _ = napi_call!(sys::napi_create_double(self.env, n, &mut v));
        v
    }

    /// A JavaScript string (null if it cannot be made).
    pub(crate) fn string(&self, s: &str) -> sys::napi_value {
        let mut v = ptr::null_mut();
        let _ = napi_call!(sys::napi_create_string_utf8(
            self.env,
            s.as_ptr().cast(),
            s.len(),
            &mut v
        ));
        v
    }

    /// A new `Buffer` holding a copy of `data` (null if memory ran out).
    pub(crate) fn buffer_copy(&self, data: &[u8]) -> sys::napi_value {
        let mut v = ptr::null_mut();
        let mut out = ptr::null_mut();
        let _ = napi_call!(sys::napi_create_buffer_copy(
            self.env,
            data.len(),
            data.as_ptr().cast(),
            &mut out,
            &mut v
        ));
        v
    }

    /// Copies `data` into the current slab (a new one when it is full) and returns the slab's
    /// `ArrayBuffer` and the offset of the copy; `None` for data too large for slabs, or if
    /// no slab can be made.
    pub(crate) fn slab_copy(&self, data: &[u8]) -> Option<(sys::napi_value, usize)> {
        if data.len() > SLAB_SIZE / 2 {
            return None;
        }
        let mut slab = self.slab.borrow_mut();
        if slab.used + data.len() > SLAB_SIZE {
            let mut value = ptr::null_mut();
            let mut mem = ptr::null_mut();
            napi_call!(sys::napi_create_arraybuffer(
                self.env, SLAB_SIZE, &mut mem, &mut value
            ))
            .ok()?;
            let mut r = ptr::null_mut();
            napi_call!(sys::napi_create_reference(self.env, value, 1, &mut r)).ok()?;
            let old = std::mem::replace(&mut slab.buffer, r);
            if !old.is_null() {
                let _ = napi_call!(sys::napi_delete_reference(self.env, old));
            }
            slab.data = mem.cast();
            slab.used = 0;
        }
        let offset = slab.used;
        // SAFETY: the slab's memory is SLAB_SIZE bytes, alive while its reference is held (it is
        // until replaced, above), and offset + len <= SLAB_SIZE was just ensured.
        unsafe { ptr::copy_nonoverlapping(data.as_ptr(), slab.data.add(offset), data.len()) };
        slab.used += data.len();
        let buffer = slab.buffer;
        drop(slab);
        Some((self.reference_value(buffer), offset))
    }

    /// A `Buffer` that takes over `data` without copying it (a copy where external buffers
    /// are not allowed).
    pub(crate) fn buffer_from_vec(&self, data: Vec<u8>) -> sys::napi_value {
        unsafe extern "C" fn free_vec(_env: sys::napi_env, _data: *mut c_void, hint: *mut c_void) {
            // SAFETY: `hint` is the box made below, handed to exactly this finalizer.
            drop(unsafe { Box::from_raw(hint as *mut Vec<u8>) });
        }
        if data.is_empty() {
            return self.buffer_copy(&[]);
        }
        let mut boxed = Box::new(data);
        let (ptr_, len) = (boxed.as_mut_ptr(), boxed.len());
        let hint = Box::into_raw(boxed);
        let mut v = ptr::null_mut();
        match napi_call!(sys::napi_create_external_buffer(
            self.env,
            len,
            ptr_.cast(),
            Some(free_vec),
            hint.cast(),
            &mut v
        )) {
            Ok(()) => v,
            Err(_) => {
                // SAFETY: the call failed, so the finalizer will never run: the box is ours.
                let data = unsafe { Box::from_raw(hint) };
                self.buffer_copy(&data)
            }
        }
    }

    /// A JavaScript array of `items`.
    pub(crate) fn array(&self, items: impl Iterator<Item = sys::napi_value>) -> sys::napi_value {
        let mut arr = ptr::null_mut();
        let _ = napi_call!(sys::napi_create_array(self.env, &mut arr));
        for (i, v) in items.enumerate() {
            let _ = napi_call!(sys::napi_set_element(self.env, arr, i as u32, v));
        }
        arr
    }

    /// Node's error for a failed file call: `ENOENT: no such file or directory, open 'p'`
    /// with `errno`, `code`, `syscall` and `path`.
    pub(crate) fn fs_error(&self, e: evloop::Error, syscall: &str, path: &str) -> sys::napi_value {
        let msg = format!(
            "{}: {}, {} '{}'",
            e.name(),
            e.message().to_lowercase(),
            syscall,
            path
        );
        let mut err = ptr::null_mut();
        let _ = napi_call!(sys::napi_create_error(
            self.env,
            self.string(e.name()),
            self.string(&msg),
            &mut err
        ));
        if err.is_null() {
            return self.undefined();
        }
        let props: [(&std::ffi::CStr, sys::napi_value); 4] = [
            (c"errno", self.number(e.code() as f64)),
            (c"code", self.string(e.name())),
            (c"syscall", self.string(syscall)),
            (c"path", self.string(path)),
        ];
        for (name, v) in props {
            let _ = napi_call!(sys::napi_set_named_property(self.env, err, name.as_ptr(), v));
        }
        err
    }

    fn reference_value(&self, r: sys::napi_ref) -> sys::napi_value {
        let mut v = ptr::null_mut();
        let _ = napi_call!(sys::napi_get_reference_value(self.env, r, &mut v));
        v
    }

    // ---- slots: core handles owned by JavaScript objects ----

    /// Gives `owned` a slot and returns its handle number.
    pub(crate) fn insert(&self, owned: Owned) -> u32 {
        let h = self.insert_pending();
        self.fill(h, owned);
        h
    }

    /// A slot whose handle is made later (its callbacks need the slot's index first).
    pub(crate) fn insert_pending(&self) -> u32 {
        let mut slots = self.slots.borrow_mut();
        let idx = match self.free.borrow_mut().pop() {
            Some(idx) => idx,
            None => {
                slots.push(Slot {
                    gen: 0,
                    used: false,
                    write_ready: false,
                    owned: None,
                    owner: ptr::null_mut(),
                });
                (slots.len() - 1) as u32
            }
        };
        let slot = &mut slots[idx as usize];
        slot.used = true;
        slot.write_ready = false;
        slot.owned = None;
        slot.owner = ptr::null_mut();
        idx | (slot.gen << INDEX_BITS)
    }

    /// Puts the handle made for a pending slot into it.
    pub(crate) fn fill(&self, h: u32, owned: Owned) {
        if let Some(s) = self.slots.borrow_mut().get_mut((h & INDEX_MASK) as usize) {
            s.owned = Some(owned);
        }
    }

    /// The core handle behind handle number `h`, or `EBADF`.
    pub(crate) fn owned(&self, h: u32) -> Result<Owned, evloop::Error> {
        let slots = self.slots.borrow();
        match slots.get((h & INDEX_MASK) as usize) {
            Some(s) if s.gen == h >> INDEX_BITS => s.owned.ok_or(evloop::Error::EBADF),
            _ => Err(evloop::Error::EBADF),
        }
    }

    pub(crate) fn stream(&self, h: u32) -> Result<Stream, evloop::Error> {
        match self.owned(h)? {
            Owned::Stream(s) => Ok(s),
            Owned::Udp(_) => Err(evloop::Error::EBADF),
        }
    }

    pub(crate) fn udp(&self, h: u32) -> Result<Udp, evloop::Error> {
        match self.owned(h)? {
            Owned::Udp(u) => Ok(u),
            Owned::Stream(_) => Err(evloop::Error::EBADF),
        }
    }

    /// The stream behind `h` for a write, and whether this is its first: the caller then puts
    /// its write settings in place (one slot lookup for both).
    pub(crate) fn stream_to_write(&self, h: u32) -> Result<(Stream, bool), evloop::Error> {
        match self.slots.borrow_mut().get_mut((h & INDEX_MASK) as usize) {
            Some(Slot {
                gen,
                used: true,
                owned: Some(Owned::Stream(stream)),
                write_ready,
                ..
            }) if *gen == h >> INDEX_BITS => Ok((*stream, !std::mem::replace(write_ready, true))),
            _ => Err(evloop::Error::EBADF),
        }
    }

    /// The slot index events for handle number `h` carry.
    pub(crate) fn index(h: u32) -> u32 {
        h & INDEX_MASK
    }

    /// Makes `obj` the receiver of `h`'s events, held strongly until the handle's close event.
    pub(crate) fn set_owner(&self, h: u32, obj: sys::napi_value) -> Result<(), evloop::Error> {
        self.owned(h)?;
        let mut r = ptr::null_mut();
        napi_call!(sys::napi_create_reference(self.env, obj, 1, &mut r))
            .map_err(|_| evloop::Error::EINVAL)?;
        let old = std::mem::replace(&mut self.slots.borrow_mut()[(h & INDEX_MASK) as usize].owner, r);
        if !old.is_null() {
            let _ = napi_call!(sys::napi_delete_reference(self.env, old));
        }
        Ok(())
    }

    fn owner_value(&self, idx: u32) -> sys::napi_value {
        let owner = match self.slots.borrow().get(idx as usize) {
            Some(s) if !s.owner.is_null() => s.owner,
            _ => return ptr::null_mut(),
        };
        self.reference_value(owner)
    }

    /// Frees slot `idx` and drops its owner reference.
    pub(crate) fn remove(&self, idx: u32) {
        let owner = {
            let mut slots = self.slots.borrow_mut();
            let Some(slot) = slots.get_mut(idx as usize) else {
                return;
            };
            if !slot.used {
                return;
            }
            slot.used = false;
            slot.owned = None;
            slot.gen = (slot.gen + 1) & GEN_MASK;
            std::mem::replace(&mut slot.owner, ptr::null_mut())
        };
        if !owner.is_null() {
            let _ = napi_call!(sys::napi_delete_reference(self.env, owner));
        }
        self.free.borrow_mut().push(idx);
    }

    /// Closes `h`'s core handle; its close event follows.
    pub(crate) fn close(&self, h: u32) -> Result<(), evloop::Error> {
        let owned = self.owned(h)?;
        let idx = Self::index(h);
        let done = move |_: &mut Loop| {
            if let Some(rt) = runtime() {
                rt.push(Event::new(kind::CLOSE, idx));
            }
        };
        self.with_loop(|lp| match owned {
            Owned::Stream(s) => s.close(lp, Some(Box::new(done))),
            Owned::Udp(u) => u.close(lp, Some(Box::new(done))),
        })?
    }

    /// Whether `h` keeps Node alive (Node's `ref()`/`unref()`).
    pub(crate) fn set_ref(&self, h: u32, on: bool) -> Result<(), evloop::Error> {
        let owned = self.owned(h)?;
        self.with_loop(|lp| match (owned, on) {
            (Owned::Stream(s), true) => s.ref_(lp),
            (Owned::Stream(s), false) => s.unref(lp),
            (Owned::Udp(u), true) => u.ref_(lp),
            (Owned::Udp(u), false) => u.unref(lp),
        })?
    }
}
