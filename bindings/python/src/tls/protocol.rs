//! `TlsProtocol`: the protocol a raw stream transport feeds when a connection speaks TLS. It
//! follows asyncio's `sslproto.SSLProtocol` state for state (UNWRAPPED → DO_HANDSHAKE →
//! WRAPPED → FLUSHING → SHUTDOWN), with the same callbacks to the application, the same flow
//! control on both sides and the same errors, so programs see asyncio's behaviour.
//!
//! What differs is the cost of a record: evloop's stream transport hands each read here as a
//! slice (no 256 KiB receive buffer per connection, no `get_buffer`/`buffer_updated` calls),
//! the decrypting reads are sized to what the BIO holds (uvloop and asyncio allocate 256 KiB
//! per read) and stop without a failing read when nothing is left, and records go to the
//! stream transport's writer without a Python call.

use super::app_transport::TlsTransport;
use super::{flow_control_limits, names};
use crate::transport::{is_buffered, StreamTransport};
use pyo3::exceptions::{PyAssertionError, PyConnectionAbortedError, PyConnectionResetError, PyRuntimeError};
use pyo3::exceptions::{PyException, PyKeyboardInterrupt, PyOSError, PySystemExit};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyList, PyMemoryView};
use pyo3::{PyTraverseError, PyVisit};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;

/// asyncio's `SSLProtocol.max_size`: the most one decrypting read asks for.
const MAX_READ: usize = 256 * 1024;

/// Writes of the application joined into one record when `writelines` gives several small
/// pieces (each `SSLObject.write` makes at least one record).
const JOIN_BELOW: usize = 16 * 1024;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum State {
    Unwrapped,
    DoHandshake,
    Wrapped,
    Flushing,
    Shutdown,
}

impl State {
    fn name(self) -> &'static str {
        match self {
            State::Unwrapped => "SSLProtocolState.UNWRAPPED",
            State::DoHandshake => "SSLProtocolState.DO_HANDSHAKE",
            State::Wrapped => "SSLProtocolState.WRAPPED",
            State::Flushing => "SSLProtocolState.FLUSHING",
            State::Shutdown => "SSLProtocolState.SHUTDOWN",
        }
    }

    /// asyncio's allowed transitions: forward one step, or back to UNWRAPPED from anywhere.
    fn may_become(self, next: State) -> bool {
        matches!(
            (self, next),
            (_, State::Unwrapped)
                | (State::Unwrapped, State::DoHandshake)
                | (State::DoHandshake, State::Wrapped)
                | (State::Wrapped, State::Flushing)
                | (State::Flushing, State::Shutdown)
        )
    }
}

/// Where the application protocol is in its own life cycle: `connection_made`, then data and
/// at most one `eof_received`, then `connection_lost`, each once.
#[derive(Clone, Copy, PartialEq, Eq)]
enum AppState {
    Init,
    Made,
    Eof,
    Lost,
}

#[pyclass(frozen, weakref, module = "evloop._evloop")]
pub struct TlsProtocol {
    /// The event loop.
    lp: PyObject,
    sslcontext: PyObject,
    extra: Py<PyDict>,
    incoming: PyObject,
    outgoing: PyObject,
    /// The `ssl.SSLObject` (what `get_extra_info('ssl_object')` gives).
    sslobj: PyObject,
    /// What reads, writes and the handshake call: the `_ssl` object inside a stock
    /// `SSLObject` (whose methods are Python functions that only forward to it), or the
    /// `SSLObject` itself when the context's `sslobject_class` is the user's own.
    engine: PyObject,
    /// `engine` is the `_ssl` object (its unwrap is called `shutdown`).
    engine_is_inner: bool,
    handshake_timeout: f64,
    shutdown_timeout: f64,
    state: Cell<State>,
    app_state: Cell<AppState>,
    app_protocol: RefCell<Option<PyObject>>,
    app_buffered: Cell<bool>,
    app_transport: RefCell<Option<Py<TlsTransport>>>,
    app_transport_created: Cell<bool>,
    /// The raw transport, and the same object typed when it is evloop's stream transport.
    transport: RefCell<Option<PyObject>>,
    stream: RefCell<Option<Py<StreamTransport>>>,
    waiter: RefCell<Option<PyObject>>,
    /// Application data not yet taken by `SSLObject.write` (a renegotiation or the handshake
    /// holds it), and its size.
    backlog: RefCell<VecDeque<PyObject>>,
    backlog_size: Cell<usize>,
    conn_lost: Cell<u32>,
    /// The raw transport asked us to stop writing.
    ssl_writing_paused: Cell<bool>,
    app_reading_paused: Cell<bool>,
    /// We asked the raw transport to stop reading: the incoming BIO is over its high mark.
    ssl_reading_paused: Cell<bool>,
    eof_received: Cell<bool>,
    app_writing_paused: Cell<bool>,
    incoming_high: Cell<usize>,
    incoming_low: Cell<usize>,
    outgoing_high: Cell<usize>,
    outgoing_low: Cell<usize>,
    handshake_timer: RefCell<Option<PyObject>>,
    shutdown_timer: RefCell<Option<PyObject>>,
    handshake_started: Cell<Option<f64>>,
    /// For raw transports that call `get_buffer`/`buffer_updated` (not evloop's own): made on
    /// first use.
    receive_buffer: RefCell<Option<Py<PyByteArray>>>,
}

// SAFETY: used only on the loop's thread with the GIL held (the loop refuses other threads);
// pyo3 requires Send + Sync of frozen classes.
unsafe impl Send for TlsProtocol {}
// SAFETY: as above.
unsafe impl Sync for TlsProtocol {}

/// Takes a value out of a cell and drops it after the borrow ends (dropping a Python object may
/// run code that comes back here).
fn take<T>(cell: &RefCell<Option<T>>) -> Option<T> {
    cell.borrow_mut().take()
}

fn cloned(py: Python<'_>, cell: &RefCell<Option<PyObject>>) -> Option<PyObject> {
    cell.borrow().as_ref().map(|o| o.clone_ref(py))
}

