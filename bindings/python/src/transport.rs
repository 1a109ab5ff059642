//! `StreamTransport`: asyncio's transport for a connected TCP or Unix stream socket, on a core
//! `Stream`. Received bytes go from the core's buffer straight to the protocol (one `bytes` per
//! read for `Protocol`, a copy into the protocol's own buffer for `BufferedProtocol`); writes
//! are sent from the caller's buffer when the socket takes them, and only the rest is queued.

use crate::core_loop::Core;
use crate::errors::os_error;
use crate::handle::{copy_current_context, report, Ran};
use crate::tls::protocol::TlsProtocol;
use crate::transport_state::TransportState;
use evloop::{Handle as _, Loop, Read, Stream};
#[cfg(not(feature = "abi3"))]
use pyo3::buffer::PyBuffer;
use pyo3::exceptions::{PyOSError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyMemoryView, PyType};
use pyo3::{PyTraverseError, PyVisit};
use std::cell::{Cell, RefCell};

pub(crate) const DEFAULT_HIGH_WATER: usize = 64 * 1024;

/// From this size, what a write of `bytes` must queue is lent to the core (the object kept
/// alive) instead of copied: the copy costs more than the small box that records the loan.
pub(crate) const KEEP_MIN: usize = 16 * 1024;

/// Immutable memory of a `bytes` object lent to a core stream's write queue.
pub(crate) struct KeptPyBytes {
    _owner: PyObject,
    ptr: *const u8,
    len: usize,
}

impl KeptPyBytes {
    /// `rest`, the end of the bytes `owner` (a `bytes` object, see [`immutable_bytes`]) holds.
    pub(crate) fn new(owner: &Bound<'_, PyAny>, rest: &[u8]) -> Box<KeptPyBytes> {
        Box::new(KeptPyBytes {
            _owner: owner.clone().unbind(),
            ptr: rest.as_ptr(),
            len: rest.len(),
        })
    }
}

/// Bytes that cannot change or move while `owner`, the `bytes` object holding them, is
/// referenced: what a write may lend to the core instead of copying.
pub(crate) struct ImmutableBytes<'py> {
    pub(crate) owner: Bound<'py, PyAny>,
    ptr: *const u8,
    len: usize,
}

impl ImmutableBytes<'_> {
    pub(crate) fn bytes(&self) -> &[u8] {
        // SAFETY: memory of the `bytes` object `owner`, which this value keeps alive; a bytes
        // object never moves or changes.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

/// `data`'s bytes if they can be lent: a `bytes` object's, or a C-contiguous memoryview's of
/// one, whose owner is then the `bytes` object itself (a view can be released, which would
/// let the object go). A `bytearray`, or a view of one, may change after `write` returns.
pub(crate) fn immutable_bytes<'py>(data: &Bound<'py, PyAny>) -> Option<ImmutableBytes<'py>> {
    if let Ok(b) = data.downcast::<PyBytes>() {
        let bytes = b.as_bytes();
        return Some(ImmutableBytes {
            owner: data.clone(),
            ptr: bytes.as_ptr(),
            len: bytes.len(),
        });
    }
    immutable_view_bytes(data)
}

/// A C-contiguous memoryview's bytes, if it views a `bytes` object.
#[cfg(not(feature = "abi3"))]
fn immutable_view_bytes<'py>(data: &Bound<'py, PyAny>) -> Option<ImmutableBytes<'py>> {
    let view = data.downcast::<PyMemoryView>().ok()?;
    let owner = view.getattr(intern!(data.py(), "obj")).ok()?;
    if !owner.is_instance_of::<PyBytes>() {
        return None;
    }
    let buffer = PyBuffer::<u8>::get_bound(view).ok()?;
    if !buffer.is_c_contiguous() {
        return None;
    }
    Some(ImmutableBytes {
        owner,
        ptr: buffer.buf_ptr() as *const u8,
        len: buffer.len_bytes(),
    })
}

