//! `Core`: the native base class of `evloop.EventLoop`. It owns an `evloop::Loop` and runs
//! asyncio's scheduling (ready queue, timers, thread-safe calls, fd readiness) in Rust; the
//! Python class on top inherits the rest of asyncio's event loop.
//!
//! The GIL is held while callbacks run and released only while the loop blocks in the kernel
//! (a `WaitHook`), so a batch of completions costs one release and one re-acquisition.

use crate::errors::os_error;
use crate::handle::{copy_current_context, foreign_thread, Handle, Ran, TimerHandle};
use evloop::monotonic_ns;
use evloop::{Async, BackendKind, Config, FdWatcher, Handle as _, Loop, RunMode, Timer, WaitHook, Waker};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};
use pyo3::{ffi, intern};
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet, VecDeque};
use std::os::fd::RawFd;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Releases the GIL while the loop waits in the kernel, and keeps the loop from blocking while
/// Python work is pending (handles queued by the core's callbacks during this run).
struct ReleaseGil {
    saved: *mut ffi::PyThreadState,
    state: std::rc::Weak<State>,
}

impl WaitHook for ReleaseGil {
    fn has_pending_work(&mut self) -> bool {
        self.state.upgrade().is_some_and(|st| {
            !st.ready.borrow().is_empty()
                || !st.fd_events.borrow().is_empty()
                || st.escaped.borrow().is_some()
        })
    }

    fn before_wait(&mut self) {
        // SAFETY: the loop runs only inside `Core::_run_once`, which holds the GIL; nothing
        // touches Python until `after_wait`.
        self.saved = unsafe { ffi::PyEval_SaveThread() };
    }

    fn after_wait(&mut self) {
        // SAFETY: `saved` is the thread state released by `before_wait` on this thread.
        unsafe { ffi::PyEval_RestoreThread(self.saved) };
    }
}

/// A watched fd: the core watcher, the selectors mask it watches for, and the callbacks
/// asyncio's selector key holds for it (`(reader, writer)` handles), which readiness queues
/// directly.
struct Watched {
    watcher: FdWatcher,
    mask: u32,
    reader: Option<PyObject>,
    writer: Option<PyObject>,
}

/// What the loop thread owns. Reached only from the owning thread (`Core::check_thread`).
pub(crate) struct State {
    /// The core loop (a leaked box, freed by `close` or drop); null once closed.
    lp: Cell<*mut Loop>,
    pub(crate) ready: RefCell<VecDeque<PyObject>>,
    /// Timers that fired during the current poll: they join the ready queue at its front when
    /// the poll returns (see `_run_once`).
    due_timers: RefCell<VecDeque<PyObject>>,
    /// Readiness of watched fds reported during the last run: (fd, selectors mask).
    fd_events: RefCell<Vec<(RawFd, u32)>>,
    watchers: RefCell<HashMap<RawFd, Watched>>,
    /// fds owned by open native transports: `add_reader` and the like refuse them, as asyncio
    /// refuses its transports' fds (a set of fds here, where asyncio keeps a weak reference
    /// per transport).
    pub(crate) transport_fds: RefCell<HashSet<RawFd>>,
    /// A `BaseException` raised by a Python call made from inside the core: re-raised when the
    /// run returns.
    pub(crate) escaped: RefCell<Option<PyErr>>,
    pub(crate) running: Cell<bool>,
    /// Absolute CLOCK_MONOTONIC nanoseconds at the core loop's time zero.
    epoch_ns: u64,
    debug: Cell<bool>,
}

impl State {
    /// The core loop, or the error asyncio gives for a closed loop.
    #[allow(clippy::mut_from_ref)] // the loop lives behind a raw pointer; see the SAFETY note
    pub(crate) fn lp(&self) -> PyResult<&mut Loop> {
        let p = self.lp.get();
        if p.is_null() {
            return Err(PyRuntimeError::new_err("Event loop is closed"));
        }
        // SAFETY: `p` came from Box::into_raw and is freed only by `close_loop`/drop, which
        // null it first. Only the owning thread gets here. A reference made here while `run`
        // holds one is made from a callback `run` is calling (the pattern the C API's
        // `loop_mut` follows), and neither is used while the other is live.
        Ok(unsafe { &mut *p })
    }

