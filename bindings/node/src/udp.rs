//! UDP sockets for `lib/dgram.js`, with the same return convention as `net.rs`.

use evloop::{Error, Udp, UdpBindOptions};
use napi::bindgen_prelude::{BufferSlice, Either};
use napi_derive::napi;

use crate::net::{code, inet_info, push, socket_addr, AddressInfo};
use crate::runtime::{kind, rt, Event, Owned, Runtime};

/// Binds a UDP socket to `ip`:`port` (0: any); returns its handle number.
#[napi]
pub fn udp_bind(ip: String, port: u32, reuse_addr: bool, ipv6_only: bool) -> napi::Result<i32> {
    let rt = rt()?;
    let addr = match socket_addr(&ip, port) {
        Ok(a) => a,
        Err(e) => return Ok(e.code()),
    };
    let opts = UdpBindOptions {
        reuse_addr,
        reuse_port: false,
        v6_only: ipv6_only,
    };
    let r = rt.with_loop(|lp| Udp::bind(lp, addr, opts)).and_then(|r| r);
    Ok(code(r, |u| rt.insert(Owned::Udp(u)) as i32))
}

/// Starts delivering datagrams as message events (`a`: the Buffer, `b`: the sender's
/// address, `n`: its port).
#[napi]
pub fn udp_recv_start(h: u32) -> napi::Result<i32> {
    let rt = rt()?;
    let idx = Runtime::index(h);
    let r = rt.udp(h).and_then(|u| {
        rt.with_loop(|lp| {
            u.recv_start(lp, move |_, _, res| {
                push(|rt| match res {
                    Ok((data, from)) => {
                        let mut ev = Event::new(kind::MESSAGE, idx).with_n(from.port() as i32);
                        ev.a = rt.buffer_copy(data);
                        ev.b = rt.string(&from.ip().to_string());
                        ev
                    }
                    Err(e) => Event::new(kind::RECV_ERROR, idx).with_n(e.code()),
                })
            })
        })?
    });
    Ok(code(r, |_| 0))
}

/// Stops delivering datagrams.
#[napi]
pub fn udp_recv_stop(h: u32) -> napi::Result<i32> {
    let rt = rt()?;
    let r = rt.udp(h).and_then(|u| rt.with_loop(|lp| u.recv_stop(lp))?);
    Ok(code(r, |_| 0))
}

/// Sends `data` to `ip`:`port` (copied if it must wait). With `want_done`, a send-done event
/// follows.
#[napi]
pub fn udp_send(h: u32, data: BufferSlice, ip: String, port: u32, want_done: bool) -> napi::Result<i32> {
    let rt = rt()?;
    let idx = Runtime::index(h);
    let r = socket_addr(&ip, port).and_then(|to| {
        let u = rt.udp(h)?;
        let cb: Option<evloop::SendCb> = want_done.then(|| -> evloop::SendCb {
            Box::new(move |_, _, res| {
                push(|_| Event::new(kind::SEND_DONE, idx).with_n(res.err().map_or(0, Error::code)))
            })
        });
        rt.with_loop(|lp| u.send_to(lp, &data, to, cb))?
    });
    Ok(code(r, |_| 0))
}

/// The socket's local address, or a negative errno.
#[napi]
pub fn udp_address(h: u32) -> napi::Result<Either<AddressInfo, i32>> {
    let rt = rt()?;
    let r = rt.udp(h).and_then(|u| rt.with_loop(|lp| u.local_addr(lp))?);
    Ok(match r {
        Ok(a) => Either::A(inet_info(a)),
        Err(e) => Either::B(e.code()),
    })
}

/// SO_BROADCAST on or off.
#[napi]
pub fn udp_set_broadcast(h: u32, on: bool) -> napi::Result<i32> {
    let rt = rt()?;
    let r = rt
        .udp(h)
        .and_then(|u| rt.with_loop(|lp| u.set_broadcast(lp, on))?);
    Ok(code(r, |_| 0))
}

/// The unicast TTL (hop limit).
#[napi]
pub fn udp_set_ttl(h: u32, ttl: u32) -> napi::Result<i32> {
    let rt = rt()?;
    let r = rt.udp(h).and_then(|u| rt.with_loop(|lp| u.set_ttl(lp, ttl))?);
    Ok(code(r, |_| 0))
}