// SAFETY: the memory of a `bytes` object, which is immutable and never moves; `_owner` (that
// object) keeps it alive as long as this value lives (dropping it without the GIL defers the
// decref, which pyo3 allows).
unsafe impl evloop::KeptBytes for KeptPyBytes {
    fn bytes(&self) -> &[u8] {
        // SAFETY: see the impl.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

static BUFFERED_PROTOCOL: GILOnceCell<Py<PyType>> = GILOnceCell::new();

/// The class stream transports present as `__class__`: `evloop.StreamTransportType`, an
/// `asyncio.Transport` subclass. A native class cannot derive from `asyncio.Transport` (its
/// `__slots__` layout clashes), and code checks `isinstance(tr, asyncio.Transport)`;
/// `isinstance` consults `__class__` when the real type does not match.
static PRESENTED_CLASS: GILOnceCell<Py<PyType>> = GILOnceCell::new();

/// Sets the class of `PRESENTED_CLASS` (once, from the package's `__init__`).
#[pyfunction]
pub(crate) fn _set_transport_class(py: Python<'_>, cls: Bound<'_, PyType>) -> PyResult<()> {
    set_presented_class(py, &PRESENTED_CLASS, cls, "transport")
}

/// Registers `cls` as the class a kind of native transport presents (see `presented_class`);
/// once per process.
pub(crate) fn set_presented_class(
    py: Python<'_>,
    cell: &GILOnceCell<Py<PyType>>,
    cls: Bound<'_, PyType>,
    what: &str,
) -> PyResult<()> {
    cell.set(py, cls.unbind())
        .map_err(|_| PyRuntimeError::new_err(format!("the {what} class is already set")))
}

/// `protocol` as evloop's TLS protocol, if it is one (never in the stable ABI's build).
fn tls_protocol(protocol: &Bound<'_, PyAny>) -> Option<Py<TlsProtocol>> {
    if cfg!(feature = "abi3") {
        return None;
    }
    protocol
        .downcast::<TlsProtocol>()
        .ok()
        .map(|p| p.clone().unbind())
}

pub(crate) fn is_buffered(py: Python<'_>, protocol: &Bound<'_, PyAny>) -> PyResult<bool> {
    let cls = BUFFERED_PROTOCOL.get_or_try_init(py, || {
        py.import_bound("asyncio")?
            .getattr("BufferedProtocol")?
            .downcast_into::<PyType>()
            .map(Bound::unbind)
            .map_err(PyErr::from)
    })?;
    protocol.is_instance(cls.bind(py))
}

/// A transport over a connected stream socket. It has a `__dict__`, as asyncio's transports
/// have: tests and instrumentation replace methods on the instance (aiohttp's suite patches
/// `transport.write` to simulate a reset).
#[pyclass(frozen, weakref, dict, module = "evloop._evloop")]
pub struct StreamTransport {
    /// The life cycle, protocol, socket and flow control every native transport has.
    t: TransportState,
    stream: Stream,
    /// The backend sends through the ring (io_uring): see `write_bytes`.
    ring_writes: bool,
    buffered: Cell<bool>,
    /// The protocol, when it is evloop's TLS protocol: reads go to it as slices, with no Python
    /// call (the stable ABI's build, which cannot enter a context around native code, calls
    /// its `data_received` instead).
    tls: RefCell<Option<Py<TlsProtocol>>>,
    /// Extra information given at creation and what `get_extra_info` has computed since (the
    /// socket's wrapper and addresses are made on first request: an idle connection does not
    /// carry them). A connection the loop's own server accepted does not keep its Python
    /// socket object (nothing else refers to it): one is made on request.
    extra: RefCell<Option<Py<PyDict>>>,
    server: RefCell<Option<PyObject>>,
    eof_written: Cell<bool>,
    empty_waiter: RefCell<Option<PyObject>>,
}

// SAFETY: every method reaches the loop through `Core::lp`, which refuses foreign threads, and
// the interior-mutable fields are touched only by those methods and by core callbacks (on the
// loop thread). pyo3 requires Send + Sync of frozen classes.
unsafe impl Send for StreamTransport {}
// SAFETY: as above.
unsafe impl Sync for StreamTransport {}

static TRANSPORT_SOCKET: GILOnceCell<PyObject> = GILOnceCell::new();

/// The extra-information keys a transport computes from its socket on first request.
const SOCKET_EXTRA: [&str; 3] = ["socket", "sockname", "peername"];

impl StreamTransport {
    /// `socket` (asyncio's TransportSocket wrapper), `sockname` or `peername`, computed from the
    /// socket (None where the call fails, as asyncio records it) and kept; None for other keys
    /// or once the socket is gone.
    fn computed_extra(&self, py: Python<'_>, key: &str) -> PyResult<Option<PyObject>> {
        if !SOCKET_EXTRA.contains(&key) {
            return Ok(None);
        }
        let Some(sock) = self.socket_object(py)? else {
            return Ok(None);
        };
        let sock = sock.bind(py);
        let value = match key {
            "socket" => {
                let wrapper = TRANSPORT_SOCKET.get_or_try_init(py, || {
                    py.import_bound("asyncio.trsock")?
                        .getattr("TransportSocket")
                        .map(Bound::unbind)
                })?;
                wrapper.call1(py, (sock,))?
            }
            "sockname" => sock
                .call_method0("getsockname")
                .map_or_else(|_| py.None(), Bound::unbind),
            _ => sock
                .call_method0("getpeername")
                .map_or_else(|_| py.None(), Bound::unbind),
        };
        let existing = self.extra.borrow().as_ref().map(|d| d.clone_ref(py));
        let dict = match existing {
            Some(d) => d,
            None => {
                let d = PyDict::new_bound(py).unbind();
                let old = self.extra.replace(Some(d.clone_ref(py)));
                drop(old);
                d
            }
        };
        dict.bind(py).set_item(key, &value)?;
        Ok(Some(value))
    }

    /// The Python socket: the one the transport was made with, or one made now on its fd
    /// (kept, and detached at close like the original); None once the stream is closed.
    fn socket_object(&self, py: Python<'_>) -> PyResult<Option<PyObject>> {
        if let Some(sock) = self.t.sock.borrow().as_ref() {
            return Ok(Some(sock.clone_ref(py)));
        }
        if self.t.torn_down.get() {
            return Ok(None);
        }
        let kwargs = PyDict::new_bound(py);
        kwargs.set_item("fileno", self.t.fd)?;
        let sock = py
            .import_bound("socket")?
            .getattr("socket")?
            .call((), Some(&kwargs))?
            .unbind();
        *self.t.sock.borrow_mut() = Some(sock.clone_ref(py));
        Ok(Some(sock))
    }

    /// A transport around `stream` (whose fd is `fd`), the loop's from now on.
    #[allow(clippy::too_many_arguments)]
    fn around(
        py: Python<'_>,
        core: Py<Core>,
        stream: Stream,
        fd: i32,
        sock: Option<PyObject>,
        protocol: PyObject,
        extra: Option<Py<PyDict>>,
        server: Option<PyObject>,
    ) -> PyResult<StreamTransport> {
        let lp = core.bind(py).get().lp()?;
        core.bind(py).get().state.transport_fds.borrow_mut().insert(fd);
        let buffered = is_buffered(py, protocol.bind(py))?;
        if let Some(server) = &server {
            if py.version_info() < (3, 13) {
                server.call_method0(py, intern!(py, "_attach"))?;
            }
        }
        let ring_writes = lp.backend_name() == "uring";
        let tls = tls_protocol(protocol.bind(py));
        Ok(StreamTransport {
            t: TransportState::new(core, protocol, copy_current_context(py)?, sock, fd),
            stream,
            ring_writes,
            buffered: Cell::new(buffered),
            tls: RefCell::new(tls),
            extra: RefCell::new(extra),
            server: RefCell::new(server),
            eof_written: Cell::new(false),
            empty_waiter: RefCell::new(None),
        })
    }

    fn lp(&self, _py: Python<'_>) -> PyResult<&mut Loop> {
        self.t.core.get().lp()
    }

    fn loop_obj(&self, py: Python<'_>) -> PyObject {
        self.t.core.clone_ref(py).into_any()
    }

    fn start_reading(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let lp = this.lp(py)?;
        let me = slf.clone().unbind();
        this.stream
            .read_start(lp, move |_, _, read| {
                Python::with_gil(|py| StreamTransport::on_read(me.bind(py), read));
            })
            .map_err(os_error)
    }

    fn on_read(slf: &Bound<'_, Self>, read: Read<'_>) {
        let py = slf.py();
        let this = slf.get();
        let result = match read {
            Read::Data(data) => {
                let tls = this.tls.borrow().as_ref().map(|p| p.clone_ref(py));
                if let Some(tls) = tls {
                    Self::feed_tls(slf, tls.bind(py), data)
                } else if this.buffered.get() {
                    Self::feed_buffered(slf, data)
                } else {
                    this.t
                        .call_protocol(py, intern!(py, "data_received"), (PyBytes::new_bound(py, data),))
                        .map(drop)
                        .map_err(|e| (e, "Fatal error: protocol.data_received() call failed."))
                }
            }
            // A send that failed since the last write took the socket's error (a reset, say),
            // and the receive then sees only the end: the connection broke, it did not end.
            Read::Eof => match this.lp(py).ok().and_then(|lp| this.stream.write_error(lp)) {
                Some(e) => Err((os_error(e), "Fatal write error on socket transport")),
                None => Self::on_eof(slf),
            },
            Read::Error(e) => Err((os_error(e), "Fatal read error on socket transport")),
        };
        if let Err((err, message)) = result {
            Self::fatal_error(slf, err, message);
        }
    }

    #[cfg(not(feature = "abi3"))]
    fn feed_tls(
        slf: &Bound<'_, Self>,
        tls: &Bound<'_, TlsProtocol>,
        data: &[u8],
    ) -> Result<(), (PyErr, &'static str)> {
        slf.get()
            .t
            .within_protocol_context(slf.py(), || TlsProtocol::feed(tls, data))
            .map_err(|e| (e, "Fatal error: protocol.buffer_updated() call failed."))
    }

    #[cfg(feature = "abi3")]
    fn feed_tls(
        _: &Bound<'_, Self>,
        _: &Bound<'_, TlsProtocol>,
        _: &[u8],
    ) -> Result<(), (PyErr, &'static str)> {
        unreachable!("the stable ABI's build never sets `tls`")
    }

    fn feed_buffered(slf: &Bound<'_, Self>, mut data: &[u8]) -> Result<(), (PyErr, &'static str)> {
        let py = slf.py();
        let this = slf.get();
        while !data.is_empty() {
            let buf = this
                .t
                .call_protocol(py, intern!(py, "get_buffer"), (data.len(),))
                .map_err(|e| (e, "Fatal error: protocol.get_buffer() call failed."))?;
            let n = copy_into(buf.bind(py), data)
                .map_err(|e| (e, "Fatal error: protocol.get_buffer() call failed."))?;
            this.t
                .call_protocol(py, intern!(py, "buffer_updated"), (n,))
                .map_err(|e| (e, "Fatal error: protocol.buffer_updated() call failed."))?;
            data = &data[n..];
            // The rest was read already: it goes to the protocol even if it paused reading,
            // unless it closed the transport.
            if this.t.closing.get() {
                break;
            }
        }
        Ok(())
    }

    fn on_eof(slf: &Bound<'_, Self>) -> Result<(), (PyErr, &'static str)> {
        let py = slf.py();
        let this = slf.get();
        let keep_open = this
            .t
            .call_protocol(py, intern!(py, "eof_received"), ())
            .map_err(|e| (e, "Fatal error: protocol.eof_received() call failed."))?;
        let keep_open = keep_open
            .is_truthy(py)
            .map_err(|e| (e, "Fatal error: protocol.eof_received() call failed."))?;
        if !keep_open {
            Self::close(slf).map_err(|e| (e, "Fatal error on transport"))?;
        }
        Ok(())
    }

    /// asyncio's `_fatal_error`: OSErrors are the peer's doing and only logged in debug mode;
    /// other exceptions go to the exception handler. Then the connection is torn down.
    fn fatal_error(slf: &Bound<'_, Self>, err: PyErr, message: &str) {
        let py = slf.py();
        let this = slf.get();
        if !err.is_instance_of::<pyo3::exceptions::PyException>(py) {
            this.t.core.bind(py).get().state.escape(err);
            return;
        }
        if !err.is_instance_of::<PyOSError>(py) {
            Self::report_protocol_error(slf, err.clone_ref(py), message);
        }
        Self::force_close(slf, Some(err.value_bound(py).clone().into_any().unbind()));
    }

    /// Tears the connection down now, dropping queued writes; `connection_lost(exc)` follows.
    pub(crate) fn force_close(slf: &Bound<'_, Self>, exc: Option<PyObject>) {
        if slf.get().t.begin_force_close(exc) {
            Self::close_stream(slf);
        }
    }

    /// Closes the core stream (which closes the fd) and schedules `connection_lost`.
    fn close_stream(slf: &Bound<'_, Self>) {
        let py = slf.py();
        let this = slf.get();
        if this.t.torn_down.get() {
            return;
        }
        let Ok(lp) = this.lp(py) else { return };
        // What get_extra_info would have computed stays answerable after the close, as in
        // asyncio, which records it at creation.
        for key in SOCKET_EXTRA {
            let known = this.extra.borrow().as_ref().map(|d| d.clone_ref(py));
            if known.map_or(true, |d| !d.bind(py).contains(key).unwrap_or(false)) {
                let _ = this.computed_extra(py, key);
            }
        }
        this.t.tear_down();
        let _ = this.stream.close(lp, None);
        this.t.schedule_connection_lost(slf.as_any());
    }

    fn connection_lost(slf: &Bound<'_, Self>) {
        let py = slf.py();
        let this = slf.get();
        this.t.notify_connection_lost(slf.as_any());
        let waiter = this.empty_waiter.borrow_mut().take();
        if let Some(waiter) = waiter {
            let _ = set_result_unless_done(py, waiter.bind(py));
        }
        this.t.drop_protocol(py);
        let tls = this.tls.borrow_mut().take();
        drop(tls);
        let server = this.server.borrow_mut().take();
        if let Some(server) = server {
            let detached = if py.version_info() >= (3, 13) {
                server.call_method1(py, intern!(py, "_detach"), (slf,))
            } else {
                server.call_method0(py, intern!(py, "_detach"))
            };
            if let Err(e) = detached {
                e.print(py);
            }
        }
    }

    fn maybe_pause_protocol(slf: &Bound<'_, Self>, queued: usize) {
        if !slf.get().t.pause_protocol_if_needed(slf.as_any(), queued) {
            return;
        }
        // Resumed when what is queued now has been handed to the kernel; a send that failed
        // instead is the transport's fatal error, as asyncio's writer makes it.
        if let Err(e) = Self::when_flushed(slf, |tr, r| match r {
            Ok(()) => StreamTransport::on_drain(tr),
            Err(e) => StreamTransport::fatal_error(tr, os_error(e), "Fatal write error on socket transport"),
        }) {
            Self::fatal_error(slf, e, "Fatal write error on socket transport");
        }
    }

    fn report_protocol_error(slf: &Bound<'_, Self>, err: PyErr, message: &str) {
        let this = slf.get();
        report_transport_error(
            slf.py(),
            &this.t.core,
            slf.as_any(),
            &this.t.protocol(slf.py()),
            err,
            message,
        );
    }

    /// The write queue emptied after the protocol was paused.
    fn on_drain(slf: &Bound<'_, Self>) {
        let this = slf.get();
        // Everything queued when the protocol paused has gone; a closing transport keeps it paused.
        if !this.t.closing.get() {
            this.t.resume_protocol_if_needed(slf.as_any(), 0);
        }
    }

    /// Runs `then` once everything queued so far has been handed to the kernel (or failed).
    fn when_flushed(
        slf: &Bound<'_, Self>,
        then: impl FnOnce(&Bound<'_, StreamTransport>, evloop::Result<()>) + 'static,
    ) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let lp = this.lp(py)?;
        let me = slf.clone().unbind();
        this.stream
            .write(
                lp,
                &[],
                Some(Box::new(move |_, _, r| {
                    Python::with_gil(|py| then(me.bind(py), r));
                })),
            )
            .map(drop)
            .map_err(os_error)
    }

    /// Writes `bytes`; `owner`, the `bytes` object they are, if they are one, lets a large
    /// remainder be lent to the core instead of copied.
    fn write_bytes(
        slf: &Bound<'_, Self>,
        mut bytes: &[u8],
        owner: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let lp = this.lp(py)?;
        // io_uring queues every write for the next submission (a copy, batched into one kernel
        // entry per iteration). A write that would take the buffer over the high-water mark is
        // offered to the socket first, as epoll's path and asyncio do: what the kernel takes at
        // once is neither copied nor counted against the protocol's flow control.
        if this.ring_writes && this.stream.write_queue_size(lp) + bytes.len() > this.t.high.get() {
            match this.stream.try_write(lp, bytes) {
                Ok(n) => bytes = &bytes[n..],
                Err(evloop::Error::EAGAIN) => {}
                Err(e) => {
                    Self::fatal_error(slf, os_error(e), "Fatal write error on socket transport");
                    return Ok(());
                }
            }
            if bytes.is_empty() {
                return Ok(());
            }
        }
        if let Some(owner) = owner.filter(|_| bytes.len() >= KEEP_MIN) {
            let kept = KeptPyBytes::new(owner, bytes);
            let written = this.stream.write_kept(lp, kept, None);
            return Self::after_write(slf, written.map(drop));
        }
        Self::write_parts(slf, std::slice::from_ref(&bytes))
    }

    /// Hands buffers to the core as one write, then applies flow control to what waits.
    fn write_parts(slf: &Bound<'_, Self>, parts: &[&[u8]]) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let lp = this.lp(py)?;
        let written = this.stream.write_vectored(lp, parts, None);
        Self::after_write(slf, written.map(drop))
    }

    /// Flow control after a write, or the write's failure.
    fn after_write(slf: &Bound<'_, Self>, written: evloop::Result<()>) -> PyResult<()> {
        match written {
            Ok(()) => {
                let lp = slf.get().lp(slf.py())?;
                // A send the socket refused inside the write (EPIPE, ECONNRESET) is the
                // transport's fatal error now, as asyncio's write makes it: the peer's EOF,
                // if it is read first, must not end the connection as a clean one.
                if let Some(e) = slf.get().stream.write_error(lp) {
                    Self::fatal_error(slf, os_error(e), "Fatal write error on socket transport");
                    return Ok(());
                }
                let queued = slf.get().stream.write_queue_size(lp);
                if queued > 0 {
                    Self::maybe_pause_protocol(slf, queued);
                }
            }
            Err(e) => Self::fatal_error(slf, os_error(e), "Fatal write error on socket transport"),
        }
        Ok(())
    }

    fn writable_state(slf: &Bound<'_, Self>) -> PyResult<bool> {
        let py = slf.py();
        let this = slf.get();
        if this.eof_written.get() {
            return Err(PyRuntimeError::new_err("Cannot call write() after write_eof()"));
        }
        if this.empty_waiter.borrow().is_some() {
            return Err(PyRuntimeError::new_err(
                "unable to write; sendfile is in progress",
            ));
        }
        if this.t.closing.get() {
            let lost = this.t.conn_lost.get();
            if lost >= 5 {
                let log = py.import_bound("asyncio.log")?.getattr("logger")?;
                log.call_method1("warning", ("socket.send() raised exception.",))?;
            }
            this.t.conn_lost.set(lost + 1);
            return Ok(false);
        }
        Ok(true)
    }
}

/// A transport dropped while open (nothing refers to it: it is not reading, and its protocol
/// let it go) closes its stream, as asyncio's transports close their sockets when collected;
/// its fd stops counting as a transport's.
impl Drop for StreamTransport {
    fn drop(&mut self) {
        if self.t.tear_down() {
            if let Ok(lp) = self.t.core.get().lp() {
                let _ = self.stream.close(lp, None);
            }
        }
    }
}

/// Validates asyncio's `set_write_buffer_limits(high, low)` arguments, filling in the
/// defaults asyncio uses: `(high, low)`.
pub(crate) fn write_buffer_limits(high: Option<i64>, low: Option<i64>) -> PyResult<(usize, usize)> {
    let high = high.unwrap_or_else(|| low.map_or(DEFAULT_HIGH_WATER as i64, |l| 4 * l));
    let low = low.unwrap_or(high / 4);
    if !(high >= low && low >= 0) {
        return Err(PyValueError::new_err(format!(
            "high ({high}) must be >= low ({low}) must be >= 0"
        )));
    }
    Ok((high as usize, low as usize))
}

/// The core is closing a transport's fd: it stops counting as a transport's, and the Python
/// socket is detached so that it does not close the fd a second time.
pub(crate) fn release_fd(core: &Core, fd: i32, sock: Option<PyObject>) {
    core.state.transport_fds.borrow_mut().remove(&fd);
    if let Some(sock) = sock {
        Python::with_gil(|py| {
            let _ = sock.call_method0(py, intern!(py, "detach"));
        });
    }
}

/// Completes the waiter of `create_connection` and the like, unless it was cancelled.
pub(crate) fn settle_waiter(py: Python<'_>, waiter: Option<PyObject>) -> PyResult<()> {
    if let Some(waiter) = waiter {
        let w = waiter.bind(py);
        if !w.call_method0(intern!(py, "cancelled"))?.is_truthy()? {
            set_result_unless_done(py, w)?;
        }
    }
    Ok(())
}

/// The class a native transport presents as `__class__`: the one registered in `cell`, or its
/// own type before that.
pub(crate) fn presented_class(cell: &GILOnceCell<Py<PyType>>, slf: &Bound<'_, PyAny>) -> PyObject {
    match cell.get(slf.py()) {
        Some(cls) => cls.clone_ref(slf.py()).into_any(),
        None => slf.get_type().into_any().unbind(),
    }
}

/// Sends `err` to the loop's exception handler with the transport and protocol, as asyncio
/// does for protocol failures; a `BaseException` that is not an `Exception` stops the loop.
pub(crate) fn report_transport_error(
    py: Python<'_>,
    core: &Py<Core>,
    transport: &Bound<'_, PyAny>,
    protocol: &PyObject,
    err: PyErr,
    message: &str,
) {
    if !err.is_instance_of::<pyo3::exceptions::PyException>(py) {
        core.bind(py).get().state.escape(err);
        return;
    }
    let context = PyDict::new_bound(py);
    let handled = context
        .set_item("message", message)
        .and_then(|_| context.set_item("exception", err.value_bound(py)))
        .and_then(|_| context.set_item("transport", transport))
        .and_then(|_| context.set_item("protocol", protocol))
        .and_then(|_| {
            core.bind(py)
                .call_method1(intern!(py, "call_exception_handler"), (context,))
        });
    if let Err(e) = handled {
        if !e.is_instance_of::<pyo3::exceptions::PyException>(py) {
            core.bind(py).get().state.escape(e);
        }
    }
}

/// The stable ABI of Python 3.9 has no buffer protocol: views are copied.
#[cfg(feature = "abi3")]
fn immutable_view_bytes<'py>(_: &Bound<'py, PyAny>) -> Option<ImmutableBytes<'py>> {
    None
}

