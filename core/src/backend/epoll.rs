//! The epoll backend: level-triggered readiness, with the loop performing each system call to
//! produce the same completions io_uring would.
//!
//! Costs it is built to avoid:
//! - Interest changes are recorded per fd and written to the kernel in one pass just before
//!   `epoll_wait`, so arming and disarming within one iteration costs nothing, and a socket that
//!   reads continuously costs no `epoll_ctl` at all after its first.
//! - Connects and pipe writes are tried at submission, and a socket's small sends made while
//!   the last wait returned more than [`CROWDED_PASS`] events at the end of the dispatch pass
//!   that queued them
//!   (`perform_sends`), all together and in order, as io_uring sends a pass's replies in one
//!   submission: replies sent one by one as each request is read reach their clients in the
//!   order of the ready list, again and again, and the connections at its end fall behind.
//!   Only `EAGAIN`/`EINPROGRESS` arms `EPOLLOUT`.
//! - Each wait's events are handled from a rotating start. Handled in ready-list order, the
//!   connections answered first (large replies go at once) send their next request first and
//!   head the next list too, pass after pass, while those at its end fall behind.
//! - One `recv` per readiness event into a single loop-owned buffer: no allocation per read, and
//!   no second `recv` just to see `EAGAIN`.

use super::fd_reserve::FdReserve;
use super::{watched_readiness, Completion, Op, Token};
use crate::error::{Error, Result};
use crate::sys::epoll::{Epoll, Event};
use crate::sys::socket::{self, RawAddr};
use crate::sys::{self, to_res};
use std::collections::{HashMap, VecDeque};
use std::os::fd::RawFd;

const EVENT_BATCH: usize = 1024;
/// A pass with more events than this gathers its small replies to its end (see above). In a
/// smaller one the wait between a reply and the callbacks after it costs more than the order
/// is worth: C echo at 4 connections, gathering from 2 events on: 0.87x libuv's messages per
/// second at 1.04x its CPU; from 9 on: 1.14x at 0.83x (bench/light_load.py figures, one A/B
/// run); at 100 connections passes are larger and nothing changed.
pub(crate) const CROWDED_PASS: usize = 8;
/// Accepts performed for one readiness event before other fds get their turn.
const ACCEPT_BURST: u32 = 64;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Reader {
    Accept,
    /// A stream's data: `recv`, or `read` for a pipe.
    Recv {
        pipe: bool,
    },
    RecvFrom,
    /// The `ready::*` bits watched (they fit in a byte).
    Poll(u8),
    Wake,
}

#[derive(Clone, Copy)]
enum Writer {
    /// A stream's send: `send`, or `write` for a pipe.
    Send {
        ptr: *const u8,
        len: usize,
        pipe: bool,
    },
    SendTo {
        ptr: *const u8,
        len: usize,
        addr: *const RawAddr,
    },
    Connect,
}

/// Epoll events as this backend registers them, in a byte (see `FdSlot`).
#[derive(Clone, Copy, PartialEq, Eq, Default)]
struct Interest(u8);

impl Interest {
    const NONE: Interest = Interest(0);
    const IN: u8 = 1;
    const OUT: u8 = 2;
    const PRI: u8 = 4;
    const RDHUP: u8 = 8;

    /// What a watcher of `ready::*` bits `want` registers.
    fn of_watch(want: u8) -> Interest {
        let ev = super::poll_events(u32::from(want));
        let mut bits = 0;
        for (epoll, mine) in Self::PAIRS {
            if ev & epoll != 0 {
                bits |= mine;
            }
        }
        Interest(bits)
    }

    const PAIRS: [(u32, u8); 4] = [
        (libc::EPOLLIN as u32, Self::IN),
        (libc::EPOLLOUT as u32, Self::OUT),
        (libc::EPOLLPRI as u32, Self::PRI),
        (libc::EPOLLRDHUP as u32, Self::RDHUP),
    ];

    fn epoll_events(self) -> u32 {
        Self::PAIRS
            .iter()
            .filter(|(_, mine)| self.0 & mine != 0)
            .fold(0, |ev, (epoll, _)| ev | epoll)
    }

    fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// Per-fd state, indexed by fd number: every idle connection pays for one, so it is kept to
/// 16 bytes. A blocked write's token and parameters live in a side table, since few fds ever
/// have one.
#[derive(Default)]
struct FdSlot {
    /// The reader's token, meaningful while `reader` is set.
    reader_token: Token,
    /// Bumped when the fd is released, so events of a closed fd never reach its successor.
    gen: u32,
    /// The events the kernel currently has for this fd (none: not in the epoll set).
    registered: Interest,
    reader: Option<Reader>,
    /// `DIRTY` and `WRITER` bits.
    flags: u8,
}

/// The slot's interest changed since the last sync (its fd is in `EpollBackend::dirty`).
const DIRTY: u8 = 1;
/// A write or connect waits for writability (its token is in `EpollBackend::writers`).
const WRITER: u8 = 2;

const _: () = assert!(std::mem::size_of::<FdSlot>() == 16);

impl FdSlot {
    fn reader(&self) -> Option<(Token, Reader)> {
        self.reader.map(|r| (self.reader_token, r))
    }

    fn has_writer(&self) -> bool {
        self.flags & WRITER != 0
    }
}

/// Where `next_completion` is within the current readiness event.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stage {
    Reader,
    Writer,
}

pub(crate) struct EpollBackend {
    epoll: Epoll,
    slots: Vec<FdSlot>,
    writers: HashMap<RawFd, (Token, Writer)>,
    dirty: Vec<RawFd>,
    events: Vec<Event>,
    cursor: usize,
    stage: Stage,
    accepts_this_event: u32,
    /// Completions decided without the kernel (cancellations, arming errors).
    ready: VecDeque<Completion>,
    recv_buf: Box<[u8]>,
    recv_addr: RawAddr,
    reserve: FdReserve,
    pub(crate) counters: super::Counters,
    /// Stream sends submitted during this dispatch pass, performed together by `perform_sends`.
    sends: Vec<QueuedSend>,
    /// Where the next wait's events start being handled (see the module comment).
    rotation: usize,
}

/// A socket send waiting for the end of the pass.
struct QueuedSend {
    token: Token,
    fd: RawFd,
    ptr: *const u8,
    len: usize,
}

fn data_of(fd: RawFd, gen: u32) -> u64 {
    fd as u32 as u64 | (gen as u64) << 32
}

impl EpollBackend {
    pub(crate) fn new(recv_buffer_size: usize) -> Result<EpollBackend> {
        Ok(EpollBackend {
            epoll: Epoll::new()?,
            slots: Vec::new(),
            writers: HashMap::new(),
            dirty: Vec::new(),
            events: Vec::with_capacity(EVENT_BATCH),
            cursor: 0,
            stage: Stage::Reader,
            accepts_this_event: 0,
            ready: VecDeque::new(),
            recv_buf: vec![0u8; recv_buffer_size.max(64)].into_boxed_slice(),
            recv_addr: RawAddr::empty(),
            reserve: FdReserve::empty(),
            counters: super::Counters::default(),
            sends: Vec::new(),
            rotation: 0,
        })
    }

    pub(crate) fn fd(&self) -> RawFd {
        self.epoll.fd()
    }

    fn slot(&mut self, fd: RawFd) -> &mut FdSlot {
        let i = fd as usize;
        if i >= self.slots.len() {
            // Vec's own doubling amortizes this; only slots of fds seen so far are touched.
            self.slots.resize_with(i + 1, FdSlot::default);
        }
        &mut self.slots[i]
    }

    fn mark_dirty(&mut self, fd: RawFd) {
        let slot = self.slot(fd);
        if slot.flags & DIRTY == 0 {
            slot.flags |= DIRTY;
            self.dirty.push(fd);
        }
    }

