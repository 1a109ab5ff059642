//! `TlsTransport`: the `asyncio.Transport` an application gets for a TLS connection (asyncio's
//! `_SSLProtocolTransport`). Every call goes to its `TlsProtocol`, which holds the state.

use super::names;
use super::protocol::TlsProtocol;
use crate::transport::{presented_class, set_presented_class, with_bytes};
use pyo3::exceptions::{PyNotImplementedError, PyResourceWarning, PyRuntimeError, PyTypeError};
use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::{PyByteArray, PyBytes, PyMemoryView, PyType};
use pyo3::{PyTraverseError, PyVisit};
use std::cell::{Cell, RefCell};

/// The class TLS transports present as `__class__` (`evloop.SSLTransportType`, a subclass of
/// asyncio's `_SSLProtocolTransport`), so `isinstance` checks against asyncio's classes hold.
static PRESENTED_CLASS: GILOnceCell<Py<PyType>> = GILOnceCell::new();

#[pyfunction]
pub(crate) fn _set_tls_transport_class(py: Python<'_>, cls: Bound<'_, PyType>) -> PyResult<()> {
    set_presented_class(py, &PRESENTED_CLASS, cls, "TLS transport")
}

#[pyclass(frozen, weakref, dict, module = "evloop._evloop")]
pub struct TlsTransport {
    lp: PyObject,
    protocol: RefCell<Option<Py<TlsProtocol>>>,
    pub(crate) closed: Cell<bool>,
}

// SAFETY: as for TlsProtocol: the loop's thread only, with the GIL.
unsafe impl Send for TlsTransport {}
// SAFETY: as above.
unsafe impl Sync for TlsTransport {}

impl TlsTransport {
    pub(crate) fn new(lp: PyObject, protocol: Py<TlsProtocol>) -> TlsTransport {
        TlsTransport {
            lp,
            protocol: RefCell::new(Some(protocol)),
            closed: Cell::new(false),
        }
    }

    fn protocol<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, TlsProtocol>> {
        match self.protocol.borrow().as_ref() {
            Some(p) => Ok(p.bind(py).clone()),
            None => Err(PyRuntimeError::new_err(
                "the SSL transport was closed twice and let its protocol go",
            )),
        }
    }
}

/// A transport dropped unclosed warns, as asyncio's does.
impl Drop for TlsTransport {
    fn drop(&mut self) {
        if self.closed.replace(true) {
            return;
        }
        Python::with_gil(|py| {
            let warned = PyErr::warn_bound(
                py,
                &py.get_type_bound::<PyResourceWarning>(),
                "unclosed transport <asyncio._SSLProtocolTransport object>",
                1,
            );
            if let Err(e) = warned {
                e.write_unraisable_bound(py, None);
            }
        });
    }
}

#[pymethods]
impl TlsTransport {
    #[pyo3(signature = (name, default = None))]
    fn get_extra_info(
        &self,
        py: Python<'_>,
        name: &Bound<'_, PyAny>,
        default: Option<PyObject>,
    ) -> PyResult<PyObject> {
        self.protocol(py)?
            .get()
            .extra_info(py, name, default.unwrap_or_else(|| py.None()))
    }

    fn set_protocol(&self, py: Python<'_>, protocol: PyObject) -> PyResult<()> {
        self.protocol(py)?.get().set_app_protocol(py, protocol)
    }

    fn get_protocol(&self, py: Python<'_>) -> PyResult<PyObject> {
        Ok(self.protocol(py)?.get().app_protocol_object(py))
    }

    fn is_closing(&self) -> bool {
        self.closed.get()
    }

