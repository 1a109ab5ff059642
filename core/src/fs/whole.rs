//! Whole-file conveniences built from the primitives (Node's `readFile`/`writeFile`/`readdir`).

use super::{c_path, close, count, open, write, FileType, MAX_TRANSFER};
use crate::backend::file_op::FileOp;
use crate::error::{Error, Result};
use crate::event_loop::Loop;
use std::cell::Cell;
use std::ffi::OsString;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::rc::Rc;

type ResultCb<T> = Box<dyn FnOnce(&mut Loop, Result<T>)>;
type BytesCb = ResultCb<Vec<u8>>;
type DoneCb = ResultCb<()>;
/// A callback that either the completion or the failure to submit runs, whichever comes.
type Slot<T> = Rc<Cell<Option<ResultCb<T>>>>;

fn slot<T>(cb: ResultCb<T>) -> (Slot<T>, Slot<T>) {
    let s = Rc::new(Cell::new(Some(cb)));
    (s.clone(), s)
}

/// A step could not be submitted: close the file and report `e` on the next iteration (never
/// from inside the call that started the operation).
fn fail_later<T: 'static>(lp: &mut Loop, fd: RawFd, slot: &Slot<T>, e: Error) {
    close_quietly(lp, fd);
    if let Some(cb) = slot.take() {
        lp.call_soon(move |lp| cb(lp, Err(e)));
    }
}

/// First read size of [`read_file`]; the buffer doubles while the file goes on.
const FIRST_CHUNK: usize = 16 * 1024;

/// Closes an fd whose outcome nobody waits for (a read-only file, or one already failed).
fn close_quietly(lp: &mut Loop, fd: RawFd) {
    if close(lp, fd, |_, _| {}).is_err() {
        crate::sys::close(fd);
    }
}

/// Reads the whole of `path`; `cb` gets its contents.
pub fn read_file(
    lp: &mut Loop,
    path: impl AsRef<Path>,
    cb: impl FnOnce(&mut Loop, Result<Vec<u8>>) + 'static,
) -> Result<()> {
    let cb: BytesCb = Box::new(cb);
    open(lp, path, libc::O_RDONLY, 0, move |lp, fd| match fd {
        Ok(fd) => read_rest(lp, fd, Vec::with_capacity(FIRST_CHUNK), cb),
        Err(e) => cb(lp, Err(e)),
    })
}

struct Tail {
    fd: RawFd,
    buf: Vec<u8>,
}

/// Reads into the spare capacity of `buf` at offset `buf.len()` until a read returns 0.
fn read_rest(lp: &mut Loop, fd: RawFd, mut buf: Vec<u8>, cb: BytesCb) {
    if buf.capacity() - buf.len() < FIRST_CHUNK / 2 {
        buf.reserve(buf.len().max(FIRST_CHUNK));
    }
    let (on_done, on_fail) = slot(cb);
    let submitted = lp.file_submit(
        Box::new(Tail { fd, buf }),
        |m| FileOp::Read {
            fd: m.fd,
            // SAFETY: `len` is within the allocation; the spare capacity follows it.
            ptr: unsafe { m.buf.as_mut_ptr().add(m.buf.len()) },
            len: (m.buf.capacity() - m.buf.len()).min(MAX_TRANSFER) as u32,
            offset: m.buf.len() as u64,
        },
        move |lp, res, m| {
            let Some(cb) = on_done.take() else { return };
            let mut buf = m.buf;
            match count(res) {
                Ok(0) => {
                    close_quietly(lp, fd);
                    cb(lp, Ok(buf));
                }
                Ok(n) => {
                    // SAFETY: the kernel initialised `n` bytes of spare capacity.
                    unsafe { buf.set_len(buf.len() + n) };
                    read_rest(lp, fd, buf, cb);
                }
                Err(e) => {
                    close_quietly(lp, fd);
                    cb(lp, Err(e));
                }
            }
        },
    );
    if let Err(e) = submitted {
        fail_later(lp, fd, &on_fail, e);
    }
}

