//! Writing to a stream: the first step (a direct send where the socket is idle), the queue of
//! what waits (copies in reused vectors, lent buffers, held receive buffers), flushing it as the
//! socket takes it, and what a write's completion does (callbacks, drain, shutdown after the
//! last byte).

use super::*;

/// What `write_queued` queues: copies of the caller's buffers, or a lent buffer.
pub(super) enum Queued<'a> {
    Copy(&'a [&'a [u8]]),
    Kept(Box<dyn KeptBytes>),
    /// Bytes of the receive buffer being dispatched, held for this write.
    Received(Chunk),
}

/// What `write`'s first step sent before anything was queued.
pub(super) enum SentNow {
    Bytes(usize),
    Failed(Error),
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
    pub(super) ptr: *const u8,
    pub(super) len: usize,
    pub(super) buf_id: u32,
}

impl Lendable {
    pub(crate) const NONE: Lendable = Lendable {
        ptr: std::ptr::null(),
        len: 0,
        buf_id: crate::backend::NO_BUFFER,
    };

    /// Whether `data` lies within these bytes.
    pub(super) fn holds(&self, data: &[u8]) -> bool {
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
pub(super) enum Chunk {
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
    pub(super) fn bytes(&self) -> &[u8] {
        match self {
            Chunk::Copied(v) => v,
            Chunk::Kept(b, _) => b.bytes(),
            // SAFETY: the backend does not recycle the buffer until this chunk gives it back
            // (`WriteState::finish_chunk`), so its bytes stay as they were received.
            Chunk::ReadBuffer { ptr, len, .. } => unsafe { std::slice::from_raw_parts(*ptr, *len) },
        }
    }
}

pub(super) struct WriteState {
    /// Bytes handed to the backend (from `sent` on); stable while a send is in flight.
    pub(super) inflight: Chunk,
    pub(super) sent: usize,
    pub(super) sending: bool,
    /// Bytes written while a send was in flight, in order: small writes extend the last copied
    /// chunk, a lent buffer is a chunk of its own.
    pub(super) pending: VecDeque<Chunk>,
    /// A copy vector that was sent, kept (cleared) for the next one: with `inflight`'s, the two
    /// vectors a steady stream of writes takes turns with.
    pub(super) spare: Vec<u8>,
    /// Write callbacks and the stream offset at which each write is complete.
    pub(super) reqs: VecDeque<(u64, Option<DoneCb>)>,
    pub(super) queued_total: u64,
    pub(super) written_total: u64,
    pub(super) error: Option<Error>,
    pub(super) high_water: usize,
    pub(super) need_drain: bool,
    pub(super) drain_cb: Option<DrainCb>,
    pub(super) connect_addr: RawAddr,
    pub(super) connect_cb: Option<DoneCb>,
    pub(super) connect_result: Option<Result<()>>,
    pub(super) shutdown_cb: Option<DoneCb>,
    pub(super) shutdown_result: Option<Result<()>>,
    /// Received while reading was stopped; delivered first when reading restarts.
    pub(super) stash: Vec<u8>,
    /// EOF (0) or an error that arrived behind stashed data.
    pub(super) stash_end: Option<i32>,
}

impl WriteState {
    pub(super) fn new() -> Box<WriteState> {
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

    pub(super) fn queue_size(&self) -> usize {
        (self.queued_total - self.written_total) as usize
    }

    /// Queues a copy of `bytes` behind everything else.
    pub(super) fn queue_copy(&mut self, bytes: &[u8]) {
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
    pub(super) fn finish_chunk(&mut self, done: Chunk, backend: &mut Backend) {
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
    pub(super) fn next_chunk(&mut self, backend: &mut Backend) -> bool {
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
    pub(super) fn drop_queue(&mut self, backend: &mut Backend) {
        while let Some(chunk) = self.pending.pop_front() {
            self.finish_chunk(chunk, backend);
        }
        self.next_chunk(backend);
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

impl Stream {
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
    pub(super) fn stream_send_finished(&mut self, idx: u32, gen: u32, res: i32) {
        if self.stream_sent(idx, gen, res) {
            self.stream_flush(idx, gen);
            self.stream_update_active(idx, gen);
        }
    }

    pub(super) fn stream_defer(&mut self, idx: u32, gen: u32) {
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
}