/// `copy_into` without the buffer protocol: a slice assignment through Python (`buf[:n] =
/// data[:n]`), a bytes object and a call more per read.
#[cfg(feature = "abi3")]
fn copy_into(buf: &Bound<'_, PyAny>, data: &[u8]) -> PyResult<usize> {
    let cap = buf.len()?;
    if cap == 0 {
        return Err(PyRuntimeError::new_err("get_buffer() returned an empty buffer"));
    }
    let n = cap.min(data.len());
    let slice = pyo3::types::PySlice::new_bound(buf.py(), 0, n as isize, 1);
    buf.set_item(slice, PyBytes::new_bound(buf.py(), &data[..n]))?;
    Ok(n)
}

/// Copies as much of `data` as fits into the writable buffer `buf`; returns the count.
#[cfg(not(feature = "abi3"))]
fn copy_into(buf: &Bound<'_, PyAny>, data: &[u8]) -> PyResult<usize> {
    let view = PyBuffer::<u8>::get_bound(buf)?;
    if view.readonly() {
        return Err(PyTypeError::new_err("get_buffer() returned a read-only buffer"));
    }
    if !view.is_c_contiguous() {
        return Err(PyTypeError::new_err(
            "get_buffer() returned a non-contiguous buffer",
        ));
    }
    let cap = view.len_bytes();
    if cap == 0 {
        return Err(PyRuntimeError::new_err("get_buffer() returned an empty buffer"));
    }
    let n = cap.min(data.len());
    // SAFETY: the buffer is writable, C-contiguous and at least `n` bytes long; the view keeps
    // the exporter alive and its memory pinned while we copy; `data` is our own slice.
    unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), view.buf_ptr() as *mut u8, n) };
    Ok(n)
}