    /// A `BaseException` escaped a callback run inside the core: keep it and stop the run.
    pub(crate) fn escape(&self, err: PyErr) {
        let mut slot = self.escaped.borrow_mut();
        if slot.is_none() {
            *slot = Some(err);
        }
        if let Ok(lp) = self.lp() {
            lp.stop();
        }
    }

    fn close_loop(&self) {
        let p = self.lp.replace(std::ptr::null_mut());
        if !p.is_null() {
            // SAFETY: `p` came from Box::into_raw and was just detached, so this is the only
            // owner. Dropping the loop drops its callbacks (and the Python objects they hold).
            drop(unsafe { Box::from_raw(p) });
        }
    }
}

impl Drop for State {
    fn drop(&mut self) {
        self.close_loop();
    }
}

/// The native part of `evloop.EventLoop`.
#[pyclass(frozen, subclass, weakref, module = "evloop._evloop")]
pub struct Core {
    owner: libc::pthread_t,
    pub(crate) state: Rc<State>,
    waker: Waker,
    closed: Arc<AtomicBool>,
    backend: &'static str,
}

// SAFETY: the loop inside the `Rc` state is touched only on the thread that made it: every
// method that reaches it calls `check_thread` first. `call_soon_threadsafe` may run on any
// thread and touches only the ready queue, under the GIL, which the loop thread never releases
// while it holds a borrow of that queue (it releases it only inside the kernel wait); the rest
// it uses (`closed`, the `Waker`) is thread-safe. Python may move the
// object between threads, which is why the type must be Send + Sync for pyo3. Dropping it on a
// foreign thread drops the loop there; its fds are closed and nothing else depends on the thread.
unsafe impl Send for Core {}
// SAFETY: as above.
unsafe impl Sync for Core {}

fn backend_kind(name: Option<&str>) -> PyResult<BackendKind> {
    let name = match name {
        Some(n) => n.to_string(),
        None => std::env::var("EVLOOP_BACKEND").unwrap_or_default(),
    };
    match name.trim() {
        "" | "auto" => Ok(BackendKind::Auto),
        "uring" | "io_uring" => Ok(BackendKind::Uring),
        "epoll" => Ok(BackendKind::Epoll),
        other => Err(PyValueError::new_err(format!(
            "unknown evloop backend {other:?} (expected 'auto', 'uring' or 'epoll')"
        ))),
    }
}

/// asyncio's selector masks from the core's readiness bits: errors and hang-ups wake both
/// directions, as the epoll selector does, so the callback meets the error itself.
fn selector_mask(ready: u32) -> u32 {
    use evloop::ready::{READABLE, WRITABLE};
    let mut mask = 0;
    if ready & !WRITABLE != 0 {
        mask |= READABLE;
    }
    if ready & !READABLE != 0 {
        mask |= WRITABLE;
    }
    mask
}

impl Core {
    #[inline]
    pub(crate) fn check_thread(&self) -> PyResult<()> {
        // SAFETY: pthread_self has no preconditions.
        if unsafe { libc::pthread_equal(libc::pthread_self(), self.owner) } == 0 {
            return Err(foreign_thread());
        }
        Ok(())
    }

