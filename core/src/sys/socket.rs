//! Socket system calls and conversions between Rust addresses and `sockaddr`.

use super::{cvt, cvt_size, raw};
use crate::error::{Error, Result};
use std::mem::{size_of, MaybeUninit};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;

/// A socket address in kernel form, big enough for IPv4, IPv6 and Unix addresses.
#[derive(Clone, Copy)]
pub(crate) struct RawAddr {
    pub(crate) storage: libc::sockaddr_storage,
    pub(crate) len: libc::socklen_t,
}

impl RawAddr {
    pub(crate) fn empty() -> RawAddr {
        // SAFETY: an all-zero sockaddr_storage is a valid (AF_UNSPEC) value.
        RawAddr {
            storage: unsafe { MaybeUninit::zeroed().assume_init() },
            len: size_of::<libc::sockaddr_storage>() as _,
        }
    }

    pub(crate) fn as_ptr(&self) -> *const libc::sockaddr {
        (&self.storage as *const libc::sockaddr_storage).cast()
    }

    pub(crate) fn as_mut_ptr(&mut self) -> *mut libc::sockaddr {
        (&mut self.storage as *mut libc::sockaddr_storage).cast()
    }

    pub(crate) fn from_inet(addr: &SocketAddr) -> RawAddr {
        let mut raw = RawAddr::empty();
        match addr {
            SocketAddr::V4(a) => {
                let sin = libc::sockaddr_in {
                    sin_family: libc::AF_INET as _,
                    sin_port: a.port().to_be(),
                    sin_addr: libc::in_addr {
                        s_addr: u32::from_ne_bytes(a.ip().octets()),
                    },
                    sin_zero: [0; 8],
                };
                // SAFETY: sockaddr_storage is larger than and suitably aligned for sockaddr_in.
                unsafe { std::ptr::write(raw.as_mut_ptr().cast(), sin) };
                raw.len = size_of::<libc::sockaddr_in>() as _;
            }
            SocketAddr::V6(a) => {
                let sin6 = libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as _,
                    sin6_port: a.port().to_be(),
                    sin6_flowinfo: a.flowinfo(),
                    sin6_addr: libc::in6_addr {
                        s6_addr: a.ip().octets(),
                    },
                    sin6_scope_id: a.scope_id(),
                };
                // SAFETY: sockaddr_storage is larger than and suitably aligned for sockaddr_in6.
                unsafe { std::ptr::write(raw.as_mut_ptr().cast(), sin6) };
                raw.len = size_of::<libc::sockaddr_in6>() as _;
            }
        }
        raw
    }

    /// A Unix address: a filesystem path, or an abstract name when it starts with a NUL byte.
    pub(crate) fn from_unix(path: &[u8]) -> Result<RawAddr> {
        let mut raw = RawAddr::empty();
        // SAFETY: sockaddr_storage is larger than and suitably aligned for sockaddr_un.
        let sun = unsafe { &mut *(raw.as_mut_ptr() as *mut libc::sockaddr_un) };
        sun.sun_family = libc::AF_UNIX as _;
        let is_abstract = path.first() == Some(&0);
        // A path needs room for its terminating NUL; an abstract name does not.
        let room = sun.sun_path.len() - usize::from(!is_abstract);
        if path.is_empty() || path.len() > room {
            return Err(Error::EINVAL);
        }
        if !is_abstract && path.contains(&0) {
            return Err(Error::EINVAL);
        }
        for (dst, src) in sun.sun_path.iter_mut().zip(path) {
            *dst = *src as libc::c_char;
        }
        let base = size_of::<libc::sa_family_t>();
        raw.len = (base + path.len() + usize::from(!is_abstract)) as _;
        Ok(raw)
    }

    pub(crate) fn family(&self) -> libc::c_int {
        self.storage.ss_family as libc::c_int
    }

    pub(crate) fn inet(&self) -> Option<SocketAddr> {
        match self.family() {
            libc::AF_INET => {
                // SAFETY: the family says the storage holds a sockaddr_in.
                let sin = unsafe { &*(self.as_ptr() as *const libc::sockaddr_in) };
                let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
                Some(SocketAddr::V4(SocketAddrV4::new(ip, u16::from_be(sin.sin_port))))
            }
            libc::AF_INET6 => {
                // SAFETY: the family says the storage holds a sockaddr_in6.
                let sin6 = unsafe { &*(self.as_ptr() as *const libc::sockaddr_in6) };
                let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
                Some(SocketAddr::V6(SocketAddrV6::new(
                    ip,
                    u16::from_be(sin6.sin6_port),
                    sin6.sin6_flowinfo,
                    sin6.sin6_scope_id,
                )))
            }
            _ => None,
        }
    }

    /// The Unix path or abstract name (leading NUL kept); empty for an unnamed socket.
    pub(crate) fn unix_name(&self) -> Option<Vec<u8>> {
        if self.family() != libc::AF_UNIX {
            return None;
        }
        // SAFETY: the family says the storage holds a sockaddr_un.
        let sun = unsafe { &*(self.as_ptr() as *const libc::sockaddr_un) };
        let n = (self.len as usize)
            .saturating_sub(size_of::<libc::sa_family_t>())
            .min(sun.sun_path.len());
        let mut name: Vec<u8> = sun.sun_path[..n].iter().map(|&c| c as u8).collect();
        if name.first() != Some(&0) {
            if let Some(end) = name.iter().position(|&b| b == 0) {
                name.truncate(end);
            }
        }
        Some(name)
    }
}

