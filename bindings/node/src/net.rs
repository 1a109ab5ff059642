//! TCP and Unix stream sockets for `lib/net.js`. Calls return a handle number or `0`/`1` on
//! success and a negative errno on failure: JavaScript turns those into Node's errors (with
//! `code`, `errno` and `syscall`), so the hot calls never build an exception.

use std::net::{IpAddr, SocketAddr};

use evloop::{BindOptions, Error, Handle, Loop, Read, Stream};
use napi::bindgen_prelude::{BufferSlice, Either};
use napi_derive::napi;

use crate::runtime::{kind, rt, runtime, Event, Owned, Runtime};

/// The largest pass whose reads go to JavaScript one at a time (see `read_start`). Node echo,
/// one read at a time in every pass: 4 connections 0.66x -> 0.89x `net`'s messages per second
/// (epoll), but 50 connections 0.64x -> 0.99x its CPU per message (io_uring).
const ONE_BY_ONE_PASS: usize = 8;

/// Node's default `writableHighWaterMark` for sockets.
const HIGH_WATER_MARK: usize = 16 * 1024;

/// `Ok` as the value `ok` makes of it, an error as its negative errno.
pub(crate) fn code<T>(r: Result<T, Error>, ok: impl FnOnce(T) -> i32) -> i32 {
    match r {
        Ok(v) => ok(v),
        Err(e) => e.code(),
    }
}

pub(crate) fn socket_addr(ip: &str, port: u32) -> Result<SocketAddr, Error> {
    let ip: IpAddr = ip.parse().map_err(|_| Error::EINVAL)?;
    let port = u16::try_from(port).map_err(|_| Error::EINVAL)?;
    Ok(SocketAddr::new(ip, port))
}

/// Records the event `make` builds, if the runtime still exists.
pub(crate) fn push(make: impl FnOnce(&Runtime) -> Event) {
    if let Some(rt) = runtime() {
        let ev = make(rt);
        rt.push(ev);
    }
}

/// A settled write, connect or shutdown: the event's `n` is 0 or the negative errno.
fn done_event(k: i32, idx: u32) -> evloop::DoneCb {
    Box::new(move |_, _, res| push(|_| Event::new(k, idx).with_n(res.err().map_or(0, Error::code))))
}

/// What every connection gets from the start: Node's high-water mark and a drain event.
fn prepare_connection(lp: &mut Loop, s: Stream, idx: u32) -> evloop::Result<()> {
    s.set_high_water_mark(lp, HIGH_WATER_MARK)?;
    s.on_drain(lp, move |_, _| push(|_| Event::new(kind::DRAIN, idx)))
}

fn listen(rt: &Runtime, bind: impl FnOnce(&mut Loop) -> evloop::Result<Stream>, backlog: i32) -> i32 {
    let made = rt.with_loop(|lp| {
        let s = bind(lp)?;
        let h = rt.insert(Owned::Stream(s));
        let idx = Runtime::index(h);
        let listening = s.listen(lp, backlog, move |_, _, conn| {
            push(|rt| match conn {
                Ok(c) => {
                    // Its write settings wait for its first write: an idle connection carries
                    // no write state.
                    let ch = rt.insert(Owned::Stream(c));
                    let mut ev = Event::new(kind::CONNECTION, idx);
                    ev.a = rt.number(ch as f64);
                    ev
                }
                Err(e) => Event::new(kind::ACCEPT_ERROR, idx).with_n(e.code()),
            })
        });
        match listening {
            Ok(()) => Ok(h),
            Err(e) => {
                let _ = s.close(lp, None);
                rt.remove(idx);
                Err(e)
            }
        }
    });
    code(made.and_then(|r| r), |h| h as i32)
}

/// Binds a TCP listener on `ip`:`port` and starts accepting; returns its handle number.
#[napi]
pub fn tcp_listen(
    ip: String,
    port: u32,
    backlog: i32,
    ipv6_only: bool,
    reuse_port: bool,
) -> napi::Result<i32> {
    let rt = rt()?;
    let addr = match socket_addr(&ip, port) {
        Ok(a) => a,
        Err(e) => return Ok(e.code()),
    };
    let opts = BindOptions {
        reuse_port,
        v6_only: ipv6_only,
    };
    Ok(listen(rt, |lp| Stream::tcp_bind(lp, addr, opts), backlog))
}

/// Binds a Unix stream listener at `path` (a leading NUL: abstract) and starts accepting.
#[napi]
pub fn unix_listen(path: String, backlog: i32) -> napi::Result<i32> {
    let rt = rt()?;
    Ok(listen(rt, |lp| Stream::unix_bind(lp, path.as_bytes()), backlog))
}

