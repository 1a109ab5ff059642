//! File operations (libuv's `uv_fs_*`, Node's `fs.promises`): requests that complete once,
//! through a callback on the loop's thread.
//!
//! With io_uring each primitive is one ring operation (openat, read, write, readv, writev,
//! fsync, statx, unlinkat, renameat, mkdirat, close), batched with everything else the loop
//! submits in an iteration. With epoll, or where the kernel lacks an opcode, the same operation
//! runs as a blocking system call on the thread pool. Results and errors are the same either
//! way. Directory listing ([`scandir`]) always uses the thread pool: io_uring has no getdents.
//!
//! Buffers are owned by the request until its callback, which hands them back: nothing is
//! copied between the kernel and the caller's memory.

mod metadata;
mod whole;

pub use metadata::{FileTime, FileType, Metadata};
pub use whole::{read_file, read_file_into, scandir, write_file, DirEntry};

use crate::backend::file_op::FileOp;
use crate::error::{Error, Result};
use crate::event_loop::Loop;
use crate::sys::fs::CURRENT_POSITION;
use std::ffi::CString;
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Completion of a request in the ring: the result (`value` or `-errno`).
pub(crate) type FileReq = Box<dyn FnOnce(&mut Loop, i32)>;

/// Steps of a linked whole-file read: open, read, end-of-file probe.
pub(crate) const CHAIN_STEPS: usize = crate::backend::uring::CHAIN_LEN;

/// A file that a linked read left open in a direct slot of the ring (no descriptor in the
/// process's table). Whoever holds it must pass it to [`Loop::direct_close`],
/// [`Loop::direct_install`], or, if the chain's open failed, [`Loop::direct_release`].
#[must_use]
pub(crate) struct DirectFile(u32);

/// Runs when every step of a chain has completed, with each step's result.
pub(crate) type ChainDone = Box<dyn FnOnce(&mut Loop, [i32; CHAIN_STEPS])>;

/// What waits for a request's completions.
pub(crate) enum FileWaiter {
    One(FileReq),
    /// A linked chain: results are gathered until its last step (the probe, which always runs
    /// and always completes, last) is in.
    Chain {
        results: [i32; CHAIN_STEPS],
        done: ChainDone,
    },
}

/// A request whose last completion has arrived: what to run, with what.
pub(crate) enum FileDone {
    One(FileReq, i32),
    Chain(ChainDone, [i32; CHAIN_STEPS]),
}

fn file_token(idx: u32, gen: u32) -> u64 {
    idx as u64 | FILE_TOKEN_KIND << 36 | (gen as u64 & 0xf_ffff) << 40
}

/// The kind bits of a file request's token (not a handle kind: requests have no close).
pub(crate) const FILE_TOKEN_KIND: u64 = 15;

pub(crate) fn c_path(path: &Path) -> Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| Error::EINVAL)
}

fn offset_arg(offset: Option<u64>) -> Result<u64> {
    match offset {
        None => Ok(CURRENT_POSITION),
        Some(o) if o <= i64::MAX as u64 => Ok(o),
        Some(_) => Err(Error::EINVAL),
    }
}

fn check_fd(fd: RawFd) -> Result<()> {
    if fd < 0 {
        Err(Error::EBADF)
    } else {
        Ok(())
    }
}

/// A completion result as a count.
fn count(res: i32) -> Result<usize> {
    if res < 0 {
        Err(Error::from_errno(-res))
    } else {
        Ok(res as usize)
    }
}

fn unit(res: i32) -> Result<()> {
    count(res).map(|_| ())
}

/// Largest single transfer: the ring's length field is 32 bits, and Linux caps a read or write
/// at about 2 GiB anyway; a larger buffer sees a short count, as with read(2).
const MAX_TRANSFER: usize = 0x7fff_f000;