    pub(crate) fn submit(&mut self, token: Token, op: Op) -> Option<i32> {
        match op {
            Op::Accept { fd } => {
                self.reserve.ensure();
                self.arm_reader(fd, token, Reader::Accept)
            }
            Op::Recv { fd } => self.arm_reader(fd, token, Reader::Recv { pipe: false }),
            Op::Read { fd } => self.arm_reader(fd, token, Reader::Recv { pipe: true }),
            Op::RecvFrom { fd } => self.arm_reader(fd, token, Reader::RecvFrom),
            Op::Poll { fd, events } => self.arm_reader(fd, token, Reader::Poll(events as u8)),
            Op::Wake { fd } => self.arm_reader(fd, token, Reader::Wake),
            Op::Send { fd, ptr, len } => self.queue_send(QueuedSend { token, fd, ptr, len }),
            // A pipe's reader is often blocked in read() for exactly this write (a terminal, a
            // child process): it goes at once.
            Op::Write { fd, ptr, len } => self.send_stream(token, fd, ptr, len, true),
            Op::SendTo { fd, ptr, len, addr } => {
                // SAFETY: as for Send; `addr` likewise stays valid until completion.
                let (buf, to) = unsafe { (std::slice::from_raw_parts(ptr, len), &*addr) };
                match socket::send_to(fd, buf, to) {
                    Err(Error::EAGAIN) => self.arm_writer(fd, token, Writer::SendTo { ptr, len, addr }),
                    r => Some(to_res(r)),
                }
            }
            Op::Connect { fd, addr } => {
                // SAFETY: `addr` stays valid until completion.
                match socket::connect(fd, unsafe { &*addr }) {
                    Ok(()) => Some(0),
                    Err(Error::EINPROGRESS) => self.arm_writer(fd, token, Writer::Connect),
                    Err(e) => Some(e.code()),
                }
            }
            Op::Shutdown { fd } => Some(to_res(socket::shutdown_write(fd).map(|_| 0))),
        }
    }

    /// Events the last wait returned.
    #[inline]
    pub(crate) fn pass_size(&self) -> usize {
        self.events.len()
    }

    fn queue_send(&mut self, send: QueuedSend) -> Option<i32> {
        if send.fd < 0 {
            return Some(Error::EBADF.code());
        }
        self.sends.push(send);
        None
    }

    /// Performs the stream sends queued since the last call, in order; their completions
    /// follow from `next_completion`. Returns whether completions are waiting there (those of
    /// sends performed when the last `run` returned included).
    #[inline]
    pub(crate) fn perform_sends(&mut self) -> bool {
        if self.sends.is_empty() {
            return !self.ready.is_empty();
        }
        self.perform_queued_sends()
    }

    fn perform_queued_sends(&mut self) -> bool {
        let mut sends = std::mem::take(&mut self.sends);
        for s in sends.drain(..) {
            if let Some(res) = self.send_stream(s.token, s.fd, s.ptr, s.len, false) {
                self.ready.push_back(Completion::new(s.token, res, false));
            }
        }
        // The vector goes back for the next pass: no allocation per pass.
        self.sends = sends;
        !self.ready.is_empty()
    }

    /// A stream send, tried at once; only `EAGAIN` arms writability.
    fn send_stream(
        &mut self,
        token: Token,
        fd: RawFd,
        ptr: *const u8,
        len: usize,
        pipe: bool,
    ) -> Option<i32> {
        // SAFETY: the submitter guarantees `len` readable bytes at `ptr` until the operation
        // completes.
        let buf = unsafe { std::slice::from_raw_parts(ptr, len) };
        match sys::stream_send(fd, buf, pipe) {
            Err(Error::EAGAIN) => self.arm_writer(fd, token, Writer::Send { ptr, len, pipe }),
            r => Some(to_res(r)),
        }
    }

    fn arm_reader(&mut self, fd: RawFd, token: Token, reader: Reader) -> Option<i32> {
        if fd < 0 {
            return Some(Error::EBADF.code());
        }
        let slot = self.slot(fd);
        if slot.reader.is_some() {
            return Some(Error::EBUSY.code());
        }
        slot.reader = Some(reader);
        slot.reader_token = token;
        self.mark_dirty(fd);
        None
    }

    fn arm_writer(&mut self, fd: RawFd, token: Token, writer: Writer) -> Option<i32> {
        let slot = self.slot(fd);
        if slot.has_writer() {
            return Some(Error::EBUSY.code());
        }
        slot.flags |= WRITER;
        self.writers.insert(fd, (token, writer));
        self.mark_dirty(fd);
        None
    }

