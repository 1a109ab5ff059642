//! `DatagramTransport`: asyncio's transport for a UDP socket (IPv4 or IPv6), on a core `Udp`.
//! Each datagram reaches `datagram_received` as one `bytes` straight from the core's buffer;
//! `sendto` sends from the caller's buffer when the backend sends at once (epoll) and nothing
//! waits, and otherwise the core copies the datagram into a reused buffer of its queue (io_uring
//! sends the iteration's datagrams in one kernel entry). Send errors reach `error_received`.

use crate::core_loop::Core;
use crate::errors::os_error;
use crate::handle::copy_current_context;
use crate::transport::{presented_class, report_transport_error, settle_waiter, with_bytes};
use crate::transport_state::{extra_info, TransportState};
use evloop::{Handle as _, Loop, Udp};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyMemoryView, PyTuple, PyType};
use pyo3::{PyTraverseError, PyVisit};
use std::cell::RefCell;
use std::net::{IpAddr, SocketAddr, SocketAddrV6};

/// asyncio's `constants.LOG_THRESHOLD_FOR_CONNLOST_WRITES`.
const LOG_THRESHOLD_FOR_CONNLOST_WRITES: u32 = 5;

/// What datagram transports present as `__class__` (`evloop.DatagramTransportType`, an
/// `asyncio.DatagramTransport` subclass), for the reason given on the stream transport's.
static PRESENTED_CLASS: GILOnceCell<Py<PyType>> = GILOnceCell::new();

#[pyfunction]
pub(crate) fn _set_datagram_transport_class(py: Python<'_>, cls: Bound<'_, PyType>) -> PyResult<()> {
    crate::transport::set_presented_class(py, &PRESENTED_CLASS, cls, "datagram transport")
}

/// A transport over a UDP socket, connected (`address` given) or not. It has a `__dict__`,
/// as the stream transport has.
#[pyclass(frozen, weakref, dict, module = "evloop._evloop")]
pub struct DatagramTransport {
    /// The life cycle, protocol, socket and flow control every native transport has.
    t: TransportState,
    udp: Udp,
    /// `socket`, `sockname` and `peername` from creation, as asyncio records them.
    extra: Py<PyDict>,
    /// The connected peer: as given (for comparisons) and as the core sends to it.
    address: Option<(PyObject, SocketAddr)>,
    /// The peer of a socket that came connected (`sock=`) with no `remote_addr`: asyncio sends
    /// every datagram there (`sock.send`), whatever address `sendto` is given.
    connected_peer: Option<SocketAddr>,
    /// The last sender and its Python address tuple: a conversation with one peer makes one
    /// tuple, not one per datagram.
    last_sender: RefCell<Option<(SocketAddr, PyObject)>>,
    /// The last address `sendto` was given that was not the last sender's tuple, as given and
    /// as parsed: a reply to the sender, or a stream of datagrams to one place, parses nothing.
    last_destination: RefCell<Option<(PyObject, SocketAddr)>>,
    /// The socket's family, for resolving names given to `sendto`.
    family: i32,
}

// SAFETY: as for `StreamTransport`: every method reaches the loop through `Core::lp`, which
// refuses foreign threads, and core callbacks run on the loop thread.
unsafe impl Send for DatagramTransport {}
// SAFETY: as above.
unsafe impl Sync for DatagramTransport {}

