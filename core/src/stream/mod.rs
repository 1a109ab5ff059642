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
pub mod tcp;
pub mod unix;

use crate::backend::{Backend, Completion, Op, OpKind};
use crate::error::{Error, Result};
use crate::event_loop::{gen_matches, token, Deferred, Loop};
use crate::handle::{handle_type, CloseCb, Common, Kind};
use crate::slab::Slab;
use crate::sys::{self, socket::RawAddr};
use std::collections::VecDeque;
use std::os::fd::RawFd;

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

/// The read callback a stream holds.
enum Reader {
    Boxed(ReadCb),
    Plain(ReadFn, usize),
}

impl Reader {
    #[inline(always)]
    fn call(&mut self, lp: &mut Loop, s: Stream, read: Read<'_>) {
        match self {
            Reader::Boxed(cb) => cb(lp, s, read),
            Reader::Plain(f, data) => f(lp, s, read, *data),
        }
    }
}
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

/// What `write_queued` queues: copies of the caller's buffers, or a lent buffer.
enum Queued<'a> {
    Copy(&'a [&'a [u8]]),
    Kept(Box<dyn KeptBytes>),
    /// Bytes of the receive buffer being dispatched, held for this write.
    Received(Chunk),
}

/// What `write`'s first step sent before anything was queued.
enum SentNow {
    Bytes(usize),
    Failed(Error),
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

/// Memory a write lends to a stream instead of having it copied ([`Stream::write_kept`]): the
/// stream sends from it and drops the value once every byte has gone (or the write failed or
/// the stream closed).
///
/// # Safety
/// `bytes` must return the same memory on every call, unchanged, for as long as the value
/// lives, even after the value itself has moved (the kernel may be reading it).
pub unsafe trait KeptBytes {
    /// The bytes to send.
    fn bytes(&self) -> &[u8];
}

// SAFETY: a vector's heap buffer stays where it is when the vector moves, and nothing else can
// change it while the stream owns it.
unsafe impl KeptBytes for Vec<u8> {
    fn bytes(&self) -> &[u8] {
        self
    }
}

// SAFETY: as for Vec.
unsafe impl KeptBytes for Box<[u8]> {
    fn bytes(&self) -> &[u8] {
        self
    }
}

/// Received bytes that a read callback is being given (see `Loop::lendable`).
#[derive(Clone, Copy)]
pub(crate) struct Lendable {
    ptr: *const u8,
    len: usize,
    buf_id: u32,
}

impl Lendable {
    pub(crate) const NONE: Lendable = Lendable {
        ptr: std::ptr::null(),
        len: 0,
        buf_id: crate::backend::NO_BUFFER,
    };

    /// Whether `data` lies within these bytes.
    fn holds(&self, data: &[u8]) -> bool {
        let (start, end) = (self.ptr as usize, self.ptr as usize + self.len);
        let at = data.as_ptr() as usize;
        !self.ptr.is_null() && at >= start && at + data.len() <= end
    }
}

/// From this size, a write of bytes a read callback was given sends them from the backend's
/// receive buffer (held until sent) instead of copying them; smaller writes are copied, so
/// that consecutive small replies still leave in one send.
const LEND_READ_MIN: usize = 4096;

/// A run of queued bytes: copied into one of the stream's reused vectors, or lent.
enum Chunk {
    Copied(Vec<u8>),
    /// Lent memory, and how much of it went out before it was queued.
    Kept(Box<dyn KeptBytes>, usize),
    /// Part of a receive buffer the backend holds for this send (`Backend::lend_read_buffer`).
    ReadBuffer {
        ptr: *const u8,
        len: usize,
        buf_id: u32,
    },
}

impl Chunk {
    fn bytes(&self) -> &[u8] {
        match self {
            Chunk::Copied(v) => v,
            Chunk::Kept(b, _) => b.bytes(),
            // SAFETY: the backend does not recycle the buffer until this chunk gives it back
            // (`WriteState::finish_chunk`), so its bytes stay as they were received.
            Chunk::ReadBuffer { ptr, len, .. } => unsafe { std::slice::from_raw_parts(*ptr, *len) },
        }
    }
}

struct WriteState {
    /// Bytes handed to the backend (from `sent` on); stable while a send is in flight.
    inflight: Chunk,
    sent: usize,
    sending: bool,
    /// Bytes written while a send was in flight, in order: small writes extend the last copied
    /// chunk, a lent buffer is a chunk of its own.
    pending: VecDeque<Chunk>,
    /// A copy vector that was sent, kept (cleared) for the next one: with `inflight`'s, the two
    /// vectors a steady stream of writes takes turns with.
    spare: Vec<u8>,
    /// Write callbacks and the stream offset at which each write is complete.
    reqs: VecDeque<(u64, Option<DoneCb>)>,
    queued_total: u64,
    written_total: u64,
    error: Option<Error>,
    high_water: usize,
    need_drain: bool,
    drain_cb: Option<DrainCb>,
    connect_addr: RawAddr,
    connect_cb: Option<DoneCb>,
    connect_result: Option<Result<()>>,
    shutdown_cb: Option<DoneCb>,
    shutdown_result: Option<Result<()>>,
    /// Received while reading was stopped; delivered first when reading restarts.
    stash: Vec<u8>,
    /// EOF (0) or an error that arrived behind stashed data.
    stash_end: Option<i32>,
}

impl WriteState {
    fn new() -> Box<WriteState> {
        Box::new(WriteState {
            inflight: Chunk::Copied(Vec::new()),
            sent: 0,
            sending: false,
            pending: VecDeque::new(),
            spare: Vec::new(),
            reqs: VecDeque::new(),
            queued_total: 0,
            written_total: 0,
            error: None,
            high_water: DEFAULT_HIGH_WATER,
            need_drain: false,
            drain_cb: None,
            connect_addr: RawAddr::empty(),
            connect_cb: None,
            connect_result: None,
            shutdown_cb: None,
            shutdown_result: None,
            stash: Vec::new(),
            stash_end: None,
        })
    }

