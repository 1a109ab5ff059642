//! Core errors as Python exceptions.

use pyo3::exceptions::PyOSError;
use pyo3::PyErr;

/// `OSError(errno, strerror)`: Python picks the subclass for the errno
/// (`ConnectionResetError`, `FileNotFoundError`…), as it does for its own system calls.
pub(crate) fn os_error(e: evloop::Error) -> PyErr {
    PyOSError::new_err((e.errno(), e.message()))
}
