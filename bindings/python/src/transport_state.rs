//! What every native transport keeps of asyncio's transport life cycle (made → closing → torn
//! down → connection lost), its protocol and its flow-control state: the stream and datagram
//! transports embed one each and differ only in the core handle they drive.

use crate::core_loop::Core;
#[cfg(feature = "abi3")]
use crate::handle::run_in_context;
#[cfg(not(feature = "abi3"))]
use crate::handle::within_context;
use crate::handle::{report, Ran};
use crate::transport::{release_fd, report_transport_error, write_buffer_limits, DEFAULT_HIGH_WATER};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple};
use pyo3::{PyTraverseError, PyVisit};
use std::cell::{Cell, RefCell};

pub(crate) struct TransportState {
    /// The loop (a `Core` subclass instance).
    pub(crate) core: Py<Core>,
    pub(crate) protocol: RefCell<PyObject>,
    /// A copy of the context the transport was made in: its protocol's callbacks run in it, as
    /// in asyncio (whose reader handle copies the context of the transport's creation), so
    /// what a program set in a context variable before `create_connection`, `create_server`
    /// or `subprocess_exec` reaches `data_received` and the rest.
    /// Let go with the protocol, after `connection_lost`.
    context: RefCell<Option<PyObject>>,
    /// A protocol callback of this transport is running in `context`: one it causes (a write
    /// that pauses the protocol, say) runs there directly, since a context is entered once.
    in_context: Cell<bool>,
    /// The Python socket the transport was made from, if it is kept: detached (not closed) when
    /// the core closes the fd, so the fd is closed once.
    pub(crate) sock: RefCell<Option<PyObject>>,
    pub(crate) fd: i32,
    /// `connection_made` was called.
    pub(crate) made: Cell<bool>,
    pub(crate) closing: Cell<bool>,
    /// Writes attempted after the transport closed (asyncio warns from the fifth on).
    pub(crate) conn_lost: Cell<u32>,
    /// The core handle is closing: `connection_lost` is scheduled.
    pub(crate) torn_down: Cell<bool>,
    pub(crate) lost_exc: RefCell<Option<PyObject>>,
    pub(crate) paused_reading: Cell<bool>,
    pub(crate) protocol_paused: Cell<bool>,
    pub(crate) high: Cell<usize>,
    pub(crate) low: Cell<usize>,
}

impl TransportState {
    /// `context`: `handle::copy_current_context` where the transport is made.
    pub(crate) fn new(
        core: Py<Core>,
        protocol: PyObject,
        context: PyObject,
        sock: Option<PyObject>,
        fd: i32,
    ) -> TransportState {
        TransportState {
            core,
            protocol: RefCell::new(protocol),
            context: RefCell::new(Some(context)),
            in_context: Cell::new(false),
            sock: RefCell::new(sock),
            fd,
            made: Cell::new(false),
            closing: Cell::new(false),
            conn_lost: Cell::new(0),
            torn_down: Cell::new(false),
            lost_exc: RefCell::new(None),
            paused_reading: Cell::new(false),
            protocol_paused: Cell::new(false),
            high: Cell::new(DEFAULT_HIGH_WATER),
            low: Cell::new(DEFAULT_HIGH_WATER / 4),
        }
    }

    pub(crate) fn protocol(&self, py: Python<'_>) -> PyObject {
        self.protocol.borrow().clone_ref(py)
    }

    /// `protocol.name(*args)`, in the transport's context, with its result.
    pub(crate) fn call_protocol(
        &self,
        py: Python<'_>,
        name: &Bound<'_, PyString>,
        args: impl IntoPy<Py<PyTuple>>,
    ) -> PyResult<PyObject> {
        let protocol = self.protocol(py);
        // Cloned, not borrowed across the call: the callback may end the transport, which lets
        // the context go.
        let context = match self.in_context.get() {
            true => None,
            false => self.context.borrow().as_ref().map(|c| c.clone_ref(py)),
        };
        let Some(context) = context else {
            return protocol.call_method1(py, name, args);
        };
        self.in_context.set(true);
        #[cfg(not(feature = "abi3"))]
        let result = within_context(py, &context, || protocol.call_method1(py, name, args));
        #[cfg(feature = "abi3")]
        let result = protocol
            .bind(py)
            .getattr(name)
            .and_then(|method| run_in_context(py, &context, &method, &args.into_py(py).into_bound(py)));
        self.in_context.set(false);
        result
    }