    fn queue_size(&self) -> usize {
        (self.queued_total - self.written_total) as usize
    }

    /// Queues a copy of `bytes` behind everything else.
    fn queue_copy(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if let Some(Chunk::Copied(v)) = self.pending.back_mut() {
            v.extend_from_slice(bytes);
            return;
        }
        let mut v = std::mem::take(&mut self.spare);
        v.extend_from_slice(bytes);
        self.pending.push_back(Chunk::Copied(v));
    }

    /// Lets go of a chunk that was sent or dropped: its vector is kept for reuse, a lent buffer
    /// is dropped, a receive buffer goes back to the backend.
    fn finish_chunk(&mut self, done: Chunk, backend: &mut Backend) {
        match done {
            Chunk::Copied(mut v) => {
                if v.capacity() > self.spare.capacity() {
                    v.clear();
                    self.spare = v;
                }
            }
            Chunk::Kept(..) => {}
            Chunk::ReadBuffer { buf_id, .. } => backend.return_read_buffer(buf_id),
        }
    }

    /// The in-flight chunk has gone: let go of it and make the next queued chunk the one in
    /// flight. False if nothing is queued.
    fn next_chunk(&mut self, backend: &mut Backend) -> bool {
        let done = std::mem::replace(&mut self.inflight, Chunk::Copied(Vec::new()));
        self.finish_chunk(done, backend);
        self.sent = 0;
        match self.pending.pop_front() {
            Some(next) => {
                if let Chunk::Kept(_, already_sent) = next {
                    self.sent = already_sent;
                }
                self.inflight = next;
                true
            }
            None => false,
        }
    }

    /// Drops everything queued (after an error, or when the stream is freed).
    fn drop_queue(&mut self, backend: &mut Backend) {
        while let Some(chunk) = self.pending.pop_front() {
            self.finish_chunk(chunk, backend);
        }
        self.next_chunk(backend);
    }
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

    /// Starts accepting connections; `cb` receives each new connection, already a handle of
    /// its own that the callback (or later code) must close.
    pub fn listen(
        self,
        lp: &mut Loop,
        backlog: i32,
        cb: impl FnMut(&mut Loop, Stream, Result<Stream>) + 'static,
    ) -> Result<()> {
        let e = self.entry(lp)?;
        if e.has(flag::LISTENING) || e.has(flag::READING) {
            return Err(Error::EALREADY);
        }
        sys::socket::listen(e.fd, backlog)?;
        e.incoming = Incoming::Accept(Box::new(cb));
        e.flags |= flag::LISTENING;
        lp.stream_arm_incoming(self.idx, self.gen);
        lp.stream_update_active(self.idx, self.gen);
        Ok(())
    }

