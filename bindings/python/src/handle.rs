//! `Handle` and `TimerHandle`: what `call_soon` and `call_later` return, and what the ready
//! queue holds. Made in Rust so that scheduling a callback allocates one small object.

use crate::core_loop::Core;
use pyo3::exceptions::PyRuntimeError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use pyo3::{PyTraverseError, PyVisit};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// A callback scheduled by `call_soon`: asyncio's `Handle`.
#[pyclass(frozen, weakref, module = "evloop._evloop")]
pub struct Handle {
    pub(crate) callback: PyObject,
    pub(crate) args: Py<PyTuple>,
    pub(crate) context: Option<PyObject>,
    pub(crate) cancelled: AtomicBool,
    /// The Python loop, for the exception handler (`None` for handles run by the core alone).
    pub(crate) owner: Option<PyObject>,
}

/// Outcome of running one callback.
pub(crate) enum Ran {
    Ok,
    /// A `BaseException` that is not an `Exception` (KeyboardInterrupt, SystemExit): it stops
    /// the loop and propagates, as in asyncio.
    Escaped(PyErr),
}

impl Handle {
    pub(crate) fn new(
        callback: PyObject,
        args: Py<PyTuple>,
        context: Option<PyObject>,
        owner: PyObject,
    ) -> Handle {
        Handle {
            callback,
            args,
            context,
            cancelled: AtomicBool::new(false),
            owner: Some(owner),
        }
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }

    /// Calls the callback in its context; an `Exception` goes to the loop's exception handler.
    pub(crate) fn run(slf: &Bound<'_, Handle>) -> Ran {
        let py = slf.py();
        let h = slf.get();
        let result = call_in_context(py, h.context.as_ref(), h.callback.bind(py), h.args.bind(py));
        match result {
            Ok(()) => Ran::Ok,
            Err(err) => report(py, h.owner.as_ref(), err, slf.as_any(), "Exception in callback"),
        }
    }
}

/// Calls `callback(*args)` inside `context` (a `contextvars.Context`), or in the current one.
pub(crate) fn call_in_context(
    py: Python<'_>,
    context: Option<&PyObject>,
    callback: &Bound<'_, PyAny>,
    args: &Bound<'_, PyTuple>,
) -> PyResult<()> {
    match context {
        Some(ctx) => run_in_context(py, ctx, callback, args).map(drop),
        None => callback.call1(args.clone()).map(drop),
    }
}

/// `callback(*args)` run inside the context `ctx`, with its result.
pub(crate) fn run_in_context(
    py: Python<'_>,
    ctx: &PyObject,
    callback: &Bound<'_, PyAny>,
    args: &Bound<'_, PyTuple>,
) -> PyResult<PyObject> {
    #[cfg(feature = "abi3")]
    {
        // The stable ABI has no PyContext_Enter: `Context.run(callback, *args)`, a call and a
        // tuple more per callback.
        let mut all = Vec::with_capacity(args.len() + 1);
        all.push(callback.clone());
        all.extend(args.iter());
        let all = PyTuple::new_bound(py, all);
        ctx.bind(py)
            .call_method1(pyo3::intern!(py, "run"), all)
            .map(Bound::unbind)
    }
    #[cfg(not(feature = "abi3"))]
    {
        within_context(py, ctx, || callback.call1(args.clone()).map(Bound::unbind))
    }
}

/// `f()` with the context `ctx` entered (PyContext_Enter/Exit: no call through `Context.run`).
#[cfg(not(feature = "abi3"))]
pub(crate) fn within_context<R>(
    py: Python<'_>,
    ctx: &PyObject,
    f: impl FnOnce() -> PyResult<R>,
) -> PyResult<R> {
    // SAFETY: `ctx` is a live object (held by the caller); PyContext_Enter checks its type and
    // fails with a Python error (e.g. a context already entered), fetched below.
    if unsafe { ffi::PyContext_Enter(ctx.as_ptr()) } != 0 {
        return Err(PyErr::fetch(py));
    }
    let r = f();
    // SAFETY: the context was entered above on this thread and `f` has returned.
    if unsafe { ffi::PyContext_Exit(ctx.as_ptr()) } != 0 {
        let exit_err = PyErr::fetch(py);
        return r.and(Err(exit_err));
    }
    r
}