pub(crate) fn set_result_unless_done(py: Python<'_>, fut: &Bound<'_, PyAny>) -> PyResult<()> {
    if !fut.call_method0(intern!(py, "done"))?.is_truthy()? {
        fut.call_method1(intern!(py, "set_result"), (py.None(),))?;
    }
    Ok(())
}

/// Runs `f` on the bytes of a bytes-like object without copying where it can.
pub(crate) fn with_bytes<R>(data: &Bound<'_, PyAny>, f: impl FnOnce(&[u8]) -> R) -> PyResult<R> {
    if let Ok(b) = data.downcast::<PyBytes>() {
        return Ok(f(b.as_bytes()));
    }
    if data.is_instance_of::<PyByteArray>() || data.is_instance_of::<PyMemoryView>() {
        #[cfg(not(feature = "abi3"))]
        if let Ok(view) = PyBuffer::<u8>::get_bound(data) {
            if view.is_c_contiguous() {
                // SAFETY: a C-contiguous view of `len_bytes` bytes, kept alive (and its exporter
                // pinned) by `view` for the duration of `f`; `f` does not call into Python.
                let slice =
                    unsafe { std::slice::from_raw_parts(view.buf_ptr() as *const u8, view.len_bytes()) };
                return Ok(f(slice));
            }
        }
        // Other formats or layouts: their raw bytes, as memoryview.cast('B') would give.
        let copied = data
            .py()
            .import_bound("builtins")?
            .getattr("bytes")?
            .call1((data,))?;
        let copied = copied.downcast::<PyBytes>()?;
        return Ok(f(copied.as_bytes()));
    }
    Err(PyTypeError::new_err(format!(
        "data argument must be a bytes-like object, not {:?}",
        data.get_type().name()?.to_string()
    )))
}

