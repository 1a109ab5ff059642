//! UDP sockets.

use crate::handle::{call_c, create, evl_udp_t, with_open, Handle, Id};
use crate::loop_::evl_loop_t;
use crate::stream::{evl_buf_t, from_std, to_std, with_slices};
use evloop::{Udp, UdpBindOptions};
use libc::{c_char, c_int, c_uint, c_void, sockaddr, sockaddr_storage, socklen_t, ssize_t};
use std::ffi::CStr;

/// evl_udp_bind flag: SO_REUSEADDR (several sockets on one multicast port).
pub const EVL_UDP_REUSEADDR: c_uint = 1;
/// evl_udp_bind flag: SO_REUSEPORT.
pub const EVL_UDP_REUSEPORT: c_uint = 2;
/// evl_udp_bind flag: an IPv6 socket accepts IPv6 only.
pub const EVL_UDP_IPV6ONLY: c_uint = 4;

/// Runs once when a datagram was sent (`status` 0) or failed.
pub type evl_udp_send_cb =
    Option<unsafe extern "C" fn(udp: *mut evl_udp_t, status: c_int, req_data: *mut c_void)>;
/// Receives a datagram (`nread` >= 0 bytes at `buf` from `addr`, lent for the call) or an error
/// (`nread` < 0, `buf` and `addr` NULL).
pub type evl_udp_recv_cb = Option<
    unsafe extern "C" fn(
        udp: *mut evl_udp_t,
        nread: ssize_t,
        buf: *const c_char,
        addr: *const sockaddr,
        user_data: *mut c_void,
    ),
>;

/// A UDP socket bound to `addr` (port 0 picks one). `flags`: EVL_UDP_*.
#[no_mangle]
pub unsafe extern "C" fn evl_udp_bind(
    l: *mut evl_loop_t,
    out: *mut *mut evl_udp_t,
    addr: *const sockaddr,
    addrlen: socklen_t,
    flags: c_uint,
    user_data: *mut c_void,
) -> c_int {
    // SAFETY: checked by to_std.
    let a = match unsafe { to_std(addr, addrlen) } {
        Ok(a) => a,
        Err(e) => return e,
    };
    let opts = UdpBindOptions {
        reuse_addr: flags & EVL_UDP_REUSEADDR != 0,
        reuse_port: flags & EVL_UDP_REUSEPORT != 0,
        v6_only: flags & EVL_UDP_IPV6ONLY != 0,
    };
    create(l, out, user_data, |lp| Ok(Id::Udp(Udp::bind(lp, a, opts)?)))
}

/// Takes ownership of an open IPv4 or IPv6 datagram socket `fd` (bound, connected or neither;
/// made non-blocking); the library closes it when the handle closes. -ENOTSOCK for another
/// kind of socket, -EAFNOSUPPORT for another family (Unix datagram sockets).
#[no_mangle]
pub unsafe extern "C" fn evl_udp_adopt(
    l: *mut evl_loop_t,
    out: *mut *mut evl_udp_t,
    fd: c_int,
    user_data: *mut c_void,
) -> c_int {
    create(l, out, user_data, |lp| Ok(Id::Udp(Udp::adopt(lp, fd)?)))
}

/// Sends the buffers as one datagram to `addr`; `cb` (may be NULL) runs once it is sent or has
/// failed, never inside this call. -ENOBUFS when 1024 datagrams already wait.
#[no_mangle]
pub unsafe extern "C" fn evl_udp_send(
    u: *mut evl_udp_t,
    bufs: *const evl_buf_t,
    nbufs: c_uint,
    addr: *const sockaddr,
    addrlen: socklen_t,
    cb: evl_udp_send_cb,
    req_data: *mut c_void,
) -> c_int {
    with_open!(u, Udp, |h, lp, Id::Udp(udp)| {
        // SAFETY: checked by to_std.
        let to = match unsafe { to_std(addr, addrlen) } {
            Ok(a) => a,
            Err(e) => return e,
        };
        let done: Option<evloop::SendCb> = cb.map(|cb| {
            let (raw, rd) = (h as *mut Handle as usize, req_data as usize);
            Box::new(move |lp: &mut evloop::Loop, _u: Udp, r: evloop::Result<()>| {
                let h = raw as *mut Handle;
                // SAFETY: runs before the handle's close callback, while the record lives.
                unsafe { call_c(h, lp, |_| cb(h.cast(), crate::code(r), rd as *mut c_void)) }
            }) as evloop::SendCb
        });
        // SAFETY: checked by with_slices.
        let sent = unsafe {
            with_slices(bufs, nbufs, |parts| match parts {
                [one] => udp.send_to(lp, one, to, done),
                _ => udp.send_to(lp, &parts.concat(), to, done),
            })
        };
        match sent {
            Ok(r) => crate::code(r),
            Err(e) => e,
        }
    })
}

