//! Stream sockets: TCP and Unix listeners and connections.

use crate::guard;
use crate::handle::{call_c, create, evl_stream_t, new_handle, with_open, Handle, Id};
use crate::loop_::evl_loop_t;
use evloop::{BindOptions, Loop, Read, Stream};
use libc::{c_char, c_int, c_uint, c_void, size_t, sockaddr, sockaddr_storage, socklen_t, ssize_t};
use std::net::SocketAddr;

/// A buffer for evl_write / evl_try_write / evl_udp_send.
#[repr(C)]
pub struct evl_buf_t {
    /// First byte.
    pub base: *const c_char,
    /// Length in bytes.
    pub len: size_t,
}

/// evl_tcp_bind flag: set SO_REUSEPORT (one loop per thread on one port).
pub const EVL_TCP_REUSEPORT: c_uint = 1;
/// evl_tcp_bind flag: an IPv6 socket accepts IPv6 only.
pub const EVL_TCP_IPV6ONLY: c_uint = 2;

/// Runs once when a connect, write or shutdown has finished: `status` 0 or a negative errno
/// (-ECANCELED if the handle was closed first).
pub type evl_status_cb =
    Option<unsafe extern "C" fn(stream: *mut evl_stream_t, status: c_int, user_data: *mut c_void)>;
/// Receives each accepted connection (`status` 0; `conn` is a new handle the callee owns and must
/// close, with NULL user_data) or an accept error (`status` < 0, `conn` NULL).
pub type evl_connection_cb = Option<
    unsafe extern "C" fn(
        listener: *mut evl_stream_t,
        conn: *mut evl_stream_t,
        status: c_int,
        user_data: *mut c_void,
    ),
>;
/// Receives data (`nread` > 0 bytes at `buf`, lent for the duration of the call), EVL_EOF, or a
/// negative errno (reading has then stopped). `buf` is NULL when `nread` <= 0.
pub type evl_read_cb = Option<
    unsafe extern "C" fn(
        stream: *mut evl_stream_t,
        nread: ssize_t,
        buf: *const c_char,
        user_data: *mut c_void,
    ),
>;
/// Runs when a write queue that reached the high-water mark has emptied.
pub type evl_drain_cb = Option<unsafe extern "C" fn(stream: *mut evl_stream_t, user_data: *mut c_void)>;

/// A C address as a Rust one (IPv4 or IPv6).
pub(crate) unsafe fn to_std(addr: *const sockaddr, len: socklen_t) -> Result<SocketAddr, c_int> {
    if addr.is_null() {
        return Err(-libc::EINVAL);
    }
    // SAFETY: `addr` points to `len` readable bytes (contract); sizes are checked per family.
    unsafe {
        match (*addr).sa_family as c_int {
            libc::AF_INET if len as usize >= std::mem::size_of::<libc::sockaddr_in>() => {
                let a = &*(addr as *const libc::sockaddr_in);
                let ip = std::net::Ipv4Addr::from(a.sin_addr.s_addr.to_ne_bytes());
                Ok(SocketAddr::from((ip, u16::from_be(a.sin_port))))
            }
            libc::AF_INET6 if len as usize >= std::mem::size_of::<libc::sockaddr_in6>() => {
                let a = &*(addr as *const libc::sockaddr_in6);
                let ip = std::net::Ipv6Addr::from(a.sin6_addr.s6_addr);
                Ok(SocketAddr::V6(std::net::SocketAddrV6::new(
                    ip,
                    u16::from_be(a.sin6_port),
                    a.sin6_flowinfo,
                    a.sin6_scope_id,
                )))
            }
            libc::AF_INET | libc::AF_INET6 => Err(-libc::EINVAL),
            _ => Err(-libc::EAFNOSUPPORT),
        }
    }
}

