//! The epoll instance: create, control, wait. Level-triggered; the backend decides what to do
//! with readiness.

use super::{cvt, Result};
use std::os::fd::RawFd;

pub(crate) use libc::epoll_event as Event;

pub(crate) struct Epoll {
    fd: RawFd,
}

impl Epoll {
    pub(crate) fn new() -> Result<Epoll> {
        // SAFETY: plain syscall.
        let fd = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        Ok(Epoll { fd })
    }

    pub(crate) fn fd(&self) -> RawFd {
        self.fd
    }

    pub(crate) fn ctl(&self, op: libc::c_int, fd: RawFd, events: u32, data: u64) -> Result<()> {
        let mut ev = Event { events, u64: data };
        // SAFETY: `ev` is a valid event; the kernel validates `fd`.
        cvt(unsafe { libc::epoll_ctl(self.fd, op, fd, &mut ev) }).map(drop)
    }

    /// Waits for events; `timeout_ms < 0` waits forever. EINTR returns zero events.
    pub(crate) fn wait(&self, events: &mut Vec<Event>, timeout_ms: i32) -> Result<()> {
        events.clear();
        // SAFETY: the kernel writes at most `capacity` events into the spare capacity, and we
        // set the length to exactly the count it reports.
        let n =
            unsafe { libc::epoll_wait(self.fd, events.as_mut_ptr(), events.capacity() as i32, timeout_ms) };
        if n < 0 {
            let e = crate::Error::last_os_error();
            return if e == crate::Error::EINTR { Ok(()) } else { Err(e) };
        }
        // SAFETY: see above.
        unsafe { events.set_len(n as usize) };
        Ok(())
    }
}

impl Drop for Epoll {
    fn drop(&mut self) {
        super::close(self.fd);
    }
}