/// Bytes of `buf` from `from` on.
struct Rest<B> {
    buf: B,
    from: usize,
}

impl<B: AsRef<[u8]>> AsRef<[u8]> for Rest<B> {
    fn as_ref(&self) -> &[u8] {
        &self.buf.as_ref()[self.from..]
    }
}

/// Creates or truncates `path` (mode 0666 less the umask) and writes all of `data` to it; `cb`
/// runs after the file is closed.
pub fn write_file<B: AsRef<[u8]> + Send + 'static>(
    lp: &mut Loop,
    path: impl AsRef<Path>,
    data: B,
    cb: impl FnOnce(&mut Loop, Result<()>) + 'static,
) -> Result<()> {
    let cb: DoneCb = Box::new(cb);
    open(
        lp,
        path,
        libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC,
        0o666,
        move |lp, fd| match fd {
            Ok(fd) => write_rest(lp, fd, Rest { buf: data, from: 0 }, cb),
            Err(e) => cb(lp, Err(e)),
        },
    )
}

fn write_rest<B: AsRef<[u8]> + Send + 'static>(lp: &mut Loop, fd: RawFd, data: Rest<B>, cb: DoneCb) {
    let (on_done, on_fail) = slot(cb);
    if data.as_ref().is_empty() {
        let closed = close(lp, fd, move |lp, r| {
            if let Some(cb) = on_done.take() {
                cb(lp, r)
            }
        });
        if let Err(e) = closed {
            fail_later(lp, fd, &on_fail, e);
        }
        return;
    }
    let offset = data.from as u64;
    let submitted = write(lp, fd, data, Some(offset), move |lp, r, mut data| {
        let Some(cb) = on_done.take() else { return };
        match r {
            // A regular file that takes nothing is full; write(2) would say ENOSPC next.
            Ok(0) => {
                close_quietly(lp, fd);
                cb(lp, Err(Error::ENOSPC));
            }
            Ok(n) => {
                data.from += n;
                write_rest(lp, fd, data, cb);
            }
            Err(e) => {
                close_quietly(lp, fd);
                cb(lp, Err(e));
            }
        }
    });
    if let Err(e) = submitted {
        fail_later(lp, fd, &on_fail, e);
    }
}

/// One name in a directory listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    /// The name within the directory (never `.` or `..`).
    pub name: OsString,
    /// Its type as the directory records it (`Unknown` on file systems that do not).
    pub file_type: FileType,
}

fn list(path: PathBuf) -> Result<Vec<DirEntry>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(path)? {
        let entry = entry?;
        let t = entry.file_type()?;
        let file_type = if t.is_file() {
            FileType::File
        } else if t.is_dir() {
            FileType::Dir
        } else if t.is_symlink() {
            FileType::Symlink
        } else {
            use std::os::unix::fs::FileTypeExt;
            if t.is_fifo() {
                FileType::Fifo
            } else if t.is_socket() {
                FileType::Socket
            } else if t.is_char_device() {
                FileType::CharDevice
            } else if t.is_block_device() {
                FileType::BlockDevice
            } else {
                FileType::Unknown
            }
        };
        out.push(DirEntry {
            name: entry.file_name(),
            file_type,
        });
    }
    Ok(out)
}

/// Lists a directory, in the order the file system returns (not sorted), on the thread pool
/// with either backend (io_uring has no getdents).
pub fn scandir(
    lp: &mut Loop,
    path: impl AsRef<Path>,
    cb: impl FnOnce(&mut Loop, Result<Vec<DirEntry>>) + 'static,
) -> Result<()> {
    c_path(path.as_ref())?; // the same EINVAL for an inner NUL as every other call
    let path = path.as_ref().to_path_buf();
    lp.queue_work(move || list(path), move |lp, r| cb(lp, r.and_then(|x| x)))
        .map(|_| ())
}