#[pymethods]
impl StreamTransport {
    /// Wraps the connected socket `sock` (asyncio's `_make_socket_transport`). The loop calls
    /// `_start` next, from its ready queue.
    #[new]
    #[pyo3(signature = (core, sock, protocol, extra = None, server = None))]
    fn new(
        py: Python<'_>,
        core: Py<Core>,
        sock: PyObject,
        protocol: PyObject,
        extra: Option<Py<PyDict>>,
        server: Option<PyObject>,
    ) -> PyResult<StreamTransport> {
        let lp = core.bind(py).get().lp()?;
        let fd: i32 = sock.call_method0(py, intern!(py, "fileno"))?.extract(py)?;
        let stream = Stream::adopt(lp, fd).map_err(os_error)?;
        // Accepted by the loop's own server: nothing else refers to this socket object.
        let sock = if server.is_some() {
            sock.call_method0(py, intern!(py, "detach"))?;
            None
        } else {
            Some(sock)
        };
        Self::around(py, core, stream, fd, sock, protocol, extra, server)
    }

    /// The next connection waiting on the listening socket `listener` (of address family
    /// `family`), as a transport of `server` whose protocol is None until `set_protocol`; None if
    /// no connection is waiting. asyncio's accept makes a Python socket object, wraps it and
    /// sets TCP_NODELAY through Python; this is one accept4 (and, for TCP, one setsockopt).
    #[staticmethod]
    fn _accept(
        py: Python<'_>,
        core: Py<Core>,
        listener: i32,
        family: i32,
        server: PyObject,
    ) -> PyResult<Option<StreamTransport>> {
        let lp = core.bind(py).get().lp()?;
        let stream = loop {
            match Stream::accept_from(lp, listener, family) {
                Ok(s) => break s,
                Err(evloop::Error::EAGAIN) => return Ok(None),
                // Gone before we took it (asyncio skips these too).
                Err(evloop::Error::ECONNABORTED) | Err(evloop::Error::EINTR) => continue,
                Err(e) => return Err(os_error(e)),
            }
        };
        if family == libc::AF_INET || family == libc::AF_INET6 {
            let _ = stream.set_nodelay(lp, true);
        }
        let fd = stream.fd(lp).map_err(os_error)?;
        Self::around(py, core, stream, fd, None, py.None(), None, Some(server)).map(Some)
    }