impl Loop {
    /// Starts `op` (built from the request's memory `mem` on the thread that will run it) in the
    /// ring, or on the thread pool when the backend cannot; `done` gets the result and `mem`.
    /// An in-flight request keeps the loop alive.
    pub(crate) fn file_submit<M: Send + 'static>(
        &mut self,
        mut mem: Box<M>,
        op: fn(&mut M) -> FileOp,
        done: impl FnOnce(&mut Loop, i32, Box<M>) + 'static,
    ) -> Result<()> {
        let fop = op(&mut mem);
        let (idx, gen) = self.file_reqs.insert(None);
        let token = file_token(idx, gen);
        // The box's contents do not move when the box does: the pointers in `fop` stay valid.
        if self.backend.submit_file(token, fop) {
            let req: FileReq = Box::new(move |lp, res| done(lp, res, mem));
            if let Some(slot) = self.file_reqs.get_mut(idx, gen) {
                *slot = Some(FileWaiter::One(req));
            }
            self.alive_refs += 1;
            return Ok(());
        }
        self.file_reqs.remove(idx, gen);
        self.queue_work(
            move || {
                let mut mem = mem;
                let res = op(&mut mem).run_blocking();
                (res, mem)
            },
            // The work cannot fail (it panics nowhere and its id is never handed out to cancel).
            move |lp, out| {
                if let Ok((res, mem)) = out {
                    done(lp, res, mem)
                }
            },
        )
        .map(|_| ())
    }

    /// Starts a linked open → read → end-of-file probe of a path into a buffer (one round trip
    /// for a small file); `done` gets the steps' results and the file, still open. Gives
    /// everything back if this backend cannot.
    #[allow(clippy::type_complexity)]
    pub(crate) fn file_submit_read_chain<M: 'static>(
        &mut self,
        mut mem: Box<M>,
        parts: fn(&mut M) -> (*const libc::c_char, *mut u8, u32, *mut u8),
        done: impl FnOnce(&mut Loop, [i32; CHAIN_STEPS], DirectFile, Box<M>) + 'static,
    ) -> std::result::Result<(), Box<M>> {
        let (path, buf, len, probe) = parts(&mut mem);
        let (idx, gen) = self.file_reqs.insert(None);
        let Some(slot) = self
            .backend
            .submit_read_file_chain(file_token(idx, gen), path, buf, len, probe)
        else {
            self.file_reqs.remove(idx, gen);
            return Err(mem);
        };
        let waiter = FileWaiter::Chain {
            results: [0; CHAIN_STEPS],
            done: Box::new(move |lp: &mut Loop, res| done(lp, res, DirectFile(slot), mem)),
        };
        if let Some(w) = self.file_reqs.get_mut(idx, gen) {
            *w = Some(waiter);
        }
        self.alive_refs += 1;
        Ok(())
    }

    /// Frees the slot of a chain whose open failed (it holds no file).
    pub(crate) fn direct_release(&mut self, file: DirectFile) {
        self.backend.release_direct_slot(file.0);
    }

    /// Closes a chain's file; nothing reports back.
    pub(crate) fn direct_close(&mut self, file: DirectFile) {
        self.backend.close_direct_slot(file.0, None);
    }

    /// Turns a chain's file into an ordinary close-on-exec descriptor, which `done` gets (or
    /// `-errno`); the slot is closed and freed either way.
    pub(crate) fn direct_install(&mut self, file: DirectFile, done: impl FnOnce(&mut Loop, i32) + 'static) {
        let (idx, gen) = self.file_reqs.insert(None);
        if self.backend.close_direct_slot(file.0, Some(file_token(idx, gen))) {
            if let Some(w) = self.file_reqs.get_mut(idx, gen) {
                *w = Some(FileWaiter::One(Box::new(done)));
            }
            self.alive_refs += 1;
        } else {
            // Not a ring that hands out direct files.
            self.file_reqs.remove(idx, gen);
            self.call_soon(move |lp| done(lp, -libc::EBADF));
        }
    }

    /// Records one completion; returns the request once its last completion is in.
    pub(crate) fn file_step(&mut self, idx: u32, res: i32, token: u64) -> Option<FileDone> {
        let (gen, waiter) = self.file_reqs.get_by_index(idx)?;
        if !crate::event_loop::gen_matches(gen, token) {
            return None;
        }
        if let Some(FileWaiter::Chain { results, .. }) = waiter {
            let step = (((token >> 32) & 0xf) as usize).min(CHAIN_STEPS - 1);
            results[step] = res;
            if step < CHAIN_STEPS - 1 {
                return None;
            }
        }
        self.alive_refs -= 1;
        match self.file_reqs.remove(idx, gen)?? {
            FileWaiter::One(req) => Some(FileDone::One(req, res)),
            FileWaiter::Chain { results, done, .. } => Some(FileDone::Chain(done, results)),
        }
    }

    pub(crate) fn file_completion(&mut self, idx: u32, res: i32, token: u64) {
        match self.file_step(idx, res, token) {
            Some(FileDone::One(req, res)) => req(self, res),
            Some(FileDone::Chain(done, results)) => done(self, results),
            None => {}
        }
    }

    /// Requests still in the kernel (for a loop being dropped, which must not free their memory
    /// while the kernel may write into it).
    pub(crate) fn file_reqs_in_flight(&self) -> bool {
        self.file_reqs.len() > 0
    }
}