/// A copy of the current context, as `contextvars.copy_context()` makes it.
pub(crate) fn copy_current_context(py: Python<'_>) -> PyResult<PyObject> {
    #[cfg(feature = "abi3")]
    {
        py.import_bound(pyo3::intern!(py, "contextvars"))?
            .call_method0(pyo3::intern!(py, "copy_context"))
            .map(Bound::unbind)
    }
    #[cfg(not(feature = "abi3"))]
    {
        // SAFETY: the GIL is held; a new reference, or NULL with an error set.
        unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyContext_CopyCurrent()) }.map(Bound::unbind)
    }
}

/// Sends `err` to the loop's exception handler, unless it must propagate (not an `Exception`).
pub(crate) fn report(
    py: Python<'_>,
    owner: Option<&PyObject>,
    err: PyErr,
    handle: &Bound<'_, PyAny>,
    message: &str,
) -> Ran {
    if !err.is_instance_of::<pyo3::exceptions::PyException>(py) {
        return Ran::Escaped(err);
    }
    let Some(owner) = owner else {
        err.restore(py);
        // SAFETY: called with the GIL held and an error set just above.
        unsafe { ffi::PyErr_WriteUnraisable(handle.as_ptr()) };
        return Ran::Ok;
    };
    let context = PyDict::new_bound(py);
    let text = match handle.repr() {
        Ok(r) => format!("{message} {r}"),
        Err(_) => message.to_string(),
    };
    let filled = context
        .set_item("message", text)
        .and_then(|_| context.set_item("exception", err.value_bound(py)))
        .and_then(|_| context.set_item("handle", handle));
    if let Err(e) = filled {
        return Ran::Escaped(e);
    }
    match owner.call_method1(py, "call_exception_handler", (context,)) {
        Ok(_) => Ran::Ok,
        Err(e) if e.is_instance_of::<pyo3::exceptions::PyException>(py) => {
            e.restore(py);
            // SAFETY: the GIL is held and an error was set just above.
            unsafe { ffi::PyErr_WriteUnraisable(handle.as_ptr()) };
            Ran::Ok
        }
        Err(e) => Ran::Escaped(e),
    }
}

fn callback_repr(py: Python<'_>, callback: &PyObject, args: &Py<PyTuple>) -> String {
    let name = callback
        .bind(py)
        .getattr("__qualname__")
        .and_then(|n| n.extract::<String>())
        .or_else(|_| callback.bind(py).repr().map(|r| r.to_string()))
        .unwrap_or_else(|_| "<callback>".into());
    let args = args.bind(py);
    if args.is_empty() {
        format!("{name}()")
    } else {
        let parts: Vec<String> = args
            .iter()
            .map(|a| a.repr().map(|r| r.to_string()).unwrap_or_else(|_| "?".into()))
            .collect();
        format!("{name}({})", parts.join(", "))
    }
}

impl Handle {
    fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.callback)?;
        visit.call(&self.args)?;
        if let Some(c) = &self.context {
            visit.call(c)?;
        }
        if let Some(o) = &self.owner {
            visit.call(o)?;
        }
        Ok(())
    }
}

#[pymethods]
impl Handle {
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        self.traverse(&visit)
    }

    /// Prevents the callback from running (if it has not run yet).
    fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
    }

    fn cancelled(&self) -> bool {
        self.is_cancelled()
    }

    fn get_context(&self, py: Python<'_>) -> PyObject {
        self.context
            .as_ref()
            .map_or_else(|| py.None(), |c| c.clone_ref(py))
    }

    #[getter]
    fn _callback(&self, py: Python<'_>) -> PyObject {
        self.callback.clone_ref(py)
    }

    #[getter]
    fn _args(&self, py: Python<'_>) -> Py<PyTuple> {
        self.args.clone_ref(py)
    }

    #[getter]
    fn _cancelled(&self) -> bool {
        self.is_cancelled()
    }

    /// Runs the callback now (asyncio's private `Handle._run`, used by some libraries).
    fn _run(slf: &Bound<'_, Handle>) -> PyResult<()> {
        match Handle::run(slf) {
            Ran::Ok => Ok(()),
            Ran::Escaped(e) => Err(e),
        }
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let state = if self.is_cancelled() { "cancelled " } else { "" };
        format!(
            "<Handle {state}{}>",
            callback_repr(py, &self.callback, &self.args)
        )
    }
}