    /// Starts delivering received data to `cb`. Replaces the callback if already reading.
    pub fn read_start(
        self,
        lp: &mut Loop,
        cb: impl FnMut(&mut Loop, Stream, Read<'_>) + 'static,
    ) -> Result<()> {
        self.read_start_boxed(lp, Box::new(cb))
    }

    /// [`Stream::read_start`] with a callback already boxed.
    pub fn read_start_boxed(self, lp: &mut Loop, cb: ReadCb) -> Result<()> {
        self.start_reading(lp, Reader::Boxed(cb))
    }

    /// [`Stream::read_start`] with a plain function and a word of data passed back to it: no
    /// allocation (a boxed closure costs one per stream, which idle connections feel).
    pub fn read_start_fn(self, lp: &mut Loop, f: ReadFn, data: usize) -> Result<()> {
        self.start_reading(lp, Reader::Plain(f, data))
    }

    fn start_reading(self, lp: &mut Loop, cb: Reader) -> Result<()> {
        let e = self.entry(lp)?;
        if e.has(flag::LISTENING) {
            return Err(Error::EINVAL);
        }
        e.incoming = Incoming::Read(cb);
        e.flags |= flag::READING;
        let stashed =
            e.w.as_ref()
                .is_some_and(|w| !w.stash.is_empty() || w.stash_end.is_some());
        if !e.has(flag::CONNECTING) {
            lp.stream_arm_incoming(self.idx, self.gen);
        }
        if stashed {
            lp.stream_defer(self.idx, self.gen);
        }
        lp.stream_update_active(self.idx, self.gen);
        Ok(())
    }

    /// Stops delivering data; data that arrives meanwhile waits in the kernel.
    pub fn read_stop(self, lp: &mut Loop) -> Result<()> {
        let e = self.entry(lp)?;
        e.flags &= !flag::READING;
        if e.has(flag::RECV_ARMED) {
            let (fd, (code, kind)) = (e.fd, e.incoming_kind());
            lp.backend
                .cancel(token(Kind::Stream, code, self.idx, self.gen), fd, kind);
        }
        lp.stream_update_active(self.idx, self.gen);
        Ok(())
    }

    /// Whether the stream is delivering reads.
    pub fn is_reading(self, lp: &Loop) -> bool {
        lp.streams
            .get(self.idx, self.gen)
            .is_some_and(|e| e.has(flag::READING) && !e.common.closing)
    }

    /// Queues `data` (copied) for sending and tries to send it at once. `cb`, if given, runs
    /// when all of it has been handed to the kernel, or with the error that stopped it — never
    /// inside this call. Returns `true` while the write queue is below the high-water mark, and
    /// `false` once it is at or above it: wait for the drain callback before writing more.
    #[inline]
    pub fn write(self, lp: &mut Loop, data: &[u8], cb: Option<DoneCb>) -> Result<bool> {
        if lp.backend.copies_send(data.len()) {
            return self.write_owned(lp, data, cb);
        }
        match self.send_now_if_idle(lp, data, cb.is_none())? {
            None => Ok(true),
            Some(sent) => self.write_queued(lp, Queued::Copy(std::slice::from_ref(&data)), cb, sent),
        }
    }

    /// [`Stream::write`] of several buffers, in order, as one write: `cb` runs once for all of
    /// them. With nothing queued, a backend that sends at once (epoll) sends them with one
    /// gathered system call from the caller's memory; what the socket does not take is copied
    /// and queued, as for `write`.
    #[inline]
    pub fn write_vectored(self, lp: &mut Loop, bufs: &[&[u8]], cb: Option<DoneCb>) -> Result<bool> {
        match bufs {
            [] => self.write(lp, &[], cb),
            [one] => self.write(lp, one, cb),
            _ => self.write_gathered(lp, bufs, cb),
        }
    }

    fn write_gathered(self, lp: &mut Loop, bufs: &[&[u8]], cb: Option<DoneCb>) -> Result<bool> {
        let sent = {
            let Loop { streams, backend, .. } = &mut *lp;
            let e = self.open_entry(streams)?;
            if e.flags & flag::NOT_IDLE != 0 || bufs.len() > sys::socket::MAX_IOVECS {
                e.check_writable()?;
                SentNow::Bytes(0)
            } else {
                match backend.send_now(|| sys::stream_send_vectored(e.fd, bufs, e.has(flag::PIPE))) {
                    Some(Ok(n)) => SentNow::Bytes(n),
                    Some(Err(Error::EAGAIN)) | None => SentNow::Bytes(0),
                    Some(Err(err)) => SentNow::Failed(err),
                }
            }
        };
        self.write_queued(lp, Queued::Copy(bufs), cb, sent)
    }

    /// `write` when the send happens after it returns (io_uring; small writes on epoll, see
    /// `Backend::copies_send`): the bytes are copied, and on an idle stream the copy goes
    /// straight in flight, with one lookup and no queue.
    fn write_owned(self, lp: &mut Loop, data: &[u8], cb: Option<DoneCb>) -> Result<bool> {
        let Loop {
            streams,
            backend,
            lendable,
            alive_refs,
            ..
        } = &mut *lp;
        let e = self.open_entry(streams)?;
        let busy = e.flags & flag::NOT_IDLE != 0;
        if busy {
            e.check_writable()?;
        }
        // A busy stream queues behind what it has; a large echo of a receive buffer holds that
        // buffer instead of copying it; both take the full path.
        if busy || data.is_empty() || (data.len() >= LEND_READ_MIN && lendable.holds(data)) {
            return self.write_queued(
                lp,
                Queued::Copy(std::slice::from_ref(&data)),
                cb,
                SentNow::Bytes(0),
            );
        }
        let (fd, pipe) = (e.fd, e.has(flag::PIPE));
        let w = e.w.get_or_insert_with(WriteState::new);
        // Idle (WRITE_BUSY clear): nothing pending or in flight; a copy vector whose send
        // finished stays in `inflight` (see `stream_sent`), else the spare one is taken.
        if !matches!(w.inflight, Chunk::Copied(_)) {
            w.next_chunk(backend);
        }
        let Chunk::Copied(v) = &mut w.inflight else {
            unreachable!("next_chunk leaves a copy vector in flight when nothing is pending")
        };
        if v.capacity() == 0 {
            std::mem::swap(v, &mut w.spare);
        }
        v.clear();
        v.extend_from_slice(data);
        let (ptr, len) = (v.as_ptr(), v.len());
        w.sent = 0;
        w.queued_total += len as u64;
        if let Some(cb) = cb {
            w.reqs.push_back((w.queued_total, Some(cb)));
        }
        let below = len < w.high_water;
        w.need_drain |= !below;
        e.flags |= flag::WRITE_BUSY;
        e.common.set_active(alive_refs, true);
        let op = send_op(fd, pipe, ptr, len);
        match backend.submit(token(Kind::Stream, OP_SEND, self.idx, self.gen), op) {
            None => {
                w.sending = true;
                e.common.inflight += 1;
            }
            Some(res) => lp.stream_send_finished(self.idx, self.gen, res),
        }
        Ok(below)
    }

    /// `write`'s first step, kept small so the common case (a reply sent whole at once) costs
    /// one lookup and one send: with nothing queued or in flight, send from the caller's slice.
    /// `None`: all of `data` went and no callback is owed. Backends that must own the buffer
    /// (io_uring) decline, as does a stream with earlier writes still queued.
    #[inline]
    fn send_now_if_idle(self, lp: &mut Loop, data: &[u8], no_callback: bool) -> Result<Option<SentNow>> {
        // The stream and the backend are borrowed apart: one lookup serves the whole step.
        let Loop { streams, backend, .. } = &mut *lp;
        let e = self.open_entry(streams)?;
        if e.flags & flag::NOT_IDLE != 0 {
            // The full path reports the state's error, if it has one.
            e.check_writable()?;
            return Ok(Some(SentNow::Bytes(0)));
        }
        Ok(Some(match backend.send_now(|| e.send_now(data)) {
            // Nothing queued before, nothing after: the write state's totals, which only
            // matter relative to each other, need no update.
            Some(Ok(n)) if n == data.len() && no_callback => return Ok(None),
            Some(Ok(n)) => SentNow::Bytes(n),
            Some(Err(Error::EAGAIN)) | None => SentNow::Bytes(0),
            Some(Err(err)) => SentNow::Failed(err),
        }))
    }

    /// [`Stream::write`] of memory lent rather than copied: what the first step does not send
    /// is sent from `buf` itself, which the stream drops once it has gone (or failed, or the
    /// stream closed). For large buffers, where the copy costs more than the box; the callback
    /// and the return value are `write`'s.
    pub fn write_kept(self, lp: &mut Loop, buf: Box<dyn KeptBytes>, cb: Option<DoneCb>) -> Result<bool> {
        if lp.lendable.holds(buf.bytes()) {
            // The bytes a read callback is being given (a C caller passing the read buffer
            // back): the backend's to lend, not the caller's, and recycled after the callback.
            // `write` holds the receive buffer itself where it can, or copies.
            return self.write(lp, buf.bytes(), cb);
        }
        let sent = self.send_now_if_idle(lp, buf.bytes(), cb.is_none())?;
        match sent {
            None => Ok(true),
            Some(sent) => self.write_queued(lp, Queued::Kept(buf), cb, sent),
        }
    }

    /// The rest of `write`: queue what the first step did not send, record a callback, or
    /// record the error the send met.
    #[inline(never)]
    fn write_queued(
        self,
        lp: &mut Loop,
        queued: Queued<'_>,
        cb: Option<DoneCb>,
        sent: SentNow,
    ) -> Result<bool> {
        let total: usize = match &queued {
            Queued::Copy(parts) => parts.iter().map(|p| p.len()).sum(),
            Queued::Kept(buf) => buf.bytes().len(),
            Queued::Received(chunk) => chunk.bytes().len(),
        };
        let sent_now = match sent {
            SentNow::Bytes(n) => n,
            SentNow::Failed(err) => {
                let e = lp.streams.get_mut(self.idx, self.gen).ok_or(Error::EBADF)?;
                let w = e.w.get_or_insert_with(WriteState::new);
                w.queued_total += total as u64;
                if let Some(cb) = cb {
                    w.reqs.push_back((w.queued_total, Some(cb)));
                }
                lp.stream_sent(self.idx, self.gen, err.code());
                return Ok(true);
            }
        };
        // What the first step did not send, if it is the read callback's bytes, is sent from
        // the receive buffer they arrived in (held until then) instead of copied. Only what was
        // not sent: io_uring sends an idle stream's write at once in a quiet pass, and a loan of
        // the whole read sent every byte of it twice.
        let queued = match queued {
            Queued::Copy([one])
                if one.len().saturating_sub(sent_now) >= LEND_READ_MIN && lp.lendable.holds(one) =>
            {
                lp.lend_read(&one[sent_now..]).map_or(queued, Queued::Received)
            }
            other => other,
        };
        let e = lp.streams.get_mut(self.idx, self.gen).ok_or(Error::EBADF)?;
        let w = e.w.get_or_insert_with(WriteState::new);
        match queued {
            Queued::Copy(parts) => {
                let mut skip = sent_now;
                for part in parts {
                    let n = skip.min(part.len());
                    skip -= n;
                    w.queue_copy(&part[n..]);
                }
            }
            Queued::Kept(buf) if sent_now < total => w.pending.push_back(Chunk::Kept(buf, sent_now)),
            Queued::Kept(_) => {}
            // The loan holds only what was not sent (above).
            Queued::Received(chunk) => w.pending.push_back(chunk),
        }
        w.queued_total += total as u64;
        w.written_total += sent_now as u64;

        if let Some(cb) = cb {
            let end = w.queued_total;
            w.reqs.push_back((end, Some(cb)));
        }
        e.sync_write_busy();
        if sent_now == total {
            // All sent at once: only the callback is owed, from the deferred queue.
            lp.stream_defer(self.idx, self.gen);
            lp.stream_update_active(self.idx, self.gen);
            return Ok(true);
        }
        lp.stream_flush(self.idx, self.gen);
        lp.stream_update_active(self.idx, self.gen);
        let e = lp.streams.get_mut(self.idx, self.gen).ok_or(Error::EBADF)?;
        let w = e.w.as_mut().expect("write state exists");

        let below = w.queue_size() < w.high_water;
        if !below {
            w.need_drain = true;
        }
        Ok(below)
    }

    /// Sends what the socket takes now, without queuing (libuv's `uv_try_write`): the number of
    /// bytes sent, `EAGAIN` if none could be, or the socket's error. Refused with `EAGAIN` while
    /// earlier writes are queued or a connect is pending, so bytes never overtake each other.
    pub fn try_write(self, lp: &mut Loop, data: &[u8]) -> Result<usize> {
        let e = self.entry(lp)?;
        e.check_writable()?;
        if e.has(flag::CONNECTING) || e.w.as_ref().is_some_and(|w| w.queue_size() > 0 || w.sending) {
            return Err(Error::EAGAIN);
        }
        let n = e.send_now(data)?;
        if let Some(w) = e.w.as_mut() {
            w.queued_total += n as u64;
            w.written_total += n as u64;
        }
        Ok(n)
    }

    /// Bytes accepted by `write` and not yet handed to the kernel.
    pub fn write_queue_size(self, lp: &Loop) -> usize {
        lp.streams
            .get(self.idx, self.gen)
            .and_then(|e| e.w.as_ref())
            .map_or(0, |w| w.queue_size())
    }

    /// The error that stopped writing, if a send failed. It is sticky (later writes fail with
    /// it, and what was queued was dropped); this tells a caller that gives `write` no callback
    /// of a failure `write` itself does not report (callbacks never run inside it).
    pub fn write_error(self, lp: &Loop) -> Option<Error> {
        lp.streams
            .get(self.idx, self.gen)
            .and_then(|e| e.w.as_ref())
            .and_then(|w| w.error)
    }

    /// Sets the write-queue size at which `write` starts returning `false` (default 64 KiB).
    pub fn set_high_water_mark(self, lp: &mut Loop, bytes: usize) -> Result<()> {
        let e = self.entry(lp)?;
        e.w.get_or_insert_with(WriteState::new).high_water = bytes.max(1);
        Ok(())
    }

    /// Sets the callback run when the write queue empties after `write` returned `false`.
    pub fn on_drain(self, lp: &mut Loop, cb: impl FnMut(&mut Loop, Stream) + 'static) -> Result<()> {
        let e = self.entry(lp)?;
        e.w.get_or_insert_with(WriteState::new).drain_cb = Some(Box::new(cb));
        Ok(())
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
    /// Holds the receive buffer being dispatched for a write of `data` (part of it), if the
    /// backend can spare it: the completion will not recycle it, the chunk gives it back.
    fn lend_read(&mut self, data: &[u8]) -> Option<Chunk> {
        let buf_id = self.lendable.buf_id;
        if self.read_lent || !self.backend.lend_read_buffer(buf_id) {
            return None;
        }
        self.read_lent = true;
        Some(Chunk::ReadBuffer {
            ptr: data.as_ptr(),
            len: data.len(),
            buf_id,
        })
    }

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

    /// Hands queued bytes to the backend, one send in flight at a time, and submits a requested
    /// shutdown once the queue is empty.
    pub(crate) fn stream_flush(&mut self, idx: u32, gen: u32) {
        loop {
            let Some(e) = self.streams.get_mut(idx, gen) else {
                return;
            };
            if e.common.closing || e.has(flag::CONNECTING) {
                return;
            }
            let (fd, pipe) = (e.fd, e.has(flag::PIPE));
            if e.fail_waiting_shutdown() {
                self.stream_defer(idx, gen);
                return;
            }
            let Some(w) = e.w.as_mut() else { return };
            if w.sending || w.error.is_some() {
                return;
            }
            if w.sent == w.inflight.bytes().len() && !w.next_chunk(&mut self.backend) {
                e.sync_write_busy();
                break;
            }
            let rest = &w.inflight.bytes()[w.sent..];
            let op = send_op(fd, pipe, rest.as_ptr(), rest.len());
            match self.backend.submit(token(Kind::Stream, OP_SEND, idx, gen), op) {
                Some(res) => {
                    self.stream_sent(idx, gen, res);
                }
                None => {
                    w.sending = true;
                    e.common.inflight += 1;
                    e.flags |= flag::WRITE_BUSY;
                    return;
                }
            }
        }
        // Queue empty: a requested shutdown can go now.
        let Some(e) = self.streams.get_mut(idx, gen) else {
            return;
        };
        if e.has(flag::SHUT_REQUESTED) && !e.has(flag::SHUT_SUBMITTED) {
            e.flags |= flag::SHUT_SUBMITTED;
            match self.backend.submit(
                token(Kind::Stream, OP_SHUTDOWN, idx, gen),
                Op::Shutdown { fd: e.fd },
            ) {
                Some(res) => {
                    e.w.as_mut().expect("shutdown has write state").shutdown_result = Some(result_of(res));
                    self.stream_defer(idx, gen);
                }
                None => e.common.inflight += 1,
            }
        }
    }

    /// Accounts for a finished send; callbacks run from the deferred queue. Returns whether
    /// `stream_flush` has more to do: not when the send finished everything there was (the
    /// usual case), which this settles in the same lookup, activity included.
    fn stream_sent(&mut self, idx: u32, gen: u32, res: i32) -> bool {
        // The stream and the backend are borrowed apart: one lookup per send completion.
        let Loop {
            streams,
            backend,
            alive_refs,
            ..
        } = &mut *self;
        let Some(e) = streams.get_mut(idx, gen) else {
            return false;
        };
        let (fd, flags) = (e.fd, e.flags);
        let first_error = res < 0 && e.w.as_ref().is_some_and(|w| w.error.is_none());
        if first_error && flags & (flag::RECV_ARMED | flag::LISTENING) == flag::RECV_ARMED {
            // A failed send means a broken connection, and the send may have taken the socket's
            // pending error, which a receive armed in io_uring then waits on for good (seen
            // with resets). A fresh receive reads what is left, then the end: cancel this one,
            // which re-arms when its cancellation lands.
            let (incoming, kind) = e.incoming_kind();
            backend.cancel(token(Kind::Stream, incoming, idx, gen), fd, kind);
        }
        let Some(w) = e.w.as_mut() else { return false };
        w.sending = false;
        if res < 0 {
            let err = Error::from_errno(-res);
            w.error = Some(err);
            // Nothing more will be sent: the queue is dropped and its writes fail.
            w.written_total = w.queued_total;
            w.drop_queue(backend);
        } else {
            w.sent += res as usize;
            w.written_total += res as u64;
        }
        let done = w.error.is_some()
            || w.reqs.front().is_some_and(|&(end, _)| end <= w.written_total)
            || (w.need_drain && w.queue_size() == 0);
        let finished_all = res >= 0 && w.sent == w.inflight.bytes().len() && w.pending.is_empty();
        if finished_all && !matches!(w.inflight, Chunk::Copied(_)) {
            // Lent memory goes back now; a copy vector stays where the next write fills it.
            w.next_chunk(backend);
        }
        e.fail_waiting_shutdown();
        e.sync_write_busy();
        let more = !finished_all || e.has(flag::SHUT_REQUESTED) && !e.has(flag::SHUT_SUBMITTED);
        if !more && !e.common.closing {
            let active = e.wants_active();
            e.common.set_active(alive_refs, active);
        }
        if done {
            self.stream_defer(idx, gen);
        }
        more
    }

    /// A send's result: accounted for, and the queue flushed on if it has more.
    fn stream_send_finished(&mut self, idx: u32, gen: u32, res: i32) {
        if self.stream_sent(idx, gen, res) {
            self.stream_flush(idx, gen);
            self.stream_update_active(idx, gen);
        }
    }

    fn stream_defer(&mut self, idx: u32, gen: u32) {
        if let Some(e) = self.streams.get_mut(idx, gen) {
            if !e.has(flag::DEFERRED) {
                e.flags |= flag::DEFERRED;
                self.deferred.push_back(Deferred::StreamWrites(idx, gen));
            }
        }
    }

    /// Runs the stream's stashed reads, then its finished connect, write, drain and shutdown
    /// callbacks, in that order.
    pub(crate) fn stream_finish_writes(&mut self, idx: u32, gen: u32) {
        let s = Stream { idx, gen };
        if let Some(e) = self.streams.get_mut(idx, gen) {
            e.flags &= !flag::DEFERRED;
        }
        self.stream_deliver_stash(idx, gen);

        // Connect.
        if let Some(w) = self.streams.get_mut(idx, gen).and_then(|e| e.w.as_mut()) {
            if let Some(result) = w.connect_result.take() {
                if let Some(cb) = w.connect_cb.take() {
                    cb(self, s, result);
                }
            }
        }
        // Writes, in order.
        loop {
            let Some(e) = self.streams.get_mut(idx, gen) else {
                return;
            };
            if e.common.closing {
                return;
            }
            let Some(w) = e.w.as_mut() else { return };
            let result = match w.reqs.front() {
                Some(&(end, _)) if end <= w.written_total && w.error.is_none() => Ok(()),
                Some(_) if w.error.is_some() => Err(w.error.expect("checked")),
                _ => break,
            };
            let (_, cb) = w.reqs.pop_front().expect("checked");
            if let Some(cb) = cb {
                cb(self, s, result);
            }
        }
        // Drain.
        if let Some(w) = self.streams.get_mut(idx, gen).and_then(|e| e.w.as_mut()) {
            if w.need_drain && w.queue_size() == 0 && w.error.is_none() {
                w.need_drain = false;
                if let Some(mut cb) = w.drain_cb.take() {
                    cb(self, s);
                    if let Some(w) = self.streams.get_mut(idx, gen).and_then(|e| e.w.as_mut()) {
                        if w.drain_cb.is_none() {
                            w.drain_cb = Some(cb);
                        }
                    }
                }
            }
        }
        // Shutdown.
        if let Some(w) = self.streams.get_mut(idx, gen).and_then(|e| e.w.as_mut()) {
            if let Some(result) = w.shutdown_result.take() {
                if let Some(cb) = w.shutdown_cb.take() {
                    cb(self, s, result);
                }
            }
        }
        self.stream_update_active(idx, gen);
    }

    /// Delivers data (and an end) that arrived while reading was stopped.
    fn stream_deliver_stash(&mut self, idx: u32, gen: u32) {
        let s = Stream { idx, gen };
        let Some(e) = self.streams.get_mut(idx, gen) else {
            return;
        };
        if !e.has(flag::READING) || e.common.closing {
            return;
        }
        let Some(w) = e.w.as_mut() else { return };
        if w.stash.is_empty() && w.stash_end.is_none() {
            return;
        }
        let mut data = std::mem::take(&mut w.stash);
        let end = w.stash_end.take();
        e.flags &= !flag::STASHED;
        let Incoming::Read(mut cb) = std::mem::replace(&mut e.incoming, Incoming::None) else {
            return;
        };
        if !data.is_empty() {
            cb.call(self, s, Read::Data(&data));
        }
        match end {
            Some(0) => cb.call(self, s, Read::Eof),
            Some(res) if res < 0 => cb.call(self, s, Read::Error(Error::from_errno(-res))),
            _ => {}
        }
        data.clear();
        if let Some(e) = self.streams.get_mut(idx, gen) {
            if !e.common.closing {
                e.put_back_incoming(Incoming::Read(cb));
            }
            if let Some(w) = e.w.as_mut() {
                if w.stash.is_empty() {
                    w.stash = data; // keep the capacity
                }
            }
        }
        self.stream_update_active(idx, gen);
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

    #[inline(always)]
    fn stream_received(&mut self, idx: u32, c: &Completion) {
        let Some((gen, e)) = self.streams.get_by_index(idx) else {
            return;
        };
        if !gen_matches(gen, c.token) || e.common.closing {
            return;
        }
        let s = Stream { idx, gen };
        if c.res == -libc::ECANCELED || c.res == -libc::ENOBUFS {
            // A stop followed by a start before the cancellation landed, or a multishot receive
            // that ran out of buffers (its data waits in the socket): arm again.
            self.stream_arm_incoming(idx, gen);
            return;
        }
        if !e.has(flag::READING) || e.has(flag::STASHED) {
            // Data that was already on its way when reading stopped (io_uring), or that must
            // queue behind such data: keep it, in order, for the next read_start.
            if c.res > 0 {
                let w = e.w.get_or_insert_with(WriteState::new);
                // SAFETY: valid until the completion is recycled, after dispatch.
                w.stash.extend_from_slice(unsafe { c.bytes() });
                e.flags |= flag::STASHED;
            } else {
                e.w.get_or_insert_with(WriteState::new).stash_end = Some(c.res);
                e.flags |= flag::EOF;
            }
            if e.has(flag::READING) {
                self.stream_defer(idx, gen);
            }
            return;
        }

        let Incoming::Read(mut cb) = std::mem::replace(&mut e.incoming, Incoming::None) else {
            return;
        };
        if c.res > 0 {
            // SAFETY: the bytes stay valid until the completion is recycled, after dispatch.
            let data = unsafe { c.bytes() };
            self.lendable = Lendable {
                ptr: c.data,
                len: data.len(),
                buf_id: c.buf_id,
            };
            cb.call(self, s, Read::Data(data));
            self.lendable = Lendable::NONE;
        } else if c.res == 0 {
            e.flags |= flag::EOF;
            cb.call(self, s, Read::Eof);
        } else {
            e.flags |= flag::EOF;
            cb.call(self, s, Read::Error(Error::from_errno(-c.res)));
        }
        // One lookup to put the callback back and, if the multishot receive ended without EOF
        // (e.g. out of buffers), to re-arm it.
        let Some(e) = self.streams.get_mut(idx, gen) else {
            return;
        };
        if e.common.closing {
            return;
        }
        e.put_back_incoming(Incoming::Read(cb));
        if !e.has(flag::RECV_ARMED) && e.has(flag::READING) && !e.has(flag::EOF) {
            self.stream_arm_incoming(idx, gen);
        }
        if c.res <= 0 {
            self.stream_update_active(idx, gen);
        }
    }

    /// A pipe's write end polled ready: its reader has gone (the poll asks for nothing else
    /// that end can report), which reading reports as the end. The poll is cancelled, as
    /// nothing more can follow.
    fn stream_reader_gone(&mut self, idx: u32, gen: u32, c: &Completion) {
        let mut end = Completion::new(c.token, c.res, false);
        if c.res >= 0 {
            end.res = 0;
            if c.more {
                if let Some(e) = self.streams.get_mut(idx, gen) {
                    let fd = e.fd;
                    self.backend
                        .cancel(token(Kind::Stream, OP_HANGUP, idx, gen), fd, OpKind::Poll);
                }
            }
        }
        self.stream_received(idx, &end);
    }

    /// Closes a connection the kernel accepted for a listener that is closing or gone (a
    /// multishot accept can post several before its cancellation lands).
    fn stream_refuse_accepted(&mut self, op: u8, c: &Completion) {
        if op == OP_ACCEPT && c.res >= 0 {
            self.backend.close_fd(c.res);
        }
    }

    fn stream_accepted(&mut self, idx: u32, gen: u32, c: &Completion) {
        let listener = Stream { idx, gen };
        let Some(e) = self.streams.get_mut(idx, gen) else {
            return;
        };
        let family = e.family as i32;
        let Incoming::Accept(mut cb) = std::mem::replace(&mut e.incoming, Incoming::None) else {
            if c.res >= 0 {
                self.backend.close_fd(c.res);
            }
            return;
        };
        if c.res >= 0 {
            let conn = self.stream_insert(c.res, family);
            cb(self, listener, Ok(conn));
        } else if c.res != -libc::ECANCELED {
            cb(self, listener, Err(Error::from_errno(-c.res)));
        }
        self.stream_restore_incoming(idx, gen, Incoming::Accept(cb));
        self.stream_arm_incoming(idx, gen);
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

/// The operation that sends `len` bytes at `ptr`: `send` on a socket, `write` on a pipe.
fn send_op(fd: RawFd, pipe: bool, ptr: *const u8, len: usize) -> Op {
    if pipe {
        Op::Write { fd, ptr, len }
    } else {
        Op::Send { fd, ptr, len }
    }
}

pub(crate) fn result_of(res: i32) -> Result<()> {
    if res < 0 {
        Err(Error::from_errno(-res))
    } else {
        Ok(())
    }
}
