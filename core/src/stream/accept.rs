//! Accepting from a listening socket the caller owns and watches itself (asyncio's servers keep
//! their listening sockets and poll them for readability): one `accept4` per connection, and the
//! new socket is a stream of this loop from the start, with none of the checks and flag changes
//! that adopting a foreign socket needs.

use super::Stream;
use crate::error::Result;
use crate::event_loop::Loop;
use crate::sys;
use std::os::fd::RawFd;

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