/// A Python socket address (`(host, port)` or `(host, port, flowinfo, scope_id)`) as the core
/// takes it: IP literals directly, names through `socket.getaddrinfo` (blocking, as
/// `socket.sendto` resolves them too).
fn to_socket_addr(py: Python<'_>, addr: &Bound<'_, PyAny>, family: i32) -> PyResult<SocketAddr> {
    let tuple = addr
        .downcast::<PyTuple>()
        .map_err(|_| PyTypeError::new_err(format!("a tuple address is required, not {addr}")))?;
    if tuple.len() < 2 {
        return Err(PyTypeError::new_err(format!(
            "a (host, port) address is required, not {addr}"
        )));
    }
    let host: String = tuple.get_item(0)?.extract()?;
    let port: u16 = tuple.get_item(1)?.extract()?;
    let ip = match host.parse::<IpAddr>() {
        Ok(ip) => ip,
        Err(_) => {
            let socket = py.import_bound("socket")?;
            let infos =
                socket.call_method1("getaddrinfo", (host, port, family, socket.getattr("SOCK_DGRAM")?))?;
            let first = infos.get_item(0)?;
            return to_socket_addr(py, &first.get_item(4)?, family);
        }
    };
    Ok(match ip {
        IpAddr::V4(v4) => SocketAddr::new(IpAddr::V4(v4), port),
        IpAddr::V6(v6) => {
            let flowinfo: u32 = if tuple.len() > 2 {
                tuple.get_item(2)?.extract()?
            } else {
                0
            };
            let scope: u32 = if tuple.len() > 3 {
                tuple.get_item(3)?.extract()?
            } else {
                0
            };
            SocketAddr::V6(SocketAddrV6::new(v6, port, flowinfo, scope))
        }
    })
}

/// A sender's address as Python's `recvfrom` gives it.
fn to_py_addr(py: Python<'_>, addr: &SocketAddr) -> PyObject {
    match addr {
        SocketAddr::V4(a) => (a.ip().to_string(), a.port()).into_py(py),
        SocketAddr::V6(a) => (a.ip().to_string(), a.port(), a.flowinfo(), a.scope_id()).into_py(py),
    }
}

impl DatagramTransport {
    fn lp(&self) -> PyResult<&mut Loop> {
        self.t.core.get().lp()
    }

    /// Calls a protocol method; what it raises goes to the exception handler, as an exception
    /// in a loop callback does in asyncio.
    fn call_protocol(
        slf: &Bound<'_, Self>,
        method: &Bound<'_, pyo3::types::PyString>,
        args: impl IntoPy<Py<PyTuple>>,
    ) {
        let py = slf.py();
        let this = slf.get();
        if let Err(e) = this.t.call_protocol(py, method, args) {
            this.t.report_callback_error(slf.as_any(), e);
        }
    }

    fn start_reading(slf: &Bound<'_, Self>) -> PyResult<()> {
        let this = slf.get();
        let me = slf.clone().unbind();
        this.udp
            .recv_start(this.lp()?, move |_, _, r| {
                Python::with_gil(|py| DatagramTransport::on_datagram(me.bind(py), r));
            })
            .map_err(os_error)
    }

    fn on_datagram(slf: &Bound<'_, Self>, r: evloop::Result<(&[u8], SocketAddr)>) {
        let py = slf.py();
        let this = slf.get();
        if this.t.torn_down.get() {
            return;
        }
        match r {
            Ok((data, from)) => {
                let addr = {
                    let mut last = this.last_sender.borrow_mut();
                    match last.as_ref() {
                        Some((a, obj)) if *a == from => obj.clone_ref(py),
                        _ => {
                            let obj = to_py_addr(py, &from);
                            *last = Some((from, obj.clone_ref(py)));
                            obj
                        }
                    }
                };
                let data = PyBytes::new_bound(py, data);
                Self::call_protocol(slf, intern!(py, "datagram_received"), (data, addr));
            }
            Err(e) => Self::call_protocol(slf, intern!(py, "error_received"), (os_error(e).value_bound(py),)),
        }
    }

    /// How a datagram sent without waiting in Python ended: errors to `error_received`, then
    /// flow control and a pending close.
    fn on_sent(slf: &Bound<'_, Self>, r: evloop::Result<()>) {
        let py = slf.py();
        let this = slf.get();
        if this.t.torn_down.get() {
            return;
        }
        if let Err(e) = r {
            Self::call_protocol(slf, intern!(py, "error_received"), (os_error(e).value_bound(py),));
        }
        let Ok(lp) = this.lp() else { return };
        let queued = this.udp.send_queue_size(lp);
        this.t.resume_protocol_if_needed(slf.as_any(), queued);
        if this.t.closing.get() && this.udp.send_queue_count(lp) == 0 {
            Self::close_udp(slf);
        }
    }