/// Writes a Rust address into a caller's sockaddr_storage.
pub(crate) unsafe fn from_std(a: SocketAddr, out: *mut sockaddr_storage, len: *mut socklen_t) -> c_int {
    if out.is_null() {
        return -libc::EINVAL;
    }
    // SAFETY: `out` points to a writable sockaddr_storage, `len` is NULL or writable (contract).
    unsafe {
        std::ptr::write_bytes(out, 0, 1);
        let n = match a {
            SocketAddr::V4(v4) => {
                let sin = out as *mut libc::sockaddr_in;
                (*sin).sin_family = libc::AF_INET as _;
                (*sin).sin_port = v4.port().to_be();
                (*sin).sin_addr.s_addr = u32::from_ne_bytes(v4.ip().octets());
                std::mem::size_of::<libc::sockaddr_in>()
            }
            SocketAddr::V6(v6) => {
                let sin6 = out as *mut libc::sockaddr_in6;
                (*sin6).sin6_family = libc::AF_INET6 as _;
                (*sin6).sin6_port = v6.port().to_be();
                (*sin6).sin6_flowinfo = v6.flowinfo();
                (*sin6).sin6_addr.s6_addr = v6.ip().octets();
                (*sin6).sin6_scope_id = v6.scope_id();
                std::mem::size_of::<libc::sockaddr_in6>()
            }
        };
        if !len.is_null() {
            *len = n as socklen_t;
        }
    }
    0
}

/// Runs `f` on the bytes of `bufs` as slices, checked before any is touched: -EINVAL for a NULL
/// array with a count, a NULL base with a length, or lengths whose total exceeds SSIZE_MAX (what
/// writev(2) refuses). Up to 16 buffers are laid out on the stack, so a write allocates nothing.
#[inline(always)]
pub(crate) unsafe fn with_slices<'a, R>(
    bufs: *const evl_buf_t,
    nbufs: c_uint,
    f: impl FnOnce(&[&'a [u8]]) -> R,
) -> Result<R, c_int> {
    if nbufs == 0 {
        return Ok(f(&[]));
    }
    if bufs.is_null() {
        return Err(-libc::EINVAL);
    }
    // SAFETY: `bufs` holds `nbufs` entries (contract).
    let entries = unsafe { std::slice::from_raw_parts(bufs, nbufs as usize) };
    let slice = |b: &evl_buf_t| -> Result<&'a [u8], c_int> {
        match (b.base.is_null(), b.len) {
            (_, 0) => Ok(&[][..]),
            (true, _) => Err(-libc::EINVAL),
            (false, n) if n > isize::MAX as usize => Err(-libc::EINVAL),
            // SAFETY: each entry names `len` readable bytes (contract); the total is in range.
            (false, n) => Ok(unsafe { std::slice::from_raw_parts(b.base.cast::<u8>(), n) }),
        }
    };
    // The common write, one buffer, goes without the array below.
    if let [one] = entries {
        return Ok(f(&[slice(one)?]));
    }
    crate::checked_total(entries.iter().map(|b| b.len))?;
    let mut stack: [&[u8]; 16] = [&[]; 16];
    if entries.len() <= stack.len() {
        for (slot, b) in stack.iter_mut().zip(entries) {
            *slot = slice(b)?;
        }
        return Ok(f(&stack[..entries.len()]));
    }
    let parts = entries.iter().map(slice).collect::<Result<Vec<_>, _>>()?;
    Ok(f(&parts))
}

fn status_cb(h: *mut Handle, cb: evl_status_cb, user_data: *mut c_void) -> Option<evloop::DoneCb> {
    let cb = cb?;
    let (raw, data) = (h as usize, user_data as usize);
    Some(Box::new(
        move |lp: &mut Loop, _s: Stream, r: evloop::Result<()>| {
            let h = raw as *mut Handle;
            // SAFETY: core runs this before the stream's close callback, while the record lives.
            unsafe { call_c(h, lp, |_| cb(h.cast(), crate::code(r), data as *mut c_void)) }
        },
    ))
}

fn create_stream(
    l: *mut evl_loop_t,
    out: *mut *mut evl_stream_t,
    user_data: *mut c_void,
    make: impl FnOnce(&mut Loop) -> evloop::Result<Stream>,
) -> c_int {
    create(l, out, user_data, |lp| Ok(Id::Stream(make(lp)?)))
}

