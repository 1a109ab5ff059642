//! Listening and accepting: a listener's multishot accept and the connections it delivers, and
//! accepting from a listening socket the caller owns and watches itself (asyncio's servers keep
//! their listening sockets and poll them for readability): one `accept4` per connection, and the
//! new socket is a stream of this loop from the start, with none of the checks and flag changes
//! that adopting a foreign socket needs.

use super::*;

impl Stream {
    /// Accepts one pending connection on `listener`, a listening stream socket of address family
    /// `family` (`AF_INET`, `AF_INET6`, `AF_UNIX`) that the caller owns. The new socket is
    /// non-blocking and close-on-exec, and the loop owns it: closing the stream closes it.
    /// `EAGAIN` when no connection is pending; `ECONNABORTED` for one that went away first.
    pub fn accept_from(lp: &mut Loop, listener: RawFd, family: i32) -> Result<Stream> {
        let fd = sys::socket::accept(listener)?;
        Ok(lp.stream_insert(fd, family))
    }
}

impl Stream {
    /// Starts accepting connections; `cb` receives each new connection, already a handle of
    /// its own that the callback (or later code) must close.
    pub fn listen(
        self,
        lp: &mut Loop,
        backlog: i32,
        cb: impl FnMut(&mut Loop, Stream, Result<Stream>) + 'static,
    ) -> Result<()> {
        let e = self.entry(lp)?;
        if e.has(flag::LISTENING) || e.has(flag::READING) {
            return Err(Error::EALREADY);
        }
        sys::socket::listen(e.fd, backlog)?;
        e.incoming = Incoming::Accept(Box::new(cb));
        e.flags |= flag::LISTENING;
        lp.stream_arm_incoming(self.idx, self.gen);
        lp.stream_update_active(self.idx, self.gen);
        Ok(())
    }
}

impl Loop {
    /// Closes a connection the kernel accepted for a listener that is closing or gone (a
    /// multishot accept can post several before its cancellation lands).
    pub(super) fn stream_refuse_accepted(&mut self, op: u8, c: &Completion) {
        if op == OP_ACCEPT && c.res >= 0 {
            self.backend.close_fd(c.res);
        }
    }

    pub(super) fn stream_accepted(&mut self, idx: u32, gen: u32, c: &Completion) {
        let listener = Stream { idx, gen };
        let Some(e) = self.streams.get_mut(idx, gen) else {
            return;
        };
        let family = e.family as i32;
        let Incoming::Accept(mut cb) = std::mem::replace(&mut e.incoming, Incoming::None) else {
            if c.res >= 0 {
                self.backend.close_fd(c.res);
            }
            return;
        };
        if c.res >= 0 {
            let conn = self.stream_insert(c.res, family);
            cb(self, listener, Ok(conn));
        } else if c.res != -libc::ECANCELED {
            cb(self, listener, Err(Error::from_errno(-c.res)));
        }
        self.stream_restore_incoming(idx, gen, Incoming::Accept(cb));
        self.stream_arm_incoming(idx, gen);
    }
}