pub(crate) fn socket(family: libc::c_int, ty: libc::c_int) -> Result<RawFd> {
    // SAFETY: plain syscall.
    cvt(unsafe { libc::socket(family, ty | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0) })
}

pub(crate) fn bind(fd: RawFd, addr: &RawAddr) -> Result<()> {
    // SAFETY: `addr` points to `addr.len` valid bytes.
    cvt(unsafe { libc::bind(fd, addr.as_ptr(), addr.len) }).map(drop)
}

pub(crate) fn listen(fd: RawFd, backlog: i32) -> Result<()> {
    // SAFETY: plain syscall.
    cvt(unsafe { libc::listen(fd, backlog) }).map(drop)
}

pub(crate) fn accept(fd: RawFd) -> Result<RawFd> {
    // SAFETY: null address pointers are allowed.
    cvt(unsafe {
        libc::accept4(
            fd,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
        )
    })
}

pub(crate) fn connect(fd: RawFd, addr: &RawAddr) -> Result<()> {
    // SAFETY: `addr` points to `addr.len` valid bytes.
    cvt(unsafe { libc::connect(fd, addr.as_ptr(), addr.len) }).map(drop)
}

/// `send` with MSG_NOSIGNAL: a closed peer gives EPIPE, never SIGPIPE.
///
/// Made directly ([`raw::syscall6`]) rather than with libc's `send`: on non-blocking sockets the
/// wrapper's thread-cancellation bookkeeping and the `errno` round trip are pure cost, on the
/// path every echoed message takes.
#[inline]
pub(crate) fn send(fd: RawFd, buf: &[u8]) -> Result<usize> {
    let args = [
        fd as usize,
        buf.as_ptr() as usize,
        buf.len(),
        libc::MSG_NOSIGNAL as usize,
        0,
        0,
    ];
    // SAFETY: `buf` is a valid readable region of `buf.len()` bytes; null address arguments are
    // allowed.
    raw::cvt_raw(unsafe { raw::syscall6(libc::SYS_sendto, args) })
}

/// The iovecs one gathered send takes at most (Linux's UIO_MAXIOV); callers send more buffers
/// in several calls.
pub(crate) const MAX_IOVECS: usize = 1024;

/// `sendmsg` of several buffers with MSG_NOSIGNAL: one system call (and, with TCP_NODELAY, as
/// few packets as the bytes need) for a header and a body. At most [`MAX_IOVECS`] buffers.
pub(crate) fn send_vectored(fd: RawFd, bufs: &[&[u8]]) -> Result<usize> {
    with_iovecs(bufs, |iov| {
        // SAFETY: an all-zero msghdr is valid; it names `iov`, which outlives the call.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = iov.as_ptr() as *mut libc::iovec;
        msg.msg_iovlen = iov.len();
        // SAFETY: every iovec names a readable region of the caller's buffers.
        cvt_size(unsafe { libc::sendmsg(fd, &msg, libc::MSG_NOSIGNAL) })
    })
}