/// Starts delivering datagrams to `cb`.
#[no_mangle]
pub unsafe extern "C" fn evl_udp_recv_start(u: *mut evl_udp_t, cb: evl_udp_recv_cb) -> c_int {
    with_open!(u, Udp, |h, lp, Id::Udp(udp)| {
        let Some(cb) = cb else { return -libc::EINVAL };
        let raw = h as *mut Handle as usize;
        crate::code(udp.recv_start(lp, move |lp, _, r| {
            let h = raw as *mut Handle;
            let mut storage: sockaddr_storage = unsafe { std::mem::zeroed() };
            let (n, buf, from) = match r {
                Ok((data, addr)) => {
                    // SAFETY: `storage` is a local sockaddr_storage.
                    unsafe { from_std(addr, &mut storage, std::ptr::null_mut()) };
                    (
                        data.len() as ssize_t,
                        data.as_ptr().cast::<c_char>(),
                        (&storage as *const sockaddr_storage).cast(),
                    )
                }
                Err(e) => (e.code() as ssize_t, std::ptr::null(), std::ptr::null()),
            };
            // SAFETY: the record lives while core runs its callbacks; pointers valid for the call.
            unsafe { call_c(h, lp, |data| cb(h.cast(), n, buf, from, data)) }
        }))
    })
}

/// Stops delivering datagrams.
#[no_mangle]
pub unsafe extern "C" fn evl_udp_recv_stop(u: *mut evl_udp_t) -> c_int {
    with_open!(u, Udp, |h, lp, Id::Udp(udp)| crate::code(udp.recv_stop(lp)))
}

/// SO_BROADCAST on (1) or off (0).
#[no_mangle]
pub unsafe extern "C" fn evl_udp_set_broadcast(u: *mut evl_udp_t, on: c_int) -> c_int {
    with_open!(u, Udp, |h, lp, Id::Udp(udp)| crate::code(
        udp.set_broadcast(lp, on != 0)
    ))
}

/// The unicast TTL (hop limit).
#[no_mangle]
pub unsafe extern "C" fn evl_udp_set_ttl(u: *mut evl_udp_t, ttl: c_uint) -> c_int {
    with_open!(u, Udp, |h, lp, Id::Udp(udp)| crate::code(udp.set_ttl(lp, ttl)))
}

/// Whether multicast datagrams loop back to local listeners.
#[no_mangle]
pub unsafe extern "C" fn evl_udp_set_multicast_loop(u: *mut evl_udp_t, on: c_int) -> c_int {
    with_open!(u, Udp, |h, lp, Id::Udp(udp)| crate::code(
        udp.set_multicast_loop(lp, on != 0)
    ))
}

/// The multicast TTL (hop limit).
#[no_mangle]
pub unsafe extern "C" fn evl_udp_set_multicast_ttl(u: *mut evl_udp_t, ttl: c_uint) -> c_int {
    with_open!(u, Udp, |h, lp, Id::Udp(udp)| crate::code(
        udp.set_multicast_ttl(lp, ttl)
    ))
}

/// Joins (`join` = 1) or leaves a multicast group given as text ("239.1.2.3", "ff02::1") on the
/// interface with IPv4 address `iface` (NULL: any; ignored for IPv6, which uses any interface).
#[no_mangle]
pub unsafe extern "C" fn evl_udp_set_membership(
    u: *mut evl_udp_t,
    group: *const c_char,
    iface: *const c_char,
    join: c_int,
) -> c_int {
    with_open!(u, Udp, |h, lp, Id::Udp(udp)| {
        if group.is_null() {
            return -libc::EINVAL;
        }
        // SAFETY: NUL-terminated strings (contract).
        let text = |p: *const c_char| unsafe { CStr::from_ptr(p) }.to_str().ok();
        let Some(g) = text(group).and_then(|s| s.parse::<std::net::IpAddr>().ok()) else {
            return -libc::EINVAL;
        };
        let i = if iface.is_null() {
            Some(std::net::Ipv4Addr::UNSPECIFIED)
        } else {
            text(iface).and_then(|s| s.parse::<std::net::Ipv4Addr>().ok())
        };
        let Some(i) = i else { return -libc::EINVAL };
        crate::code(udp.set_membership(lp, g, i, 0, join != 0))
    })
}

/// The bound address.
#[no_mangle]
pub unsafe extern "C" fn evl_udp_getsockname(
    u: *mut evl_udp_t,
    out: *mut sockaddr_storage,
    len: *mut socklen_t,
) -> c_int {
    with_open!(u, Udp, |h, lp, Id::Udp(udp)| match udp.local_addr(lp) {
        // SAFETY: checked by from_std.
        Ok(a) => unsafe { from_std(a, out, len) },
        Err(e) => e.code(),
    })
}