    fn maybe_pause_protocol(slf: &Bound<'_, Self>, queued: usize) {
        slf.get().t.pause_protocol_if_needed(slf.as_any(), queued);
    }

    /// asyncio's `_fatal_error`: OSErrors are only logged in debug mode, other exceptions go
    /// to the exception handler; then the transport closes at once.
    fn fatal_error(slf: &Bound<'_, Self>, err: PyErr, message: &str) {
        let py = slf.py();
        let this = slf.get();
        if !err.is_instance_of::<pyo3::exceptions::PyOSError>(py) {
            report_transport_error(
                py,
                &this.t.core,
                slf.as_any(),
                &this.t.protocol(py),
                err.clone_ref(py),
                message,
            );
        }
        Self::force_close(slf, Some(err.value_bound(py).clone().into_any().unbind()));
    }

    fn force_close(slf: &Bound<'_, Self>, exc: Option<PyObject>) {
        if slf.get().t.begin_force_close(exc) {
            Self::close_udp(slf);
        }
    }

    /// Closes the core socket (which closes the fd, dropping what still waits) and schedules
    /// `connection_lost`.
    fn close_udp(slf: &Bound<'_, Self>) {
        let this = slf.get();
        if !this.t.tear_down() {
            return;
        }
        if let Ok(lp) = this.lp() {
            let _ = this.udp.close(lp, None);
        }
        this.t.schedule_connection_lost(slf.as_any());
    }

    fn connection_lost(slf: &Bound<'_, Self>) {
        let this = slf.get();
        this.t.notify_connection_lost(slf.as_any());
        this.t.drop_protocol(slf.py());
    }

    /// Where `sendto(data, addr)` goes on an unconnected socket: the sender's or the last
    /// destination's address when `addr` is that very object, else `addr` parsed (and kept).
    fn destination(&self, py: Python<'_>, addr: &Bound<'_, PyAny>) -> PyResult<SocketAddr> {
        if let Some((to, obj)) = self.last_sender.borrow().as_ref() {
            if addr.is(obj) {
                return Ok(*to);
            }
        }
        if let Some((obj, to)) = self.last_destination.borrow().as_ref() {
            if addr.is(obj) {
                return Ok(*to);
            }
        }
        let to = to_socket_addr(py, addr, self.family)?;
        let old = self.last_destination.replace(Some((addr.clone().unbind(), to)));
        drop(old);
        Ok(to)
    }

    fn send(slf: &Bound<'_, Self>, data: &[u8], to: SocketAddr) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let lp = this.lp()?;
        match this.udp.send_to(lp, data, to, None) {
            Ok(()) => {
                let queued = this.udp.send_queue_size(lp);
                if queued > 0 {
                    Self::maybe_pause_protocol(slf, queued);
                }
            }
            // More than the core lets wait: the datagram is dropped, as the kernel drops what
            // its buffer cannot hold, and the protocol hears of it.
            Err(evloop::Error::ENOBUFS) => Self::call_protocol(
                slf,
                intern!(py, "error_received"),
                (os_error(evloop::Error::ENOBUFS).value_bound(py),),
            ),
            Err(e) => Self::fatal_error(slf, os_error(e), "Fatal write error on datagram transport"),
        }
        Ok(())
    }
}

/// As for `StreamTransport`: dropped while open, it closes its socket.
impl Drop for DatagramTransport {
    fn drop(&mut self) {
        if self.t.tear_down() {
            if let Ok(lp) = self.t.core.get().lp() {
                let _ = self.udp.close(lp, None);
            }
        }
    }
}