    pub(crate) fn cancel(&mut self, token: Token, fd: RawFd) {
        if let Some(i) = self.sends.iter().position(|s| s.token == token) {
            // Not yet performed: as a send io_uring already had would, it goes now if the
            // socket takes it (a reply written just before a close still leaves), and is
            // cancelled only if it would have to wait.
            let s = self.sends.remove(i);
            // SAFETY: the submitter keeps the buffer valid until the completion.
            let buf = unsafe { std::slice::from_raw_parts(s.ptr, s.len) };
            let res = match sys::stream_send(s.fd, buf, false) {
                Err(Error::EAGAIN) => Error::ECANCELED.code(),
                r => to_res(r),
            };
            self.ready.push_back(Completion::new(token, res, false));
            return;
        }
        if fd < 0 || fd as usize >= self.slots.len() {
            return;
        }
        let slot = &mut self.slots[fd as usize];
        let mut found = false;
        if matches!(slot.reader(), Some((t, _)) if t == token) {
            slot.reader = None;
            found = true;
        } else if slot.has_writer() && matches!(self.writers.get(&fd), Some(&(t, _)) if t == token) {
            slot.flags &= !WRITER;
            self.writers.remove(&fd);
            found = true;
        }
        if found {
            self.mark_dirty(fd);
            self.ready
                .push_back(Completion::new(token, Error::ECANCELED.code(), false));
        }
    }

    pub(crate) fn update_poll(&mut self, token: Token, fd: RawFd, events: u32) {
        if let Some(slot) = self.slots.get_mut(fd as usize) {
            if let Some((t, Reader::Poll(_))) = slot.reader() {
                if t == token {
                    slot.reader = Some(Reader::Poll(events as u8));
                    self.mark_dirty(fd);
                }
            }
        }
    }

    /// Forgets what a closed handle registered for `fd`. Another handle may already have armed
    /// the same fd number (a watcher started while the old one closed, or a new socket that got
    /// the freed number): its operations stay, and are registered afresh at the next sync.
    pub(crate) fn release_fd(&mut self, fd: RawFd, owned: bool) {
        if fd < 0 || fd as usize >= self.slots.len() {
            return;
        }
        let slot = &mut self.slots[fd as usize];
        let registered = std::mem::take(&mut slot.registered);
        slot.gen = slot.gen.wrapping_add(1);
        let taken_over = slot.reader.is_some() || slot.has_writer();
        // Closing the last descriptor of a file removes it from the epoll set, so an fd the loop
        // created and is about to close needs no epoll_ctl. One the user lent us may be
        // duplicated elsewhere and must be removed explicitly; so must a registration the next
        // owner would otherwise inherit under the old generation.
        if !registered.is_empty() && (!owned || taken_over) {
            let _ = self.epoll.ctl(libc::EPOLL_CTL_DEL, fd, 0, 0);
        }
        if taken_over {
            self.mark_dirty(fd);
        } else {
            self.writers.remove(&fd);
        }
    }

    fn wanted_events(slot: &FdSlot) -> Interest {
        let mut bits = match slot.reader {
            Some(Reader::Poll(want)) => Interest::of_watch(want).0,
            Some(_) => Interest::IN,
            None => 0,
        };
        if slot.has_writer() {
            bits |= Interest::OUT;
        }
        Interest(bits)
    }