    /// Flushes what is buffered, then shuts TLS down; `connection_lost(None)` follows.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        if self.closed.replace(true) {
            return Ok(());
        }
        TlsProtocol::start_shutdown(&self.protocol(py)?)
    }

    fn is_reading(&self, py: Python<'_>) -> PyResult<bool> {
        Ok(!self.protocol(py)?.get().app_reading_paused())
    }

    fn pause_reading(&self, py: Python<'_>) -> PyResult<()> {
        self.protocol(py)?.get().pause_app_reading();
        Ok(())
    }

    fn resume_reading(&self, py: Python<'_>) -> PyResult<()> {
        TlsProtocol::resume_app_reading(&self.protocol(py)?)
    }

    #[pyo3(signature = (high = None, low = None))]
    fn set_write_buffer_limits(&self, py: Python<'_>, high: Option<i64>, low: Option<i64>) -> PyResult<()> {
        let p = self.protocol(py)?;
        p.get().set_write_limits(py, high, low)?;
        TlsProtocol::control_app_writing(&p)
    }

    fn get_write_buffer_limits(&self, py: Python<'_>) -> PyResult<(usize, usize)> {
        Ok(self.protocol(py)?.get().write_limits())
    }

    fn get_write_buffer_size(&self, py: Python<'_>) -> PyResult<usize> {
        self.protocol(py)?.get().write_buffer_size(py)
    }

    #[pyo3(signature = (high = None, low = None))]
    fn set_read_buffer_limits(&self, py: Python<'_>, high: Option<i64>, low: Option<i64>) -> PyResult<()> {
        let p = self.protocol(py)?;
        p.get().set_read_limits(py, high, low)?;
        TlsProtocol::control_ssl_reading(&p)
    }

    fn get_read_buffer_limits(&self, py: Python<'_>) -> PyResult<(usize, usize)> {
        Ok(self.protocol(py)?.get().read_limits())
    }

    fn get_read_buffer_size(&self, py: Python<'_>) -> PyResult<usize> {
        self.protocol(py)?.get().incoming_pending(py)
    }

    /// Whether the application's protocol is paused (asyncio's sendfile fallback reads it).
    #[getter]
    fn _protocol_paused(&self, py: Python<'_>) -> PyResult<bool> {
        Ok(self.protocol(py)?.get().app_writing_paused())
    }

    fn write(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        if !(data.is_instance_of::<PyBytes>()
            || data.is_instance_of::<PyByteArray>()
            || data.is_instance_of::<PyMemoryView>())
        {
            return Err(PyTypeError::new_err(format!(
                "data: expecting a bytes-like instance, got {}",
                data.get_type().name()?
            )));
        }
        if with_bytes(data, |b| b.is_empty())? {
            return Ok(());
        }
        TlsProtocol::write_one(&self.protocol(py)?, data)
    }

    fn writelines(&self, py: Python<'_>, list_of_data: &Bound<'_, PyAny>) -> PyResult<()> {
        let items = list_of_data.iter()?.collect::<PyResult<Vec<_>>>()?;
        TlsProtocol::write_appdata(&self.protocol(py)?, items)
    }

    fn write_eof(&self) -> PyResult<()> {
        Err(PyNotImplementedError::new_err(()))
    }

    fn can_write_eof(&self) -> bool {
        false
    }

    /// Closes at once, dropping what is buffered; `connection_lost(None)` follows.
    fn abort(&self, py: Python<'_>) -> PyResult<()> {
        self._force_close(py, None)
    }

    #[pyo3(signature = (exc = None))]
    fn _force_close(&self, py: Python<'_>, exc: Option<PyObject>) -> PyResult<()> {
        self.closed.set(true);
        let Some(p) = self.protocol.borrow().as_ref().map(|p| p.clone_ref(py)) else {
            return Ok(());
        };
        TlsProtocol::abort(p.bind(py), exc.as_ref().map(|e| e.bind(py)))
    }

    /// asyncio's test hook: queues application data without writing it.
    #[pyo3(name = "_test__append_write_backlog")]
    fn test_append_write_backlog(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        self.protocol(py)?.get().append_backlog(data)
    }

    #[getter]
    fn _ssl_protocol(&self, py: Python<'_>) -> PyObject {
        self.protocol
            .borrow()
            .as_ref()
            .map_or_else(|| py.None(), |p| p.clone_ref(py).into_any())
    }

    #[getter]
    fn _closed(&self) -> bool {
        self.closed.get()
    }

    #[getter]
    fn _loop(&self, py: Python<'_>) -> PyObject {
        self.lp.clone_ref(py)
    }

    #[classattr]
    fn _start_tls_compatible() -> bool {
        true
    }

    #[classattr]
    fn _sendfile_compatible(py: Python<'_>) -> PyResult<PyObject> {
        Ok(names(py)?.sendfile_fallback.clone_ref(py))
    }

    #[getter]
    fn __class__(slf: &Bound<'_, Self>) -> PyObject {
        presented_class(&PRESENTED_CLASS, slf.as_any())
    }

    fn __repr__(&self) -> String {
        let state = if self.closed.get() { " closed" } else { "" };
        format!("<evloop.TlsTransport{state}>")
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.lp)?;
        if let Ok(p) = self.protocol.try_borrow() {
            if let Some(p) = p.as_ref() {
                visit.call(p)?;
            }
        }
        Ok(())
    }

    fn __clear__(&self) {
        let old = self.protocol.try_borrow_mut().ok().and_then(|mut p| p.take());
        drop(old);
    }
}
