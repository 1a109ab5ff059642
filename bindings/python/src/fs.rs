//! File operations for `evloop.fs`, on the core's file requests (native io_uring operations, or
//! the thread pool on epoll). Each function starts one request and settles an asyncio future
//! from its completion: no thread per call, no Python object per step.

use crate::core_loop::Core;
use crate::errors::os_error;
use pyo3::exceptions::PyOSError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};
use std::cell::RefCell;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::rc::Rc;

/// How many files `read_files` keeps in flight.
const READ_FILES_WINDOW: usize = 256;

fn path_of(bytes: &[u8]) -> &Path {
    Path::new(OsStr::from_bytes(bytes))
}

/// `OSError(errno, strerror, filename)`: Python picks the subclass (`FileNotFoundError`…).
fn file_error(py: Python<'_>, e: evloop::Error, path: Option<&[u8]>) -> PyObject {
    let filename = path.map(|p| String::from_utf8_lossy(p).into_owned());
    let err = match filename {
        Some(f) => PyOSError::new_err((e.errno(), e.message(), f)),
        None => os_error(e),
    };
    err.value_bound(py).clone().into_any().unbind()
}

/// Settles `fut` unless it was cancelled meanwhile.
fn settle(py: Python<'_>, fut: &PyObject, result: Result<PyObject, PyObject>) {
    let fut = fut.bind(py);
    if fut
        .call_method0(intern!(py, "done"))
        .and_then(|d| d.is_truthy())
        .unwrap_or(true)
    {
        return;
    }
    let r = match result {
        Ok(v) => fut.call_method1(intern!(py, "set_result"), (v,)),
        Err(e) => fut.call_method1(intern!(py, "set_exception"), (e,)),
    };
    if let Err(e) = r {
        e.write_unraisable_bound(py, Some(fut));
    }
}

/// Starts reading the whole of `path`; `fut` gets the bytes.
#[pyfunction]
pub(crate) fn fs_read_file(core: &Bound<'_, Core>, path: &[u8], fut: PyObject) -> PyResult<()> {
    let lp = core.get().lp()?;
    let path = path.to_vec();
    let p = path.clone();
    evloop::fs::read_file(lp, path_of(&p), move |_, r| {
        Python::with_gil(|py| {
            let r = match r {
                Ok(data) => Ok(PyBytes::new_bound(py, &data).into_any().unbind()),
                Err(e) => Err(file_error(py, e, Some(&path))),
            };
            settle(py, &fut, r);
        })
    })
    .map_err(os_error)
}

/// Starts writing `data` to `path` (created or truncated); `fut` gets `None`.
#[pyfunction]
pub(crate) fn fs_write_file(core: &Bound<'_, Core>, path: &[u8], data: &[u8], fut: PyObject) -> PyResult<()> {
    let lp = core.get().lp()?;
    let path = path.to_vec();
    let p = path.clone();
    evloop::fs::write_file(lp, path_of(&p), data.to_vec(), move |_, r| {
        Python::with_gil(|py| {
            let r = r.map(|()| py.None()).map_err(|e| file_error(py, e, Some(&path)));
            settle(py, &fut, r);
        })
    })
    .map_err(os_error)
}

/// Starts a `stat` of `path`; `fut` gets the fields `evloop.fs` turns into an `os.stat_result`.
#[pyfunction]
pub(crate) fn fs_stat(core: &Bound<'_, Core>, path: &[u8], fut: PyObject) -> PyResult<()> {
    let lp = core.get().lp()?;
    let path = path.to_vec();
    let p = path.clone();
    evloop::fs::stat(lp, path_of(&p), move |_, r| {
        Python::with_gil(|py| {
            let r = match r {
                Ok(m) => {
                    let d = PyDict::new_bound(py);
                    let ns = |t: evloop::fs::FileTime| t.sec as i128 * 1_000_000_000 + t.nsec as i128;
                    let fields = [
                        ("mode", m.mode as i128),
                        ("ino", m.ino as i128),
                        ("dev", m.dev as i128),
                        ("nlink", m.nlink as i128),
                        ("uid", m.uid as i128),
                        ("gid", m.gid as i128),
                        ("size", m.size as i128),
                        ("atime_ns", ns(m.atime)),
                        ("mtime_ns", ns(m.mtime)),
                        ("ctime_ns", ns(m.ctime)),
                        ("blksize", m.blksize as i128),
                        ("blocks", m.blocks as i128),
                        ("rdev", m.rdev as i128),
                    ];
                    let filled = fields.iter().try_for_each(|(k, v)| d.set_item(*k, *v));
                    match filled {
                        Ok(()) => Ok(d.into_any().unbind()),
                        Err(e) => Err(e.value_bound(py).clone().into_any().unbind()),
                    }
                }
                Err(e) => Err(file_error(py, e, Some(&path))),
            };
            settle(py, &fut, r);
        })
    })
    .map_err(os_error)
}

struct Batch {
    paths: Vec<Vec<u8>>,
    results: Vec<Option<Vec<u8>>>,
    next: usize,
    left: usize,
    failed: bool,
    fut: PyObject,
}

/// Starts the batch's next read, if any is left and none has failed.
fn batch_start_next(py: Python<'_>, lp: &mut evloop::Loop, batch: &Rc<RefCell<Batch>>) {
    let i = {
        let mut b = batch.borrow_mut();
        if b.failed || b.next == b.paths.len() {
            return;
        }
        b.next += 1;
        b.next - 1
    };
    let me = batch.clone();
    let started = evloop::fs::read_file(lp, path_of(&batch.borrow().paths[i]), move |lp, r| {
        // The GIL is held while the core runs callbacks (the loop runs inside `_run_once`).
        Python::with_gil(|py| batch_done(py, lp, &me, i, r))
    });
    if let Err(e) = started {
        batch_failed(py, batch, i, e);
    }
}