    /// The core loop, on the owning thread only.
    #[inline]
    #[allow(clippy::mut_from_ref)] // see State::lp
    pub(crate) fn lp(&self) -> PyResult<&mut Loop> {
        self.check_thread()?;
        self.state.lp()
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Whether a callback or timer is being scheduled from a thread other than the loop's, where
    /// asyncio allows it: with debug mode off (asyncio checks the thread in debug mode only, and
    /// then refuses, as this does). A closed loop answers as on its own thread.
    fn scheduled_from_another_thread(&self) -> PyResult<bool> {
        if self.check_thread().is_ok() || self.is_closed() {
            return Ok(false);
        }
        if self.state.debug.get() {
            return Err(foreign_thread());
        }
        Ok(true)
    }

    /// Starts the core timer of `th` on the loop's thread: it queues `th` when its time comes.
    pub(crate) fn arm_timer(slf: &Bound<'_, Self>, th: &Py<TimerHandle>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let lp = this.lp()?;
        // The core's deadline is in whole milliseconds on its own clock: round the target up,
        // so a timer never fires before `when`.
        let when_ns = th.get().when * 1e9;
        let due_ns = when_ns - this.state.epoch_ns as f64;
        let due_ms = (due_ns / 1e6).ceil().max(0.0).min(u64::MAX as f64 / 2.0) as u64;
        // A timer already due (`call_later(0)`, a `when` in the past) runs on the next
        // iteration, as in asyncio; rounding up would put it a millisecond out.
        let delay_ms = if when_ns <= monotonic_ns() as f64 {
            0
        } else {
            due_ms.saturating_sub(lp.now())
        };
        let timer = Timer::new(lp);
        let fired = th.clone_ref(py);
        let weak = Rc::downgrade(&this.state);
        timer
            .start(lp, delay_ms, 0, move |lp, t| {
                let _ = t.close(lp, None);
                // SAFETY-free: the GIL is held while the core runs callbacks (see ReleaseGil).
                Python::with_gil(|py| {
                    fired.get().fired();
                    if let Some(st) = weak.upgrade() {
                        st.due_timers
                            .borrow_mut()
                            .push_back(fired.clone_ref(py).into_any());
                    }
                });
            })
            .map_err(os_error)?;
        *th.get().timer.lock().unwrap_or_else(|p| p.into_inner()) = Some(timer);
        Ok(())
    }

    pub(crate) fn cancel_timer(&self, timer: Timer) -> PyResult<()> {
        let lp = self.lp()?;
        // EBADF: the loop already let it go (it fired); nothing to free.
        let _ = timer.close(lp, None);
        Ok(())
    }

    /// Without a `context`, the handle takes a copy of the current one, as asyncio's `Handle`
    /// does: the callback runs in the context it was scheduled from, not in whichever context
    /// is current when the loop gets to it (a protocol's `call_soon` from its transport's
    /// context, a subprocess's `pipe_data_received`, a task's wake-up).
    fn make_handle(
        slf: &Bound<'_, Self>,
        callback: PyObject,
        args: Py<PyTuple>,
        context: Option<PyObject>,
    ) -> PyResult<Handle> {
        let context = match context {
            Some(context) => context,
            None => copy_current_context(slf.py())?,
        };
        Ok(Handle::new(
            callback,
            args,
            Some(context),
            slf.clone().into_any().unbind(),
        ))
    }

    /// Makes a handle for `callback(*args)` and appends it to the ready queue (under the GIL,
    /// which is what makes this safe from other threads too: see the SAFETY note on `Core`).
    fn queue_handle(
        slf: &Bound<'_, Self>,
        callback: PyObject,
        args: Py<PyTuple>,
        context: Option<PyObject>,
        method: &str,
    ) -> PyResult<Py<Handle>> {
        Self::check_callback(slf, &callback, method)?;
        let h = Py::new(slf.py(), Self::make_handle(slf, callback, args, context)?)?;
        slf.get()
            .state
            .ready
            .borrow_mut()
            .push_back(h.clone_ref(slf.py()).into_any());
        Ok(h)
    }

    fn check_callback(slf: &Bound<'_, Self>, callback: &PyObject, method: &str) -> PyResult<()> {
        if slf.get().state.debug.get() {
            slf.call_method1(intern!(slf.py(), "_check_callback"), (callback, method))?;
        }
        Ok(())
    }

    /// (Re)starts `w`, the watcher of `fd`, for `mask`; readiness is recorded in `fd_events`.
    fn start_watcher(&self, lp: &mut Loop, fd: RawFd, w: FdWatcher, mask: u32) -> PyResult<()> {
        let weak = Rc::downgrade(&self.state);
        let started = w.start(lp, mask, move |_, _, res| {
            let Some(st) = weak.upgrade() else { return };
            let ready = match res {
                Ok(r) => selector_mask(r) & mask,
                // The fd failed (e.g. closed behind the loop's back): wake both directions so
                // the callbacks meet the error.
                Err(_) => mask,
            };
            if ready != 0 {
                st.fd_events.borrow_mut().push((fd, ready));
            }
        });
        if let Err(e) = started {
            let gone = self.state.watchers.borrow_mut().remove(&fd);
            let _ = w.close(lp, None);
            drop(gone);
            return Err(os_error(e));
        }
        Ok(())
    }

    /// Queues the handles of the fds the poll found ready, in asyncio's order (per fd, the
    /// reader before the writer). A cancelled handle is left to asyncio's `_process_events`
    /// (through `_process_fd_events`), which also unregisters it.
    fn queue_fd_events(slf: &Bound<'_, Self>, events: &[(RawFd, u32)]) -> PyResult<()> {
        let py = slf.py();
        let st = &slf.get().state;
        let mut left = Vec::new();
        for &(fd, ready) in events {
            let handles = match st.watchers.borrow().get(&fd) {
                Some(w) => [
                    (
                        evloop::ready::READABLE,
                        w.reader.as_ref().map(|h| h.clone_ref(py)),
                    ),
                    (
                        evloop::ready::WRITABLE,
                        w.writer.as_ref().map(|h| h.clone_ref(py)),
                    ),
                ],
                // Unregistered since (asyncio skips fds no longer in its selector).
                None => continue,
            };
            for (bit, handle) in handles {
                let Some(handle) = handle.filter(|_| ready & bit != 0) else {
                    continue;
                };
                if is_cancelled(handle.bind(py))? {
                    left.push((fd, bit));
                } else {
                    st.ready.borrow_mut().push_back(handle);
                }
            }
        }
        if !left.is_empty() {
            slf.call_method1(intern!(py, "_process_fd_events"), (PyList::new_bound(py, left),))?;
        }
        Ok(())
    }

    /// Runs the callbacks that were ready when this step began; later ones wait for the next
    /// iteration, so a callback that re-queues itself cannot starve I/O.
    fn run_ready(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let st = &slf.get().state;
        let n = st.ready.borrow().len();
        let slow = if st.debug.get() {
            Some(
                slf.getattr(intern!(py, "slow_callback_duration"))?
                    .extract::<f64>()?,
            )
        } else {
            None
        };
        for _ in 0..n {
            let Some(h) = st.ready.borrow_mut().pop_front() else {
                break;
            };
            let started = slow.map(|_| monotonic_ns());
            let ran = run_any(py, h.bind(py));
            if let (Some(limit), Some(t0)) = (slow, started) {
                let took = (monotonic_ns() - t0) as f64 / 1e9;
                if took >= limit {
                    slf.call_method1(intern!(py, "_log_slow_callback"), (h.bind(py), took))?;
                }
            }
            if let Ran::Escaped(e) = ran? {
                return Err(e);
            }
        }
        Ok(())
    }
}

/// Whether a ready-queue entry (an evloop handle or asyncio's) was cancelled.
fn is_cancelled(h: &Bound<'_, PyAny>) -> PyResult<bool> {
    if let Ok(h) = h.downcast::<Handle>() {
        return Ok(h.get().is_cancelled());
    }
    h.getattr(intern!(h.py(), "_cancelled"))?.is_truthy()
}

/// Runs one entry of the ready queue: an evloop handle, or any object with asyncio's `_run`.
fn run_any(py: Python<'_>, h: &Bound<'_, PyAny>) -> PyResult<Ran> {
    if let Ok(h) = h.downcast::<Handle>() {
        if h.get().is_cancelled() {
            return Ok(Ran::Ok);
        }
        return Ok(Handle::run(h));
    }
    if let Ok(t) = h.downcast::<TimerHandle>() {
        if t.get().handle.is_cancelled() {
            return Ok(Ran::Ok);
        }
        return Ok(TimerHandle::run(t));
    }
    if h.getattr(intern!(py, "_cancelled"))?.is_truthy()? {
        return Ok(Ran::Ok);
    }
    match h.call_method0(intern!(py, "_run")) {
        Ok(_) => Ok(Ran::Ok),
        Err(e) => Ok(Ran::Escaped(e)),
    }
}

#[pymethods]
impl Core {
    #[new]
    #[pyo3(signature = (*_args, backend = None, **_kwargs))]
    fn new(
        _args: &Bound<'_, PyTuple>,
        backend: Option<&str>,
        _kwargs: Option<&Bound<'_, pyo3::types::PyDict>>,
    ) -> PyResult<Core> {
        let config = Config {
            backend: backend_kind(backend)?,
            ..Config::default()
        };
        let mut lp = Loop::with_config(config).map_err(os_error)?;
        lp.update_time();
        let epoch_ns = monotonic_ns() - lp.now_ns();
        let backend = lp.backend_name();
        let state = Rc::new(State {
            lp: Cell::new(std::ptr::null_mut()),
            ready: RefCell::new(VecDeque::new()),
            due_timers: RefCell::new(VecDeque::new()),
            fd_events: RefCell::new(Vec::new()),
            watchers: RefCell::new(HashMap::new()),
            transport_fds: RefCell::new(HashSet::new()),
            escaped: RefCell::new(None),
            running: Cell::new(false),
            epoch_ns,
            debug: Cell::new(false),
        });
        // Thread-safe calls queue their handle themselves; the wake-up only ends the wait.
        let wakeup = Async::new(&mut lp, |_, _| {}).map_err(os_error)?;
        let waker = wakeup.waker(&lp).map_err(os_error)?;
        lp.set_wait_hook(Some(Box::new(ReleaseGil {
            saved: std::ptr::null_mut(),
            state: Rc::downgrade(&state),
        })));
        state.lp.set(Box::into_raw(Box::new(lp)));
        Ok(Core {
            // SAFETY: pthread_self has no preconditions.
            owner: unsafe { libc::pthread_self() },
            state,
            waker,
            closed: Arc::new(AtomicBool::new(false)),
            backend,
        })
    }

