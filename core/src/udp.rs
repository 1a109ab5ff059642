//! UDP sockets: bind, send_to, receive with the sender's address, broadcast and multicast.

use crate::backend::{Completion, Op, OpKind};
use crate::error::{Error, Result};
use crate::event_loop::{gen_matches, token, Deferred, Loop};
use crate::handle::{handle_type, CloseCb, Common, Kind, RawHandle};
use crate::stream::result_of;
use crate::sys::{
    self,
    socket::{self, RawAddr},
};
use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::RawFd;

handle_type!(
    /// A UDP socket (libuv's `uv_udp_t`).
    Udp,
    Kind::Udp
);

/// Receives each datagram with its sender, or an error (e.g. `ECONNREFUSED` from ICMP).
pub type RecvCb = Box<dyn FnMut(&mut Loop, Udp, Result<(&[u8], SocketAddr)>)>;
/// Runs once when a datagram has been sent or has failed.
pub type SendCb = Box<dyn FnOnce(&mut Loop, Udp, Result<()>)>;
/// Runs for each datagram sent without a callback of its own once it has been sent or has
/// failed (see [`Udp::on_sent`]).
pub type SentCb = Box<dyn FnMut(&mut Loop, Udp, Result<()>)>;

const OP_RECV: u8 = 1;
const OP_SEND: u8 = 2;
/// Datagrams allowed to wait in user space before `send_to` reports `ENOBUFS`.
const MAX_QUEUED: usize = 1024;

/// Options for [`Udp::bind`].
#[derive(Clone, Copy, Debug, Default)]
pub struct UdpBindOptions {
    /// SO_REUSEADDR (needed for several sockets on one multicast port).
    pub reuse_addr: bool,
    /// SO_REUSEPORT.
    pub reuse_port: bool,
    /// For an IPv6 address: IPv6 only.
    pub v6_only: bool,
}

/// The most datagrams a stopped socket keeps for its next `recv_start` (see `UdpEntry::held`).
const HELD_DATAGRAMS_MAX: usize = 1024;

/// The datagram a receive completion carries and its sender (`EAFNOSUPPORT` for an address
/// that is not IPv4 or IPv6).
///
/// # Safety
/// `c` is the completion of a successful receive that has not been recycled: the backend set
/// its bytes and address, which stay valid until then.
unsafe fn received(c: &Completion) -> Result<(&[u8], SocketAddr)> {
    // SAFETY: per the caller's promise.
    match unsafe { c.addr.as_ref() }.and_then(RawAddr::inet) {
        // SAFETY: as above.
        Some(from) => Ok((unsafe { c.bytes() }, from)),
        None => Err(Error::EAFNOSUPPORT),
    }
}

struct Datagram {
    data: Vec<u8>,
    /// Boxed: the backend holds its address until the send completes, and the queue may move.
    addr: Box<RawAddr>,
    cb: Option<SendCb>,
}

pub(crate) struct UdpEntry {
    pub(crate) common: Common,
    pub(crate) fd: RawFd,
    receiving: bool,
    recv_armed: bool,
    recv_cb: Option<RecvCb>,
    /// Datagrams io_uring received after `recv_stop` and before its cancellation landed (the
    /// multishot receive takes them off the socket meanwhile): kept, in order, for the next
    /// `recv_start`, since dropping them would lose data a stop-then-start must not lose. At
    /// most `HELD_DATAGRAMS_MAX`; a flood past that is dropped as a full socket buffer drops it.
    held: VecDeque<(Box<[u8]>, SocketAddr)>,
    /// Waiting datagrams; the front one is in flight while `sending`.
    queue: VecDeque<Datagram>,
    sending: bool,
    /// Bytes of the datagrams in `queue`.
    queued_bytes: usize,
    /// Finished sends whose callbacks have not run yet (`None`: the socket's `sent_cb`).
    done: VecDeque<(Option<SendCb>, Result<()>)>,
    sent_cb: Option<SentCb>,
    /// Buffers and addresses of sent datagrams, reused so steady sending does not allocate.
    spare: Vec<(Vec<u8>, Box<RawAddr>)>,
    deferred: bool,
}