/// The first error settles the batch's future; reads still in flight finish unreported.
fn batch_failed(py: Python<'_>, batch: &Rc<RefCell<Batch>>, i: usize, e: evloop::Error) {
    let (fut, err) = {
        let mut b = batch.borrow_mut();
        b.failed = true;
        (b.fut.clone_ref(py), file_error(py, e, Some(&b.paths[i])))
    };
    settle(py, &fut, Err(err));
}

fn batch_done(
    py: Python<'_>,
    lp: &mut evloop::Loop,
    batch: &Rc<RefCell<Batch>>,
    i: usize,
    r: evloop::Result<Vec<u8>>,
) {
    let finished = {
        let mut b = batch.borrow_mut();
        b.left -= 1;
        if b.failed {
            return;
        }
        match r {
            Ok(data) => b.results[i] = Some(data),
            Err(e) => {
                drop(b);
                return batch_failed(py, batch, i, e);
            }
        }
        (b.left == 0).then(|| (std::mem::take(&mut b.results), b.fut.clone_ref(py)))
    };
    match finished {
        Some((results, fut)) => {
            let list = PyList::new_bound(
                py,
                results
                    .iter()
                    .map(|d| PyBytes::new_bound(py, d.as_deref().unwrap_or(&[]))),
            );
            settle(py, &fut, Ok(list.into_any().unbind()));
        }
        None => batch_start_next(py, lp, batch),
    }
}

/// Starts reading every file of `paths`, up to 256 at a time; `fut` gets their contents in
/// order, or the first error.
#[pyfunction]
pub(crate) fn fs_read_files(
    core: &Bound<'_, Core>,
    paths: &Bound<'_, PyList>,
    fut: PyObject,
) -> PyResult<()> {
    let py = core.py();
    let paths: Vec<Vec<u8>> = paths
        .iter()
        .map(|p| p.extract::<&[u8]>().map(<[u8]>::to_vec))
        .collect::<PyResult<_>>()?;
    let lp = core.get().lp()?;
    let n = paths.len();
    if n == 0 {
        settle(py, &fut, Ok(PyList::empty_bound(py).into_any().unbind()));
        return Ok(());
    }
    let batch = Rc::new(RefCell::new(Batch {
        paths,
        results: vec![None; n],
        next: 0,
        left: n,
        failed: false,
        fut,
    }));
    for _ in 0..READ_FILES_WINDOW.min(n) {
        batch_start_next(py, lp, &batch);
    }
    Ok(())
}

/// Starts opening `path` with `flags` and `mode`; `fut` gets the fd.
#[pyfunction]
pub(crate) fn fs_open(
    core: &Bound<'_, Core>,
    path: &[u8],
    flags: i32,
    mode: u32,
    fut: PyObject,
) -> PyResult<()> {
    let lp = core.get().lp()?;
    let path = path.to_vec();
    let p = path.clone();
    evloop::fs::open(lp, path_of(&p), flags, mode, move |_, r| {
        Python::with_gil(|py| {
            let r = r
                .map(|fd| fd.into_py(py))
                .map_err(|e| file_error(py, e, Some(&path)));
            settle(py, &fut, r);
        })
    })
    .map_err(os_error)
}

/// Starts reading up to `size` bytes of `fd` at `offset` (the file position if `None`); `fut`
/// gets the bytes (empty at end of file).
#[pyfunction]
#[pyo3(signature = (core, fd, size, offset, fut))]
pub(crate) fn fs_read(
    core: &Bound<'_, Core>,
    fd: i32,
    size: usize,
    offset: Option<u64>,
    fut: PyObject,
) -> PyResult<()> {
    let lp = core.get().lp()?;
    evloop::fs::read(lp, fd, vec![0u8; size], offset, move |_, r, buf| {
        Python::with_gil(|py| {
            let r = r
                .map(|n| PyBytes::new_bound(py, &buf[..n]).into_any().unbind())
                .map_err(|e| file_error(py, e, None));
            settle(py, &fut, r);
        })
    })
    .map_err(os_error)
}

/// Starts writing `data` to `fd` at `offset` (the file position if `None`); `fut` gets the
/// count written.
#[pyfunction]
#[pyo3(signature = (core, fd, data, offset, fut))]
pub(crate) fn fs_write(
    core: &Bound<'_, Core>,
    fd: i32,
    data: &[u8],
    offset: Option<u64>,
    fut: PyObject,
) -> PyResult<()> {
    let lp = core.get().lp()?;
    evloop::fs::write(lp, fd, data.to_vec(), offset, move |_, r, _| {
        Python::with_gil(|py| {
            let r = r.map(|n| n.into_py(py)).map_err(|e| file_error(py, e, None));
            settle(py, &fut, r);
        })
    })
    .map_err(os_error)
}

/// Starts closing `fd`; `fut` gets `None`.
#[pyfunction]
pub(crate) fn fs_close(core: &Bound<'_, Core>, fd: i32, fut: PyObject) -> PyResult<()> {
    let lp = core.get().lp()?;
    evloop::fs::close(lp, fd, move |_, r| {
        Python::with_gil(|py| {
            let r = r.map(|()| py.None()).map_err(|e| file_error(py, e, None));
            settle(py, &fut, r);
        })
    })
    .map_err(os_error)
}