    /// The backend running this loop: "uring" or "epoll".
    #[getter]
    fn backend(&self) -> &'static str {
        self.backend
    }

    /// The loop's clock (CLOCK_MONOTONIC, as `time.monotonic()`), in seconds.
    fn time(&self) -> f64 {
        monotonic_ns() as f64 / 1e9
    }

    #[pyo3(signature = (callback, *args, context = None))]
    fn call_soon(
        slf: &Bound<'_, Self>,
        callback: PyObject,
        args: Py<PyTuple>,
        context: Option<PyObject>,
    ) -> PyResult<Py<Handle>> {
        let this = slf.get();
        if this.scheduled_from_another_thread()? {
            // Queued as call_soon_threadsafe queues it (the ready queue is the GIL's), with the
            // wake-up asyncio leaves out.
            return Self::call_soon_threadsafe(slf, callback, args, context);
        }
        this.lp()?;
        Self::queue_handle(slf, callback, args, context, "call_soon")
    }

    /// asyncio's private spelling of `call_soon`, used by some of its own code.
    #[pyo3(signature = (callback, args, context = None))]
    fn _call_soon(
        slf: &Bound<'_, Self>,
        callback: PyObject,
        args: Py<PyTuple>,
        context: Option<PyObject>,
    ) -> PyResult<Py<Handle>> {
        Self::call_soon(slf, callback, args, context)
    }