/// A TCP socket bound to `addr` (SO_REUSEADDR set), for evl_listen(). `flags`: EVL_TCP_*.
#[no_mangle]
pub unsafe extern "C" fn evl_tcp_bind(
    l: *mut evl_loop_t,
    out: *mut *mut evl_stream_t,
    addr: *const sockaddr,
    addrlen: socklen_t,
    flags: c_uint,
    user_data: *mut c_void,
) -> c_int {
    guard(-libc::EIO, || {
        // SAFETY: checked by to_std.
        let a = match unsafe { to_std(addr, addrlen) } {
            Ok(a) => a,
            Err(e) => return e,
        };
        let opts = BindOptions {
            reuse_port: flags & EVL_TCP_REUSEPORT != 0,
            v6_only: flags & EVL_TCP_IPV6ONLY != 0,
        };
        create_stream(l, out, user_data, |lp| Stream::tcp_bind(lp, a, opts))
    })
}

/// Connects a new TCP socket to `addr`; `cb(stream, status, user_data)` runs with the result
/// (-ECONNREFUSED, ...). Reads started and writes made before it completes wait for it.
#[no_mangle]
pub unsafe extern "C" fn evl_tcp_connect(
    l: *mut evl_loop_t,
    out: *mut *mut evl_stream_t,
    addr: *const sockaddr,
    addrlen: socklen_t,
    cb: evl_status_cb,
    user_data: *mut c_void,
) -> c_int {
    guard(-libc::EIO, || {
        // SAFETY: checked by to_std.
        let a = match unsafe { to_std(addr, addrlen) } {
            Ok(a) => a,
            Err(e) => return e,
        };
        connect(l, out, user_data, cb, |lp, done| {
            Stream::tcp_connect_boxed(lp, a, done)
        })
    })
}

fn connect(
    l: *mut evl_loop_t,
    out: *mut *mut evl_stream_t,
    user_data: *mut c_void,
    cb: evl_status_cb,
    start: impl FnOnce(&mut Loop, evloop::DoneCb) -> evloop::Result<Stream>,
) -> c_int {
    // The callback needs the record, which exists only once the stream does: it reads the
    // record's address from a cell filled right after creation (before any callback can run).
    let cell = std::rc::Rc::new(std::cell::Cell::new(0usize));
    let c = cell.clone();
    let done: evloop::DoneCb = Box::new(move |lp, s, r| {
        if let Some(f) = status_cb(c.get() as *mut Handle, cb, user_data) {
            f(lp, s, r)
        }
    });
    let rc = create_stream(l, out, user_data, |lp| start(lp, done));
    if rc == 0 {
        // SAFETY: create stored a valid handle pointer in `*out`.
        cell.set(unsafe { *out } as usize);
    }
    rc
}

/// No Unix socket name is longer than `sun_path`: longer lengths are refused before the name is
/// read.
const UNIX_NAME_MAX: usize = 108;

/// The `namelen` bytes at `name`, checked: -EINVAL for NULL or a length no name can have.
fn unix_name(name: *const c_char, namelen: size_t) -> Result<Vec<u8>, c_int> {
    if name.is_null() || namelen > UNIX_NAME_MAX {
        return Err(-libc::EINVAL);
    }
    // SAFETY: `name` holds `namelen` bytes (contract), at most UNIX_NAME_MAX.
    Ok(unsafe { std::slice::from_raw_parts(name.cast::<u8>(), namelen) }.to_vec())
}

/// A Unix stream socket bound to `name` (`namelen` bytes; a leading NUL byte makes it abstract),
/// for evl_listen().
#[no_mangle]
pub unsafe extern "C" fn evl_unix_bind(
    l: *mut evl_loop_t,
    out: *mut *mut evl_stream_t,
    name: *const c_char,
    namelen: size_t,
    user_data: *mut c_void,
) -> c_int {
    guard(-libc::EIO, || {
        let n = match unix_name(name, namelen) {
            Ok(n) => n,
            Err(e) => return e,
        };
        create_stream(l, out, user_data, |lp| Stream::unix_bind(lp, &n))
    })
}

/// Connects a new Unix stream socket to `name` (`namelen` bytes); `cb` runs with the result.
#[no_mangle]
pub unsafe extern "C" fn evl_unix_connect(
    l: *mut evl_loop_t,
    out: *mut *mut evl_stream_t,
    name: *const c_char,
    namelen: size_t,
    cb: evl_status_cb,
    user_data: *mut c_void,
) -> c_int {
    guard(-libc::EIO, || {
        let n = match unix_name(name, namelen) {
            Ok(n) => n,
            Err(e) => return e,
        };
        connect(l, out, user_data, cb, |lp, done| {
            Stream::unix_connect_boxed(lp, &n, done)
        })
    })
}

