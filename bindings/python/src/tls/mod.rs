//! TLS over evloop's transports, natively: asyncio's `sslproto` (the SSL protocol and the
//! transport it gives the application) as a Rust state machine driving the user's
//! `ssl.SSLContext` through `ssl.MemoryBIO` and `SSLObject`. asyncio's loop runs the same state
//! machine in Python; uvloop runs it compiled from Cython. See docs/ARCHITECTURE.md, "TLS in the
//! Python loop", for the choice against calling OpenSSL directly.
//!
//! - `protocol`: the protocol the raw transport feeds (handshake, records, shutdown, flow
//!   control). evloop's own stream transport hands it each read and takes its records without
//!   a Python call between them.
//! - `app_transport`: the `asyncio.Transport` the application writes to.

pub(crate) mod app_transport;
pub(crate) mod protocol;

use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::PyTuple;

/// What the state machine uses of `ssl` and `asyncio`, looked up once per process.
pub(crate) struct Names {
    /// `(ssl.SSLWantReadError, ssl.SSLSyscallError)`: asyncio's `SSLAgainErrors`, "try again
    /// when more bytes have come".
    pub(crate) again: Py<PyTuple>,
    pub(crate) ssl_error: PyObject,
    pub(crate) certificate_error: PyObject,
    pub(crate) memory_bio: PyObject,
    pub(crate) ssl_object: PyObject,
    pub(crate) logger: PyObject,
    pub(crate) timeout_error: PyObject,
    pub(crate) cancelled_error: PyObject,
    pub(crate) create_transport_context: PyObject,
    pub(crate) sendfile_fallback: PyObject,
    pub(crate) handshake_timeout: f64,
    pub(crate) shutdown_timeout: f64,
    /// Flow-control defaults, in KiB (asyncio.constants).
    pub(crate) read_high_water_kib: usize,
    pub(crate) write_high_water_kib: usize,
    pub(crate) conn_lost_log_threshold: u32,
}

static NAMES: GILOnceCell<Names> = GILOnceCell::new();

pub(crate) fn names(py: Python<'_>) -> PyResult<&Names> {
    NAMES.get_or_try_init(py, || {
        let ssl = py.import_bound("ssl")?;
        let constants = py.import_bound("asyncio.constants")?;
        let exceptions = py.import_bound("asyncio.exceptions")?;
        let again = PyTuple::new_bound(
            py,
            [ssl.getattr("SSLWantReadError")?, ssl.getattr("SSLSyscallError")?],
        );
        Ok(Names {
            again: again.unbind(),
            ssl_error: ssl.getattr("SSLError")?.unbind(),
            certificate_error: ssl.getattr("CertificateError")?.unbind(),
            memory_bio: ssl.getattr("MemoryBIO")?.unbind(),
            ssl_object: ssl.getattr("SSLObject")?.unbind(),
            logger: py.import_bound("asyncio.log")?.getattr("logger")?.unbind(),
            timeout_error: exceptions.getattr("TimeoutError")?.unbind(),
            cancelled_error: exceptions.getattr("CancelledError")?.unbind(),
            create_transport_context: py
                .import_bound("asyncio.sslproto")?
                .getattr("_create_transport_context")?
                .unbind(),
            sendfile_fallback: constants.getattr("_SendfileMode")?.getattr("FALLBACK")?.unbind(),
            handshake_timeout: constant(&constants, "SSL_HANDSHAKE_TIMEOUT", 60.0)?,
            // Added by 3.11 with the SSL protocol this one follows; its values before.
            shutdown_timeout: constant(&constants, "SSL_SHUTDOWN_TIMEOUT", 30.0)?,
            read_high_water_kib: constant(&constants, "FLOW_CONTROL_HIGH_WATER_SSL_READ", 256)?,
            write_high_water_kib: constant(&constants, "FLOW_CONTROL_HIGH_WATER_SSL_WRITE", 512)?,
            conn_lost_log_threshold: constant(&constants, "LOG_THRESHOLD_FOR_CONNLOST_WRITES", 5)?,
        })
    })
}

/// `asyncio.constants.<name>`, or `default` on a Python that does not have it.
fn constant<'py, T: FromPyObject<'py>>(
    constants: &Bound<'py, PyModule>,
    name: &str,
    default: T,
) -> PyResult<T> {
    match constants.getattr(name) {
        Ok(v) => v.extract(),
        Err(_) => Ok(default),
    }
}

/// asyncio's `add_flowcontrol_defaults`: `(high, low)` from what the caller gave, with `kib`
/// KiB as the default high-water mark and a quarter of the high one as the default low one.
pub(crate) fn flow_control_limits(
    high: Option<i64>,
    low: Option<i64>,
    kib: usize,
) -> PyResult<(usize, usize)> {
    let high = match (high, low) {
        (Some(h), _) => h,
        (None, Some(l)) => 4 * l,
        (None, None) => (kib * 1024) as i64,
    };
    let low = low.unwrap_or(high / 4);
    if !(high >= low && low >= 0) {
        return Err(pyo3::exceptions::PyValueError::new_err(format!(
            "high ({high}) must be >= low ({low}) must be >= 0"
        )));
    }
    Ok((high as usize, low as usize))
}