    #[pyo3(signature = (callback, *args, context = None))]
    fn call_soon_threadsafe(
        slf: &Bound<'_, Self>,
        callback: PyObject,
        args: Py<PyTuple>,
        context: Option<PyObject>,
    ) -> PyResult<Py<Handle>> {
        let this = slf.get();
        if this.closed.load(Ordering::Acquire) {
            return Err(PyRuntimeError::new_err("Event loop is closed"));
        }
        let h = Self::queue_handle(slf, callback, args, context, "call_soon_threadsafe")?;
        this.waker.wake();
        Ok(h)
    }

    #[pyo3(signature = (delay, callback, *args, context = None))]
    fn call_later(
        slf: &Bound<'_, Self>,
        delay: f64,
        callback: PyObject,
        args: Py<PyTuple>,
        context: Option<PyObject>,
    ) -> PyResult<Py<TimerHandle>> {
        if delay.is_nan() {
            return Err(PyValueError::new_err("delay must not be NaN"));
        }
        let when = slf.get().time() + delay;
        Self::call_at(slf, when, callback, args, context)
    }

    #[pyo3(signature = (when, callback, *args, context = None))]
    fn call_at(
        slf: &Bound<'_, Self>,
        when: f64,
        callback: PyObject,
        args: Py<PyTuple>,
        context: Option<PyObject>,
    ) -> PyResult<Py<TimerHandle>> {
        let py = slf.py();
        let this = slf.get();
        // From another thread the loop's thread arms the timer (see below).
        let foreign = this.scheduled_from_another_thread()?;
        if !foreign {
            this.lp()?;
        }
        if when.is_nan() {
            return Err(PyValueError::new_err("when must not be NaN"));
        }
        Self::check_callback(slf, &callback, "call_at")?;
        let th = Py::new(
            py,
            TimerHandle {
                handle: Self::make_handle(slf, callback, args, context)?,
                when,
                timer: Mutex::new(None),
                core: slf.clone().unbind(),
            },
        )?;
        if foreign {
            let arm = th.bind(py).getattr(intern!(py, "_arm"))?.unbind();
            Self::call_soon_threadsafe(slf, arm, PyTuple::empty_bound(py).unbind(), None)?;
        } else {
            Self::arm_timer(slf, &th)?;
        }
        Ok(th)
    }

