//! File-system operations as the backends see them: io_uring runs them in the kernel (where it
//! has the opcode), and otherwise the loop runs [`FileOp::run_blocking`] on the thread pool.
//!
//! Every pointer names memory the request owns until its completion (the path's C string, the
//! data buffer, the iovec array, the statx buffer), as with socket operations.

use crate::sys::fs;
use std::ffi::CStr;
use std::os::fd::RawFd;

#[derive(Clone, Copy, Debug)]
pub(crate) enum FileOp {
    /// Opens `path` (relative to the working directory); the result is the new fd.
    Open {
        path: *const libc::c_char,
        flags: i32,
        mode: u32,
    },
    Close {
        fd: RawFd,
    },
    /// `offset == fs::CURRENT_POSITION` reads at (and advances) the file position.
    Read {
        fd: RawFd,
        ptr: *mut u8,
        len: u32,
        offset: u64,
    },
    Write {
        fd: RawFd,
        ptr: *const u8,
        len: u32,
        offset: u64,
    },
    Readv {
        fd: RawFd,
        iov: *const libc::iovec,
        count: u32,
        offset: u64,
    },
    Writev {
        fd: RawFd,
        iov: *const libc::iovec,
        count: u32,
        offset: u64,
    },
    Fsync {
        fd: RawFd,
        data_only: bool,
    },
    /// statx of `path` relative to `dirfd` (an fd's own metadata: `""` with AT_EMPTY_PATH).
    Statx {
        dirfd: RawFd,
        path: *const libc::c_char,
        flags: i32,
        buf: *mut libc::statx,
    },
    /// unlink, or rmdir with `flags == AT_REMOVEDIR`.
    Unlink {
        path: *const libc::c_char,
        flags: i32,
    },
    Rename {
        from: *const libc::c_char,
        to: *const libc::c_char,
    },
    Mkdir {
        path: *const libc::c_char,
        mode: u32,
    },
}

// SAFETY: a FileOp only travels to a pool thread together with the memory its pointers name
// (see fs::submit), and that memory is touched by one thread at a time.
unsafe impl Send for FileOp {}

impl FileOp {
    /// How many kinds of operation there are.
    pub(crate) const COUNT: usize = 11;

    /// The kind's number, below `COUNT` (for per-kind tables, such as io_uring's probe).
    pub(crate) fn index(&self) -> usize {
        match self {
            FileOp::Open { .. } => 0,
            FileOp::Close { .. } => 1,
            FileOp::Read { .. } => 2,
            FileOp::Write { .. } => 3,
            FileOp::Readv { .. } => 4,
            FileOp::Writev { .. } => 5,
            FileOp::Fsync { .. } => 6,
            FileOp::Statx { .. } => 7,
            FileOp::Unlink { .. } => 8,
            FileOp::Rename { .. } => 9,
            FileOp::Mkdir { .. } => 10,
        }
    }

    /// Performs the operation with a blocking system call: a value or `-errno`.
    pub(crate) fn run_blocking(self) -> i32 {
        // SAFETY (all arms): the pointers name live memory owned by the request (see above),
        // and C strings are NUL-terminated by construction (CString).
        unsafe {
            match self {
                FileOp::Open { path, flags, mode } => {
                    fs::openat(libc::AT_FDCWD, CStr::from_ptr(path), flags, mode)
                }
                FileOp::Close { fd } => fs::close(fd),
                FileOp::Read { fd, ptr, len, offset } => fs::read(fd, ptr, len as usize, offset),
                FileOp::Write { fd, ptr, len, offset } => fs::write(fd, ptr, len as usize, offset),
                FileOp::Readv {
                    fd,
                    iov,
                    count,
                    offset,
                } => fs::readv(fd, iov, count, offset),
                FileOp::Writev {
                    fd,
                    iov,
                    count,
                    offset,
                } => fs::writev(fd, iov, count, offset),
                FileOp::Fsync { fd, data_only } => fs::fsync(fd, data_only),
                FileOp::Statx {
                    dirfd,
                    path,
                    flags,
                    buf,
                } => fs::statx(dirfd, CStr::from_ptr(path), flags, buf),
                FileOp::Unlink { path, flags } => fs::unlinkat(CStr::from_ptr(path), flags),
                FileOp::Rename { from, to } => fs::rename(CStr::from_ptr(from), CStr::from_ptr(to)),
                FileOp::Mkdir { path, mode } => fs::mkdir(CStr::from_ptr(path), mode),
            }
        }
    }
}