    /// `f()` in the transport's context, as `call_protocol` runs a protocol method: for a
    /// protocol implemented here, called without going through Python.
    #[cfg(not(feature = "abi3"))]
    pub(crate) fn within_protocol_context<R>(
        &self,
        py: Python<'_>,
        f: impl FnOnce() -> PyResult<R>,
    ) -> PyResult<R> {
        let context = match self.in_context.get() {
            true => None,
            false => self.context.borrow().as_ref().map(|c| c.clone_ref(py)),
        };
        let Some(context) = context else {
            return f();
        };
        self.in_context.set(true);
        let result = within_context(py, &context, f);
        self.in_context.set(false);
        result
    }

    /// Replaces the protocol; the old one is dropped after the cell is released (its finalizer
    /// may call back).
    pub(crate) fn set_protocol(&self, protocol: PyObject) {
        let old = self.protocol.replace(protocol);
        drop(old);
    }

    /// The first step of an abort: false if the transport is torn down already; otherwise it is
    /// closing, and `exc` is what `connection_lost` will get.
    pub(crate) fn begin_force_close(&self, exc: Option<PyObject>) -> bool {
        if self.torn_down.get() {
            return false;
        }
        self.closing.set(true);
        let old = self.lost_exc.replace(exc);
        drop(old);
        true
    }

    /// Marks the transport torn down (false if it already was) and lets its fd and Python
    /// socket go, before the core closes the fd.
    pub(crate) fn tear_down(&self) -> bool {
        if self.torn_down.replace(true) {
            return false;
        }
        let sock = self.sock.borrow_mut().take();
        release_fd(self.core.get(), self.fd, sock);
        true
    }

    /// What `get_write_buffer_size` reports: the core's queue while the stream is open, and
    /// nothing once the transport is torn down. Closing the stream drops what was queued (as
    /// asyncio clears its buffer when it closes), even while a send the kernel still holds has
    /// yet to come back.
    pub(crate) fn write_buffer_size(&self, stream: evloop::Stream, lp: &evloop::Loop) -> usize {
        if self.torn_down.get() {
            0
        } else {
            stream.write_queue_size(lp)
        }
    }

    /// Schedules the transport's `_call_connection_lost` on the ready queue, as asyncio does
    /// (at the latest in the iteration that is running, whatever the core still has to finish
    /// for the close), or, if the loop is closed and schedules nothing, calls it now.
    pub(crate) fn schedule_connection_lost(&self, transport: &Bound<'_, PyAny>) {
        let py = transport.py();
        let Ok(lost) = transport.getattr(intern!(py, "_call_connection_lost")) else {
            return;
        };
        // `connection_lost` runs in the context the close came from, as in asyncio: a program's
        // `close()` or `abort()` its caller's, and an end the kernel reported (met while the
        // loop polls, outside any callback of this transport) the transport's own, as asyncio
        // meets it in a reader callback running there.
        let from_the_kernel = self.core.bind(py).get().state.running.get() && !self.in_context.get();
        let context = self.context.borrow().as_ref().map(|c| c.clone_ref(py));
        let kwargs = PyDict::new_bound(py);
        if let (true, Some(context)) = (from_the_kernel, context) {
            let _ = kwargs.set_item(intern!(py, "context"), context);
        }
        let scheduled =
            self.core
                .bind(py)
                .call_method(intern!(py, "call_soon"), (lost.clone(),), Some(&kwargs));
        if scheduled.is_err() {
            if let Err(e) = lost.call0() {
                self.report_callback_error(transport, e);
            }
        }
    }

    /// What `connection_lost` gets, taken once.
    pub(crate) fn take_lost_exc(&self, py: Python<'_>) -> PyObject {
        self.lost_exc.borrow_mut().take().unwrap_or_else(|| py.None())
    }

    /// As asyncio does: a transport lets go of its protocol once the connection is lost, so
    /// the two do not keep each other alive.
    pub(crate) fn drop_protocol(&self, py: Python<'_>) {
        self.set_protocol(py.None());
        let context = self.context.borrow_mut().take();
        drop(context);
    }

    pub(crate) fn set_limits(&self, high: Option<i64>, low: Option<i64>) -> PyResult<()> {
        let (high, low) = write_buffer_limits(high, low)?;
        self.high.set(high);
        self.low.set(low);
        Ok(())
    }

    pub(crate) fn limits(&self) -> (usize, usize) {
        (self.low.get(), self.high.get())
    }

    /// `queued` bytes wait: whether the protocol must be told to pause writing now (it is then
    /// marked paused).
    pub(crate) fn should_pause(&self, queued: usize) -> bool {
        if queued <= self.high.get() || self.protocol_paused.get() {
            return false;
        }
        self.protocol_paused.set(true);
        true
    }