/// Takes ownership of a connected or listening stream socket `fd` (made non-blocking); the
/// library closes it when the handle closes.
#[no_mangle]
pub unsafe extern "C" fn evl_stream_adopt(
    l: *mut evl_loop_t,
    out: *mut *mut evl_stream_t,
    fd: c_int,
    user_data: *mut c_void,
) -> c_int {
    create_stream(l, out, user_data, |lp| Stream::adopt(lp, fd))
}

/// Takes ownership of `fd`, a pipe end, FIFO or terminal (made non-blocking), as a stream
/// (libuv's `uv_pipe_open`); a stream socket is taken as `evl_stream_adopt` takes it. Regular
/// files and directories give -EINVAL. Reading the write end of a pipe delivers no data, only
/// `EVL_EOF` once the read end has closed. `evl_shutdown` of a pipe fails with -ENOTSOCK (its
/// reader sees the end when the handle closes). A write to a pipe without a reader fails with
/// -EPIPE: opening a writable pipe sets SIGPIPE to be ignored if it still had its default
/// action (which kills the process); a handler of the program's own stays.
#[no_mangle]
pub unsafe extern "C" fn evl_pipe_open(
    l: *mut evl_loop_t,
    out: *mut *mut evl_stream_t,
    fd: c_int,
    user_data: *mut c_void,
) -> c_int {
    create_stream(l, out, user_data, |lp| Stream::pipe_open(lp, fd))
}

/// Starts accepting connections; `cb` receives each one.
#[no_mangle]
pub unsafe extern "C" fn evl_listen(s: *mut evl_stream_t, backlog: c_int, cb: evl_connection_cb) -> c_int {
    with_open!(s, Stream, |h, lp, Id::Stream(stream)| {
        let Some(cb) = cb else { return -libc::EINVAL };
        let (raw, l) = (h as *mut Handle as usize, h.l);
        crate::code(stream.listen(lp, backlog, move |lp, _, conn| {
            let h = raw as *mut Handle;
            let (conn, status) = match conn {
                // SAFETY: `l` is the listener's loop, alive while its handles are.
                Ok(c) => (
                    unsafe { new_handle::<evl_stream_t>(l, Id::Stream(c), std::ptr::null_mut()) },
                    0,
                ),
                Err(e) => (std::ptr::null_mut(), e.code()),
            };
            // SAFETY: the listener's record lives while core runs its callbacks.
            unsafe { call_c(h, lp, |data| cb(h.cast(), conn, status, data)) }
        }))
    })
}

/// Starts delivering received data to `cb` (replacing the callback if already reading).
#[no_mangle]
pub unsafe extern "C" fn evl_read_start(s: *mut evl_stream_t, cb: evl_read_cb) -> c_int {
    crate::guard(-libc::EIO, || {
        // SAFETY: validated by `open`.
        let (h, lp) = match unsafe { crate::handle::open(s, crate::handle::Kind::Stream) } {
            Ok(opened) => opened,
            Err(e) => return e,
        };
        let Id::Stream(stream) = h.id else {
            return -libc::EINVAL;
        };
        if cb.is_none() {
            return -libc::EINVAL;
        }
        // The callback lives in the record, which the core's plain-function callback finds
        // again: starting to read allocates nothing.
        h.set_read_cb(cb);
        let raw = h as *mut Handle as usize;
        crate::code(stream.read_start_fn(lp, delivered, raw))
    })
}

fn delivered(lp: &mut Loop, _: Stream, read: Read<'_>, raw: usize) {
    let h = raw as *mut Handle;
    // SAFETY: core runs a stream's read callback only while its handle lives, and the record is
    // freed only after the close callback.
    let Some(cb) = (unsafe { (*h).read_cb() }) else {
        return;
    };
    let (n, buf) = match read {
        Read::Data(b) => (b.len() as ssize_t, b.as_ptr().cast::<c_char>()),
        Read::Eof => (crate::EVL_EOF as ssize_t, std::ptr::null()),
        Read::Error(e) => (e.code() as ssize_t, std::ptr::null()),
    };
    // SAFETY: the record lives while core runs its callbacks; `buf` is valid for the call.
    unsafe { call_c(h, lp, |data| cb(h.cast(), n, buf, data)) }
}