    /// Queues an asyncio handle (the selector machinery's reader and writer callbacks).
    fn _add_callback(&self, handle: &Bound<'_, PyAny>) -> PyResult<()> {
        self.lp()?;
        if !handle.getattr(intern!(handle.py(), "_cancelled"))?.is_truthy()? {
            self.state.ready.borrow_mut().push_back(handle.clone().unbind());
        }
        Ok(())
    }

    /// One loop iteration: run the callbacks already ready, wait for I/O or timers (not at all
    /// if callbacks are ready or the loop is stopping), then run the callbacks that are ready.
    fn _run_once(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let st = &this.state;
        let lp = this.lp()?;
        if st.running.get() {
            return Err(PyRuntimeError::new_err("This event loop is already running"));
        }
        // In asyncio the callbacks that were ready before the poll sit ahead of what the poll
        // brings: a task that is about to wait for a datagram makes its future before the
        // datagram is delivered. The native transports call their protocols during the poll,
        // so those earlier callbacks run first here.
        if !st.ready.borrow().is_empty() {
            Self::run_ready(slf)?;
        }
        let stopping = slf.getattr(intern!(py, "_stopping"))?.is_truthy()?;
        let mode = if stopping || !st.ready.borrow().is_empty() {
            RunMode::NoWait
        } else {
            RunMode::Once
        };
        st.running.set(true);
        let ran = lp.run(mode);
        st.running.set(false);
        ran.map_err(os_error)?;
        if let Some(e) = st.escaped.borrow_mut().take() {
            return Err(e);
        }
        // SAFETY: the GIL is held; a signal handler that raises leaves its exception set.
        if unsafe { ffi::PyErr_CheckSignals() } != 0 {
            return Err(PyErr::fetch(py));
        }
        let scheduled_since = st.ready.borrow().len();
        let events = std::mem::take(&mut *st.fd_events.borrow_mut());
        if !events.is_empty() {
            Self::queue_fd_events(slf, &events)?;
        }
        order_like_asyncio(st, scheduled_since);
        Self::run_ready(slf)
    }

    /// Whether an open native transport owns `fd`.
    fn _fd_has_transport(&self, fd: RawFd) -> bool {
        self.state.transport_fds.borrow().contains(&fd)
    }

    /// Watches `fd` for `mask` (selectors.EVENT_READ | EVENT_WRITE) with `data`, asyncio's
    /// `(reader, writer)` handles: readiness queues them directly (see `_run_once`).
    /// Level-triggered on both backends, as asyncio's selectors are.
    #[pyo3(signature = (fd, mask, data = None))]
    fn _watch_fd(
        &self,
        py: Python<'_>,
        fd: RawFd,
        mask: u32,
        data: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let lp = self.lp()?;
        let mask = mask & (evloop::ready::READABLE | evloop::ready::WRITABLE);
        let (reader, writer) = match data {
            Some(d) if !d.is_none() => {
                let (r, w): (PyObject, PyObject) = d.extract()?;
                (
                    Some(r).filter(|r| !r.is_none(py)),
                    Some(w).filter(|w| !w.is_none(py)),
                )
            }
            _ => (None, None),
        };
        let mut watchers = self.state.watchers.borrow_mut();
        if let Some(watched) = watchers.get_mut(&fd) {
            let old = (
                std::mem::replace(&mut watched.reader, reader),
                std::mem::replace(&mut watched.writer, writer),
            );
            let same_mask = watched.mask == mask;
            watched.mask = mask;
            let w = watched.watcher;
            drop(watchers);
            drop(old);
            if same_mask {
                return Ok(());
            }
            return self.start_watcher(lp, fd, w, mask);
        }
        let w = FdWatcher::new(lp, fd).map_err(os_error)?;
        watchers.insert(
            fd,
            Watched {
                watcher: w,
                mask,
                reader,
                writer,
            },
        );
        drop(watchers);
        self.start_watcher(lp, fd, w, mask)
    }