/// Runs `f` on iovecs naming `bufs` (at most [`MAX_IOVECS`]): on the stack for up to 64.
pub(crate) fn with_iovecs<R>(bufs: &[&[u8]], f: impl FnOnce(&[libc::iovec]) -> R) -> R {
    debug_assert!(bufs.len() <= MAX_IOVECS);
    let mut iov = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; 64];
    let mut heap;
    let iov: &mut [libc::iovec] = if bufs.len() <= iov.len() {
        &mut iov[..bufs.len()]
    } else {
        heap = vec![iov[0]; bufs.len()];
        &mut heap
    };
    for (v, b) in iov.iter_mut().zip(bufs) {
        *v = libc::iovec {
            iov_base: b.as_ptr() as *mut libc::c_void,
            iov_len: b.len(),
        };
    }
    f(iov)
}

/// `recv`, made directly for the reason given at [`send`].
#[inline]
pub(crate) fn recv(fd: RawFd, buf: &mut [u8]) -> Result<usize> {
    let args = [fd as usize, buf.as_mut_ptr() as usize, buf.len(), 0, 0, 0];
    // SAFETY: `buf` is a valid writable region of `buf.len()` bytes; null address arguments are
    // allowed.
    raw::cvt_raw(unsafe { raw::syscall6(libc::SYS_recvfrom, args) })
}

pub(crate) fn send_to(fd: RawFd, buf: &[u8], addr: &RawAddr) -> Result<usize> {
    // SAFETY: `buf` and `addr` are valid for their lengths.
    cvt_size(unsafe {
        libc::sendto(
            fd,
            buf.as_ptr().cast(),
            buf.len(),
            libc::MSG_NOSIGNAL,
            addr.as_ptr(),
            addr.len,
        )
    })
}

pub(crate) fn recv_from(fd: RawFd, buf: &mut [u8], addr: &mut RawAddr) -> Result<usize> {
    addr.len = size_of::<libc::sockaddr_storage>() as _;
    // SAFETY: `buf` and `addr` are valid writable regions; the kernel updates `addr.len`.
    cvt_size(unsafe {
        libc::recvfrom(
            fd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_TRUNC,
            addr.as_mut_ptr(),
            &mut addr.len,
        )
    })
}

pub(crate) fn shutdown_write(fd: RawFd) -> Result<()> {
    // SAFETY: plain syscall.
    cvt(unsafe { libc::shutdown(fd, libc::SHUT_WR) }).map(drop)
}

pub(crate) fn set_opt_int(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> Result<()> {
    // SAFETY: passes a pointer to a live c_int and its size.
    cvt(unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as _,
        )
    })
    .map(drop)
}

pub(crate) fn set_opt<T>(fd: RawFd, level: libc::c_int, name: libc::c_int, value: &T) -> Result<()> {
    // SAFETY: passes a pointer to a live T and its size.
    cvt(unsafe { libc::setsockopt(fd, level, name, (value as *const T).cast(), size_of::<T>() as _) })
        .map(drop)
}

pub(crate) fn get_opt_int(fd: RawFd, level: libc::c_int, name: libc::c_int) -> Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: valid out-pointers for a c_int and its length.
    cvt(unsafe { libc::getsockopt(fd, level, name, (&mut value as *mut libc::c_int).cast(), &mut len) })?;
    Ok(value)
}

/// The pending error of a socket (SO_ERROR), as a result.
pub(crate) fn take_error(fd: RawFd) -> Result<()> {
    match get_opt_int(fd, libc::SOL_SOCKET, libc::SO_ERROR)? {
        0 => Ok(()),
        e => Err(Error::from_errno(e)),
    }
}

pub(crate) fn local_addr(fd: RawFd) -> Result<RawAddr> {
    let mut raw = RawAddr::empty();
    // SAFETY: valid out-pointers; the kernel updates `raw.len`.
    cvt(unsafe { libc::getsockname(fd, raw.as_mut_ptr(), &mut raw.len) })?;
    Ok(raw)
}

pub(crate) fn peer_addr(fd: RawFd) -> Result<RawAddr> {
    let mut raw = RawAddr::empty();
    // SAFETY: valid out-pointers; the kernel updates `raw.len`.
    cvt(unsafe { libc::getpeername(fd, raw.as_mut_ptr(), &mut raw.len) })?;
    Ok(raw)
}

pub(crate) fn socket_type(fd: RawFd) -> Result<libc::c_int> {
    get_opt_int(fd, libc::SOL_SOCKET, libc::SO_TYPE)
}

pub(crate) fn socket_domain(fd: RawFd) -> Result<libc::c_int> {
    get_opt_int(fd, libc::SOL_SOCKET, libc::SO_DOMAIN)
}
