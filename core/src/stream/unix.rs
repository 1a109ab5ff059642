//! Unix stream sockets: filesystem paths and abstract names (a leading NUL byte).

use super::{DoneCb, Stream};
use crate::error::{Error, Result};
use crate::event_loop::Loop;
use crate::sys::{self, socket};

impl Stream {
    /// A Unix stream socket bound to `name`, ready for [`Stream::listen`]. A name starting with
    /// a NUL byte is abstract (no file is created); otherwise it is a path, which must not exist.
    pub fn unix_bind(lp: &mut Loop, name: impl AsRef<[u8]>) -> Result<Stream> {
        let addr = socket::RawAddr::from_unix(name.as_ref())?;
        let fd = socket::socket(libc::AF_UNIX, libc::SOCK_STREAM)?;
        if let Err(e) = socket::bind(fd, &addr) {
            sys::close(fd);
            return Err(e);
        }
        Ok(lp.stream_insert(fd, libc::AF_UNIX))
    }

    /// Connects to the Unix socket `name`; `cb` runs with the result.
    pub fn unix_connect(
        lp: &mut Loop,
        name: impl AsRef<[u8]>,
        cb: impl FnOnce(&mut Loop, Stream, Result<()>) + 'static,
    ) -> Result<Stream> {
        Self::unix_connect_boxed(lp, name, Box::new(cb))
    }

    /// [`Stream::unix_connect`] with a callback already boxed.
    pub fn unix_connect_boxed(lp: &mut Loop, name: impl AsRef<[u8]>, cb: DoneCb) -> Result<Stream> {
        let addr = socket::RawAddr::from_unix(name.as_ref())?;
        let fd = socket::socket(libc::AF_UNIX, libc::SOCK_STREAM)?;
        let s = lp.stream_insert(fd, libc::AF_UNIX);
        lp.stream_connect(s, addr, cb);
        Ok(s)
    }

    /// The name a Unix socket is bound to (empty if unnamed).
    pub fn unix_local_name(self, lp: &Loop) -> Result<Vec<u8>> {
        socket::local_addr(self.unix_fd(lp)?)?
            .unix_name()
            .ok_or(Error::EAFNOSUPPORT)
    }

    /// The name of a connected Unix socket's peer (empty if unnamed).
    pub fn unix_peer_name(self, lp: &Loop) -> Result<Vec<u8>> {
        socket::peer_addr(self.unix_fd(lp)?)?
            .unix_name()
            .ok_or(Error::EAFNOSUPPORT)
    }

    fn unix_fd(self, lp: &Loop) -> Result<i32> {
        let e = lp
            .streams
            .get(self.idx, self.gen)
            .filter(|e| !e.common.closing)
            .ok_or(Error::EBADF)?;
        if e.family as i32 != libc::AF_UNIX {
            return Err(Error::ENOTSUP);
        }
        Ok(e.fd)
    }
}