/// Stops delivering data; data arriving meanwhile waits (in the kernel or the library).
#[no_mangle]
pub unsafe extern "C" fn evl_read_stop(s: *mut evl_stream_t) -> c_int {
    with_open!(s, Stream, |h, lp, Id::Stream(stream)| crate::code(
        stream.read_stop(lp)
    ))
}

/// A caller's buffer that `evl_write` sends from where it is: the caller keeps it until the
/// write's callback (libuv's rule for `uv_write`).
struct LentByCaller {
    base: *const u8,
    len: usize,
}

// SAFETY: `evl_write` lends only when the caller gave a callback, and its contract makes the
// caller keep the buffer, unchanged, until that callback has run; the stream reads it no more
// by then (every send from it has completed, failed or been cancelled). Dropping the value
// does not touch the buffer.
unsafe impl evloop::KeptBytes for LentByCaller {
    fn bytes(&self) -> &[u8] {
        // SAFETY: see the impl.
        unsafe { std::slice::from_raw_parts(self.base, self.len) }
    }
}

/// From this size a buffer written with a callback is lent to the stream rather than copied
/// into its queue: copying it costs more than the small allocation that records the loan.
const LEND_MIN: usize = 16 * 1024;

/// Writes `nbufs` buffers in order. What the socket does not take at once is queued; `cb(stream,
/// status, req_data)` (may be NULL) runs once all of it has been handed to the kernel, or with
/// the error that stopped it, never inside this call. As with libuv, keep the buffers until `cb`:
/// a single buffer of 16 KiB or more written with a callback is sent from where it is, without
/// a copy (smaller ones, and any written without a callback, are copied into the queue).
/// Returns 0, or 1 when the write queue has reached the high-water mark (wait for the drain
/// callback), or a negative errno (-EPIPE after evl_shutdown, -EBADF after evl_close, the
/// connection's error after a failure).
#[no_mangle]
pub unsafe extern "C" fn evl_write(
    s: *mut evl_stream_t,
    bufs: *const evl_buf_t,
    nbufs: c_uint,
    cb: evl_status_cb,
    req_data: *mut c_void,
) -> c_int {
    with_open!(s, Stream, |h, lp, Id::Stream(stream)| {
        let done = status_cb(h as *mut Handle, cb, req_data);
        // SAFETY: checked by with_slices.
        let written = unsafe {
            with_slices(bufs, nbufs, |parts| match parts {
                [one] if one.len() >= LEND_MIN && done.is_some() => {
                    let lent = Box::new(LentByCaller {
                        base: one.as_ptr(),
                        len: one.len(),
                    });
                    stream.write_kept(lp, lent, done)
                }
                _ => stream.write_vectored(lp, parts, done),
            })
        };
        match written {
            Ok(Ok(below)) => c_int::from(!below),
            Ok(Err(e)) => e.code(),
            Err(e) => e,
        }
    })
}

/// Sends what the socket takes now without queuing: bytes sent, -EAGAIN if none could be (or
/// earlier writes are still queued), or the socket's error.
#[no_mangle]
pub unsafe extern "C" fn evl_try_write(s: *mut evl_stream_t, bufs: *const evl_buf_t, nbufs: c_uint) -> c_int {
    with_open!(s, Stream, |h, lp, Id::Stream(stream)| {
        // SAFETY: checked by with_slices.
        let tried = unsafe {
            with_slices(bufs, nbufs, |parts| {
                let mut total = 0usize;
                for part in parts {
                    match stream.try_write(lp, part) {
                        Ok(n) => {
                            total += n;
                            if n < part.len() {
                                break;
                            }
                        }
                        Err(e) if total == 0 => return e.code(),
                        Err(_) => break,
                    }
                }
                total.min(c_int::MAX as usize) as c_int
            })
        };
        tried.unwrap_or_else(|e| e)
    })
}