#[cfg(not(feature = "abi3"))]
/// A read-only memoryview of `data`, released (so it can never outlive `data`) after `f`.
fn with_view<R>(
    py: Python<'_>,
    data: &[u8],
    f: impl FnOnce(&Bound<'_, PyAny>) -> PyResult<R>,
) -> PyResult<R> {
    // SAFETY: PyMemoryView_FromMemory makes a view of `data.len()` bytes at `data`, read-only
    // (PyBUF_READ); the view is released below before `data` can go, and `f` only passes it to
    // `MemoryBIO.write`, which copies. A NULL result has a Python error set.
    let view = unsafe {
        Bound::from_owned_ptr_or_err(
            py,
            pyo3::ffi::PyMemoryView_FromMemory(
                data.as_ptr() as *mut _,
                data.len() as _,
                pyo3::ffi::PyBUF_READ,
            ),
        )
    }?;
    let r = f(&view);
    // Someone kept the view (MemoryBIO.write does not): release it, so it cannot reach `data`.
    // SAFETY: reading the reference count of a live object.
    if unsafe { pyo3::ffi::Py_REFCNT(view.as_ptr()) } > 1 {
        let released = view.call_method0(intern!(py, "release"));
        return r.and_then(|v| released.map(|_| v));
    }
    r
}

impl TlsProtocol {
    fn is_again(&self, py: Python<'_>, err: &PyErr) -> bool {
        names(py).is_ok_and(|n| err.is_instance_bound(py, n.again.bind(py)))
    }

    fn is_ssl_error(py: Python<'_>, err: &PyErr) -> bool {
        names(py).is_ok_and(|n| err.is_instance_bound(py, n.ssl_error.bind(py)))
    }

    fn set_state(&self, next: State) -> PyResult<()> {
        let now = self.state.get();
        if !now.may_become(next) {
            return Err(PyRuntimeError::new_err(format!(
                "cannot switch state from {} to {}",
                now.name(),
                next.name()
            )));
        }
        self.state.set(next);
        Ok(())
    }

    fn debug(&self, py: Python<'_>) -> bool {
        self.lp
            .call_method0(py, intern!(py, "get_debug"))
            .and_then(|d| d.is_truthy(py))
            .unwrap_or(false)
    }

    fn log(&self, py: Python<'_>, level: &str, message: String) {
        if let Ok(n) = names(py) {
            let _ = n.logger.call_method1(py, level, (message,));
        }
    }

    fn app_protocol(&self, py: Python<'_>) -> Option<PyObject> {
        cloned(py, &self.app_protocol)
    }

    fn call_app(
        &self,
        py: Python<'_>,
        name: &Bound<'_, pyo3::types::PyString>,
        args: impl IntoPy<Py<pyo3::types::PyTuple>>,
    ) -> PyResult<PyObject> {
        match self.app_protocol(py) {
            Some(p) => p.call_method1(py, name, args),
            None => Err(PyRuntimeError::new_err(
                "the SSL protocol has no application protocol",
            )),
        }
    }

    pub(crate) fn set_app_protocol(&self, py: Python<'_>, protocol: PyObject) -> PyResult<()> {
        let buffered =
            is_buffered(py, protocol.bind(py))? && protocol.bind(py).hasattr(intern!(py, "get_buffer"))?;
        self.app_buffered.set(buffered);
        let old = self.app_protocol.replace(Some(protocol));
        drop(old);
        Ok(())
    }

    fn wakeup_waiter(&self, py: Python<'_>, exc: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let Some(waiter) = take(&self.waiter) else {
            return Ok(());
        };
        let w = waiter.bind(py);
        if !w.call_method0(intern!(py, "cancelled"))?.is_truthy()? {
            match exc {
                Some(e) => w.call_method1(intern!(py, "set_exception"), (e,))?,
                None => w.call_method1(intern!(py, "set_result"), (py.None(),))?,
            };
        }
        Ok(())
    }

    pub(crate) fn app_transport_of(slf: &Bound<'_, Self>) -> PyResult<Py<TlsTransport>> {
        let py = slf.py();
        let this = slf.get();
        if let Some(t) = this.app_transport.borrow().as_ref() {
            return Ok(t.clone_ref(py));
        }
        if this.app_transport_created.get() {
            return Err(PyRuntimeError::new_err("Creating _SSLProtocolTransport twice"));
        }
        let t = Py::new(py, TlsTransport::new(this.lp.clone_ref(py), slf.clone().unbind()))?;
        *this.app_transport.borrow_mut() = Some(t.clone_ref(py));
        this.app_transport_created.set(true);
        Ok(t)
    }

    fn mark_app_transport_closed(&self, py: Python<'_>) {
        if let Some(t) = self.app_transport.borrow().as_ref() {
            t.bind(py).get().closed.set(true);
        }
    }

    fn cancel_timer(py: Python<'_>, cell: &RefCell<Option<PyObject>>) {
        if let Some(timer) = take(cell) {
            let _ = timer.call_method0(py, intern!(py, "cancel"));
        }
    }

    fn call_later(
        slf: &Bound<'_, Self>,
        delay: f64,
        method: &Bound<'_, pyo3::types::PyString>,
    ) -> PyResult<PyObject> {
        let py = slf.py();
        let callback = slf.getattr(method)?;
        slf.get()
            .lp
            .call_method1(py, intern!(py, "call_later"), (delay, callback))
    }

    fn call_soon(
        &self,
        py: Python<'_>,
        callback: &Bound<'_, PyAny>,
        args: impl IntoPy<Py<pyo3::types::PyTuple>>,
    ) -> PyResult<()> {
        let mut all = vec![callback.clone().unbind()];
        all.extend(args.into_py(py).bind(py).iter().map(Bound::unbind));
        self.lp
            .call_method1(
                py,
                intern!(py, "call_soon"),
                pyo3::types::PyTuple::new_bound(py, all),
            )
            .map(drop)
    }

    // ---- the raw transport ----

    /// `data` from the raw transport: into the incoming BIO, then on by state.
    #[cfg(not(feature = "abi3"))]
    pub(crate) fn feed(slf: &Bound<'_, Self>, data: &[u8]) -> PyResult<()> {
        let py = slf.py();
        with_view(py, data, |view| {
            slf.get()
                .incoming
                .call_method1(py, intern!(py, "write"), (view,))
                .map(drop)
        })?;
        Self::after_incoming(slf)
    }

    fn after_incoming(slf: &Bound<'_, Self>) -> PyResult<()> {
        match slf.get().state.get() {
            State::DoHandshake => Self::do_handshake(slf),
            State::Wrapped => Self::do_read(slf),
            State::Flushing => Self::do_flush(slf),
            State::Shutdown => Self::do_shutdown(slf),
            State::Unwrapped => Ok(()),
        }
    }

    fn raw_write(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        if let Some(stream) = self.stream.borrow().as_ref().map(|s| s.clone_ref(py)) {
            return StreamTransport::write(stream.bind(py), data);
        }
        match cloned(py, &self.transport) {
            Some(t) => t.call_method1(py, intern!(py, "write"), (data,)).map(drop),
            None => Ok(()),
        }
    }

    /// The raw transport's `_force_close(exc)` (asyncio's transports have it; `abort()` for one
    /// that does not).
    fn raw_force_close(&self, py: Python<'_>, exc: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        if let Some(stream) = self.stream.borrow().as_ref().map(|s| s.clone_ref(py)) {
            StreamTransport::force_close(stream.bind(py), exc.map(|e| e.clone().unbind()));
            return Ok(());
        }
        let Some(t) = cloned(py, &self.transport) else {
            return Ok(());
        };
        let t = t.bind(py);
        if t.hasattr(intern!(py, "_force_close"))? {
            t.call_method1(
                intern!(py, "_force_close"),
                (exc.map_or_else(|| py.None(), |e| e.clone().unbind()),),
            )?;
        } else {
            t.call_method0(intern!(py, "abort"))?;
        }
        Ok(())
    }

    fn raw_call(&self, py: Python<'_>, method: &Bound<'_, pyo3::types::PyString>) -> PyResult<()> {
        match cloned(py, &self.transport) {
            Some(t) => t.call_method0(py, method).map(drop),
            None => Ok(()),
        }
    }

    // ---- handshake ----

    fn start_handshake(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        if this.debug(py) {
            this.log(py, "debug", format!("{} starts SSL handshake", Self::repr(slf)));
            let now: f64 = this.lp.call_method0(py, intern!(py, "time"))?.extract(py)?;
            this.handshake_started.set(Some(now));
        } else {
            this.handshake_started.set(None);
        }
        this.set_state(State::DoHandshake)?;
        let timer = Self::call_later(
            slf,
            this.handshake_timeout,
            intern!(py, "_check_handshake_timeout"),
        )?;
        let old = this.handshake_timer.replace(Some(timer));
        drop(old);
        Self::do_handshake(slf)
    }

    fn do_handshake(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        match this.engine.call_method0(py, intern!(py, "do_handshake")) {
            Ok(_) => Self::on_handshake_complete(slf, None),
            Err(e) if this.is_again(py, &e) => Self::process_outgoing(slf),
            Err(e) if Self::is_ssl_error(py, &e) => Self::on_handshake_complete(slf, Some(e)),
            Err(e) => Err(e),
        }
    }

    fn on_handshake_complete(slf: &Bound<'_, Self>, failure: Option<PyErr>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        Self::cancel_timer(py, &this.handshake_timer);
        let peercert = match failure {
            None => this
                .set_state(State::Wrapped)
                .and_then(|_| this.engine.call_method0(py, intern!(py, "getpeercert"))),
            Some(e) => Err(e),
        };
        let peercert = match peercert {
            Ok(cert) => cert,
            Err(exc) => {
                this.set_state(State::Unwrapped)?;
                let message = if exc.is_instance_bound(py, names(py)?.certificate_error.bind(py)) {
                    "SSL handshake failed on verifying the certificate"
                } else {
                    "SSL handshake failed"
                };
                let value = exc.value_bound(py).clone().into_any();
                Self::fatal_error(slf, exc, message)?;
                return this.wakeup_waiter(py, Some(&value));
            }
        };
        if let Some(started) = this.handshake_started.get() {
            let now: f64 = this.lp.call_method0(py, intern!(py, "time"))?.extract(py)?;
            this.log(
                py,
                "debug",
                format!(
                    "{}: SSL handshake took {:.1} ms",
                    Self::repr(slf),
                    (now - started) * 1e3
                ),
            );
        }
        let extra = this.extra.bind(py);
        let sslobj = this.sslobj.bind(py);
        extra.set_item("peercert", peercert)?;
        extra.set_item("cipher", sslobj.call_method0(intern!(py, "cipher"))?)?;
        extra.set_item("compression", sslobj.call_method0(intern!(py, "compression"))?)?;
        extra.set_item("ssl_object", sslobj)?;
        if this.app_state.get() == AppState::Init {
            this.app_state.set(AppState::Made);
            let transport = Self::app_transport_of(slf)?;
            this.call_app(py, intern!(py, "connection_made"), (transport,))?;
        }
        this.wakeup_waiter(py, None)?;
        Self::do_read(slf)
    }

    // ---- shutdown ----

    pub(crate) fn start_shutdown(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        if matches!(
            this.state.get(),
            State::Flushing | State::Shutdown | State::Unwrapped
        ) {
            return Ok(());
        }
        this.mark_app_transport_closed(py);
        if this.state.get() == State::DoHandshake {
            return Self::abort(slf, None);
        }
        this.set_state(State::Flushing)?;
        let timer = Self::call_later(slf, this.shutdown_timeout, intern!(py, "_check_shutdown_timeout"))?;
        let old = this.shutdown_timer.replace(Some(timer));
        drop(old);
        Self::do_flush(slf)
    }

    fn do_flush(slf: &Bound<'_, Self>) -> PyResult<()> {
        Self::do_read(slf)?;
        slf.get().set_state(State::Shutdown)?;
        Self::do_shutdown(slf)
    }

    fn do_shutdown(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let unwrapped = match this.eof_received.get() {
            true => Ok(()),
            false => {
                let unwrap = match this.engine_is_inner {
                    true => intern!(py, "shutdown"),
                    false => intern!(py, "unwrap"),
                };
                this.engine.call_method0(py, unwrap).map(drop)
            }
        };
        match unwrapped {
            Ok(()) => {
                Self::process_outgoing(slf)?;
                Self::call_eof_received(slf)?;
                Self::on_shutdown_complete(slf, None)
            }
            Err(e) if this.is_again(py, &e) => Self::process_outgoing(slf),
            Err(e) if Self::is_ssl_error(py, &e) => Self::on_shutdown_complete(slf, Some(e)),
            Err(e) => Err(e),
        }
    }

    fn on_shutdown_complete(slf: &Bound<'_, Self>, failure: Option<PyErr>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        Self::cancel_timer(py, &this.shutdown_timer);
        match failure {
            Some(e) => Self::fatal_error(slf, e, "Fatal error on transport"),
            None => match cloned(py, &this.transport) {
                Some(t) => this.call_soon(py, &t.bind(py).getattr(intern!(py, "close"))?, ()),
                None => Ok(()),
            },
        }
    }

    pub(crate) fn abort(slf: &Bound<'_, Self>, exc: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let this = slf.get();
        this.set_state(State::Unwrapped)?;
        this.raw_force_close(slf.py(), exc)
    }

    // ---- outgoing ----

    /// The application's `write(data)`: straight to `SSLObject.write` when nothing waits
    /// before it.
    pub(crate) fn write_one(slf: &Bound<'_, Self>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        if this.state.get() != State::Wrapped || !this.backlog.borrow().is_empty() {
            return Self::write_appdata(slf, vec![data.clone()]);
        }
        let sent = || -> PyResult<()> {
            let len = data.len()?;
            let count: usize = match this.engine.call_method1(py, intern!(py, "write"), (data,)) {
                Ok(n) => n.extract(py)?,
                Err(e) if this.is_again(py, &e) => 0,
                Err(e) => return Err(e),
            };
            if count < len {
                let rest = match count {
                    0 => data.clone(),
                    _ => data.get_item(pyo3::types::PySlice::new_bound(
                        py,
                        count as isize,
                        len as isize,
                        1,
                    ))?,
                };
                this.backlog.borrow_mut().push_back(rest.unbind());
                this.backlog_size.set(this.backlog_size.get() + len - count);
            }
            Self::process_outgoing(slf)
        };
        match sent() {
            Ok(()) => Ok(()),
            Err(e) => Self::fatal_unless_base(slf, e, "Fatal error on SSL protocol"),
        }
    }

    /// The application's `write`/`writelines`.
    pub(crate) fn write_appdata(slf: &Bound<'_, Self>, items: Vec<Bound<'_, PyAny>>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        if matches!(
            this.state.get(),
            State::Flushing | State::Shutdown | State::Unwrapped
        ) {
            if this.conn_lost.get() >= names(py)?.conn_lost_log_threshold {
                this.log(py, "warning", "SSL connection is closed".to_string());
            }
            this.conn_lost.set(this.conn_lost.get() + 1);
            return Ok(());
        }
        let total: usize = items.iter().map(|i| i.len().unwrap_or(0)).sum();
        {
            let mut backlog = this.backlog.borrow_mut();
            if items.len() > 1 && total < JOIN_BELOW {
                // One record for several small pieces rather than one each.
                let joined = PyBytes::new_bound(py, b"")
                    .call_method1(intern!(py, "join"), (PyList::new_bound(py, &items),))?;
                backlog.push_back(joined.unbind());
            } else {
                backlog.extend(items.into_iter().map(Bound::unbind));
            }
        }
        this.backlog_size.set(this.backlog_size.get() + total);
        if this.state.get() == State::Wrapped {
            if let Err(e) = Self::do_write(slf) {
                return Self::fatal_unless_base(slf, e, "Fatal error on SSL protocol");
            }
        }
        Ok(())
    }

    fn do_write(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        loop {
            let Some(data) = this.backlog.borrow().front().map(|d| d.clone_ref(py)) else {
                break;
            };
            let data = data.bind(py);
            let count: usize = match this.engine.call_method1(py, intern!(py, "write"), (data,)) {
                Ok(n) => n.extract(py)?,
                Err(e) if this.is_again(py, &e) => break,
                Err(e) => return Err(e),
            };
            let len = data.len()?;
            if count < len {
                let rest = data.get_item(pyo3::types::PySlice::new_bound(
                    py,
                    count as isize,
                    len as isize,
                    1,
                ))?;
                if let Some(front) = this.backlog.borrow_mut().front_mut() {
                    *front = rest.unbind();
                }
                this.backlog_size
                    .set(this.backlog_size.get().saturating_sub(count));
            } else {
                let done = this.backlog.borrow_mut().pop_front();
                drop(done);
                this.backlog_size.set(this.backlog_size.get().saturating_sub(len));
            }
        }
        Self::process_outgoing(slf)
    }

    fn process_outgoing(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let drained = !this.ssl_writing_paused.get();
        if drained {
            let data = this.outgoing.call_method0(py, intern!(py, "read"))?;
            let data = data.bind(py);
            if data.len()? > 0 {
                this.raw_write(py, data)?;
            }
        }
        Self::control_app_writing_after(slf, drained)
    }

    // ---- incoming ----

    pub(crate) fn do_read(slf: &Bound<'_, Self>) -> PyResult<()> {
        let this = slf.get();
        if !matches!(this.state.get(), State::Wrapped | State::Flushing) {
            return Ok(());
        }
        let step = || -> PyResult<()> {
            if !this.app_reading_paused.get() {
                if this.app_buffered.get() {
                    Self::read_buffered(slf)?;
                } else {
                    Self::read_copied(slf)?;
                }
                if this.backlog.borrow().is_empty() {
                    Self::process_outgoing(slf)?;
                } else {
                    Self::do_write(slf)?;
                }
            }
            Self::control_ssl_reading(slf)
        };
        match step() {
            Ok(()) => Ok(()),
            Err(e) => Self::fatal_unless_base(slf, e, "Fatal error on SSL protocol"),
        }
    }

    pub(crate) fn incoming_pending(&self, py: Python<'_>) -> PyResult<usize> {
        self.incoming.getattr(py, intern!(py, "pending"))?.extract(py)
    }

    /// What the next decrypting read should ask for, or None if it could only raise
    /// SSLWantReadError: the bytes in the incoming BIO (an upper bound of their plaintext), or,
    /// when it is empty but the last read may have stopped inside a record, what OpenSSL
    /// holds decrypted. Reading exactly this much allocates no more than the data (asyncio
    /// and uvloop ask for 256 KiB each time) and saves the failing read that ends their loops.
    fn next_read_size(&self, py: Python<'_>, inside_record: bool) -> PyResult<Option<usize>> {
        let incoming = self.incoming_pending(py)?;
        if incoming > 0 {
            return Ok(Some(incoming.min(MAX_READ)));
        }
        if !inside_record {
            return Ok(None);
        }
        let decrypted: usize = self
            .engine
            .call_method0(py, intern!(py, "pending"))?
            .extract(py)?;
        Ok((decrypted > 0).then_some(decrypted.min(MAX_READ)))
    }

    fn read_copied(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let mut first: Option<Bound<'_, PyAny>> = None;
        let mut more: Vec<Bound<'_, PyAny>> = Vec::new();
        let mut close_notify = false;
        // A read that filled what it asked for may have stopped inside a record (or a
        // buffered read left part of one): OpenSSL can hold decrypted bytes.
        let mut inside_record = true;
        while let Some(want) = this.next_read_size(py, inside_record)? {
            match this.engine.call_method1(py, intern!(py, "read"), (want,)) {
                Ok(chunk) => {
                    let chunk = chunk.into_bound(py);
                    let got = chunk.len()?;
                    if got == 0 {
                        close_notify = true;
                        break;
                    }
                    inside_record = got == want;
                    match first {
                        None => first = Some(chunk),
                        Some(_) => more.push(chunk),
                    }
                }
                Err(e) if this.is_again(py, &e) => break,
                Err(e) => return Err(e),
            }
        }
        if let Some(first) = first {
            let data = match more.is_empty() {
                true => first,
                false => {
                    more.insert(0, first);
                    PyBytes::new_bound(py, b"")
                        .call_method1(intern!(py, "join"), (PyList::new_bound(py, more),))?
                }
            };
            this.call_app(py, intern!(py, "data_received"), (data,))?;
        }
        if close_notify {
            Self::call_eof_received(slf)?;
            Self::start_shutdown(slf)?;
        }
        Ok(())
    }

    fn read_buffered(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let size_hint = this.incoming_pending(py)?;
        let buf = this.call_app(py, intern!(py, "get_buffer"), (size_hint,))?;
        let buf = buf.bind(py);
        let wants = buf.len()?;
        let mut offset = 0;
        let mut close_notify = false;
        let mut inside_record = true;
        loop {
            if offset > 0 && this.next_read_size(py, inside_record)?.is_none() {
                break;
            }
            let read = if offset == 0 {
                this.engine.call_method1(py, intern!(py, "read"), (wants, buf))
            } else {
                let rest = PyMemoryView::from_bound(buf)?.get_item(pyo3::types::PySlice::new_bound(
                    py,
                    offset as isize,
                    wants as isize,
                    1,
                ))?;
                this.engine
                    .call_method1(py, intern!(py, "read"), (wants - offset, rest))
            };
            match read {
                Ok(n) => {
                    let n: usize = n.extract(py)?;
                    if n == 0 {
                        close_notify = true;
                        break;
                    }
                    inside_record = n == wants - offset;
                    offset += n;
                    if offset >= wants {
                        // The application's buffer is full: the rest next time round.
                        this.call_soon(py, &slf.getattr(intern!(py, "_do_read"))?, ())?;
                        break;
                    }
                }
                Err(e) if this.is_again(py, &e) => break,
                Err(e) => return Err(e),
            }
        }
        if offset > 0 {
            this.call_app(py, intern!(py, "buffer_updated"), (offset,))?;
        }
        if close_notify {
            Self::call_eof_received(slf)?;
            Self::start_shutdown(slf)?;
        }
        Ok(())
    }

    fn call_eof_received(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        if this.app_state.get() != AppState::Made {
            return Ok(());
        }
        this.app_state.set(AppState::Eof);
        match this.call_app(py, intern!(py, "eof_received"), ()) {
            Ok(keep_open) => {
                if keep_open.is_truthy(py).unwrap_or(false) {
                    this.log(
                        py,
                        "warning",
                        "returning true from eof_received() has no effect when using ssl".into(),
                    );
                }
                Ok(())
            }
            Err(e) if e.is_instance_of::<PyKeyboardInterrupt>(py) || e.is_instance_of::<PySystemExit>(py) => {
                Err(e)
            }
            Err(e) => Self::fatal_error(slf, e, "Error calling eof_received()"),
        }
    }

    // ---- flow control ----

    pub(crate) fn write_buffer_size(&self, py: Python<'_>) -> PyResult<usize> {
        let pending: usize = self.outgoing.getattr(py, intern!(py, "pending"))?.extract(py)?;
        Ok(pending + self.backlog_size.get())
    }

    pub(crate) fn control_app_writing(slf: &Bound<'_, Self>) -> PyResult<()> {
        Self::control_app_writing_after(slf, false)
    }

    /// Pauses or resumes the application's writing; `drained`: the outgoing BIO was just
    /// emptied, so only the backlog counts (no call to ask the BIO).
    fn control_app_writing_after(slf: &Bound<'_, Self>, drained: bool) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let size = match drained {
            true => this.backlog_size.get(),
            false => this.write_buffer_size(py)?,
        };
        let (name, message) = if size >= this.outgoing_high.get() && !this.app_writing_paused.get() {
            this.app_writing_paused.set(true);
            (intern!(py, "pause_writing"), "protocol.pause_writing() failed")
        } else if size <= this.outgoing_low.get() && this.app_writing_paused.get() {
            this.app_writing_paused.set(false);
            (intern!(py, "resume_writing"), "protocol.resume_writing() failed")
        } else {
            return Ok(());
        };
        match this.call_app(py, name, ()) {
            Ok(_) => Ok(()),
            Err(e) if e.is_instance_of::<PyKeyboardInterrupt>(py) || e.is_instance_of::<PySystemExit>(py) => {
                Err(e)
            }
            Err(e) => {
                let context = PyDict::new_bound(py);
                context.set_item("message", message)?;
                context.set_item("exception", e.value_bound(py))?;
                context.set_item(
                    "transport",
                    this.app_transport.borrow().as_ref().map(|t| t.clone_ref(py)),
                )?;
                context.set_item("protocol", slf)?;
                this.lp
                    .call_method1(py, intern!(py, "call_exception_handler"), (context,))
                    .map(drop)
            }
        }
    }

    pub(crate) fn control_ssl_reading(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let size = this.incoming_pending(py)?;
        if size >= this.incoming_high.get() && !this.ssl_reading_paused.get() {
            this.ssl_reading_paused.set(true);
            this.raw_call(py, intern!(py, "pause_reading"))
        } else if size <= this.incoming_low.get() && this.ssl_reading_paused.get() {
            this.ssl_reading_paused.set(false);
            this.raw_call(py, intern!(py, "resume_reading"))
        } else {
            Ok(())
        }
    }

    // ---- errors ----

    /// `fatal_error` for an `Exception`; a `BaseException` that is not one goes up.
    fn fatal_unless_base(slf: &Bound<'_, Self>, err: PyErr, message: &str) -> PyResult<()> {
        if !err.is_instance_of::<PyException>(slf.py()) {
            return Err(err);
        }
        Self::fatal_error(slf, err, message)
    }

    fn fatal_error(slf: &Bound<'_, Self>, err: PyErr, message: &str) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let exc = err.value_bound(py).clone().into_any();
        let transport = cloned(py, &this.transport);
        if transport.is_some() {
            this.raw_force_close(py, Some(&exc))?;
        }
        if err.is_instance_of::<PyOSError>(py) {
            if this.debug(py) {
                this.log(py, "debug", format!("{}: {}: {}", Self::repr(slf), message, exc));
            }
        } else if !err.is_instance_bound(py, names(py)?.cancelled_error.bind(py)) {
            let context = PyDict::new_bound(py);
            context.set_item("message", message)?;
            context.set_item("exception", &exc)?;
            context.set_item("transport", transport)?;
            context.set_item("protocol", slf)?;
            this.lp
                .call_method1(py, intern!(py, "call_exception_handler"), (context,))?;
        }
        Ok(())
    }

    fn repr(slf: &Bound<'_, Self>) -> String {
        format!("<evloop.TlsProtocol object at {:p}>", slf.as_ptr())
    }

    // ---- for the application transport ----

    pub(crate) fn extra_info(
        &self,
        py: Python<'_>,
        name: &Bound<'_, PyAny>,
        default: PyObject,
    ) -> PyResult<PyObject> {
        if let Some(v) = self.extra.bind(py).get_item(name)? {
            return Ok(v.unbind());
        }
        match cloned(py, &self.transport) {
            Some(t) => t.call_method1(py, intern!(py, "get_extra_info"), (name, default)),
            None => Ok(default),
        }
    }

    pub(crate) fn app_protocol_object(&self, py: Python<'_>) -> PyObject {
        self.app_protocol(py).unwrap_or_else(|| py.None())
    }

    pub(crate) fn app_reading_paused(&self) -> bool {
        self.app_reading_paused.get()
    }

    pub(crate) fn pause_app_reading(&self) {
        self.app_reading_paused.set(true);
    }

    pub(crate) fn resume_app_reading(slf: &Bound<'_, Self>) -> PyResult<()> {
        let this = slf.get();
        if this.app_reading_paused.get() {
            this.app_reading_paused.set(false);
            let py = slf.py();
            this.call_soon(py, &slf.getattr(intern!(py, "_resume"))?, ())?;
        }
        Ok(())
    }

    pub(crate) fn app_writing_paused(&self) -> bool {
        self.app_writing_paused.get()
    }

    pub(crate) fn set_write_limits(
        &self,
        py: Python<'_>,
        high: Option<i64>,
        low: Option<i64>,
    ) -> PyResult<()> {
        let (h, l) = flow_control_limits(high, low, names(py)?.write_high_water_kib)?;
        self.outgoing_high.set(h);
        self.outgoing_low.set(l);
        Ok(())
    }

    pub(crate) fn write_limits(&self) -> (usize, usize) {
        (self.outgoing_low.get(), self.outgoing_high.get())
    }

    pub(crate) fn set_read_limits(
        &self,
        py: Python<'_>,
        high: Option<i64>,
        low: Option<i64>,
    ) -> PyResult<()> {
        let (h, l) = flow_control_limits(high, low, names(py)?.read_high_water_kib)?;
        self.incoming_high.set(h);
        self.incoming_low.set(l);
        Ok(())
    }

    pub(crate) fn read_limits(&self) -> (usize, usize) {
        (self.incoming_low.get(), self.incoming_high.get())
    }

    pub(crate) fn append_backlog(&self, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let len = data.len()?;
        self.backlog.borrow_mut().push_back(data.clone().unbind());
        self.backlog_size.set(self.backlog_size.get() + len);
        Ok(())
    }
}

