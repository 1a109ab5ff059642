//! `evloop._evloop`: the native half of the `evloop` Python package (an asyncio event loop on
//! evloop's core). The Python half (`python/evloop/`) subclasses `Core` into
//! `evloop.EventLoop` and inherits the rest of asyncio's loop.

// pyo3 0.22's #[pymethods] expansion converts PyErr into PyErr, which this clippy flags.
#![allow(clippy::useless_conversion)]

mod core_loop;
mod datagram;
mod errors;
mod fs;
mod handle;
mod pipe;
mod tls;
mod transport;
mod transport_state;

use pyo3::prelude::*;

#[pymodule]
fn _evloop(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<core_loop::Core>()?;
    m.add_class::<handle::Handle>()?;
    m.add_class::<handle::TimerHandle>()?;
    m.add_class::<transport::StreamTransport>()?;
    m.add_function(wrap_pyfunction!(transport::_set_transport_class, m)?)?;
    m.add_class::<tls::protocol::TlsProtocol>()?;
    m.add_class::<tls::app_transport::TlsTransport>()?;
    m.add_function(wrap_pyfunction!(tls::app_transport::_set_tls_transport_class, m)?)?;
    m.add_class::<pipe::PipeTransport>()?;
    m.add_function(wrap_pyfunction!(pipe::_set_pipe_transport_classes, m)?)?;
    m.add_class::<datagram::DatagramTransport>()?;
    m.add_function(wrap_pyfunction!(datagram::_set_datagram_transport_class, m)?)?;
    m.add_function(wrap_pyfunction!(fs::fs_read_file, m)?)?;
    m.add_function(wrap_pyfunction!(fs::fs_write_file, m)?)?;
    m.add_function(wrap_pyfunction!(fs::fs_stat, m)?)?;
    m.add_function(wrap_pyfunction!(fs::fs_read_files, m)?)?;
    m.add_function(wrap_pyfunction!(fs::fs_open, m)?)?;
    m.add_function(wrap_pyfunction!(fs::fs_read, m)?)?;
    m.add_function(wrap_pyfunction!(fs::fs_write, m)?)?;
    m.add_function(wrap_pyfunction!(fs::fs_close, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
