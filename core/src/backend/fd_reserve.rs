//! A descriptor kept in reserve for the moment the process runs out: at EMFILE a listener stays
//! readable (epoll) or its multishot accept ends and is re-armed (io_uring), so without this the
//! loop would spin. Freeing the reserve lets the queued connections be accepted and closed, then
//! the reserve is taken again (libuv's remedy).

use crate::sys::{self, socket};
use std::os::fd::RawFd;

pub(crate) struct FdReserve(RawFd);

impl FdReserve {
    pub(crate) const fn empty() -> FdReserve {
        FdReserve(-1)
    }

    /// Takes the reserve if not held yet (done when a listener is armed, while fds are free).
    pub(crate) fn ensure(&mut self) {
        if self.0 < 0 {
            // SAFETY: opening /dev/null with a constant, NUL-terminated path.
            self.0 = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
        }
    }

    /// Accepts and closes every connection queued on `listener`, using the reserved descriptor.
    pub(crate) fn drop_pending_connections(&mut self, listener: RawFd) {
        if self.0 < 0 {
            return;
        }
        sys::close(self.0);
        self.0 = -1;
        while let Ok(conn) = socket::accept(listener) {
            sys::close(conn);
        }
        self.ensure();
    }
}

impl Drop for FdReserve {
    fn drop(&mut self) {
        if self.0 >= 0 {
            sys::close(self.0);
        }
    }
}