impl Udp {
    /// A UDP socket bound to `addr` (port 0 picks one).
    pub fn bind(lp: &mut Loop, addr: SocketAddr, opts: UdpBindOptions) -> Result<Udp> {
        let family = if addr.is_ipv4() {
            libc::AF_INET
        } else {
            libc::AF_INET6
        };
        let fd = socket::socket(family, libc::SOCK_DGRAM)?;
        let setup = || -> Result<()> {
            if opts.reuse_addr {
                socket::set_opt_int(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
            }
            if opts.reuse_port {
                socket::set_opt_int(fd, libc::SOL_SOCKET, libc::SO_REUSEPORT, 1)?;
            }
            if family == libc::AF_INET6 {
                socket::set_opt_int(fd, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, i32::from(opts.v6_only))?;
            }
            socket::bind(fd, &RawAddr::from_inet(&addr))
        };
        if let Err(e) = setup() {
            sys::close(fd);
            return Err(e);
        }
        Ok(Udp::insert(lp, fd))
    }

    /// Takes ownership of an open IPv4 or IPv6 datagram socket `fd`, bound or connected or
    /// neither (made non-blocking here). The loop closes it when the handle closes. On a
    /// connected socket, send to the peer's address.
    pub fn adopt(lp: &mut Loop, fd: RawFd) -> Result<Udp> {
        if socket::socket_type(fd)? != libc::SOCK_DGRAM {
            return Err(Error::ENOTSOCK);
        }
        if !matches!(socket::socket_domain(fd)?, libc::AF_INET | libc::AF_INET6) {
            return Err(Error::EAFNOSUPPORT);
        }
        sys::set_nonblocking(fd)?;
        Ok(Udp::insert(lp, fd))
    }

    fn insert(lp: &mut Loop, fd: RawFd) -> Udp {
        let (idx, gen) = lp.udps.insert(UdpEntry {
            common: Common::new(),
            fd,
            receiving: false,
            recv_armed: false,
            recv_cb: None,
            held: VecDeque::new(),
            queue: VecDeque::new(),
            queued_bytes: 0,
            sending: false,
            done: VecDeque::new(),
            sent_cb: None,
            spare: Vec::new(),
            deferred: false,
        });
        Udp { idx, gen }
    }

    fn entry(self, lp: &mut Loop) -> Result<&mut UdpEntry> {
        match lp.udps.get_mut(self.idx, self.gen) {
            Some(e) if !e.common.closing => Ok(e),
            _ => Err(Error::EBADF),
        }
    }

    /// The bound address.
    pub fn local_addr(self, lp: &mut Loop) -> Result<SocketAddr> {
        socket::local_addr(self.entry(lp)?.fd)?
            .inet()
            .ok_or(Error::EAFNOSUPPORT)
    }

    /// Sends one datagram to `addr`. `cb` (or else the socket's [`Udp::on_sent`] callback)
    /// runs once it is sent or has failed, never inside this call. With nothing waiting, a
    /// backend that sends synchronously (epoll) sends from `data` at once; otherwise the
    /// datagram is copied and queued. More than 1024 datagrams waiting gives `ENOBUFS`.
    pub fn send_to(self, lp: &mut Loop, data: &[u8], addr: SocketAddr, cb: Option<SendCb>) -> Result<()> {
        // The entry and the backend are borrowed apart: one lookup serves the inline attempt.
        let Loop { udps, backend, .. } = &mut *lp;
        let e = match udps.get_mut(self.idx, self.gen) {
            Some(e) if !e.common.closing => e,
            _ => return Err(Error::EBADF),
        };
        if e.queue.len() >= MAX_QUEUED {
            return Err(Error::ENOBUFS);
        }
        if e.queue.is_empty() && !e.sending {
            let to = RawAddr::from_inet(&addr);
            match backend.send_now(|| socket::send_to(e.fd, data, &to)) {
                None | Some(Err(Error::EAGAIN)) => {}
                Some(r) => {
                    lp.udp_done(self.idx, self.gen, cb, r.map(drop));
                    return Ok(());
                }
            }
        }
        let e = self.entry(lp)?;
        let (mut buf, mut to) = e
            .spare
            .pop()
            .unwrap_or_else(|| (Vec::new(), Box::new(RawAddr::empty())));
        buf.clear();
        buf.extend_from_slice(data);
        *to = RawAddr::from_inet(&addr);
        e.queued_bytes += data.len();
        e.queue.push_back(Datagram {
            data: buf,
            addr: to,
            cb,
        });
        lp.udp_flush(self.idx, self.gen);
        lp.udp_update_active(self.idx, self.gen);
        Ok(())
    }

    /// Datagrams waiting to be sent.
    pub fn send_queue_count(self, lp: &Loop) -> usize {
        lp.udps.get(self.idx, self.gen).map_or(0, |e| e.queue.len())
    }

    /// Bytes of the datagrams waiting to be sent.
    pub fn send_queue_size(self, lp: &Loop) -> usize {
        lp.udps.get(self.idx, self.gen).map_or(0, |e| e.queued_bytes)
    }

    /// Sets the callback that hears how each datagram sent without a callback of its own
    /// ended (sent, or the error, e.g. `ECONNREFUSED` on a connected socket), once per
    /// datagram, from the loop: flow control and error reports without a callback per send.
    pub fn on_sent(self, lp: &mut Loop, cb: impl FnMut(&mut Loop, Udp, Result<()>) + 'static) -> Result<()> {
        self.entry(lp)?.sent_cb = Some(Box::new(cb));
        Ok(())
    }

    /// Starts delivering datagrams to `cb`.
    pub fn recv_start(
        self,
        lp: &mut Loop,
        cb: impl FnMut(&mut Loop, Udp, Result<(&[u8], SocketAddr)>) + 'static,
    ) -> Result<()> {
        let e = self.entry(lp)?;
        e.recv_cb = Some(Box::new(cb));
        e.receiving = true;
        if !e.held.is_empty() {
            // Not inside recv_start: callbacks never run within the call that asks for them.
            let (idx, gen) = (self.idx, self.gen);
            lp.call_soon(move |lp| lp.udp_deliver_held(idx, gen));
        }
        lp.udp_arm_recv(self.idx, self.gen);
        lp.udp_update_active(self.idx, self.gen);
        Ok(())
    }

    /// Stops delivering datagrams.
    pub fn recv_stop(self, lp: &mut Loop) -> Result<()> {
        let e = self.entry(lp)?;
        e.receiving = false;
        if e.recv_armed {
            let fd = e.fd;
            lp.backend.cancel(
                token(Kind::Udp, OP_RECV, self.idx, self.gen),
                fd,
                OpKind::RecvFrom,
            );
        }
        lp.udp_update_active(self.idx, self.gen);
        Ok(())
    }

    /// SO_BROADCAST.
    pub fn set_broadcast(self, lp: &mut Loop, on: bool) -> Result<()> {
        socket::set_opt_int(
            self.entry(lp)?.fd,
            libc::SOL_SOCKET,
            libc::SO_BROADCAST,
            i32::from(on),
        )
    }

    /// The unicast TTL / hop limit.
    pub fn set_ttl(self, lp: &mut Loop, ttl: u32) -> Result<()> {
        let fd = self.entry(lp)?.fd;
        match socket::socket_domain(fd)? {
            libc::AF_INET6 => {
                socket::set_opt_int(fd, libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS, ttl as i32)
            }
            _ => socket::set_opt_int(fd, libc::IPPROTO_IP, libc::IP_TTL, ttl as i32),
        }
    }

    /// Whether multicast datagrams sent by this socket loop back to local listeners.
    pub fn set_multicast_loop(self, lp: &mut Loop, on: bool) -> Result<()> {
        let fd = self.entry(lp)?.fd;
        match socket::socket_domain(fd)? {
            libc::AF_INET6 => {
                socket::set_opt_int(fd, libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_LOOP, i32::from(on))
            }
            _ => socket::set_opt_int(fd, libc::IPPROTO_IP, libc::IP_MULTICAST_LOOP, i32::from(on)),
        }
    }

    /// The multicast TTL / hop limit.
    pub fn set_multicast_ttl(self, lp: &mut Loop, ttl: u32) -> Result<()> {
        let fd = self.entry(lp)?.fd;
        match socket::socket_domain(fd)? {
            libc::AF_INET6 => {
                socket::set_opt_int(fd, libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_HOPS, ttl as i32)
            }
            _ => socket::set_opt_int(fd, libc::IPPROTO_IP, libc::IP_MULTICAST_TTL, ttl as i32),
        }
    }

    /// Joins (or with `join == false` leaves) a multicast group on an interface (IPv4: the
    /// interface address, unspecified for any; IPv6: `interface_index`, 0 for any).
    pub fn set_membership(
        self,
        lp: &mut Loop,
        group: IpAddr,
        interface: Ipv4Addr,
        interface_index: u32,
        join: bool,
    ) -> Result<()> {
        let fd = self.entry(lp)?.fd;
        match group {
            IpAddr::V4(g) => {
                let mreq = libc::ip_mreq {
                    imr_multiaddr: libc::in_addr {
                        s_addr: u32::from_ne_bytes(g.octets()),
                    },
                    imr_interface: libc::in_addr {
                        s_addr: u32::from_ne_bytes(interface.octets()),
                    },
                };
                let opt = if join {
                    libc::IP_ADD_MEMBERSHIP
                } else {
                    libc::IP_DROP_MEMBERSHIP
                };
                socket::set_opt(fd, libc::IPPROTO_IP, opt, &mreq)
            }
            IpAddr::V6(g) => {
                let mreq = libc::ipv6_mreq {
                    ipv6mr_multiaddr: libc::in6_addr { s6_addr: g.octets() },
                    ipv6mr_interface: interface_index,
                };
                let opt = if join {
                    libc::IPV6_ADD_MEMBERSHIP
                } else {
                    libc::IPV6_DROP_MEMBERSHIP
                };
                socket::set_opt(fd, libc::IPPROTO_IPV6, opt, &mreq)
            }
        }
    }
}

impl Loop {
    fn udp_update_active(&mut self, idx: u32, gen: u32) {
        if let Some(e) = self.udps.get_mut(idx, gen) {
            if !e.common.closing {
                let active = e.receiving || !e.queue.is_empty() || !e.done.is_empty();
                e.common.set_active(&mut self.alive_refs, active);
            }
        }
    }