    /// Whether a paused protocol must be told to resume now that `queued` bytes wait (it is
    /// then marked resumed).
    pub(crate) fn should_resume(&self, queued: usize) -> bool {
        if !self.protocol_paused.get() || queued > self.low.get() {
            return false;
        }
        self.protocol_paused.set(false);
        true
    }

    /// Reports an exception that a protocol method called by the transport raised, as asyncio
    /// reports one escaping a callback ("Exception in callback"); a `BaseException` that is not
    /// an `Exception` stops the loop.
    pub(crate) fn report_callback_error(&self, transport: &Bound<'_, PyAny>, err: PyErr) {
        let py = transport.py();
        let owner = self.core.clone_ref(py).into_any();
        if let Ran::Escaped(e) = report(py, Some(&owner), err, transport, "Exception in callback") {
            self.core.bind(py).get().state.escape(e);
        }
    }

    /// The protocol's `connection_lost(exc)`, with the exception the close recorded, if
    /// `connection_made` was called.
    pub(crate) fn notify_connection_lost(&self, transport: &Bound<'_, PyAny>) {
        let py = transport.py();
        let exc = self.take_lost_exc(py);
        if self.made.get() {
            // In the context its handle was scheduled with (see `schedule_connection_lost`).
            let protocol = self.protocol(py);
            if let Err(e) = protocol.call_method1(py, intern!(py, "connection_lost"), (exc,)) {
                self.report_callback_error(transport, e);
            }
        }
    }

    /// asyncio's `_maybe_pause_protocol`: with `queued` bytes waiting above the high-water mark,
    /// tells the protocol to pause writing (once); a failure goes to the exception handler.
    /// Returns whether it paused the protocol now.
    pub(crate) fn pause_protocol_if_needed(&self, transport: &Bound<'_, PyAny>, queued: usize) -> bool {
        if !self.should_pause(queued) {
            return false;
        }
        self.tell_protocol(transport, intern!(transport.py(), "pause_writing"));
        true
    }

    /// asyncio's `_maybe_resume_protocol`: with `queued` bytes left at or below the low-water
    /// mark, tells a paused protocol to resume writing.
    pub(crate) fn resume_protocol_if_needed(&self, transport: &Bound<'_, PyAny>, queued: usize) {
        if self.should_resume(queued) {
            self.tell_protocol(transport, intern!(transport.py(), "resume_writing"));
        }
    }

    /// Calls the protocol's flow-control method `name`; a failure goes to the loop's exception
    /// handler as "protocol.NAME() failed", as asyncio reports it.
    fn tell_protocol(&self, transport: &Bound<'_, PyAny>, name: &Bound<'_, PyString>) {
        let py = transport.py();
        if let Err(e) = self.call_protocol(py, name, ()) {
            let protocol = self.protocol(py);
            let message = format!("protocol.{name}() failed");
            report_transport_error(py, &self.core, transport, &protocol, e, &message);
        }
    }

    /// `pause_reading`: whether the core must stop reading now.
    pub(crate) fn pause_reading(&self) -> bool {
        if self.closing.get() || self.paused_reading.get() {
            return false;
        }
        self.paused_reading.set(true);
        self.made.get()
    }

    /// `resume_reading`: whether the core must start reading again now.
    pub(crate) fn resume_reading(&self) -> bool {
        if self.closing.get() || !self.paused_reading.get() {
            return false;
        }
        self.paused_reading.set(false);
        self.made.get()
    }

    pub(crate) fn is_reading(&self) -> bool {
        !self.paused_reading.get() && !self.closing.get()
    }

    pub(crate) fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.core)?;
        if let Ok(p) = self.protocol.try_borrow() {
            visit.call(&*p)?;
        }
        for cell in [&self.sock, &self.lost_exc, &self.context] {
            if let Ok(obj) = cell.try_borrow() {
                if let Some(obj) = obj.as_ref() {
                    visit.call(obj)?;
                }
            }
        }
        Ok(())
    }
}

/// asyncio's `get_extra_info(name, default)` over a transport's `extra` dict.
pub(crate) fn extra_info(
    py: Python<'_>,
    extra: &Py<PyDict>,
    name: &Bound<'_, PyAny>,
    default: Option<PyObject>,
) -> PyResult<PyObject> {
    match extra.bind(py).get_item(name)? {
        Some(v) => Ok(v.unbind()),
        None => Ok(default.unwrap_or_else(|| py.None())),
    }
}