struct PathMem {
    path: CString,
    flags: i32,
    mode: u32,
}

/// Opens `path` with `flags` (`libc::O_RDONLY`, `O_WRONLY | O_CREAT | O_TRUNC`, …; O_CLOEXEC is
/// always added) and `mode` for a created file; `cb` gets the new fd, which the caller owns.
pub fn open(
    lp: &mut Loop,
    path: impl AsRef<Path>,
    flags: i32,
    mode: u32,
    cb: impl FnOnce(&mut Loop, Result<RawFd>) + 'static,
) -> Result<()> {
    let mem = Box::new(PathMem {
        path: c_path(path.as_ref())?,
        flags: flags | libc::O_CLOEXEC,
        mode,
    });
    lp.file_submit(
        mem,
        |m| FileOp::Open {
            path: m.path.as_ptr(),
            flags: m.flags,
            mode: m.mode,
        },
        move |lp, res, _| cb(lp, count(res).map(|fd| fd as RawFd)),
    )
}

/// Closes `fd`.
pub fn close(lp: &mut Loop, fd: RawFd, cb: impl FnOnce(&mut Loop, Result<()>) + 'static) -> Result<()> {
    check_fd(fd)?;
    lp.file_submit(
        Box::new(fd),
        |fd| FileOp::Close { fd: *fd },
        move |lp, res, _| cb(lp, unit(res)),
    )
}

/// A read's or write's buffer and where it goes, owned by the request until its completion.
struct Transfer<B> {
    fd: RawFd,
    buf: B,
    offset: u64,
}

/// Submits the read or write `op` builds from `buf`; `cb` gets the count and the buffer back.
fn transfer<B: Send + 'static>(
    lp: &mut Loop,
    fd: RawFd,
    buf: B,
    offset: Option<u64>,
    op: fn(&mut Transfer<B>) -> FileOp,
    cb: impl FnOnce(&mut Loop, Result<usize>, B) + 'static,
) -> Result<()> {
    check_fd(fd)?;
    let offset = offset_arg(offset)?;
    lp.file_submit(Box::new(Transfer { fd, buf, offset }), op, move |lp, res, m| {
        cb(lp, count(res), m.buf)
    })
}

/// Reads into `buf` (up to its length) at `offset`, or at the file position if `None`; `cb`
/// gets the count (0 at end of file) and the buffer back.
pub fn read<B: AsMut<[u8]> + Send + 'static>(
    lp: &mut Loop,
    fd: RawFd,
    buf: B,
    offset: Option<u64>,
    cb: impl FnOnce(&mut Loop, Result<usize>, B) + 'static,
) -> Result<()> {
    let op = |m: &mut Transfer<B>| {
        let b = m.buf.as_mut();
        FileOp::Read {
            fd: m.fd,
            ptr: b.as_mut_ptr(),
            len: b.len().min(MAX_TRANSFER) as u32,
            offset: m.offset,
        }
    };
    transfer(lp, fd, buf, offset, op, cb)
}

/// Writes `buf` at `offset`, or at the file position if `None`; `cb` gets the count written
/// (which may be short, as with write(2)) and the buffer back.
pub fn write<B: AsRef<[u8]> + Send + 'static>(
    lp: &mut Loop,
    fd: RawFd,
    buf: B,
    offset: Option<u64>,
    cb: impl FnOnce(&mut Loop, Result<usize>, B) + 'static,
) -> Result<()> {
    let op = |m: &mut Transfer<B>| {
        let b = m.buf.as_ref();
        FileOp::Write {
            fd: m.fd,
            ptr: b.as_ptr(),
            len: b.len().min(MAX_TRANSFER) as u32,
            offset: m.offset,
        }
    };
    transfer(lp, fd, buf, offset, op, cb)
}