    /// Lets go of a transport `_accept` made whose protocol could not be made: the connection
    /// closes without any callback.
    fn _discard(&self, py: Python<'_>) -> PyResult<()> {
        if self.t.tear_down() {
            let _ = self.stream.close(self.lp(py)?, None);
        }
        let server = self.server.borrow_mut().take();
        if let Some(server) = server {
            if py.version_info() < (3, 13) {
                server.call_method0(py, intern!(py, "_detach"))?;
            }
        }
        Ok(())
    }

    /// `connection_made`, then reading, then the waiter: asyncio's order.
    #[pyo3(signature = (waiter = None))]
    fn _start(slf: &Bound<'_, Self>, waiter: Option<PyObject>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let server = this.server.borrow().as_ref().map(|s| s.clone_ref(py));
        if let Some(server) = server {
            if py.version_info() >= (3, 13) {
                server.call_method1(py, intern!(py, "_attach"), (slf,))?;
            }
        }
        this.t.made.set(true);
        if let Err(e) = this.t.call_protocol(py, intern!(py, "connection_made"), (slf,)) {
            let owner = this.loop_obj(py);
            if let Ran::Escaped(e) = report(py, Some(&owner), e, slf.as_any(), "Exception in callback") {
                return Err(e);
            }
        }
        if !this.t.closing.get() && !this.t.paused_reading.get() {
            Self::start_reading(slf)?;
        }
        settle_waiter(py, waiter)
    }