fn connect(rt: &Runtime, start: impl FnOnce(&mut Loop, evloop::DoneCb) -> evloop::Result<Stream>) -> i32 {
    let h = rt.insert_pending();
    let idx = Runtime::index(h);
    let made = rt.with_loop(|lp| {
        let s = start(lp, done_event(kind::CONNECT, idx))?;
        rt.fill(h, Owned::Stream(s));
        // A connecting stream has write state anyway: its settings go in now.
        rt.stream_to_write(h)?;
        prepare_connection(lp, s, idx)
    });
    match made.and_then(|r| r) {
        Ok(()) => h as i32,
        Err(e) => {
            if let Ok(Owned::Stream(s)) = rt.owned(h) {
                let _ = rt.with_loop(|lp| s.close(lp, None));
            }
            rt.remove(idx);
            e.code()
        }
    }
}

/// Connects to `ip`:`port`; the connect event follows. Returns the handle number.
#[napi]
pub fn tcp_connect(ip: String, port: u32) -> napi::Result<i32> {
    let rt = rt()?;
    let addr = match socket_addr(&ip, port) {
        Ok(a) => a,
        Err(e) => return Ok(e.code()),
    };
    Ok(connect(rt, |lp, cb| Stream::tcp_connect_boxed(lp, addr, cb)))
}

/// Connects to the Unix socket at `path`.
#[napi]
pub fn unix_connect(path: String) -> napi::Result<i32> {
    let rt = rt()?;
    Ok(connect(rt, |lp, cb| {
        Stream::unix_connect_boxed(lp, path.as_bytes(), cb)
    }))
}

/// Starts delivering data, EOF and read errors as events.
#[napi]
pub fn read_start(h: u32) -> napi::Result<i32> {
    let rt = rt()?;
    let idx = Runtime::index(h);
    let r = rt.stream(h).and_then(|s| {
        rt.with_loop(|lp| {
            s.read_start(lp, move |lp, _, read| {
                // In a small pass JavaScript sees this read before the next one is made, so its
                // reply leaves first; a busy pass goes to JavaScript whole, its replies together.
                if lp.pass_size() <= ONE_BY_ONE_PASS {
                    lp.end_pass();
                }
                push(|rt| match read {
                    Read::Data(bytes) => match rt.slab_copy(bytes) {
                        // JavaScript makes the view: Buffer.from(a, n, b).
                        Some((slab, offset)) => {
                            let mut ev = Event::new(kind::DATA_IN_SLAB, idx).with_n(offset as i32);
                            ev.a = slab;
                            ev.b = rt.number(bytes.len() as f64);
                            ev
                        }
                        None => {
                            let mut ev = Event::new(kind::DATA, idx);
                            ev.a = rt.buffer_copy(bytes);
                            ev
                        }
                    },
                    Read::Eof => Event::new(kind::EOF, idx),
                    Read::Error(e) => Event::new(kind::READ_ERROR, idx).with_n(e.code()),
                })
            })
        })?
    });
    Ok(code(r, |_| 0))
}

/// Stops delivering data (Node's `pause()`).
#[napi]
pub fn read_stop(h: u32) -> napi::Result<i32> {
    let rt = rt()?;
    let r = rt.stream(h).and_then(|s| rt.with_loop(|lp| s.read_stop(lp))?);
    Ok(code(r, |_| 0))
}

/// Writes `data`: sent at once when the socket takes it, else queued (copied). Returns 1 while
/// the queue is below the high-water mark, 0 at or above it (a drain event follows), or a
/// negative errno. With `want_done`, a write-done event follows too.
#[napi]
pub fn write(h: u32, data: BufferSlice, want_done: bool) -> napi::Result<i32> {
    let rt = rt()?;
    let idx = Runtime::index(h);
    let r = rt.stream_to_write(h).and_then(|(s, first)| {
        let cb = want_done.then(|| done_event(kind::WRITE_DONE, idx));
        rt.with_loop(|lp| {
            if first {
                prepare_connection(lp, s, idx)?;
            }
            s.write(lp, &data, cb)
        })?
    });
    Ok(code(r, i32::from))
}

/// Shuts the write side down once queued data is sent; a shutdown event follows.
#[napi]
pub fn shutdown(h: u32) -> napi::Result<i32> {
    let rt = rt()?;
    let idx = Runtime::index(h);
    let r = rt
        .stream(h)
        .and_then(|s| rt.with_loop(|lp| s.shutdown(lp, Some(done_event(kind::SHUTDOWN, idx))))?);
    Ok(code(r, |_| 0))
}