#[pymethods]
impl DatagramTransport {
    /// Wraps the UDP socket `sock` (asyncio's `_make_datagram_transport`); `address` is the
    /// connected peer, if any. The loop calls `_start` next, from its ready queue.
    #[new]
    #[pyo3(signature = (core, sock, protocol, address = None, extra = None))]
    fn new(
        py: Python<'_>,
        core: Py<Core>,
        sock: PyObject,
        protocol: PyObject,
        address: Option<PyObject>,
        extra: Option<Py<PyDict>>,
    ) -> PyResult<DatagramTransport> {
        let lp = core.bind(py).get().lp()?;
        let s = sock.bind(py);
        let fd: i32 = s.call_method0(intern!(py, "fileno"))?.extract()?;
        let family: i32 = s.getattr(intern!(py, "family"))?.extract()?;
        let extra = extra.unwrap_or_else(|| PyDict::new_bound(py).unbind());
        {
            let e = extra.bind(py);
            let wrapper = py.import_bound("asyncio.trsock")?.getattr("TransportSocket")?;
            e.set_item("socket", wrapper.call1((s,))?)?;
            e.set_item(
                "sockname",
                s.call_method0("getsockname")
                    .map_or_else(|_| py.None(), Bound::unbind),
            )?;
            if !e.contains("peername")? {
                e.set_item(
                    "peername",
                    s.call_method0("getpeername")
                        .map_or_else(|_| py.None(), Bound::unbind),
                )?;
            }
        }
        let address = match address {
            Some(a) if a.is_truthy(py)? => {
                let to = to_socket_addr(py, a.bind(py), family)?;
                Some((a, to))
            }
            _ => None,
        };
        let connected_peer = match (&address, s.call_method0(intern!(py, "getpeername"))) {
            (None, Ok(peer)) => Some(to_socket_addr(py, &peer, family)?),
            _ => None,
        };
        let udp = Udp::adopt(lp, fd).map_err(os_error)?;
        core.bind(py).get().state.transport_fds.borrow_mut().insert(fd);
        Ok(DatagramTransport {
            t: TransportState::new(core, protocol, copy_current_context(py)?, Some(sock), fd),
            udp,
            extra,
            address,
            connected_peer,
            last_sender: RefCell::new(None),
            last_destination: RefCell::new(None),
            family,
        })
    }

    /// `connection_made`, then reading, then the waiter: asyncio's order.
    #[pyo3(signature = (waiter = None))]
    fn _start(slf: &Bound<'_, Self>, waiter: Option<PyObject>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let me = slf.clone().unbind();
        this.udp
            .on_sent(this.lp()?, move |_, _, r| {
                Python::with_gil(|py| DatagramTransport::on_sent(me.bind(py), r));
            })
            .map_err(os_error)?;
        this.t.made.set(true);
        Self::call_protocol(slf, intern!(py, "connection_made"), (slf.clone(),));
        if !this.t.closing.get() && !this.t.paused_reading.get() {
            Self::start_reading(slf)?;
        }
        settle_waiter(py, waiter)
    }