struct VecMem<B> {
    fd: RawFd,
    bufs: Vec<B>,
    iov: Vec<libc::iovec>,
    offset: u64,
}

// SAFETY: the iovecs point into `bufs`, which travel with them.
unsafe impl<B: Send> Send for VecMem<B> {}

fn vectored<B>(fd: RawFd, bufs: Vec<B>, offset: Option<u64>) -> Result<Box<VecMem<B>>> {
    check_fd(fd)?;
    if bufs.is_empty() || bufs.len() > libc::UIO_MAXIOV as usize {
        return Err(Error::EINVAL);
    }
    Ok(Box::new(VecMem {
        fd,
        iov: Vec::with_capacity(bufs.len()),
        bufs,
        offset: offset_arg(offset)?,
    }))
}

/// Reads into `bufs` in order (scatter), as [`read`].
pub fn readv<B: AsMut<[u8]> + Send + 'static>(
    lp: &mut Loop,
    fd: RawFd,
    bufs: Vec<B>,
    offset: Option<u64>,
    cb: impl FnOnce(&mut Loop, Result<usize>, Vec<B>) + 'static,
) -> Result<()> {
    let mem = vectored(fd, bufs, offset)?;
    lp.file_submit(
        mem,
        |m| {
            m.iov.clear();
            for b in &mut m.bufs {
                let b = b.as_mut();
                m.iov.push(libc::iovec {
                    iov_base: b.as_mut_ptr().cast(),
                    iov_len: b.len(),
                });
            }
            FileOp::Readv {
                fd: m.fd,
                iov: m.iov.as_ptr(),
                count: m.iov.len() as u32,
                offset: m.offset,
            }
        },
        move |lp, res, m| cb(lp, count(res), m.bufs),
    )
}

/// Writes `bufs` in order (gather), as [`write`].
pub fn writev<B: AsRef<[u8]> + Send + 'static>(
    lp: &mut Loop,
    fd: RawFd,
    bufs: Vec<B>,
    offset: Option<u64>,
    cb: impl FnOnce(&mut Loop, Result<usize>, Vec<B>) + 'static,
) -> Result<()> {
    let mem = vectored(fd, bufs, offset)?;
    lp.file_submit(
        mem,
        |m| {
            m.iov.clear();
            for b in &m.bufs {
                let b = b.as_ref();
                m.iov.push(libc::iovec {
                    iov_base: b.as_ptr() as *mut libc::c_void,
                    iov_len: b.len(),
                });
            }
            FileOp::Writev {
                fd: m.fd,
                iov: m.iov.as_ptr(),
                count: m.iov.len() as u32,
                offset: m.offset,
            }
        },
        move |lp, res, m| cb(lp, count(res), m.bufs),
    )
}

fn sync(
    lp: &mut Loop,
    fd: RawFd,
    data_only: bool,
    cb: impl FnOnce(&mut Loop, Result<()>) + 'static,
) -> Result<()> {
    check_fd(fd)?;
    lp.file_submit(
        Box::new((fd, data_only)),
        |m| FileOp::Fsync {
            fd: m.0,
            data_only: m.1,
        },
        move |lp, res, _| cb(lp, unit(res)),
    )
}

/// Flushes `fd`'s data and metadata to storage.
pub fn fsync(lp: &mut Loop, fd: RawFd, cb: impl FnOnce(&mut Loop, Result<()>) + 'static) -> Result<()> {
    sync(lp, fd, false, cb)
}

/// Flushes `fd`'s data (and only the metadata needed to read it back) to storage.
pub fn fdatasync(lp: &mut Loop, fd: RawFd, cb: impl FnOnce(&mut Loop, Result<()>) + 'static) -> Result<()> {
    sync(lp, fd, true, cb)
}

struct StatMem {
    dirfd: RawFd,
    path: CString,
    flags: i32,
    buf: libc::statx,
}