/// Bytes accepted by `write` and not yet handed to the kernel.
#[napi]
pub fn write_queue_size(h: u32) -> napi::Result<f64> {
    let rt = rt()?;
    let r = rt
        .stream(h)
        .and_then(|s| rt.with_loop(|lp| s.write_queue_size(lp)));
    Ok(r.map_or(0.0, |n| n as f64))
}

/// Sets the write-queue size at which `write` starts returning 0.
#[napi]
pub fn set_high_water_mark(h: u32, bytes: u32) -> napi::Result<i32> {
    let rt = rt()?;
    let idx = Runtime::index(h);
    let r = rt.stream_to_write(h).and_then(|(s, first)| {
        rt.with_loop(|lp| {
            if first {
                prepare_connection(lp, s, idx)?;
            }
            s.set_high_water_mark(lp, bytes as usize)
        })?
    });
    Ok(code(r, |_| 0))
}

/// TCP_NODELAY on (true) or off.
#[napi]
pub fn set_no_delay(h: u32, on: bool) -> napi::Result<i32> {
    let rt = rt()?;
    let r = rt
        .stream(h)
        .and_then(|s| rt.with_loop(|lp| s.set_nodelay(lp, on))?);
    Ok(code(r, |_| 0))
}

/// Keep-alive probes after `idle_secs` of silence, or none.
#[napi]
pub fn set_keep_alive(h: u32, on: bool, idle_secs: u32) -> napi::Result<i32> {
    let rt = rt()?;
    let r = rt
        .stream(h)
        .and_then(|s| rt.with_loop(|lp| s.set_keepalive(lp, on, idle_secs.max(1)))?);
    Ok(code(r, |_| 0))
}

/// A socket address as Node's `address()` gives it.
#[napi(object)]
pub struct AddressInfo {
    pub address: String,
    pub family: String,
    pub port: u32,
}

pub(crate) fn inet_info(a: SocketAddr) -> AddressInfo {
    AddressInfo {
        address: a.ip().to_string(),
        family: if a.is_ipv4() { "IPv4" } else { "IPv6" }.to_string(),
        port: a.port() as u32,
    }
}

/// The local (or with `peer`, the remote) address of a stream socket; a Unix socket's is
/// `{address: path, family: 'unix'}`. A negative errno on failure.
#[napi]
pub fn stream_address(h: u32, peer: bool) -> napi::Result<Either<AddressInfo, i32>> {
    let rt = rt()?;
    let r = rt.stream(h).and_then(|s| {
        rt.with_loop(|lp| {
            let inet = if peer { s.peer_addr(lp) } else { s.local_addr(lp) };
            match inet {
                Ok(a) => Ok(inet_info(a)),
                Err(Error::EAFNOSUPPORT) | Err(Error::ENOTSOCK) => {
                    let name = if peer {
                        s.unix_peer_name(lp)?
                    } else {
                        s.unix_local_name(lp)?
                    };
                    Ok(AddressInfo {
                        address: String::from_utf8_lossy(&name).into_owned(),
                        family: "unix".to_string(),
                        port: 0,
                    })
                }
                Err(e) => Err(e),
            }
        })?
    });
    Ok(match r {
        Ok(info) => Either::A(info),
        Err(e) => Either::B(e.code()),
    })
}

/// Closes a socket or server; its close event follows.
#[napi]
pub fn close(h: u32) -> napi::Result<i32> {
    Ok(code(rt()?.close(h), |_| 0))
}

/// Whether the handle keeps the process alive.
#[napi(js_name = "setRef")]
pub fn set_ref(h: u32, on: bool) -> napi::Result<i32> {
    Ok(code(rt()?.set_ref(h, on), |_| 0))
}

/// Makes `owner` the object `h`'s events are dispatched to.
#[napi]
pub fn own(h: u32, owner: napi::JsObject) -> napi::Result<i32> {
    use napi::NapiRaw;
    // SAFETY: the object is a live value of this call's environment.
    let raw = unsafe { owner.raw() };
    Ok(code(rt()?.set_owner(h, raw), |_| 0))
}

/// The name of an errno value (`-111` → `"ECONNREFUSED"`).
#[napi]
pub fn errname(errno: i32) -> String {
    Error::from_errno(errno).name().to_string()
}

/// The system's message for an errno value.
#[napi]
pub fn strerror(errno: i32) -> String {
    Error::from_errno(errno).message()
}
