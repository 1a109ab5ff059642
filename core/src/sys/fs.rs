//! File-system system calls, for the thread pool (the epoll backend, and operations io_uring
//! lacks). Each returns the completion form both backends share: a value or `-errno`.

use std::ffi::CStr;
use std::os::fd::RawFd;

/// `offset` for reads and writes that use (and advance) the file position, as io_uring's `-1`.
pub(crate) const CURRENT_POSITION: u64 = u64::MAX;

fn res(ret: libc::c_long) -> i32 {
    if ret < 0 {
        -std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO)
    } else {
        ret.min(i32::MAX as libc::c_long) as i32
    }
}

pub(crate) fn openat(dirfd: RawFd, path: &CStr, flags: i32, mode: u32) -> i32 {
    // SAFETY: a NUL-terminated path; the kernel validates the rest.
    res(unsafe { libc::openat(dirfd, path.as_ptr(), flags, mode) } as _)
}

pub(crate) fn close(fd: RawFd) -> i32 {
    // SAFETY: closes a descriptor the caller owns; EINTR still closes it on Linux.
    res(unsafe { libc::close(fd) } as _)
}

/// # Safety
/// `ptr` must be writable for `len` bytes.
pub(crate) unsafe fn read(fd: RawFd, ptr: *mut u8, len: usize, offset: u64) -> i32 {
    // SAFETY: the caller's buffer; pread only with an explicit offset.
    res(unsafe {
        if offset == CURRENT_POSITION {
            libc::read(fd, ptr.cast(), len)
        } else {
            libc::pread(fd, ptr.cast(), len, offset as libc::off_t)
        }
    } as _)
}

/// # Safety
/// `ptr` must be readable for `len` bytes.
pub(crate) unsafe fn write(fd: RawFd, ptr: *const u8, len: usize, offset: u64) -> i32 {
    // SAFETY: as in `read`.
    res(unsafe {
        if offset == CURRENT_POSITION {
            libc::write(fd, ptr.cast(), len)
        } else {
            libc::pwrite(fd, ptr.cast(), len, offset as libc::off_t)
        }
    } as _)
}

/// # Safety
/// `iov` must point to `count` iovecs over writable memory.
pub(crate) unsafe fn readv(fd: RawFd, iov: *const libc::iovec, count: u32, offset: u64) -> i32 {
    // SAFETY: the caller's iovecs.
    res(unsafe {
        if offset == CURRENT_POSITION {
            libc::readv(fd, iov, count as i32)
        } else {
            libc::preadv(fd, iov, count as i32, offset as libc::off_t)
        }
    } as _)
}

/// # Safety
/// `iov` must point to `count` iovecs over readable memory.
pub(crate) unsafe fn writev(fd: RawFd, iov: *const libc::iovec, count: u32, offset: u64) -> i32 {
    // SAFETY: the caller's iovecs.
    res(unsafe {
        if offset == CURRENT_POSITION {
            libc::writev(fd, iov, count as i32)
        } else {
            libc::pwritev(fd, iov, count as i32, offset as libc::off_t)
        }
    } as _)
}

pub(crate) fn fsync(fd: RawFd, data_only: bool) -> i32 {
    // SAFETY: plain syscalls on a caller's fd.
    res(unsafe {
        if data_only {
            libc::fdatasync(fd)
        } else {
            libc::fsync(fd)
        }
    } as _)
}

/// # Safety
/// `buf` must be writable.
pub(crate) unsafe fn statx(dirfd: RawFd, path: &CStr, flags: i32, buf: *mut libc::statx) -> i32 {
    // SAFETY: a NUL-terminated path and a writable statx buffer.
    res(unsafe {
        libc::statx(
            dirfd,
            path.as_ptr(),
            flags,
            libc::STATX_BASIC_STATS | libc::STATX_BTIME,
            buf,
        )
    } as _)
}

pub(crate) fn unlinkat(path: &CStr, flags: i32) -> i32 {
    // SAFETY: a NUL-terminated path.
    res(unsafe { libc::unlinkat(libc::AT_FDCWD, path.as_ptr(), flags) } as _)
}

pub(crate) fn rename(from: &CStr, to: &CStr) -> i32 {
    // SAFETY: NUL-terminated paths.
    res(unsafe { libc::renameat(libc::AT_FDCWD, from.as_ptr(), libc::AT_FDCWD, to.as_ptr()) } as _)
}

pub(crate) fn mkdir(path: &CStr, mode: u32) -> i32 {
    // SAFETY: a NUL-terminated path.
    res(unsafe { libc::mkdirat(libc::AT_FDCWD, path.as_ptr(), mode) } as _)
}