    pub(crate) fn write(slf: &Bound<'_, Self>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let empty = with_bytes(data, |b| b.is_empty())?;
        if !Self::writable_state(slf)? || empty {
            return Ok(());
        }
        if let Some(imm) = immutable_bytes(data) {
            return Self::write_bytes(slf, imm.bytes(), Some(&imm.owner));
        }
        with_bytes(data, |b| Self::write_bytes(slf, b, None))?
    }

    fn writelines(slf: &Bound<'_, Self>, list_of_data: &Bound<'_, PyAny>) -> PyResult<()> {
        let items = list_of_data.iter()?.collect::<PyResult<Vec<_>>>()?;
        // `bytes` items, on a backend that sends at once (epoll): one gathered send from the
        // objects themselves. Otherwise the items are joined (io_uring copies what it queues
        // anyway).
        if !slf.get().ring_writes && items.iter().all(|i| i.is_instance_of::<PyBytes>()) {
            let parts: Vec<&[u8]> = items
                .iter()
                .map(|i| i.downcast::<PyBytes>().map(|b| b.as_bytes()))
                .collect::<Result<_, _>>()?;
            if !Self::writable_state(slf)? || parts.iter().all(|p| p.is_empty()) {
                return Ok(());
            }
            return Self::write_parts(slf, &parts);
        }
        let mut joined = Vec::new();
        for item in &items {
            with_bytes(item, |b| joined.extend_from_slice(b))?;
        }
        if !Self::writable_state(slf)? || joined.is_empty() {
            return Ok(());
        }
        Self::write_bytes(slf, &joined, None)
    }

    fn write_eof(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        if this.t.closing.get() || this.eof_written.get() {
            return Ok(());
        }
        this.eof_written.set(true);
        let lp = this.lp(py)?;
        if let Err(e) = this.stream.shutdown(lp, None) {
            Self::fatal_error(slf, os_error(e), "Fatal error on transport");
        }
        Ok(())
    }

    fn can_write_eof(&self) -> bool {
        true
    }

    /// Closes after the queued writes are sent; `connection_lost(None)` follows.
    fn close(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        if this.t.closing.get() {
            return Ok(());
        }
        this.t.closing.set(true);
        let lp = this.lp(py)?;
        let _ = this.stream.read_stop(lp);
        if this.stream.write_queue_size(lp) == 0 {
            Self::close_stream(slf);
            return Ok(());
        }
        Self::when_flushed(slf, |tr, r| {
            let this = tr.get();
            if this.t.torn_down.get() {
                return;
            }
            if let Err(e) = r {
                let old = this
                    .t
                    .lost_exc
                    .replace(Some(os_error(e).value_bound(tr.py()).clone().into_any().unbind()));
                drop(old);
            }
            StreamTransport::close_stream(tr);
        })
    }

    fn abort(slf: &Bound<'_, Self>) {
        Self::force_close(slf, None);
    }

    /// asyncio's transports' `_force_close(exc)`: an abort whose `connection_lost` gets `exc`.
    #[pyo3(signature = (exc = None))]
    fn _force_close(slf: &Bound<'_, Self>, exc: Option<PyObject>) {
        Self::force_close(slf, exc.filter(|e| !e.is_none(slf.py())));
    }

    fn is_closing(&self) -> bool {
        self.t.closing.get()
    }