/// A callback scheduled by `call_later`/`call_at`: asyncio's `TimerHandle`. Cancelling it frees
/// its timer at once.
#[pyclass(frozen, weakref, module = "evloop._evloop")]
pub struct TimerHandle {
    pub(crate) handle: Handle,
    pub(crate) when: f64,
    /// The core timer while it is scheduled.
    pub(crate) timer: Mutex<Option<evloop::Timer>>,
    pub(crate) core: Py<Core>,
}

impl TimerHandle {
    pub(crate) fn run(slf: &Bound<'_, TimerHandle>) -> Ran {
        let py = slf.py();
        let h = &slf.get().handle;
        match call_in_context(py, h.context.as_ref(), h.callback.bind(py), h.args.bind(py)) {
            Ok(()) => Ran::Ok,
            Err(err) => report(py, h.owner.as_ref(), err, slf.as_any(), "Exception in callback"),
        }
    }

    /// The timer fired: it is gone from the core.
    pub(crate) fn fired(&self) {
        *self.timer.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

#[pymethods]
impl TimerHandle {
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        self.handle.traverse(&visit)?;
        visit.call(&self.core)
    }

    fn cancel(&self, py: Python<'_>) -> PyResult<()> {
        if self.handle.cancelled.swap(true, Ordering::Relaxed) {
            return Ok(());
        }
        let core = self.core.bind(py).get();
        if core.is_closed() || core.check_thread().is_err() {
            // A closed loop dropped its timers already. On another thread (as asyncio allows)
            // the flag is enough: the timer fires on the loop's thread and the callback is
            // skipped; it is freed then instead of now.
            return Ok(());
        }
        let timer = self.timer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(timer) = timer {
            core.cancel_timer(timer)?;
        }
        Ok(())
    }

    fn cancelled(&self) -> bool {
        self.handle.is_cancelled()
    }

    /// Run on the loop's thread for a timer scheduled from another one (`Core::call_at`): it
    /// starts the core timer unless the handle was cancelled meanwhile.
    fn _arm(slf: &Bound<'_, TimerHandle>) -> PyResult<()> {
        if slf.get().handle.is_cancelled() {
            return Ok(());
        }
        Core::arm_timer(slf.get().core.bind(slf.py()), &slf.clone().unbind())
    }

    fn when(&self) -> f64 {
        self.when
    }

    fn get_context(&self, py: Python<'_>) -> PyObject {
        self.handle.get_context(py)
    }

    #[getter]
    fn _callback(&self, py: Python<'_>) -> PyObject {
        self.handle.callback.clone_ref(py)
    }

    #[getter]
    fn _args(&self, py: Python<'_>) -> Py<PyTuple> {
        self.handle.args.clone_ref(py)
    }

    #[getter]
    fn _cancelled(&self) -> bool {
        self.handle.is_cancelled()
    }

    #[getter]
    fn _when(&self) -> f64 {
        self.when
    }

    fn _run(slf: &Bound<'_, TimerHandle>) -> PyResult<()> {
        match TimerHandle::run(slf) {
            Ran::Ok => Ok(()),
            Ran::Escaped(e) => Err(e),
        }
    }

    fn __lt__(&self, other: &TimerHandle) -> bool {
        self.when < other.when
    }

    fn __le__(&self, other: &TimerHandle) -> bool {
        self.when <= other.when
    }

    fn __gt__(&self, other: &TimerHandle) -> bool {
        self.when > other.when
    }

    fn __ge__(&self, other: &TimerHandle) -> bool {
        self.when >= other.when
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let state = if self.handle.is_cancelled() {
            "cancelled "
        } else {
            ""
        };
        format!(
            "<TimerHandle {state}when={} {}>",
            self.when,
            callback_repr(py, &self.handle.callback, &self.handle.args)
        )
    }
}

pub(crate) fn foreign_thread() -> PyErr {
    PyRuntimeError::new_err("Non-thread-safe operation invoked on an event loop other than the current one")
}
