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

pub(crate) fn write(fd: RawFd, buf: &[u8]) -> Result<usize> {
    // SAFETY: `buf` is a valid readable region of `buf.len()` bytes.
    cvt_size(unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) })
}

/// `writev` of up to [`socket::MAX_IOVECS`] buffers: one system call for several buffers, as
/// [`socket::send_vectored`] is for sockets.
pub(crate) fn write_vectored(fd: RawFd, bufs: &[&[u8]]) -> Result<usize> {
    socket::with_iovecs(bufs, |iov| {
        // SAFETY: every iovec names a readable region of the caller's buffers.
        cvt_size(unsafe { libc::writev(fd, iov.as_ptr(), iov.len() as libc::c_int) })
    })
}

/// A stream's send from the caller's memory: `send` (MSG_NOSIGNAL) on a socket, `write` on a
/// pipe, FIFO or terminal. One place decides, for the stream code and the epoll backend alike.
#[inline]
pub(crate) fn stream_send(fd: RawFd, buf: &[u8], pipe: bool) -> Result<usize> {
    if pipe {
        write(fd, buf)
    } else {
        socket::send(fd, buf)
    }
}

/// [`stream_send`] of several buffers in one system call (`sendmsg` or `writev`).
pub(crate) fn stream_send_vectored(fd: RawFd, bufs: &[&[u8]], pipe: bool) -> Result<usize> {
    if pipe {
        write_vectored(fd, bufs)
    } else {
        socket::send_vectored(fd, bufs)
    }
}

/// A stream's receive: `recv` on a socket, `read` on a pipe, FIFO or terminal.
#[inline]
pub(crate) fn stream_recv(fd: RawFd, buf: &mut [u8], pipe: bool) -> Result<usize> {
    if pipe {
        read(fd, buf)
    } else {
        socket::recv(fd, buf)
    }
}

/// Two non-blocking, close-on-exec ends of a new pipe: `(read, write)`.
pub(crate) fn pipe() -> Result<(RawFd, RawFd)> {
    let mut fds = [-1; 2];
    // SAFETY: pipe2 fills the two-element array.
    cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) })?;
    Ok((fds[0], fds[1]))
}

/// The access mode (`O_RDONLY`, `O_WRONLY` or `O_RDWR`) an fd was opened with.
pub(crate) fn access_mode(fd: RawFd) -> Result<libc::c_int> {
    // SAFETY: fcntl on a caller-provided fd; a bad fd gives EBADF.
    Ok(cvt(unsafe { libc::fcntl(fd, libc::F_GETFL) })? & libc::O_ACCMODE)
}

/// Makes SIGPIPE ignored if it has its default action (which kills the process), so that a write
/// to a pipe whose reader has gone fails with `EPIPE` instead. Pipes have no `MSG_NOSIGNAL`, and
/// io_uring writes give no chance to block the signal around the call. A handler the program
/// installed, or an explicit ignore, is left as it is.
pub(crate) fn ignore_sigpipe_if_default() {
    static DONE: std::sync::Once = std::sync::Once::new();
    DONE.call_once(|| {
        // SAFETY: sigaction with a null new action only reads the current one into `old`;
        // installing SIG_IGN touches no memory of ours. Another thread changing the action
        // between the two calls would be overridden only if it set SIG_DFL again.
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(libc::SIGPIPE, std::ptr::null(), &mut old) == 0
                && old.sa_sigaction == libc::SIG_DFL
            {
                libc::signal(libc::SIGPIPE, libc::SIG_IGN);
            }
        }
    });
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