    fn pause_reading(slf: &Bound<'_, Self>) -> PyResult<()> {
        let this = slf.get();
        if this.t.pause_reading() {
            this.stream.read_stop(this.lp(slf.py())?).map_err(os_error)?;
        }
        Ok(())
    }

    fn resume_reading(slf: &Bound<'_, Self>) -> PyResult<()> {
        if slf.get().t.resume_reading() {
            Self::start_reading(slf)?;
        }
        Ok(())
    }

    fn is_reading(&self) -> bool {
        self.t.is_reading()
    }

    fn get_write_buffer_size(&self, py: Python<'_>) -> PyResult<usize> {
        let lp = self.lp(py)?;
        Ok(self.t.write_buffer_size(self.stream, lp))
    }

    fn get_write_buffer_limits(&self) -> (usize, usize) {
        self.t.limits()
    }

    #[pyo3(signature = (high = None, low = None))]
    fn set_write_buffer_limits(slf: &Bound<'_, Self>, high: Option<i64>, low: Option<i64>) -> PyResult<()> {
        let this = slf.get();
        this.t.set_limits(high, low)?;
        let lp = this.lp(slf.py())?;
        let queued = this.stream.write_queue_size(lp);
        Self::maybe_pause_protocol(slf, queued);
        Ok(())
    }

    fn set_protocol(&self, py: Python<'_>, protocol: PyObject) -> PyResult<()> {
        self.buffered.set(is_buffered(py, protocol.bind(py))?);
        let old = self.tls.replace(tls_protocol(protocol.bind(py)));
        drop(old);
        self.t.set_protocol(protocol);
        Ok(())
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
        let extra = self.extra.borrow().as_ref().map(|d| d.clone_ref(py));
        if let Some(extra) = extra {
            if let Some(v) = extra.bind(py).get_item(name)? {
                return Ok(v.unbind());
            }
        }
        #[cfg(not(feature = "abi3"))]
        let key = name.extract::<&str>();
        #[cfg(feature = "abi3")]
        let key = name.extract::<String>();
        if let Ok(key) = key.as_deref() {
            if let Some(v) = self.computed_extra(py, key)? {
                return Ok(v);
            }
        }
        Ok(default.unwrap_or_else(|| py.None()))
    }

    /// A future done when the write buffer is empty (asyncio's sendfile fallback waits on it).
    fn _make_empty_waiter(slf: &Bound<'_, Self>) -> PyResult<PyObject> {
        let py = slf.py();
        let this = slf.get();
        if this.empty_waiter.borrow().is_some() {
            return Err(PyRuntimeError::new_err("Empty waiter is already set"));
        }
        let fut = this.t.core.bind(py).call_method0(intern!(py, "create_future"))?;
        let lp = this.lp(py)?;
        if this.stream.write_queue_size(lp) == 0 || this.t.torn_down.get() {
            fut.call_method1(intern!(py, "set_result"), (py.None(),))?;
            return Ok(fut.unbind());
        }
        let old = this.empty_waiter.replace(Some(fut.clone().unbind()));
        drop(old);
        Self::when_flushed(slf, |tr, _| {
            let waiter = tr.get().empty_waiter.borrow_mut().take();
            if let Some(w) = waiter {
                let _ = set_result_unless_done(tr.py(), w.bind(tr.py()));
            }
        })?;
        Ok(fut.unbind())
    }

    /// The loop (asyncio's transports expose it; its sendfile fallback uses it).
    #[getter]
    fn _loop(&self, py: Python<'_>) -> PyObject {
        self.loop_obj(py)
    }

    /// Whether `pause_writing` was called and `resume_writing` not yet (asyncio's flow-control
    /// state, which its sendfile fallback reads).
    #[getter]
    fn _protocol_paused(&self) -> bool {
        self.t.protocol_paused.get()
    }

    fn _call_connection_lost(slf: &Bound<'_, Self>) {
        Self::connection_lost(slf);
    }

    fn _reset_empty_waiter(&self) {
        let old = self.empty_waiter.take();
        drop(old);
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        self.t.traverse(&visit)?;
        if let Ok(tls) = self.tls.try_borrow() {
            if let Some(tls) = tls.as_ref() {
                visit.call(tls)?;
            }
        }
        if let Ok(extra) = self.extra.try_borrow() {
            if let Some(extra) = extra.as_ref() {
                visit.call(extra)?;
            }
        }
        for cell in [&self.server, &self.empty_waiter] {
            if let Ok(obj) = cell.try_borrow() {
                if let Some(obj) = obj.as_ref() {
                    visit.call(obj)?;
                }
            }
        }
        Ok(())
    }

    #[classattr]
    fn _start_tls_compatible() -> bool {
        true
    }

    /// asyncio asks the loop's `_sendfile_native`, which reports sendfile(2) unavailable for
    /// these transports: `loop.sendfile` then reads the file and writes it through the
    /// transport with flow control (or, with `fallback=False`, raises
    /// `SendfileNotAvailableError`, as asyncio documents).
    #[classattr]
    fn _sendfile_compatible(py: Python<'_>) -> PyResult<PyObject> {
        Ok(py
            .import_bound("asyncio.constants")?
            .getattr("_SendfileMode")?
            .getattr("TRY_NATIVE")?
            .unbind())
    }

    #[getter]
    fn __class__(slf: &Bound<'_, Self>) -> PyObject {
        presented_class(&PRESENTED_CLASS, slf.as_any())
    }

    fn __repr__(&self) -> String {
        let state = if self.t.closing.get() { " closing" } else { "" };
        format!("<evloop.StreamTransport{state}>")
    }
}
