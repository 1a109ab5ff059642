//! Thin wrappers over the system calls the loop uses. Each call is wrapped once, here; every
//! other module goes through these and never calls `libc` for I/O itself.

pub(crate) mod epoll;
pub(crate) mod fs;
pub(crate) mod raw;
pub(crate) mod socket;
pub(crate) mod spawn;

use crate::error::{Error, Result};
use std::os::fd::RawFd;

/// Turns a `-1`-on-error return value into a `Result`.
pub(crate) fn cvt(ret: libc::c_int) -> Result<libc::c_int> {
    if ret < 0 {
        Err(Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Like [`cvt`] for `ssize_t` returns.
pub(crate) fn cvt_size(ret: libc::ssize_t) -> Result<usize> {
    if ret < 0 {
        Err(Error::last_os_error())
    } else {
        Ok(ret as usize)
    }
}

/// A `-errno`-or-value result, the form both backends use for completions.
pub(crate) fn to_res(r: Result<usize>) -> i32 {
    match r {
        Ok(n) => n.min(i32::MAX as usize) as i32,
        Err(e) => e.code(),
    }
}

pub(crate) fn close(fd: RawFd) {
    // SAFETY: closing an fd we own; errors from close (EINTR, EIO) leave the fd closed on Linux,
    // so there is nothing to retry.
    unsafe {
        libc::close(fd);
    }
}

pub(crate) fn read(fd: RawFd, buf: &mut [u8]) -> Result<usize> {
    // SAFETY: `buf` is a valid writable region of `buf.len()` bytes.
    cvt_size(unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) })
}

/// A non-blocking, close-on-exec eventfd counter.
pub(crate) fn eventfd() -> Result<RawFd> {
    // SAFETY: plain syscall with constant flags.
    cvt(unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) })
}

/// Adds one to an eventfd counter. Async-signal-safe (it is called from the signal handler).
pub(crate) fn eventfd_signal(fd: RawFd) {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a live local. EAGAIN (counter saturated) means a wake-up is
    // already pending, which is all we want.
    unsafe {
        libc::write(fd, (&one as *const u64).cast(), 8);
    }
}

/// The file type bits (`S_IFMT`) of an open fd; `EBADF` for a closed one.
pub(crate) fn file_type(fd: RawFd) -> Result<u32> {
    // SAFETY: fstat fills a zeroed stat; a bad fd gives EBADF.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    cvt(unsafe { libc::fstat(fd, &mut st) })?;
    Ok(st.st_mode & libc::S_IFMT)
}

pub(crate) fn set_nonblocking(fd: RawFd) -> Result<()> {
    // SAFETY: fcntl on a caller-provided fd; a bad fd gives EBADF.
    let flags = cvt(unsafe { libc::fcntl(fd, libc::F_GETFL) })?;
    if flags & libc::O_NONBLOCK == 0 {
        // SAFETY: as above.
        cvt(unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) })?;
    }
    Ok(())
}

/// Nanoseconds of CLOCK_MONOTONIC, the loop's clock (the clock of Python's `time.monotonic()`).
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer; CLOCK_MONOTONIC cannot fail.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
