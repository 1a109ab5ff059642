//! Streams: TCP and Unix sockets (accept, connect, read, write, shutdown, close), and pipes,
//! FIFOs and terminals with the same reading and writing ([`pipe`]).
//!
//! Reads arrive as slices of a loop-owned buffer, valid during the callback: no allocation and
//! no allocation callback per read. What a write cannot send at once is copied into a per-stream
//! queue of reused vectors: one is being sent while another collects new writes, so a steady
//! stream of writes allocates nothing once the vectors have grown. A large buffer can instead be
//! lent to the queue ([`Stream::write_kept`]) and sent from where it is. On epoll the send is
//! tried at once and usually finishes inside `write`; only `EAGAIN` arms writability.

mod accept;
pub mod pipe;
mod read;
pub mod tcp;
pub mod unix;
mod write;

use crate::backend::{Backend, Completion, Op, OpKind};
use crate::error::{Error, Result};
use crate::event_loop::{gen_matches, token, Deferred, Loop};
use crate::handle::{handle_type, CloseCb, Common, Kind};
use crate::slab::Slab;
use crate::sys::{self, socket::RawAddr};
use read::Reader;
use std::collections::VecDeque;
use std::os::fd::RawFd;
pub use write::KeptBytes;
pub(crate) use write::Lendable;
use write::WriteState;

handle_type!(
    /// A stream socket: a TCP or Unix listener or connection (libuv's `uv_stream_t`).
    /// Made by [`Stream::tcp_bind`], [`Stream::tcp_connect`], [`Stream::unix_bind`],
    /// [`Stream::unix_connect`], [`Stream::adopt`], or by a listener's accept callback.
    Stream,
    Kind::Stream
);

/// What a read callback receives.
#[derive(Debug)]
pub enum Read<'a> {
    /// Bytes received, lent for the duration of the callback.
    Data(&'a [u8]),
    /// The peer shut down its write side; no more data will come.
    Eof,
    /// The connection failed (e.g. `ECONNRESET`); reading has stopped.
    Error(Error),
}