#[pymethods]
impl TlsProtocol {
    /// asyncio's `SSLProtocol(loop, app_protocol, sslcontext, waiter, server_side,
    /// server_hostname, call_connection_made, ssl_handshake_timeout, ssl_shutdown_timeout)`.
    #[new]
    #[pyo3(signature = (lp, app_protocol, sslcontext, waiter, server_side = false, server_hostname = None,
                        call_connection_made = true, ssl_handshake_timeout = None, ssl_shutdown_timeout = None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        lp: PyObject,
        app_protocol: PyObject,
        sslcontext: Option<PyObject>,
        waiter: Option<PyObject>,
        server_side: bool,
        server_hostname: Option<PyObject>,
        call_connection_made: bool,
        ssl_handshake_timeout: Option<f64>,
        ssl_shutdown_timeout: Option<f64>,
    ) -> PyResult<TlsProtocol> {
        let n = names(py)?;
        let positive = |value: Option<f64>, default: f64, what: &str| match value {
            None => Ok(default),
            Some(v) if v > 0.0 => Ok(v),
            Some(v) => Err(pyo3::exceptions::PyValueError::new_err(format!(
                "{what} should be a positive number, got {v}"
            ))),
        };
        let handshake_timeout = positive(
            ssl_handshake_timeout,
            n.handshake_timeout,
            "ssl_handshake_timeout",
        )?;
        let shutdown_timeout = positive(ssl_shutdown_timeout, n.shutdown_timeout, "ssl_shutdown_timeout")?;
        let server_hostname = server_hostname.filter(|h| !server_side && h.is_truthy(py).unwrap_or(false));
        let sslcontext = match sslcontext.filter(|c| c.is_truthy(py).unwrap_or(false)) {
            Some(c) => c,
            None => n.create_transport_context.call1(
                py,
                (server_side, server_hostname.as_ref().map(|h| h.clone_ref(py))),
            )?,
        };
        let extra = PyDict::new_bound(py);
        extra.set_item("sslcontext", &sslcontext)?;
        let incoming = n.memory_bio.call0(py)?;
        let outgoing = n.memory_bio.call0(py)?;
        let kwargs = PyDict::new_bound(py);
        kwargs.set_item("server_side", server_side)?;
        kwargs.set_item(
            "server_hostname",
            server_hostname.as_ref().map(|h| h.clone_ref(py)),
        )?;
        let sslobj = sslcontext.bind(py).call_method(
            intern!(py, "wrap_bio"),
            (&incoming, &outgoing),
            Some(&kwargs),
        )?;
        let engine_is_inner = sslobj.get_type().is(n.ssl_object.bind(py));
        let engine = match engine_is_inner {
            true => sslobj.getattr(intern!(py, "_sslobj"))?.unbind(),
            false => sslobj.clone().unbind(),
        };
        let sslobj = sslobj.unbind();
        let protocol = TlsProtocol {
            lp,
            sslcontext,
            extra: extra.unbind(),
            incoming,
            outgoing,
            sslobj,
            engine,
            engine_is_inner,
            handshake_timeout,
            shutdown_timeout,
            state: Cell::new(State::Unwrapped),
            app_state: Cell::new(if call_connection_made {
                AppState::Init
            } else {
                AppState::Made
            }),
            app_protocol: RefCell::new(None),
            app_buffered: Cell::new(false),
            app_transport: RefCell::new(None),
            app_transport_created: Cell::new(false),
            transport: RefCell::new(None),
            stream: RefCell::new(None),
            waiter: RefCell::new(waiter),
            backlog: RefCell::new(VecDeque::new()),
            backlog_size: Cell::new(0),
            conn_lost: Cell::new(0),
            ssl_writing_paused: Cell::new(false),
            app_reading_paused: Cell::new(false),
            ssl_reading_paused: Cell::new(false),
            eof_received: Cell::new(false),
            app_writing_paused: Cell::new(false),
            incoming_high: Cell::new(0),
            incoming_low: Cell::new(0),
            outgoing_high: Cell::new(0),
            outgoing_low: Cell::new(0),
            handshake_timer: RefCell::new(None),
            shutdown_timer: RefCell::new(None),
            handshake_started: Cell::new(None),
            receive_buffer: RefCell::new(None),
        };
        protocol.set_app_protocol(py, app_protocol)?;
        protocol.set_read_limits(py, None, None)?;
        protocol.set_write_limits(py, None, None)?;
        Ok(protocol)
    }

    /// The transport the application gets (made with the protocol, as in asyncio).
    #[getter]
    fn _app_transport(slf: &Bound<'_, Self>) -> PyResult<PyObject> {
        let this = slf.get();
        if !this.app_transport_created.get() {
            return Ok(Self::app_transport_of(slf)?.into_any());
        }
        Ok(this
            .app_transport
            .borrow()
            .as_ref()
            .map_or_else(|| slf.py().None(), |t| t.clone_ref(slf.py()).into_any()))
    }

    #[getter]
    fn _sslcontext(&self, py: Python<'_>) -> PyObject {
        self.sslcontext.clone_ref(py)
    }

    fn connection_made(slf: &Bound<'_, Self>, transport: &Bound<'_, PyAny>) -> PyResult<()> {
        let this = slf.get();
        let stream = transport
            .downcast::<StreamTransport>()
            .ok()
            .map(|s| s.clone().unbind());
        let old = this.transport.replace(Some(transport.clone().unbind()));
        drop(old);
        let old = this.stream.replace(stream);
        drop(old);
        Self::start_handshake(slf)
    }

    #[pyo3(signature = (exc = None))]
    fn connection_lost(slf: &Bound<'_, Self>, exc: Option<PyObject>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let backlog = std::mem::take(&mut *this.backlog.borrow_mut());
        drop(backlog);
        this.backlog_size.set(0);
        this.outgoing.call_method0(py, intern!(py, "read"))?;
        this.conn_lost.set(this.conn_lost.get() + 1);
        this.mark_app_transport_closed(py);
        let exc = exc.unwrap_or_else(|| py.None());
        if this.state.get() != State::DoHandshake
            && matches!(this.app_state.get(), AppState::Made | AppState::Eof)
        {
            this.app_state.set(AppState::Lost);
            if let Some(app) = this.app_protocol(py) {
                this.call_soon(
                    py,
                    &app.bind(py).getattr(intern!(py, "connection_lost"))?,
                    (exc.clone_ref(py),),
                )?;
            }
        }
        this.set_state(State::Unwrapped)?;
        let old = (
            take(&this.transport),
            take(&this.stream),
            take(&this.app_transport),
            take(&this.app_protocol),
        );
        drop(old);
        let exc = exc.bind(py);
        this.wakeup_waiter(py, (!exc.is_none()).then_some(exc))?;
        Self::cancel_timer(py, &this.shutdown_timer);
        Self::cancel_timer(py, &this.handshake_timer);
        Ok(())
    }

    /// For raw transports that fill a buffer (asyncio's `BufferedProtocol`); evloop's stream
    /// transport calls `feed` instead.
    fn get_buffer(&self, py: Python<'_>, n: i64) -> PyResult<PyObject> {
        let want = if n <= 0 || n as usize > MAX_READ {
            MAX_READ
        } else {
            n as usize
        };
        let mut cell = self.receive_buffer.borrow_mut();
        let buf = match cell.as_ref() {
            Some(b) if b.bind(py).len() >= want => b.clone_ref(py),
            _ => {
                let b = PyByteArray::new_bound(py, &vec![0u8; want.max(64 * 1024)]).unbind();
                *cell = Some(b.clone_ref(py));
                b
            }
        };
        Ok(PyMemoryView::from_bound(buf.bind(py).as_any())?
            .into_any()
            .unbind())
    }

    fn buffer_updated(slf: &Bound<'_, Self>, nbytes: usize) -> PyResult<()> {
        let py = slf.py();
        let buf = slf
            .get()
            .receive_buffer
            .borrow()
            .as_ref()
            .map(|b| b.clone_ref(py));
        let Some(buf) = buf else {
            return Err(PyRuntimeError::new_err("buffer_updated() without get_buffer()"));
        };
        let view = PyMemoryView::from_bound(buf.bind(py).as_any())?;
        let part = view.get_item(pyo3::types::PySlice::new_bound(py, 0, nbytes as isize, 1))?;
        slf.get()
            .incoming
            .call_method1(py, intern!(py, "write"), (part,))?;
        Self::after_incoming(slf)
    }

    /// The raw transport's `data_received`, for transports that do not fill buffers.
    fn data_received(slf: &Bound<'_, Self>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = slf.py();
        slf.get()
            .incoming
            .call_method1(py, intern!(py, "write"), (data,))?;
        Self::after_incoming(slf)
    }

    fn eof_received(slf: &Bound<'_, Self>) -> PyResult<Option<bool>> {
        let py = slf.py();
        let this = slf.get();
        this.eof_received.set(true);
        let step = || -> PyResult<Option<bool>> {
            if this.debug(py) {
                this.log(py, "debug", format!("{} received EOF", Self::repr(slf)));
            }
            match this.state.get() {
                State::DoHandshake => {
                    Self::on_handshake_complete(slf, Some(PyConnectionResetError::new_err(())))?;
                }
                State::Wrapped => {
                    this.set_state(State::Flushing)?;
                    if this.app_reading_paused.get() {
                        return Ok(Some(true));
                    }
                    Self::do_flush(slf)?;
                }
                State::Flushing => {
                    Self::do_write(slf)?;
                    this.set_state(State::Shutdown)?;
                    Self::do_shutdown(slf)?;
                }
                State::Shutdown => Self::do_shutdown(slf)?,
                State::Unwrapped => {}
            }
            Ok(None)
        };
        match step() {
            Ok(r) => Ok(r),
            Err(e) => {
                if e.is_instance_of::<PyException>(py) {
                    this.raw_call(py, intern!(py, "close"))?;
                }
                Err(e)
            }
        }
    }

    /// The raw transport's buffer went over its high-water mark.
    fn pause_writing(&self) -> PyResult<()> {
        if self.ssl_writing_paused.get() {
            return Err(PyAssertionError::new_err("pause_writing() while paused"));
        }
        self.ssl_writing_paused.set(true);
        Ok(())
    }

    /// The raw transport's buffer drained below its low-water mark.
    fn resume_writing(slf: &Bound<'_, Self>) -> PyResult<()> {
        let this = slf.get();
        if !this.ssl_writing_paused.get() {
            return Err(PyAssertionError::new_err("resume_writing() while not paused"));
        }
        this.ssl_writing_paused.set(false);
        Self::process_outgoing(slf)
    }

    fn _check_handshake_timeout(slf: &Bound<'_, Self>) -> PyResult<()> {
        let this = slf.get();
        if this.state.get() == State::DoHandshake {
            let message = format!(
                "SSL handshake is taking longer than {} seconds: aborting the connection",
                py_float(this.handshake_timeout)
            );
            Self::fatal_error(
                slf,
                PyConnectionAbortedError::new_err(message),
                "Fatal error on transport",
            )?;
        }
        Ok(())
    }

    fn _check_shutdown_timeout(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        if matches!(this.state.get(), State::Flushing | State::Shutdown) {
            let exc = names(py)?.timeout_error.call1(py, ("SSL shutdown timed out",))?;
            this.raw_force_close(py, Some(exc.bind(py)))?;
        }
        Ok(())
    }

    fn _do_read(slf: &Bound<'_, Self>) -> PyResult<()> {
        Self::do_read(slf)
    }

    /// The application resumed reading: what waited goes on, by state.
    fn _resume(slf: &Bound<'_, Self>) -> PyResult<()> {
        match slf.get().state.get() {
            State::Wrapped => Self::do_read(slf),
            State::Flushing => Self::do_flush(slf),
            State::Shutdown => Self::do_shutdown(slf),
            _ => Ok(()),
        }
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.lp)?;
        visit.call(&self.sslcontext)?;
        visit.call(&self.extra)?;
        visit.call(&self.sslobj)?;
        visit.call(&self.engine)?;
        for cell in [
            &self.app_protocol,
            &self.transport,
            &self.waiter,
            &self.handshake_timer,
            &self.shutdown_timer,
        ] {
            if let Ok(obj) = cell.try_borrow() {
                if let Some(obj) = obj.as_ref() {
                    visit.call(obj)?;
                }
            }
        }
        if let Ok(t) = self.app_transport.try_borrow() {
            if let Some(t) = t.as_ref() {
                visit.call(t)?;
            }
        }
        if let Ok(s) = self.stream.try_borrow() {
            if let Some(s) = s.as_ref() {
                visit.call(s)?;
            }
        }
        if let Ok(backlog) = self.backlog.try_borrow() {
            for item in backlog.iter() {
                visit.call(item)?;
            }
        }
        Ok(())
    }

    fn __clear__(&self) {
        let old = (
            take(&self.app_protocol),
            take(&self.transport),
            take(&self.stream),
            take(&self.app_transport),
            take(&self.waiter),
            take(&self.handshake_timer),
            take(&self.shutdown_timer),
        );
        drop(old);
        let backlog = self.backlog.try_borrow_mut().map(|mut b| std::mem::take(&mut *b));
        drop(backlog);
    }

    fn __repr__(slf: &Bound<'_, Self>) -> String {
        Self::repr(slf)
    }
}

/// A float as Python's `str()` writes it (`60.0`, `0.1`).
fn py_float(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e16 {
        format!("{v:.1}")
    } else {
        format!("{v}")
    }
}