    /// Writes recorded interest changes to the kernel. An fd the kernel refuses (a regular
    /// file, say) fails its operations with that error.
    pub(crate) fn sync_interest(&mut self) {
        let mut i = 0;
        while i < self.dirty.len() {
            let fd = self.dirty[i];
            i += 1;
            let slot = &mut self.slots[fd as usize];
            slot.flags &= !DIRTY;
            let wanted = Self::wanted_events(slot);
            if wanted == slot.registered {
                continue;
            }
            let op = if wanted.is_empty() {
                libc::EPOLL_CTL_DEL
            } else if slot.registered.is_empty() {
                libc::EPOLL_CTL_ADD
            } else {
                libc::EPOLL_CTL_MOD
            };
            let data = data_of(fd, slot.gen);
            let events = wanted.epoll_events();
            let mut res = self.epoll.ctl(op, fd, events, data);
            // What the kernel holds can differ from what the slot remembers when the fd was
            // closed and its number reused behind the loop's back: the old file left the set
            // by itself (ENOENT), or a duplicate kept it there (EEXIST).
            res = match (op, res) {
                (libc::EPOLL_CTL_MOD, Err(Error::ENOENT)) => {
                    self.epoll.ctl(libc::EPOLL_CTL_ADD, fd, events, data)
                }
                (libc::EPOLL_CTL_ADD, Err(Error::EEXIST)) => {
                    self.epoll.ctl(libc::EPOLL_CTL_MOD, fd, events, data)
                }
                (libc::EPOLL_CTL_DEL, Err(_)) => Ok(()),
                (_, r) => r,
            };
            match res {
                Ok(()) => self.slots[fd as usize].registered = wanted,
                Err(e) => {
                    let slot = &mut self.slots[fd as usize];
                    if op == libc::EPOLL_CTL_DEL {
                        slot.registered = Interest::NONE;
                        continue;
                    }
                    if let Some((t, _)) = slot.reader() {
                        slot.reader = None;
                        self.ready.push_back(Completion::new(t, e.code(), false));
                    }
                    if slot.has_writer() {
                        slot.flags &= !WRITER;
                        if let Some((t, _)) = self.writers.remove(&fd) {
                            self.ready.push_back(Completion::new(t, e.code(), false));
                        }
                    }
                }
            }
        }
        self.dirty.clear();
    }

    /// Interest changes wait to be written to the kernel, or sends to be performed.
    pub(crate) fn has_unsubmitted(&self) -> bool {
        !self.dirty.is_empty() || !self.sends.is_empty()
    }

    pub(crate) fn has_ready(&self) -> bool {
        !self.ready.is_empty() || self.cursor < self.events.len()
    }

    pub(crate) fn wait(&mut self, timeout_ms: i32) -> Result<()> {
        // Sends queued after the loop's own pass (by callbacks it ran later) go now; their
        // completions make this wait a poll.
        self.perform_sends();
        self.sync_interest();
        let timeout = if self.has_ready() { 0 } else { timeout_ms };
        if self.cursor < self.events.len() {
            // Unprocessed events remain (the caller stopped early): keep them.
            return Ok(());
        }
        self.counters.waits += 1;
        self.epoll.wait(&mut self.events, timeout)?;
        if self.events.len() > 1 {
            self.rotation = self.rotation.wrapping_add(1);
            let start = self.rotation % self.events.len();
            self.events.rotate_left(start);
        }
        self.cursor = 0;
        self.stage = Stage::Reader;
        self.accepts_this_event = 0;
        Ok(())
    }

    pub(crate) fn recycle(&mut self, _c: &Completion) {
        // One buffer, reused by the next receive: nothing to return.
    }

    // Inlined into the loop's dispatch: once per message, its prologue and epilogue cost as
    // much as its body.
    #[inline(always)]
    pub(crate) fn next_completion(&mut self) -> Option<Completion> {
        loop {
            if let Some(c) = self.ready.pop_front() {
                return Some(c);
            }
            let ev = *self.events.get(self.cursor)?;
            let fd = ev.u64 as u32 as RawFd;
            let gen = (ev.u64 >> 32) as u32;
            let revents = ev.events;
            let Some(slot) = self.slots.get(fd as usize).filter(|s| s.gen == gen) else {
                self.next_event();
                continue;
            };
            if self.stage == Stage::Reader {
                let has_writer = slot.has_writer();
                self.stage = Stage::Writer;
                if let Some(c) = self.perform_read(fd, revents) {
                    // Usually the fd has no blocked write: finish with the event now rather than
                    // in one more pass. A writer the callback arms waits for EPOLLOUT anyway.
                    if !has_writer && self.stage == Stage::Writer {
                        self.next_event();
                    }
                    return Some(c);
                }
            }
            self.next_event();
            if let Some(c) = self.perform_write(fd, revents) {
                return Some(c);
            }
        }
    }

    fn next_event(&mut self) {
        self.cursor += 1;
        self.stage = Stage::Reader;
        self.accepts_this_event = 0;
    }

    fn finish_reader(&mut self, fd: RawFd) {
        self.slots[fd as usize].reader = None;
        self.mark_dirty(fd);
    }