/// Receives data, EOF or an error.
pub type ReadCb = Box<dyn FnMut(&mut Loop, Stream, Read<'_>)>;
/// A read callback that captures nothing ([`Stream::read_start_fn`]): a plain function and a
/// word of data it gets back, so that starting to read allocates nothing (the C ABI's way).
pub type ReadFn = fn(&mut Loop, Stream, Read<'_>, usize);

/// Receives each accepted connection (or an accept error) of a listener.
pub type AcceptCb = Box<dyn FnMut(&mut Loop, Stream, Result<Stream>)>;
/// Runs once when a write, connect or shutdown has finished or failed.
pub type DoneCb = Box<dyn FnOnce(&mut Loop, Stream, Result<()>)>;
/// Runs when a write queue that went above the high-water mark has emptied.
pub type DrainCb = Box<dyn FnMut(&mut Loop, Stream)>;

pub(crate) const OP_ACCEPT: u8 = 1;
pub(crate) const OP_RECV: u8 = 2;
pub(crate) const OP_SEND: u8 = 3;
pub(crate) const OP_CONNECT: u8 = 4;
pub(crate) const OP_SHUTDOWN: u8 = 5;
/// The readiness poll that stands for reading on the write end of a pipe: it reports the read
/// end's closing (POLLERR), the only event that end has to read.
pub(crate) const OP_HANGUP: u8 = 6;

const DEFAULT_HIGH_WATER: usize = 64 * 1024;

mod flag {
    pub const READING: u16 = 1;
    pub const LISTENING: u16 = 2;
    pub const RECV_ARMED: u16 = 4;
    pub const CONNECTING: u16 = 8;
    pub const EOF: u16 = 16;
    pub const ADOPTED: u16 = 32;
    pub const SHUT_REQUESTED: u16 = 64;
    pub const SHUT_SUBMITTED: u16 = 128;
    pub const DEFERRED: u16 = 256;
    /// The write state may have bytes queued, a send in flight, or an error: `write` must take
    /// its full path. Set whenever any of these becomes true, cleared when the queue empties,
    /// so the common write never has to look at the write state.
    pub const WRITE_BUSY: u16 = 512;
    /// Received bytes wait in the stash (reads arrived while reading was stopped).
    pub const STASHED: u16 = 1024;
    /// Not a socket (a pipe, FIFO or terminal): `read`/`write` instead of `recv`/`send`.
    pub const PIPE: u16 = 2048;
    /// The write end of a pipe: reading watches for its reader's departure.
    pub const WRITE_ONLY: u16 = 4096;
    /// A write cannot go straight to the kernel from the caller's memory: earlier bytes wait,
    /// a connect is pending, or the stream cannot take writes.
    pub const NOT_IDLE: u16 = WRITE_BUSY | CONNECTING | LISTENING | SHUT_REQUESTED;
}

enum Incoming {
    None,
    Read(Reader),
    Accept(AcceptCb),
}

pub(crate) struct StreamEntry {
    pub(crate) common: Common,
    pub(crate) fd: RawFd,
    pub(crate) family: u16,
    flags: u16,
    incoming: Incoming,
    /// Allocated on first write or connect: an idle connection pays nothing for it.
    w: Option<Box<WriteState>>,
}

impl StreamEntry {
    pub(crate) fn new(fd: RawFd, family: i32) -> StreamEntry {
        StreamEntry {
            common: Common::new(),
            fd,
            family: family as u16,
            flags: 0,
            incoming: Incoming::None,
            w: None,
        }
    }

    fn has(&self, f: u16) -> bool {
        self.flags & f != 0
    }

    /// The operation that brings this stream's incoming events (connections, data, or a pipe
    /// reader's departure), with its token code; `None` when it wants none.
    fn incoming_op(&self) -> Option<(Op, u8)> {
        (self.has(flag::LISTENING) || self.has(flag::READING)).then(|| self.incoming())
    }

    /// The token code and kind of the armed incoming operation, to cancel it.
    fn incoming_kind(&self) -> (u8, OpKind) {
        let (op, code) = self.incoming();
        (code, op.kind())
    }

    /// Which incoming operation this kind of stream uses: one decision for arming and
    /// cancelling.
    fn incoming(&self) -> (Op, u8) {
        let fd = self.fd;
        if self.has(flag::LISTENING) {
            (Op::Accept { fd }, OP_ACCEPT)
        } else if self.has(flag::WRITE_ONLY) {
            let events = crate::backend::ready::READABLE;
            (Op::Poll { fd, events }, OP_HANGUP)
        } else if self.has(flag::PIPE) {
            (Op::Read { fd }, OP_RECV)
        } else {
            (Op::Recv { fd }, OP_RECV)
        }
    }

    /// Sends from the caller's memory now: `send` on a socket, `write` on a pipe.
    #[inline]
    fn send_now(&self, data: &[u8]) -> Result<usize> {
        sys::stream_send(self.fd, data, self.has(flag::PIPE))
    }

    /// After a failed send nothing more goes out: a requested shutdown not yet handed to the
    /// kernel finishes with the send's error instead of waiting for a queue that will never
    /// drain. Returns whether its callback is now owed.
    fn fail_waiting_shutdown(&mut self) -> bool {
        if !self.has(flag::SHUT_REQUESTED) || self.has(flag::SHUT_SUBMITTED) {
            return false;
        }
        let Some(w) = self.w.as_mut() else { return false };
        let Some(err) = w.error else { return false };
        w.shutdown_result = Some(Err(err));
        self.flags |= flag::SHUT_SUBMITTED;
        true
    }

    /// Why a write cannot be accepted now, if it cannot: a listener, a shut-down write side, or
    /// an earlier write error (which is sticky).
    fn check_writable(&self) -> Result<()> {
        if self.has(flag::LISTENING) {
            return Err(Error::ENOTCONN);
        }
        if self.has(flag::SHUT_REQUESTED) {
            return Err(Error::EPIPE);
        }
        match self.w.as_ref().and_then(|w| w.error) {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }

    /// Puts back a callback taken out to be called, unless the call installed another (a new
    /// `read_start`, say), which then stays.
    #[inline]
    fn put_back_incoming(&mut self, taken: Incoming) {
        if matches!(self.incoming, Incoming::None) {
            // `None` owns nothing: skipping its drop saves a call to the enum's drop glue on
            // every read.
            std::mem::forget(std::mem::replace(&mut self.incoming, taken));
        }
    }

    /// Recomputes [`flag::WRITE_BUSY`] after the write state changed.
    fn sync_write_busy(&mut self) {
        let busy = self
            .w
            .as_ref()
            .is_some_and(|w| w.queue_size() > 0 || w.sending || w.error.is_some());
        if busy {
            self.flags |= flag::WRITE_BUSY;
        } else {
            self.flags &= !flag::WRITE_BUSY;
        }
    }

    fn wants_active(&self) -> bool {
        (self.has(flag::READING) && !self.has(flag::EOF))
            || self.has(flag::LISTENING)
            || self.has(flag::CONNECTING)
            || self.w.as_ref().is_some_and(|w| {
                w.queue_size() > 0 || !w.reqs.is_empty() || w.shutdown_cb.is_some() || w.connect_cb.is_some()
            })
    }
}

impl Stream {
    /// Takes ownership of a connected or listening stream socket `fd` (made non-blocking here).
    /// The loop closes it when the handle closes.
    pub fn adopt(lp: &mut Loop, fd: RawFd) -> Result<Stream> {
        if sys::socket::socket_type(fd)? != libc::SOCK_STREAM {
            return Err(Error::ENOTSOCK);
        }
        let family = sys::socket::socket_domain(fd)?;
        sys::set_nonblocking(fd)?;
        let s = lp.stream_insert(fd, family);
        lp.streams.get_mut(s.idx, s.gen).expect("just inserted").flags |= flag::ADOPTED;
        Ok(s)
    }

    fn entry(self, lp: &mut Loop) -> Result<&mut StreamEntry> {
        self.open_entry(&mut lp.streams)
    }

    /// The stream's entry unless it is closed or closing; for callers that borrow the loop's
    /// fields apart.
    fn open_entry(self, streams: &mut Slab<StreamEntry>) -> Result<&mut StreamEntry> {
        match streams.get_mut(self.idx, self.gen) {
            Some(e) if !e.common.closing => Ok(e),
            _ => Err(Error::EBADF),
        }
    }

    /// The socket's fd, for options this API does not cover. Do not close it or read from it.
    pub fn fd(self, lp: &Loop) -> Result<RawFd> {
        lp.streams
            .get(self.idx, self.gen)
            .map(|e| e.fd)
            .ok_or(Error::EBADF)
    }

    /// Shuts down the write side once queued writes are sent (the peer reads EOF). `cb` runs
    /// when done. Writing afterwards fails with `EPIPE`.
    pub fn shutdown(self, lp: &mut Loop, cb: Option<DoneCb>) -> Result<()> {
        let e = self.entry(lp)?;
        if e.has(flag::LISTENING) {
            return Err(Error::ENOTCONN);
        }
        if e.has(flag::SHUT_REQUESTED) {
            return Err(Error::EALREADY);
        }
        e.flags |= flag::SHUT_REQUESTED;
        let w = e.w.get_or_insert_with(WriteState::new);
        w.shutdown_cb = Some(cb.unwrap_or_else(|| Box::new(|_, _, _| {})));
        lp.stream_flush(self.idx, self.gen);
        lp.stream_update_active(self.idx, self.gen);
        Ok(())
    }
}

impl Loop {
    pub(crate) fn stream_insert(&mut self, fd: RawFd, family: i32) -> Stream {
        let (idx, gen) = self.streams.insert(StreamEntry::new(fd, family));
        Stream { idx, gen }
    }

    pub(crate) fn stream_update_active(&mut self, idx: u32, gen: u32) {
        if let Some(e) = self.streams.get_mut(idx, gen) {
            if !e.common.closing {
                let active = e.wants_active();
                e.common.set_active(&mut self.alive_refs, active);
            }
        }
    }

    /// Arms the multishot accept or receive the stream's state asks for.
    fn stream_arm_incoming(&mut self, idx: u32, gen: u32) {
        let Some(e) = self.streams.get_mut(idx, gen) else {
            return;
        };
        if e.common.closing || e.has(flag::RECV_ARMED) || e.has(flag::EOF) {
            return;
        }
        let Some((op, code)) = e.incoming_op() else {
            return;
        };
        match self.backend.submit(token(Kind::Stream, code, idx, gen), op) {
            None => {
                e.flags |= flag::RECV_ARMED;
                e.common.inflight += 1;
            }
            Some(res) => {
                // Arming failed: report it as a read/accept error on the next deferred pass.
                let err = Error::from_errno(-res);
                self.call_soon(move |lp| lp.stream_incoming_error(idx, gen, err));
            }
        }
    }

    fn stream_incoming_error(&mut self, idx: u32, gen: u32, err: Error) {
        let s = Stream { idx, gen };
        let Some(e) = self.streams.get_mut(idx, gen) else {
            return;
        };
        if e.common.closing {
            return;
        }
        match std::mem::replace(&mut e.incoming, Incoming::None) {
            Incoming::Read(mut cb) => {
                e.flags &= !flag::READING;
                cb.call(self, s, Read::Error(err));
                self.stream_restore_incoming(idx, gen, Incoming::Read(cb));
            }
            Incoming::Accept(mut cb) => {
                cb(self, s, Err(err));
                self.stream_restore_incoming(idx, gen, Incoming::Accept(cb));
            }
            Incoming::None => {}
        }
        self.stream_update_active(idx, gen);
    }

    fn stream_restore_incoming(&mut self, idx: u32, gen: u32, cb: Incoming) {
        if let Some(e) = self.streams.get_mut(idx, gen) {
            if !e.common.closing {
                e.put_back_incoming(cb);
            }
        }
    }

    pub(crate) fn stream_completion(&mut self, idx: u32, op: u8, c: &Completion) {
        if op == OP_RECV && c.more {
            // Data from a receive that stays armed (every read, in steady state): nothing of the
            // operation's life cycle to settle.
            return self.stream_received(idx, c);
        }
        let Some((gen, e)) = self.streams.get_by_index(idx) else {
            return self.stream_refuse_accepted(op, c);
        };
        if !gen_matches(gen, c.token) {
            return self.stream_refuse_accepted(op, c);
        }
        let handle = crate::handle::RawHandle {
            kind: Kind::Stream,
            idx,
            gen,
        };
        if op == OP_SEND && e.common.closing && c.res > 0 {
            // A send that went out while the stream closed still counts: the writes it
            // finished report success, as libuv's completed writes do.
            if let Some(w) = e.w.as_mut() {
                w.written_total += c.res as u64;
            }
        }
        if !c.more {
            if Loop::op_finished(&mut e.common) {
                self.maybe_finish_close(handle);
                return self.stream_refuse_accepted(op, c);
            }
            if op == OP_RECV || op == OP_ACCEPT || op == OP_HANGUP {
                e.flags &= !flag::RECV_ARMED;
            }
        }
        if e.common.closing {
            return self.stream_refuse_accepted(op, c);
        }
        match op {
            // Reads keep their state unless they end, which stream_received handles.
            OP_RECV => return self.stream_received(idx, c),
            OP_HANGUP => return self.stream_reader_gone(idx, gen, c),
            OP_ACCEPT => self.stream_accepted(idx, gen, c),

            OP_SEND => return self.stream_send_finished(idx, gen, c.res),
            OP_CONNECT => {
                if let Some(e) = self.streams.get_mut(idx, gen) {
                    e.flags &= !flag::CONNECTING;
                    let w = e.w.as_mut().expect("connect has write state");
                    let result = result_of(c.res);
                    if let Err(err) = result {
                        w.error = Some(err);
                    }
                    w.connect_result = Some(result);
                    e.sync_write_busy();
                    self.stream_defer(idx, gen);
                    self.stream_arm_incoming(idx, gen);
                    self.stream_flush(idx, gen);
                }
            }
            OP_SHUTDOWN => {
                if let Some(w) = self.streams.get_mut(idx, gen).and_then(|e| e.w.as_mut()) {
                    w.shutdown_result = Some(result_of(c.res));
                    self.stream_defer(idx, gen);
                }
            }
            _ => {}
        }
        self.stream_update_active(idx, gen);
    }

    /// Starts a connect on a fresh socket entry.
    pub(crate) fn stream_connect(&mut self, s: Stream, addr: RawAddr, cb: DoneCb) {
        let Some(e) = self.streams.get_mut(s.idx, s.gen) else {
            return;
        };
        e.flags |= flag::CONNECTING;
        let fd = e.fd;
        let w = e.w.get_or_insert_with(WriteState::new);
        w.connect_addr = addr;
        w.connect_cb = Some(cb);
        // The address lives in the boxed write state, stable until the completion.
        let op = Op::Connect {
            fd,
            addr: &w.connect_addr,
        };
        match self
            .backend
            .submit(token(Kind::Stream, OP_CONNECT, s.idx, s.gen), op)
        {
            Some(res) => {
                e.flags &= !flag::CONNECTING;
                let w = e.w.as_mut().expect("just set");
                let result = result_of(res);
                if let Err(err) = result {
                    w.error = Some(err);
                }
                w.connect_result = Some(result);
                e.sync_write_busy();
                self.stream_defer(s.idx, s.gen);
                self.stream_arm_incoming(s.idx, s.gen);
            }
            None => e.common.inflight += 1,
        }
        self.stream_update_active(s.idx, s.gen);
    }

    pub(crate) fn stream_cancel_all(&mut self, idx: u32, gen: u32) {
        let Some(e) = self.streams.get_mut(idx, gen) else {
            return;
        };
        let fd = e.fd;
        if e.has(flag::RECV_ARMED) {
            let (op, kind) = e.incoming_kind();
            self.backend.cancel(token(Kind::Stream, op, idx, gen), fd, kind);
        }
        if let Some(w) = e.w.as_ref() {
            if w.sending {
                self.backend
                    .cancel(token(Kind::Stream, OP_SEND, idx, gen), fd, OpKind::Send);
            }
            if e.has(flag::CONNECTING) {
                self.backend
                    .cancel(token(Kind::Stream, OP_CONNECT, idx, gen), fd, OpKind::Connect);
            }
            if e.has(flag::SHUT_SUBMITTED) && w.shutdown_result.is_none() {
                self.backend
                    .cancel(token(Kind::Stream, OP_SHUTDOWN, idx, gen), fd, OpKind::Shutdown);
            }
        }
        e.incoming = Incoming::None;
    }

    /// Frees a closed stream: closes its fd, then fails what was still queued with
    /// `ECANCELED` (before the close callback, as libuv does).
    pub(crate) fn stream_release(&mut self, idx: u32, gen: u32) -> Option<CloseCb> {
        let mut e = self.streams.remove(idx, gen)?;
        if e.fd >= 0 {
            self.backend.release_fd(e.fd, !e.has(flag::ADOPTED));
            self.backend.close_fd(e.fd);
        }
        let s = Stream { idx, gen };
        if let Some(mut w) = e.w.take() {
            // Every send has finished: receive buffers held for them go back.
            w.drop_queue(&mut self.backend);
            if let Some(cb) = w.connect_cb.take() {
                cb(self, s, Err(Error::ECANCELED));
            }
            while let Some((end, cb)) = w.reqs.pop_front() {
                if let Some(cb) = cb {
                    let r = if end <= w.written_total && w.error.is_none() {
                        Ok(())
                    } else {
                        Err(Error::ECANCELED)
                    };
                    cb(self, s, r);
                }
            }
            if let Some(cb) = w.shutdown_cb.take() {
                cb(self, s, Err(Error::ECANCELED));
            }
        }
        e.common.take_close_cb()
    }
}

pub(crate) fn result_of(res: i32) -> Result<()> {
    if res < 0 {
        Err(Error::from_errno(-res))
    } else {
        Ok(())
    }
}