    fn udp_arm_recv(&mut self, idx: u32, gen: u32) {
        let Some(e) = self.udps.get_mut(idx, gen) else {
            return;
        };
        if e.recv_armed || !e.receiving || e.common.closing {
            return;
        }
        match self
            .backend
            .submit(token(Kind::Udp, OP_RECV, idx, gen), Op::RecvFrom { fd: e.fd })
        {
            None => {
                e.recv_armed = true;
                e.common.inflight += 1;
            }
            Some(res) => {
                let err = Error::from_errno(-res);
                e.receiving = false;
                self.call_soon(move |lp| {
                    let u = Udp { idx, gen };
                    if let Some(mut cb) = lp.udps.get_mut(idx, gen).and_then(|e| e.recv_cb.take()) {
                        cb(lp, u, Err(err));
                    }
                });
            }
        }
    }

    fn udp_flush(&mut self, idx: u32, gen: u32) {
        loop {
            let Some(e) = self.udps.get_mut(idx, gen) else {
                return;
            };
            if e.sending || e.common.closing {
                return;
            }
            let Some(d) = e.queue.front() else { return };
            // The datagram stays at the queue front, unmoved, until its completion.
            let op = Op::SendTo {
                fd: e.fd,
                ptr: d.data.as_ptr(),
                len: d.data.len(),
                addr: &*d.addr,
            };
            match self.backend.submit(token(Kind::Udp, OP_SEND, idx, gen), op) {
                None => {
                    e.sending = true;
                    e.common.inflight += 1;
                    return;
                }
                Some(res) => self.udp_sent(idx, gen, res),
            }
        }
    }

