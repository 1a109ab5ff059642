//! TCP: bind, listen (through [`Stream::listen`]), connect, and TCP socket options.

use super::{DoneCb, Stream};
use crate::error::{Error, Result};
use crate::event_loop::Loop;
use crate::sys::{self, socket};
use std::net::SocketAddr;

/// Options for [`Stream::tcp_bind`].
#[derive(Clone, Copy, Debug, Default)]
pub struct BindOptions {
    /// Set SO_REUSEPORT, so several sockets (one loop per thread) can share the port.
    pub reuse_port: bool,
    /// For an IPv6 address: accept IPv6 only (IPV6_V6ONLY).
    pub v6_only: bool,
}

fn family_of(addr: &SocketAddr) -> i32 {
    if addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    }
}

impl Stream {
    /// A TCP socket bound to `addr` (SO_REUSEADDR set), ready for [`Stream::listen`].
    pub fn tcp_bind(lp: &mut Loop, addr: SocketAddr, opts: BindOptions) -> Result<Stream> {
        let family = family_of(&addr);
        let fd = socket::socket(family, libc::SOCK_STREAM)?;
        let setup = || -> Result<()> {
            socket::set_opt_int(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
            if opts.reuse_port {
                socket::set_opt_int(fd, libc::SOL_SOCKET, libc::SO_REUSEPORT, 1)?;
            }
            if family == libc::AF_INET6 {
                socket::set_opt_int(fd, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, i32::from(opts.v6_only))?;
            }
            socket::bind(fd, &socket::RawAddr::from_inet(&addr))
        };
        if let Err(e) = setup() {
            sys::close(fd);
            return Err(e);
        }
        Ok(lp.stream_insert(fd, family))
    }

    /// Connects to `addr`; `cb` runs with the result (`ECONNREFUSED`, `ETIMEDOUT`…). Reads
    /// started and writes made before it completes wait for it.
    pub fn tcp_connect(
        lp: &mut Loop,
        addr: SocketAddr,
        cb: impl FnOnce(&mut Loop, Stream, Result<()>) + 'static,
    ) -> Result<Stream> {
        Self::tcp_connect_boxed(lp, addr, Box::new(cb))
    }

    /// [`Stream::tcp_connect`] with a callback already boxed.
    pub fn tcp_connect_boxed(lp: &mut Loop, addr: SocketAddr, cb: DoneCb) -> Result<Stream> {
        let family = family_of(&addr);
        let fd = socket::socket(family, libc::SOCK_STREAM)?;
        let s = lp.stream_insert(fd, family);
        lp.stream_connect(s, socket::RawAddr::from_inet(&addr), cb);
        Ok(s)
    }

    /// Disables (true) or enables Nagle's algorithm (TCP_NODELAY).
    pub fn set_nodelay(self, lp: &mut Loop, enable: bool) -> Result<()> {
        let fd = self.tcp_fd(lp)?;
        socket::set_opt_int(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, i32::from(enable))
    }

    /// Enables TCP keep-alive probes after `idle_secs` of silence, or disables them.
    pub fn set_keepalive(self, lp: &mut Loop, enable: bool, idle_secs: u32) -> Result<()> {
        let fd = self.tcp_fd(lp)?;
        socket::set_opt_int(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE, i32::from(enable))?;
        if enable {
            if idle_secs == 0 {
                return Err(Error::EINVAL);
            }
            socket::set_opt_int(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_KEEPIDLE,
                idle_secs.min(i32::MAX as u32) as i32,
            )?;
        }
        Ok(())
    }

    /// The local address of a TCP socket.
    pub fn local_addr(self, lp: &Loop) -> Result<SocketAddr> {
        socket::local_addr(self.tcp_fd(lp)?)?
            .inet()
            .ok_or(Error::EAFNOSUPPORT)
    }

    /// The peer address of a connected TCP socket.
    pub fn peer_addr(self, lp: &Loop) -> Result<SocketAddr> {
        socket::peer_addr(self.tcp_fd(lp)?)?
            .inet()
            .ok_or(Error::EAFNOSUPPORT)
    }

    fn tcp_fd(self, lp: &Loop) -> Result<i32> {
        let e = lp
            .streams
            .get(self.idx, self.gen)
            .filter(|e| !e.common.closing)
            .ok_or(Error::EBADF)?;
        if e.family as i32 == libc::AF_UNIX {
            return Err(Error::ENOTSUP);
        }
        Ok(e.fd)
    }
}