    #[inline(always)]
    fn perform_read(&mut self, fd: RawFd, revents: u32) -> Option<Completion> {
        let (token, reader) = self.slots[fd as usize].reader()?;
        let readable =
            revents & (libc::EPOLLIN | libc::EPOLLHUP | libc::EPOLLERR | libc::EPOLLRDHUP) as u32 != 0;
        match reader {
            Reader::Poll(want) => {
                let bits = watched_readiness(revents, u32::from(want));
                (bits != 0).then(|| Completion::new(token, bits as i32, true))
            }
            _ if !readable => None,
            Reader::Recv { pipe } => match sys::stream_recv(fd, &mut self.recv_buf, pipe) {
                Err(Error::EAGAIN) | Err(Error::EINTR) => None,
                Ok(0) => {
                    self.finish_reader(fd);
                    Some(Completion::new(token, 0, false))
                }
                Ok(n) => {
                    let mut c = Completion::new(token, n as i32, true);
                    c.data = self.recv_buf.as_ptr();
                    c.buf_id = 0;
                    Some(c)
                }
                Err(e) => {
                    self.finish_reader(fd);
                    Some(Completion::new(token, e.code(), false))
                }
            },
            Reader::RecvFrom => match socket::recv_from(fd, &mut self.recv_buf, &mut self.recv_addr) {
                Err(Error::EAGAIN) | Err(Error::EINTR) => None,
                r => {
                    let res = r.map(|n| n.min(self.recv_buf.len()));
                    let mut c = Completion::new(token, to_res(res), true);
                    if res.is_ok() {
                        c.data = self.recv_buf.as_ptr();
                        c.addr = &self.recv_addr;
                        c.buf_id = 0;
                    }
                    Some(c)
                }
            },
            Reader::Wake => {
                let mut counter = [0u8; 8];
                match sys::read(fd, &mut counter) {
                    Ok(_) => Some(Completion::new(token, 0, true)),
                    Err(_) => None,
                }
            }
            Reader::Accept => loop {
                if self.accepts_this_event >= ACCEPT_BURST {
                    return None;
                }
                match socket::accept(fd) {
                    Ok(conn) => {
                        self.accepts_this_event += 1;
                        // More may be pending: come back to this event's reader.
                        self.stage = Stage::Reader;
                        return Some(Completion::new(token, conn, true));
                    }
                    Err(Error::EAGAIN) => return None,
                    Err(Error::ECONNABORTED) | Err(Error::EINTR) => continue,
                    Err(e @ (Error::EMFILE | Error::ENFILE)) => {
                        self.reserve.drop_pending_connections(fd);
                        return Some(Completion::new(token, e.code(), true));
                    }
                    Err(e) => {
                        self.finish_reader(fd);
                        return Some(Completion::new(token, e.code(), false));
                    }
                }
            },
        }
    }

    fn perform_write(&mut self, fd: RawFd, revents: u32) -> Option<Completion> {
        if !self.slots[fd as usize].has_writer()
            || revents & (libc::EPOLLOUT | libc::EPOLLHUP | libc::EPOLLERR) as u32 == 0
        {
            return None;
        }
        let (token, writer) = *self.writers.get(&fd)?;
        let res = match writer {
            Writer::Send { ptr, len, pipe } => {
                // SAFETY: the submitter keeps the buffer valid until completion.
                match sys::stream_send(fd, unsafe { std::slice::from_raw_parts(ptr, len) }, pipe) {
                    Err(Error::EAGAIN) => return None,
                    r => to_res(r),
                }
            }
            Writer::SendTo { ptr, len, addr } => {
                // SAFETY: as above, for the buffer and the address.
                match socket::send_to(fd, unsafe { std::slice::from_raw_parts(ptr, len) }, unsafe {
                    &*addr
                }) {
                    Err(Error::EAGAIN) => return None,
                    r => to_res(r),
                }
            }
            Writer::Connect => to_res(socket::take_error(fd).map(|_| 0)),
        };
        self.slots[fd as usize].flags &= !WRITER;
        self.writers.remove(&fd);
        self.mark_dirty(fd);
        Some(Completion::new(token, res, false))
    }
}