    /// Watches the child `pid` (started by `subprocess.Popen`, which has every option asyncio
    /// passes) with a core process handle: its pidfd, no SIGCHLD handler, no watcher thread.
    /// `callback(returncode)` is scheduled once it has exited and been reaped (255, with
    /// asyncio's warning, if something else reaped it first).
    fn _watch_child_exit(slf: &Bound<'_, Self>, pid: i32, callback: PyObject) -> PyResult<()> {
        let lp = slf.get().lp()?;
        // Held until the child exits (or the core loop is freed): the loop outlives the watch.
        let core = slf.clone().unbind();
        evloop::Process::adopt(lp, pid, move |lp, process, status| {
            let _ = process.close(lp, None);
            Python::with_gil(|py| {
                let code = match status {
                    evloop::ExitStatus::Exited(c) => c,
                    evloop::ExitStatus::Signaled(sig) => -sig,
                    evloop::ExitStatus::Unknown => {
                        let warned = py.import_bound("asyncio.log").and_then(|m| {
                            m.getattr("logger")?.call_method1(
                                "warning",
                                (
                                    "child process pid %d exit status already read:  will report returncode 255",
                                    pid,
                                ),
                            )
                        });
                        if let Err(e) = warned {
                            e.print(py);
                        }
                        255
                    }
                };
                let core = core.bind(py);
                if let Err(e) = core.call_method1(intern!(py, "call_soon"), (callback, code)) {
                    core.get().state.escape(e);
                }
            });
        })
        .map_err(os_error)?;
        Ok(())
    }

    fn _unwatch_fd(&self, fd: RawFd) -> PyResult<()> {
        let lp = self.lp()?;
        let watched = self.state.watchers.borrow_mut().remove(&fd);
        if let Some(watched) = watched {
            let _ = watched.watcher.close(lp, None);
        }
        Ok(())
    }

    /// An unscheduled handle for `callback(*args)` in a copy of the current context: what
    /// `add_reader`/`add_writer` register (asyncio makes an `events.Handle`; this one runs
    /// without a Python frame).
    fn _fd_handle(slf: &Bound<'_, Self>, callback: PyObject, args: Py<PyTuple>) -> PyResult<Handle> {
        Self::make_handle(slf, callback, args, None)
    }

    /// Any thread may set it, as asyncio allows: the flag is read under the GIL, like the ready
    /// queue.
    fn _set_core_debug(&self, enabled: bool) -> PyResult<()> {
        self.state.debug.set(enabled);
        Ok(())
    }

    /// Callbacks waiting in the ready queue.
    fn _ready_count(&self) -> PyResult<usize> {
        self.check_thread()?;
        Ok(self.state.ready.borrow().len())
    }

    /// Frees the core loop: pending timers and watchers are dropped, open transports' sockets
    /// closed. Called by `EventLoop.close` after asyncio's own clean-up.
    fn _close_core(&self) -> PyResult<()> {
        self.check_thread()?;
        if self.state.running.get() {
            return Err(PyRuntimeError::new_err("Cannot close a running event loop"));
        }
        self.closed.store(true, Ordering::Release);
        // Taken out before dropping: a destructor run by the drop may call back into the loop.
        let ready = std::mem::take(&mut *self.state.ready.borrow_mut());
        let watchers = std::mem::take(&mut *self.state.watchers.borrow_mut());
        self.state.close_loop();
        drop(watchers);
        drop(ready);
        Ok(())
    }
}

/// asyncio's iteration runs, in one batch: the callbacks ready before it polled (`_run_once`
/// runs them before its poll), the readiness callbacks the poll found, then the timers that came due;
/// what any of them schedules waits for the next batch. Here the queue holds, in the order
/// they arrived, what was scheduled since the batch began (by those callbacks, or by the
/// native transports' protocol callbacks, which run during the poll), then the readiness
/// callbacks (`_process_fd_events`, from index `scheduled_since`); the timers wait in
/// `due_timers`. They are put back in asyncio's order: readiness, timers, the rest.
fn order_like_asyncio(st: &State, scheduled_since: usize) {
    let mut due = st.due_timers.borrow_mut();
    let mut ready = st.ready.borrow_mut();
    let readiness = ready.len() - scheduled_since.min(ready.len());
    while let Some(t) = due.pop_back() {
        ready.push_front(t);
    }
    // [timers, scheduled since, readiness] -> [readiness, timers, scheduled since], in place.
    ready.rotate_right(readiness);
}