fn statx(
    lp: &mut Loop,
    dirfd: RawFd,
    path: CString,
    flags: i32,
    cb: impl FnOnce(&mut Loop, Result<Metadata>) + 'static,
) -> Result<()> {
    let mem = Box::new(StatMem {
        dirfd,
        path,
        flags,
        // SAFETY: statx is plain data; all-zero is a valid value.
        buf: unsafe { std::mem::zeroed() },
    });
    lp.file_submit(
        mem,
        |m| FileOp::Statx {
            dirfd: m.dirfd,
            path: m.path.as_ptr(),
            flags: m.flags,
            buf: &mut m.buf,
        },
        move |lp, res, m| cb(lp, unit(res).map(|_| Metadata::from_statx(&m.buf))),
    )
}

/// Metadata of `path`, following symbolic links.
pub fn stat(
    lp: &mut Loop,
    path: impl AsRef<Path>,
    cb: impl FnOnce(&mut Loop, Result<Metadata>) + 'static,
) -> Result<()> {
    statx(lp, libc::AT_FDCWD, c_path(path.as_ref())?, 0, cb)
}

/// Metadata of `path` itself, not following a final symbolic link.
pub fn lstat(
    lp: &mut Loop,
    path: impl AsRef<Path>,
    cb: impl FnOnce(&mut Loop, Result<Metadata>) + 'static,
) -> Result<()> {
    statx(
        lp,
        libc::AT_FDCWD,
        c_path(path.as_ref())?,
        libc::AT_SYMLINK_NOFOLLOW,
        cb,
    )
}

/// Metadata of an open fd.
pub fn fstat(lp: &mut Loop, fd: RawFd, cb: impl FnOnce(&mut Loop, Result<Metadata>) + 'static) -> Result<()> {
    check_fd(fd)?;
    statx(lp, fd, CString::default(), libc::AT_EMPTY_PATH, cb)
}

fn path_op(
    lp: &mut Loop,
    path: &Path,
    flags: i32,
    mode: u32,
    op: fn(&mut PathMem) -> FileOp,
    cb: impl FnOnce(&mut Loop, Result<()>) + 'static,
) -> Result<()> {
    let mem = Box::new(PathMem {
        path: c_path(path)?,
        flags,
        mode,
    });
    lp.file_submit(mem, op, move |lp, res, _| cb(lp, unit(res)))
}

/// Removes a file (not a directory: that is [`rmdir`]).
pub fn unlink(
    lp: &mut Loop,
    path: impl AsRef<Path>,
    cb: impl FnOnce(&mut Loop, Result<()>) + 'static,
) -> Result<()> {
    path_op(
        lp,
        path.as_ref(),
        0,
        0,
        |m| FileOp::Unlink {
            path: m.path.as_ptr(),
            flags: m.flags,
        },
        cb,
    )
}

/// Removes an empty directory.
pub fn rmdir(
    lp: &mut Loop,
    path: impl AsRef<Path>,
    cb: impl FnOnce(&mut Loop, Result<()>) + 'static,
) -> Result<()> {
    path_op(
        lp,
        path.as_ref(),
        libc::AT_REMOVEDIR,
        0,
        |m| FileOp::Unlink {
            path: m.path.as_ptr(),
            flags: m.flags,
        },
        cb,
    )
}

/// Creates a directory with `mode` (less the umask).
pub fn mkdir(
    lp: &mut Loop,
    path: impl AsRef<Path>,
    mode: u32,
    cb: impl FnOnce(&mut Loop, Result<()>) + 'static,
) -> Result<()> {
    path_op(
        lp,
        path.as_ref(),
        0,
        mode,
        |m| FileOp::Mkdir {
            path: m.path.as_ptr(),
            mode: m.mode,
        },
        cb,
    )
}

/// Renames `from` to `to`, replacing `to` if it exists (rename(2)).
pub fn rename(
    lp: &mut Loop,
    from: impl AsRef<Path>,
    to: impl AsRef<Path>,
    cb: impl FnOnce(&mut Loop, Result<()>) + 'static,
) -> Result<()> {
    let mem = Box::new((c_path(from.as_ref())?, c_path(to.as_ref())?));
    lp.file_submit(
        mem,
        |m| FileOp::Rename {
            from: m.0.as_ptr(),
            to: m.1.as_ptr(),
        },
        move |lp, res, _| cb(lp, unit(res)),
    )
}