    #[pyo3(signature = (data, addr = None))]
    fn sendto(
        slf: &Bound<'_, Self>,
        data: &Bound<'_, PyAny>,
        addr: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        if !(data.is_instance_of::<PyBytes>()
            || data.is_instance_of::<PyByteArray>()
            || data.is_instance_of::<PyMemoryView>())
        {
            return Err(PyTypeError::new_err(format!(
                "data argument must be a bytes-like object, not {:?}",
                data.get_type().name()?.to_string()
            )));
        }
        if data.len()? == 0 {
            return Ok(());
        }
        let addr = addr.filter(|a| !a.is_none());
        let to = match (&this.address, this.connected_peer, addr) {
            // A socket that came connected: asyncio's transport calls `sock.send`.
            (None, Some(peer), _) => peer,
            (Some((_, to)), _, None) => *to,
            (Some((given, to)), _, Some(a)) => {
                if !a.eq(given.bind(py))? {
                    return Err(PyValueError::new_err(format!(
                        "Invalid address: must be None or {}",
                        given.bind(py).str()?
                    )));
                }
                *to
            }
            (None, None, Some(a)) => match this.destination(py, a) {
                Ok(to) => to,
                Err(e) if e.is_instance_of::<pyo3::exceptions::PyOSError>(py) => {
                    Self::call_protocol(slf, intern!(py, "error_received"), (e.value_bound(py),));
                    return Ok(());
                }
                Err(e) => {
                    Self::fatal_error(slf, e, "Fatal write error on datagram transport");
                    return Ok(());
                }
            },
            (None, None, None) => {
                // What socket.sendto(data, None) raises in asyncio's transport.
                let err = PyTypeError::new_err("'NoneType' object is not subscriptable");
                Self::fatal_error(slf, err, "Fatal write error on datagram transport");
                return Ok(());
            }
        };
        if this.t.closing.get() {
            if this.address.is_some() {
                let lost = this.t.conn_lost.get();
                if lost >= LOG_THRESHOLD_FOR_CONNLOST_WRITES {
                    let log = py.import_bound("asyncio.log")?.getattr("logger")?;
                    log.call_method1("warning", ("socket.send() raised exception.",))?;
                }
                this.t.conn_lost.set(lost + 1);
                return Ok(());
            }
            if this.t.torn_down.get() {
                return Ok(());
            }
        }
        with_bytes(data, |b| Self::send(slf, b, to))?
    }

    fn get_write_buffer_size(&self) -> PyResult<usize> {
        Ok(self.udp.send_queue_size(self.lp()?))
    }

    fn get_write_buffer_limits(&self) -> (usize, usize) {
        self.t.limits()
    }

    #[pyo3(signature = (high = None, low = None))]
    fn set_write_buffer_limits(slf: &Bound<'_, Self>, high: Option<i64>, low: Option<i64>) -> PyResult<()> {
        let this = slf.get();
        this.t.set_limits(high, low)?;
        let queued = this.udp.send_queue_size(this.lp()?);
        Self::maybe_pause_protocol(slf, queued);
        Ok(())
    }

    /// Stops reading; closes once the waiting datagrams are sent; `connection_lost(None)`
    /// follows.
    fn close(slf: &Bound<'_, Self>) -> PyResult<()> {
        let this = slf.get();
        if this.t.closing.get() {
            return Ok(());
        }
        this.t.closing.set(true);
        let lp = this.lp()?;
        let _ = this.udp.recv_stop(lp);
        if this.udp.send_queue_count(lp) == 0 {
            Self::close_udp(slf);
        }
        Ok(())
    }

    fn abort(slf: &Bound<'_, Self>) {
        Self::force_close(slf, None);
    }

    fn is_closing(&self) -> bool {
        self.t.closing.get()
    }

    fn pause_reading(slf: &Bound<'_, Self>) -> PyResult<()> {
        let this = slf.get();
        if this.t.pause_reading() {
            this.udp.recv_stop(this.lp()?).map_err(os_error)?;
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

    #[getter]
    fn _loop(&self, py: Python<'_>) -> PyObject {
        self.t.core.clone_ref(py).into_any()
    }

    #[getter]
    fn _protocol_paused(&self) -> bool {
        self.t.protocol_paused.get()
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        self.t.traverse(&visit)?;
        visit.call(&self.extra)?;
        if let Some((given, _)) = &self.address {
            visit.call(given)?;
        }
        if let Ok(last) = self.last_sender.try_borrow() {
            if let Some((_, obj)) = last.as_ref() {
                visit.call(obj)?;
            }
        }
        if let Ok(last) = self.last_destination.try_borrow() {
            if let Some((obj, _)) = last.as_ref() {
                visit.call(obj)?;
            }
        }
        Ok(())
    }

    #[getter]
    fn __class__(slf: &Bound<'_, Self>) -> PyObject {
        presented_class(&PRESENTED_CLASS, slf.as_any())
    }

    fn __repr__(&self) -> String {
        let state = if self.t.closing.get() { " closing" } else { "" };
        format!("<evloop.DatagramTransport{state}>")
    }
}