/// Bytes accepted by evl_write and not yet handed to the kernel (0 for a bad handle).
#[no_mangle]
pub unsafe extern "C" fn evl_stream_get_write_queue_size(s: *mut evl_stream_t) -> size_t {
    with_open!(s, Stream, |h, lp, Id::Stream(stream)| stream.write_queue_size(lp)
        as c_int)
    .max(0) as size_t
}

/// Sets the write-queue size at which evl_write returns 1 (default 64 KiB).
#[no_mangle]
pub unsafe extern "C" fn evl_stream_set_high_water_mark(s: *mut evl_stream_t, bytes: size_t) -> c_int {
    with_open!(s, Stream, |h, lp, Id::Stream(stream)| crate::code(
        stream.set_high_water_mark(lp, bytes)
    ))
}

/// Sets the callback run when a write queue that reached the high-water mark has emptied.
#[no_mangle]
pub unsafe extern "C" fn evl_stream_on_drain(s: *mut evl_stream_t, cb: evl_drain_cb) -> c_int {
    with_open!(s, Stream, |h, lp, Id::Stream(stream)| {
        let Some(cb) = cb else { return -libc::EINVAL };
        let raw = h as *mut Handle as usize;
        crate::code(stream.on_drain(lp, move |lp, _| {
            let h = raw as *mut Handle;
            // SAFETY: the record lives while core runs its callbacks.
            unsafe { call_c(h, lp, |data| cb(h.cast(), data)) }
        }))
    })
}

/// Shuts down the write side once queued writes are sent; `cb(stream, status, req_data)` runs
/// when done. Later writes fail with -EPIPE; a second shutdown gives -EALREADY.
#[no_mangle]
pub unsafe extern "C" fn evl_shutdown(
    s: *mut evl_stream_t,
    cb: evl_status_cb,
    req_data: *mut c_void,
) -> c_int {
    with_open!(s, Stream, |h, lp, Id::Stream(stream)| {
        crate::code(stream.shutdown(lp, status_cb(h as *mut Handle, cb, req_data)))
    })
}

/// Disables (1) or enables (0) Nagle's algorithm on a TCP socket.
#[no_mangle]
pub unsafe extern "C" fn evl_tcp_nodelay(s: *mut evl_stream_t, enable: c_int) -> c_int {
    with_open!(s, Stream, |h, lp, Id::Stream(stream)| crate::code(
        stream.set_nodelay(lp, enable != 0)
    ))
}

/// Enables TCP keep-alive after `delay` seconds of silence (enable = 1), or disables it.
#[no_mangle]
pub unsafe extern "C" fn evl_tcp_keepalive(s: *mut evl_stream_t, enable: c_int, delay: c_uint) -> c_int {
    with_open!(s, Stream, |h, lp, Id::Stream(stream)| crate::code(
        stream.set_keepalive(lp, enable != 0, delay)
    ))
}

/// The local address of a TCP socket, into `*out` (and its length into `*len` if not NULL).
#[no_mangle]
pub unsafe extern "C" fn evl_tcp_getsockname(
    s: *mut evl_stream_t,
    out: *mut sockaddr_storage,
    len: *mut socklen_t,
) -> c_int {
    with_open!(
        s,
        Stream,
        |h, lp, Id::Stream(stream)| match stream.local_addr(lp) {
            // SAFETY: checked by from_std.
            Ok(a) => unsafe { from_std(a, out, len) },
            Err(e) => e.code(),
        }
    )
}

/// The peer address of a connected TCP socket.
#[no_mangle]
pub unsafe extern "C" fn evl_tcp_getpeername(
    s: *mut evl_stream_t,
    out: *mut sockaddr_storage,
    len: *mut socklen_t,
) -> c_int {
    with_open!(
        s,
        Stream,
        |h, lp, Id::Stream(stream)| match stream.peer_addr(lp) {
            // SAFETY: checked by from_std.
            Ok(a) => unsafe { from_std(a, out, len) },
            Err(e) => e.code(),
        }
    )
}

/// The socket's fd, for options this API lacks; do not close it or do I/O on it.
#[no_mangle]
pub unsafe extern "C" fn evl_stream_fileno(s: *mut evl_stream_t) -> c_int {
    with_open!(s, Stream, |h, lp, Id::Stream(stream)| stream
        .fd(lp)
        .unwrap_or_else(|e| e.code()))
}
