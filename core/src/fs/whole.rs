//! Whole-file conveniences built from the primitives (Node's `readFile`/`writeFile`/`readdir`).

use super::{c_path, close, count, open, write, DirectFile, FileType, CHAIN_STEPS, MAX_TRANSFER};
use crate::backend::file_op::FileOp;
use crate::error::{Error, Result};
use crate::event_loop::Loop;
use crate::sys::fs::CURRENT_POSITION;
use std::cell::Cell;
use std::ffi::{CString, OsString};
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
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

/// Reads the whole of `path`; `cb` gets its contents, or `EFBIG` for a file longer than the
/// loop's [`Loop::read_file_limit`] (1 GiB unless set), which bounds the memory a read can take
/// whatever the file (`/dev/zero` never ends), and `ENOMEM` if memory runs out first.
///
/// On io_uring a file smaller than the buffer (16 KiB at first) takes one linked round trip
/// (open into a direct descriptor → read → a one-byte read that must return 0), then a close
/// that reports nothing. A file with more to give (a longer file, a FIFO, a /proc file) goes on
/// through the same open file, made an ordinary descriptor: reads at the file position until
/// one returns 0, then close. On epoll: open, those reads, close, each on the thread pool.
pub fn read_file(
    lp: &mut Loop,
    path: impl AsRef<Path>,
    cb: impl FnOnce(&mut Loop, Result<Vec<u8>>) + 'static,
) -> Result<()> {
    read_file_into(lp, path, Vec::new(), cb)
}

/// [`read_file`] into `buf`, whose contents are replaced and whose capacity is used first (grown
/// when the file needs more); `cb` gets it back holding the file. A caller that hands each
/// result's buffer to its next read reads files without allocating their buffers, as a libuv
/// program reuses the memory it passes to `uv_fs_read`. On error the buffer is dropped.
pub fn read_file_into(
    lp: &mut Loop,
    path: impl AsRef<Path>,
    mut buf: Vec<u8>,
    cb: impl FnOnce(&mut Loop, Result<Vec<u8>>) + 'static,
) -> Result<()> {
    buf.clear();
    buf.try_reserve(FIRST_CHUNK).map_err(|_| Error::ENOMEM)?;
    let mem = Box::new(Chain {
        path: c_path(path.as_ref())?,
        buf,
        probe: 0,
        limit: lp.read_file_limit(),
        cb: Box::new(cb),
    });
    let linked = lp.file_submit_read_chain(
        mem,
        |m| {
            let room = m.buf.capacity().min(MAX_TRANSFER) as u32;
            (m.path.as_ptr(), m.buf.as_mut_ptr(), room, &mut m.probe)
        },
        |lp, res, file, m| chain_done(lp, res, file, *m),
    );
    match linked {
        Ok(()) => Ok(()),
        Err(m) => {
            let Chain {
                path, buf, limit, cb, ..
            } = *m;
            read_file_stepwise(lp, path, buf, limit, cb).map_err(|(e, _)| e)
        }
    }
}

/// A whole-file read in progress.
struct Chain {
    path: CString,
    buf: Vec<u8>,
    probe: u8,
    /// The loop's read-file limit when the read started.
    limit: usize,
    cb: BytesCb,
}

fn chain_done(lp: &mut Loop, res: [i32; CHAIN_STEPS], file: DirectFile, m: Chain) {
    let Chain {
        mut buf,
        probe,
        limit,
        cb,
        ..
    } = m;
    // After a failed open the reads fail with EBADF: report the open's error.
    if res[0] < 0 {
        lp.direct_release(file);
        return cb(lp, Err(Error::from_errno(-res[0])));
    }
    if let Some(&e) = res[1..].iter().find(|&&r| r < 0) {
        lp.direct_close(file);
        return cb(lp, Err(Error::from_errno(-e)));
    }
    // SAFETY: the kernel initialised that many bytes of the buffer.
    unsafe { buf.set_len(res[1] as usize) };
    if buf.len() + usize::from(res[2] > 0) > limit {
        lp.direct_close(file);
        return cb(lp, Err(Error::EFBIG));
    }
    if res[2] == 0 {
        lp.direct_close(file);
        return cb(lp, Ok(buf)); // the probe met end of file
    }
    buf.push(probe);
    // More to come: go on reading the file already open (opening the path again could find
    // another file, or, for a FIFO, its data gone).
    lp.direct_install(file, move |lp, fd| match count(fd) {
        Ok(fd) => read_rest(lp, fd as RawFd, buf, limit, cb),
        Err(e) => cb(lp, Err(e)),
    });
}

/// open, then read until a read returns 0, then close. If the open cannot be queued, the
/// callback comes back unrun with the error.
fn read_file_stepwise(
    lp: &mut Loop,
    path: CString,
    buf: Vec<u8>,
    limit: usize,
    cb: BytesCb,
) -> std::result::Result<(), (Error, BytesCb)> {
    let (on_done, on_fail) = slot(cb);
    let opened = open(
        lp,
        std::ffi::OsStr::from_bytes(path.as_bytes()),
        libc::O_RDONLY,
        0,
        move |lp, fd| {
            let Some(cb) = on_done.take() else { return };
            match fd {
                Ok(fd) => read_rest(lp, fd, buf, limit, cb),
                Err(e) => cb(lp, Err(e)),
            }
        },
    );
    match opened {
        Err(e) => match on_fail.take() {
            Some(cb) => Err((e, cb)),
            None => Ok(()),
        },
        Ok(()) => Ok(()),
    }
}

struct Tail {
    fd: RawFd,
    buf: Vec<u8>,
    /// Bytes to read into the spare capacity.
    len: u32,
}

/// Reads into the spare capacity of `buf`, at the file position (the only way through a FIFO or
/// a tty), until a read returns 0. The buffer never grows past `limit` and one byte: a file
/// that has that byte is longer than the limit (`EFBIG`), however long it would go on.
fn read_rest(lp: &mut Loop, fd: RawFd, mut buf: Vec<u8>, limit: usize, cb: BytesCb) {
    if buf.len() > limit {
        close_quietly(lp, fd);
        return cb(lp, Err(Error::EFBIG));
    }
    let ceiling = limit.saturating_add(1) - buf.len();
    if buf.capacity() - buf.len() < (FIRST_CHUNK / 2).min(ceiling) {
        let grow = buf.len().max(FIRST_CHUNK).min(ceiling);
        if buf.try_reserve_exact(grow).is_err() {
            close_quietly(lp, fd);
            return cb(lp, Err(Error::ENOMEM));
        }
    }
    let len = (buf.capacity() - buf.len()).min(ceiling).min(MAX_TRANSFER) as u32;
    let (on_done, on_fail) = slot(cb);
    let submitted = lp.file_submit(
        Box::new(Tail { fd, buf, len }),
        |m| FileOp::Read {
            fd: m.fd,
            // SAFETY: `len` is within the allocation; the spare capacity follows it.
            ptr: unsafe { m.buf.as_mut_ptr().add(m.buf.len()) },
            len: m.len,
            offset: CURRENT_POSITION,
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
                    read_rest(lp, fd, buf, limit, cb);
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