    fn udp_sent(&mut self, idx: u32, gen: u32, res: i32) {
        let Some(e) = self.udps.get_mut(idx, gen) else {
            return;
        };
        e.sending = false;
        let Some(d) = e.queue.pop_front() else { return };
        e.queued_bytes -= d.data.len();
        e.spare.push((d.data, d.addr));
        self.udp_done(idx, gen, d.cb, result_of(res));
    }

    /// Records how a send ended for its callback, or the socket's `sent_cb`, to run from the
    /// deferred queue.
    fn udp_done(&mut self, idx: u32, gen: u32, cb: Option<SendCb>, result: Result<()>) {
        let Some(e) = self.udps.get_mut(idx, gen) else {
            return;
        };
        if cb.is_none() && e.sent_cb.is_none() {
            return;
        }
        e.done.push_back((cb, result));
        if !e.deferred {
            e.deferred = true;
            self.deferred.push_back(Deferred::UdpSends(idx, gen));
        }
        self.udp_update_active(idx, gen);
    }

    pub(crate) fn udp_finish_sends(&mut self, idx: u32, gen: u32) {
        let u = Udp { idx, gen };
        if let Some(e) = self.udps.get_mut(idx, gen) {
            e.deferred = false;
        }
        loop {
            let Some(e) = self.udps.get_mut(idx, gen) else {
                return;
            };
            let Some((cb, r)) = e.done.pop_front() else {
                break;
            };
            match cb {
                Some(cb) => cb(self, u, r),
                None => {
                    let Some(mut shared) = e.sent_cb.take() else {
                        continue;
                    };
                    shared(self, u, r);
                    if let Some(e) = self.udps.get_mut(idx, gen) {
                        if e.sent_cb.is_none() && !e.common.closing {
                            e.sent_cb = Some(shared);
                        }
                    }
                }
            }
        }
        self.udp_update_active(idx, gen);
    }

