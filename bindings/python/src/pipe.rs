//! `PipeTransport`: asyncio's read and write pipe transports (`connect_read_pipe`,
//! `connect_write_pipe`, and so the pipes of subprocesses) on a core pipe stream. Behaviour
//! follows asyncio's Unix pipe transports: a read pipe closes at EOF after `eof_received`; a
//! write pipe closes when its reader goes away (with `BrokenPipeError` if writes were still
//! queued), and `write_eof`/`close` close it once the queue is sent. The core reads and writes
//! a duplicate of the pipe's fd; the pipe object itself is closed after `connection_lost`, as
//! asyncio closes it.

use crate::core_loop::Core;
use crate::errors::os_error;
use crate::handle::{copy_current_context, report, Ran};
use crate::transport::{
    immutable_bytes, presented_class, report_transport_error, settle_waiter, with_bytes, KeptPyBytes,
    KEEP_MIN,
};
use crate::transport_state::{extra_info, TransportState};
use evloop::{Handle as _, Loop, Read, Stream};
use pyo3::exceptions::{PyBrokenPipeError, PyNotImplementedError, PyOSError, PyRuntimeError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::{PyBytes, PyDict, PyType};
use pyo3::{PyTraverseError, PyVisit};
use std::cell::{Cell, RefCell};

/// The classes read and write pipe transports present as `__class__` (`asyncio.ReadTransport`
/// and `asyncio.WriteTransport` subclasses, registered by the package), for `isinstance`.
static READ_CLASS: GILOnceCell<Py<PyType>> = GILOnceCell::new();
static WRITE_CLASS: GILOnceCell<Py<PyType>> = GILOnceCell::new();

/// Sets the presented classes (once, from the package).
#[pyfunction]
pub(crate) fn _set_pipe_transport_classes(
    py: Python<'_>,
    read: Bound<'_, PyType>,
    write: Bound<'_, PyType>,
) -> PyResult<()> {
    READ_CLASS
        .set(py, read.unbind())
        .and_then(|_| WRITE_CLASS.set(py, write.unbind()))
        .map_err(|_| PyRuntimeError::new_err("the pipe transport classes are already set"))
}

/// A transport over one end of a pipe (or a FIFO, a terminal, a socket used as a pipe). It
/// has a `__dict__`, as asyncio's have: code (CPython's own tests among it) replaces methods of
/// subprocess pipe transports on the instance.
#[pyclass(frozen, weakref, dict, module = "evloop._evloop")]
pub struct PipeTransport {
    t: TransportState,
    stream: Stream,
    /// A write pipe (`connect_write_pipe`); otherwise a read pipe.
    writes: bool,
    /// The backend sends through the ring (io_uring): see `write_bytes`.
    ring_writes: bool,
    /// A write pipe that learns of its reader's departure by reading (FIFOs and sockets, as in
    /// asyncio; a terminal's write end would read the terminal's input).
    watches_reader: bool,
    /// The pipe object given to the loop; closed after `connection_lost`.
    pipe: RefCell<Option<PyObject>>,
    extra: Py<PyDict>,
    /// A write callback waits for the queue to empty (or fail): see `watch_queue`.
    watching_queue: Cell<bool>,
}

// SAFETY: as for `StreamTransport`: every method reaches the loop through `Core::lp`, which
// refuses foreign threads; core callbacks run on the loop thread.
unsafe impl Send for PipeTransport {}
// SAFETY: as above.
unsafe impl Sync for PipeTransport {}

const WRITE_ERROR: &str = "Fatal write error on pipe transport";

impl PipeTransport {
    fn lp(&self) -> PyResult<&mut Loop> {
        self.t.core.get().lp()
    }

    fn start_reading(slf: &Bound<'_, Self>) -> PyResult<()> {
        let this = slf.get();
        let me = slf.clone().unbind();
        this.stream
            .read_start(this.lp()?, move |_, _, read| {
                Python::with_gil(|py| {
                    let tr = me.bind(py);
                    if tr.get().writes {
                        PipeTransport::on_reader_gone(tr);
                    } else {
                        PipeTransport::on_read(tr, read);
                    }
                });
            })
            .map_err(os_error)
    }

    /// A callback that raised: the loop's exception handler hears of it, as asyncio reports an
    /// exception escaping a reader callback; the transport goes on.
    fn report_callback_error(slf: &Bound<'_, Self>, err: PyErr) {
        slf.get().t.report_callback_error(slf.as_any(), err);
    }

    fn on_read(slf: &Bound<'_, Self>, read: Read<'_>) {
        let py = slf.py();
        let this = slf.get();
        match read {
            Read::Data(data) => {
                let bytes = PyBytes::new_bound(py, data);
                if let Err(e) = this.t.call_protocol(py, intern!(py, "data_received"), (bytes,)) {
                    Self::report_callback_error(slf, e);
                }
            }
            Read::Eof => {
                this.t.closing.set(true);
                if let Err(e) = this.t.call_protocol(py, intern!(py, "eof_received"), ()) {
                    Self::report_callback_error(slf, e);
                }
                Self::close_stream(slf);
            }
            // EIO is how a terminal's read end learns that the other side closed: not worth
            // the exception handler (asyncio logs it in debug mode only).
            Read::Error(e) if e.errno() == libc::EIO => Self::force_close(slf, Some(os_error(e))),
            Read::Error(e) => Self::fatal_error(slf, os_error(e), "Fatal read error on pipe transport"),
        }
    }

    /// The write end polled readable: the reader went away (or, for a socket, the peer sent
    /// something, which asyncio treats the same way).
    fn on_reader_gone(slf: &Bound<'_, Self>) {
        let this = slf.get();
        let queued = this.lp().map_or(0, |lp| this.stream.write_queue_size(lp));
        let exc = (queued > 0).then(|| PyBrokenPipeError::new_err(()));
        Self::force_close(slf, exc);
    }

    /// asyncio's `_fatal_error` for pipes: OSErrors of a write are the reader's doing and not
    /// reported; other errors go to the exception handler. Then the transport closes.
    fn fatal_error(slf: &Bound<'_, Self>, err: PyErr, message: &str) {
        let py = slf.py();
        let this = slf.get();
        if !err.is_instance_of::<pyo3::exceptions::PyException>(py) {
            this.t.core.bind(py).get().state.escape(err);
            return;
        }
        if !(this.writes && err.is_instance_of::<PyOSError>(py)) {
            let protocol = this.t.protocol(py);
            report_transport_error(
                py,
                &this.t.core,
                slf.as_any(),
                &protocol,
                err.clone_ref(py),
                message,
            );
        }
        Self::force_close(slf, Some(err));
    }

    /// Closes now, dropping queued writes; `connection_lost(exc)` follows.
    fn force_close(slf: &Bound<'_, Self>, exc: Option<PyErr>) {
        let py = slf.py();
        let exc = exc.map(|e| e.value_bound(py).clone().into_any().unbind());
        if slf.get().t.begin_force_close(exc) {
            Self::close_stream(slf);
        }
    }

    /// Closes the core stream and schedules `connection_lost`.
    fn close_stream(slf: &Bound<'_, Self>) {
        let this = slf.get();
        if !this.t.tear_down() {
            return;
        }
        this.t.closing.set(true);
        if let Ok(lp) = this.lp() {
            let _ = this.stream.close(lp, None);
        }
        this.t.schedule_connection_lost(slf.as_any());
    }

    fn connection_lost(slf: &Bound<'_, Self>) {
        let py = slf.py();
        let this = slf.get();
        this.t.notify_connection_lost(slf.as_any());
        let pipe = this.pipe.borrow_mut().take();
        if let Some(pipe) = pipe {
            if let Err(e) = pipe.call_method0(py, intern!(py, "close")) {
                Self::report_callback_error(slf, e);
            }
        }
        this.t.drop_protocol(py);
    }

    /// Writes `bytes`; `owner`, the `bytes` object they are, if they are one, lets a large
    /// remainder be lent to the core instead of copied.
    fn write_bytes(
        slf: &Bound<'_, Self>,
        mut bytes: &[u8],
        owner: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let this = slf.get();
        let lp = this.lp()?;
        if this.ring_writes && this.stream.write_queue_size(lp) == 0 {
            // io_uring would send it with the next iteration's submission. A pipe's reader is
            // often blocked in read() waiting for exactly this write (a terminal, a child
            // process, asyncio's own tests): write now, as asyncio does, and queue the rest.
            match this.stream.try_write(lp, bytes) {
                Ok(n) if n == bytes.len() => return Ok(()),
                Ok(n) => bytes = &bytes[n..],
                Err(evloop::Error::EAGAIN) => {}
                Err(e) => {
                    this.t.conn_lost.set(this.t.conn_lost.get() + 1);
                    Self::fatal_error(slf, os_error(e), WRITE_ERROR);
                    return Ok(());
                }
            }
        }
        let written = match owner.filter(|_| bytes.len() >= KEEP_MIN) {
            Some(owner) => this.stream.write_kept(lp, KeptPyBytes::new(owner, bytes), None),
            None => this.stream.write(lp, bytes, None),
        };
        let failed = match written {
            // A send that failed at once is recorded, not returned (see `Stream::write_error`).
            Ok(_) => this.stream.write_error(lp),
            Err(e) => Some(e),
        };
        if let Some(err) = failed {
            this.t.conn_lost.set(this.t.conn_lost.get() + 1);
            Self::fatal_error(slf, os_error(err), WRITE_ERROR);
            return Ok(());
        }
        let queued = this.stream.write_queue_size(lp);
        if queued > 0 {
            this.t.pause_protocol_if_needed(slf.as_any(), queued);
            Self::watch_queue(slf)?;
        }
        Ok(())
    }

    /// Waits for everything queued so far to be handed to the kernel (one empty write with a
    /// callback, for the whole queue rather than one per write): then a paused protocol
    /// resumes and a transport closing after its writes closes, or the failure closes it.
    fn watch_queue(slf: &Bound<'_, Self>) -> PyResult<()> {
        let this = slf.get();
        if this.watching_queue.replace(true) {
            return Ok(());
        }
        let me = slf.clone().unbind();
        let done = Box::new(move |_: &mut Loop, _: Stream, result: evloop::Result<()>| {
            Python::with_gil(|py| PipeTransport::queue_settled(me.bind(py), result));
        });
        this.stream
            .write(this.lp()?, &[], Some(done))
            .map(drop)
            .map_err(os_error)
    }

    fn queue_settled(slf: &Bound<'_, Self>, result: evloop::Result<()>) {
        let this = slf.get();
        this.watching_queue.set(false);
        if this.t.torn_down.get() {
            return;
        }
        if let Err(e) = result {
            this.t.conn_lost.set(this.t.conn_lost.get() + 1);
            return Self::fatal_error(slf, os_error(e), WRITE_ERROR);
        }
        let queued = this.lp().map_or(0, |lp| this.stream.write_queue_size(lp));
        if queued > 0 {
            if let Err(e) = Self::watch_queue(slf) {
                Self::fatal_error(slf, e, WRITE_ERROR);
            }
            return;
        }
        this.t.resume_protocol_if_needed(slf.as_any(), 0);
        if this.t.closing.get() && !this.watching_queue.get() {
            Self::close_stream(slf);
        }
    }

    fn require(&self, writes: bool, method: &str) -> PyResult<()> {
        if self.writes == writes {
            return Ok(());
        }
        let kind = if self.writes { "write" } else { "read" };
        Err(PyNotImplementedError::new_err(format!(
            "{method}() is not available on a {kind} pipe transport"
        )))
    }
}

/// A transport dropped while open closes its stream, as asyncio's pipe transports close their
/// pipe when collected.
impl Drop for PipeTransport {
    fn drop(&mut self) {
        if self.t.tear_down() {
            if let Ok(lp) = self.t.core.get().lp() {
                let _ = self.stream.close(lp, None);
            }
        }
    }
}

#[pymethods]
impl PipeTransport {
    /// Wraps `fd`, a duplicate of `pipe`'s fd that the transport owns (asyncio's
    /// `_make_read_pipe_transport`/`_make_write_pipe_transport`; the loop checked the file
    /// type). The loop calls `_start` next, from its ready queue.
    #[new]
    #[pyo3(signature = (core, pipe, fd, protocol, extra, writes, watches_reader))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        core: Py<Core>,
        pipe: PyObject,
        fd: i32,
        protocol: PyObject,
        extra: Py<PyDict>,
        writes: bool,
        watches_reader: bool,
    ) -> PyResult<PipeTransport> {
        let lp = core.bind(py).get().lp()?;
        let stream = Stream::pipe_open(lp, fd).map_err(os_error)?;
        extra.bind(py).set_item("pipe", &pipe)?;
        let ring_writes = lp.backend_name() == "uring";
        Ok(PipeTransport {
            t: TransportState::new(core, protocol, copy_current_context(py)?, None, fd),
            stream,
            writes,
            ring_writes,
            watches_reader,
            pipe: RefCell::new(Some(pipe)),
            extra,
            watching_queue: Cell::new(false),
        })
    }

    /// `connection_made`, then reading (or watching for the reader's departure), then the
    /// waiter: asyncio's order.
    #[pyo3(signature = (waiter = None))]
    fn _start(slf: &Bound<'_, Self>, waiter: Option<PyObject>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        this.t.made.set(true);
        if let Err(e) = this.t.call_protocol(py, intern!(py, "connection_made"), (slf,)) {
            let owner = this.t.core.clone_ref(py).into_any();
            if let Ran::Escaped(e) = report(py, Some(&owner), e, slf.as_any(), "Exception in callback") {
                return Err(e);
            }
        }
        let read = if this.writes {
            this.watches_reader
        } else {
            this.t.is_reading()
        };
        if read && !this.t.closing.get() {
            Self::start_reading(slf)?;
        }
        settle_waiter(py, waiter)
    }

    fn write(slf: &Bound<'_, Self>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let this = slf.get();
        this.require(true, "write")?;
        if with_bytes(data, |b| b.is_empty())? {
            return Ok(());
        }
        if this.t.conn_lost.get() > 0 || this.t.closing.get() {
            let lost = this.t.conn_lost.get();
            if lost >= 5 {
                let log = slf.py().import_bound("asyncio.log")?.getattr("logger")?;
                log.call_method1(
                    "warning",
                    ("pipe closed by peer or os.write(pipe, data) raised exception.",),
                )?;
            }
            this.t.conn_lost.set(lost + 1);
            return Ok(());
        }
        if let Some(imm) = immutable_bytes(data) {
            return Self::write_bytes(slf, imm.bytes(), Some(&imm.owner));
        }
        with_bytes(data, |b| Self::write_bytes(slf, b, None))?
    }

    fn writelines(slf: &Bound<'_, Self>, list_of_data: &Bound<'_, PyAny>) -> PyResult<()> {
        let mut joined = Vec::new();
        for item in list_of_data.iter()? {
            with_bytes(&item?, |b| joined.extend_from_slice(b))?;
        }
        Self::write(slf, &PyBytes::new_bound(slf.py(), &joined))
    }

    fn can_write_eof(&self) -> PyResult<bool> {
        self.require(true, "can_write_eof")?;
        Ok(true)
    }

    /// Closes once the queued writes are sent (a pipe's reader sees the end when it closes).
    fn write_eof(slf: &Bound<'_, Self>) -> PyResult<()> {
        let this = slf.get();
        this.require(true, "write_eof")?;
        if this.t.closing.get() {
            return Ok(());
        }
        this.t.closing.set(true);
        if this.stream.write_queue_size(this.lp()?) == 0 {
            Self::close_stream(slf);
        }
        Ok(())
    }

    fn close(slf: &Bound<'_, Self>) -> PyResult<()> {
        let this = slf.get();
        if this.t.closing.get() {
            return Ok(());
        }
        if this.writes {
            Self::write_eof(slf)
        } else {
            Self::force_close(slf, None);
            Ok(())
        }
    }

    fn abort(slf: &Bound<'_, Self>) -> PyResult<()> {
        slf.get().require(true, "abort")?;
        Self::force_close(slf, None);
        Ok(())
    }

    fn is_closing(&self) -> bool {
        self.t.closing.get()
    }

    fn pause_reading(&self) -> PyResult<()> {
        self.require(false, "pause_reading")?;
        if self.t.pause_reading() {
            self.stream.read_stop(self.lp()?).map_err(os_error)?;
        }
        Ok(())
    }

    fn resume_reading(slf: &Bound<'_, Self>) -> PyResult<()> {
        let this = slf.get();
        this.require(false, "resume_reading")?;
        if this.t.resume_reading() {
            Self::start_reading(slf)?;
        }
        Ok(())
    }

    fn is_reading(&self) -> PyResult<bool> {
        self.require(false, "is_reading")?;
        Ok(self.t.is_reading())
    }

    fn get_write_buffer_size(&self) -> PyResult<usize> {
        self.require(true, "get_write_buffer_size")?;
        Ok(self.t.write_buffer_size(self.stream, self.lp()?))
    }

    fn get_write_buffer_limits(&self) -> PyResult<(usize, usize)> {
        self.require(true, "get_write_buffer_limits")?;
        Ok(self.t.limits())
    }

    #[pyo3(signature = (high = None, low = None))]
    fn set_write_buffer_limits(slf: &Bound<'_, Self>, high: Option<i64>, low: Option<i64>) -> PyResult<()> {
        let this = slf.get();
        this.require(true, "set_write_buffer_limits")?;
        this.t.set_limits(high, low)?;
        let queued = this.stream.write_queue_size(this.lp()?);
        if this.t.pause_protocol_if_needed(slf.as_any(), queued) {
            Self::watch_queue(slf)?;
        }
        Ok(())
    }

    fn set_protocol(&self, protocol: PyObject) {
        self.t.set_protocol(protocol);
    }

    fn get_protocol(&self, py: Python<'_>) -> PyObject {
        self.t.protocol(py)
    }

    #[pyo3(signature = (name, default = None))]
    fn get_extra_info(
        &self,
        py: Python<'_>,
        name: &Bound<'_, PyAny>,
        default: Option<PyObject>,
    ) -> PyResult<PyObject> {
        extra_info(py, &self.extra, name, default)
    }

    fn _call_connection_lost(slf: &Bound<'_, Self>) {
        Self::connection_lost(slf);
    }

    /// The loop (asyncio's transports expose it).
    #[getter]
    fn _loop(&self, py: Python<'_>) -> PyObject {
        self.t.core.clone_ref(py).into_any()
    }

    /// The pipe object until the transport has closed it (asyncio's attribute, which its
    /// subprocess transport reads).
    #[getter]
    fn _pipe(&self, py: Python<'_>) -> PyObject {
        self.pipe
            .borrow()
            .as_ref()
            .map_or_else(|| py.None(), |p| p.clone_ref(py))
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        self.t.traverse(&visit)?;
        visit.call(&self.extra)?;
        if let Ok(pipe) = self.pipe.try_borrow() {
            if let Some(pipe) = pipe.as_ref() {
                visit.call(pipe)?;
            }
        }
        Ok(())
    }

    #[getter]
    fn __class__(slf: &Bound<'_, Self>) -> PyObject {
        let cell = if slf.get().writes {
            &WRITE_CLASS
        } else {
            &READ_CLASS
        };
        presented_class(cell, slf.as_any())
    }

    /// Lets go of the pipe object (asyncio's tests do this to close it themselves).
    #[setter(_pipe)]
    fn set_pipe(&self, pipe: Option<PyObject>) {
        let old = self.pipe.replace(pipe);
        drop(old);
    }

    fn __repr__(&self) -> String {
        let kind = if self.writes { "Write" } else { "Read" };
        let state = if self.pipe.borrow().is_none() {
            "closed"
        } else if self.t.closing.get() {
            "closing"
        } else {
            "open"
        };
        format!("<evloop.{kind}PipeTransport fd={} {state}>", self.t.fd)
    }
}