    pub(crate) fn udp_completion(&mut self, idx: u32, op: u8, c: &Completion) {
        let Some((gen, e)) = self.udps.get_by_index(idx) else {
            return;
        };
        if !gen_matches(gen, c.token) {
            return;
        }
        if !c.more {
            if op == OP_RECV {
                e.recv_armed = false;
            }
            if Loop::op_finished(&mut e.common) {
                if op == OP_SEND {
                    self.udp_sent(idx, gen, c.res);
                }
                self.maybe_finish_close(RawHandle {
                    kind: Kind::Udp,
                    idx,
                    gen,
                });
                return;
            }
        }
        if e.common.closing {
            return;
        }
        match op {
            OP_SEND => {
                self.udp_sent(idx, gen, c.res);
                self.udp_flush(idx, gen);
            }
            OP_RECV => {
                if c.res >= 0 && (!e.receiving || !e.held.is_empty()) {
                    // Stopped (the cancellation has not landed yet), or older datagrams are
                    // still held: this one waits behind them.
                    // SAFETY: a successful receive's completion, not yet recycled.
                    let datagram = unsafe { received(c) };
                    if let (Ok((data, from)), true) = (datagram, e.held.len() < HELD_DATAGRAMS_MAX) {
                        e.held.push_back((data.into(), from));
                    }
                    if e.receiving {
                        self.udp_deliver_held(idx, gen);
                    }
                    self.udp_arm_recv(idx, gen);
                    self.udp_update_active(idx, gen);
                    return;
                }
                // ENOBUFS: the backend ran out of receive buffers; the datagram waits in the
                // socket and the receive is armed again below.
                if c.res != -libc::ECANCELED && c.res != -libc::ENOBUFS && e.receiving {
                    let result = if c.res < 0 {
                        Err(Error::from_errno(-c.res))
                    } else {
                        // SAFETY: a successful receive's completion, not yet recycled.
                        unsafe { received(c) }
                    };
                    self.udp_call_recv(idx, gen, result);
                }
                self.udp_arm_recv(idx, gen);
            }
            _ => {}
        }
        self.udp_update_active(idx, gen);
    }

    /// Hands the held datagrams to the receive callback, oldest first, while receiving lasts.
    fn udp_deliver_held(&mut self, idx: u32, gen: u32) {
        loop {
            let Some(e) = self.udps.get_mut(idx, gen) else {
                return;
            };
            if !e.receiving || e.common.closing {
                return;
            }
            let Some((data, from)) = e.held.pop_front() else {
                return;
            };
            self.udp_call_recv(idx, gen, Ok((&data, from)));
        }
    }

    /// Calls the receive callback with `result`; it is put back afterwards unless the call
    /// installed another (a new `recv_start`) or closed the socket.
    fn udp_call_recv(&mut self, idx: u32, gen: u32, result: Result<(&[u8], SocketAddr)>) {
        let Some(mut cb) = self.udps.get_mut(idx, gen).and_then(|e| e.recv_cb.take()) else {
            return;
        };
        cb(self, Udp { idx, gen }, result);
        if let Some(e) = self.udps.get_mut(idx, gen) {
            if e.recv_cb.is_none() && !e.common.closing {
                e.recv_cb = Some(cb);
            }
        }
    }

    pub(crate) fn udp_cancel_all(&mut self, idx: u32, gen: u32) {
        let Some(e) = self.udps.get_mut(idx, gen) else {
            return;
        };
        let fd = e.fd;
        e.receiving = false;
        e.recv_cb = None;
        if e.recv_armed {
            self.backend
                .cancel(token(Kind::Udp, OP_RECV, idx, gen), fd, OpKind::RecvFrom);
        }
        if e.sending {
            self.backend
                .cancel(token(Kind::Udp, OP_SEND, idx, gen), fd, OpKind::SendTo);
        }
    }

    pub(crate) fn udp_release(&mut self, idx: u32, gen: u32) -> Option<CloseCb> {
        let mut e = self.udps.remove(idx, gen)?;
        self.backend.release_fd(e.fd, true);
        self.backend.close_fd(e.fd);
        let u = Udp { idx, gen };
        for (cb, r) in e.done.drain(..) {
            match cb {
                Some(cb) => cb(self, u, r),
                None => {
                    if let Some(shared) = e.sent_cb.as_mut() {
                        shared(self, u, r);
                    }
                }
            }
        }
        for d in e.queue.drain(..) {
            if let Some(cb) = d.cb {
                cb(self, u, Err(Error::ECANCELED));
            }
        }
        e.common.take_close_cb()
    }
}
