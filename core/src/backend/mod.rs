//! The contract between the loop and a kernel interface.
//!
//! The loop asks for *operations* ([`Op`]) and receives *completions* ([`Completion`]), whichever
//! backend runs: io_uring performs operations in the kernel, epoll waits for readiness and then
//! performs the system call itself. Some operations are *multishot*: one submission yields many
//! completions (`more == true`) until a final one (`more == false`), as io_uring's multishot
//! accept/recv/poll do.
//!
//! Rules every backend keeps:
//! - `submit` may finish an operation at once and return its result; then no completion follows.
//!   Otherwise exactly one final completion (`more == false`) arrives for it later.
//! - `cancel` makes a pending operation finish soon, with `-ECANCELED` or with a real result if it
//!   had already completed; it never suppresses the final completion.
//! - Memory named by an operation (send buffers, addresses) belongs to the backend until the final
//!   completion.
//! - Data of a receive completion stays valid until the next call to `next_completion` or
//!   `recycle`, whichever comes first.

mod buf_ring;
pub(crate) mod epoll;
mod fd_reserve;
pub(crate) mod file_op;
mod offload_ring;
pub(crate) mod uring;

use crate::error::Result;
use crate::sys::socket::RawAddr;
use std::os::fd::RawFd;

/// The loop's name for one operation; comes back unchanged in its completions. Its top four
/// bits must be zero: a backend may use them to tag the operation's kind.
pub(crate) type Token = u64;

/// Stream writes below this size are copied and sent at the end of the pass on epoll.
const EPOLL_COPIED_SEND_MAX: usize = 4096;

/// The kind of an operation, as `cancel` needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum OpKind {
    Accept = 1,
    Recv = 2,
    RecvFrom = 3,
    Poll = 4,
    Wake = 5,
    Send = 6,
    SendTo = 7,
    Connect = 8,
    Shutdown = 9,
    File = 10,
}

/// Readiness bits reported by [`Op::Poll`] completions (and used by fd watchers).
pub mod ready {
    /// The fd is readable.
    pub const READABLE: u32 = 1;
    /// The fd is writable.
    pub const WRITABLE: u32 = 2;
    /// The peer hung up (EPOLLRDHUP / EPOLLHUP).
    pub const DISCONNECT: u32 = 4;
    /// Urgent / priority data (EPOLLPRI).
    pub const PRIORITIZED: u32 = 8;
    /// An error condition on the fd (EPOLLERR).
    pub const ERROR: u32 = 16;
}

// epoll and poll(2) share their event bits on Linux, so both backends use one mapping.
const _: () = assert!(
    libc::EPOLLIN == libc::POLLIN as i32
        && libc::EPOLLOUT == libc::POLLOUT as i32
        && libc::EPOLLPRI == libc::POLLPRI as i32
        && libc::EPOLLERR == libc::POLLERR as i32
        && libc::EPOLLHUP == libc::POLLHUP as i32
        && libc::EPOLLRDHUP == libc::POLLRDHUP as i32
);

/// The kernel poll/epoll events that watch for `ready::*` interest.
pub(crate) fn poll_events(want: u32) -> u32 {
    let mut ev = 0;
    if want & ready::READABLE != 0 {
        ev |= libc::POLLIN as u32;
    }
    if want & ready::WRITABLE != 0 {
        ev |= libc::POLLOUT as u32;
    }
    if want & ready::DISCONNECT != 0 {
        ev |= libc::POLLRDHUP as u32;
    }
    if want & ready::PRIORITIZED != 0 {
        ev |= libc::POLLPRI as u32;
    }
    ev
}

/// `ready::*` bits for the poll/epoll events the kernel reported.
pub(crate) fn readiness_bits(revents: u32) -> u32 {
    let mut bits = 0;
    if revents & libc::POLLIN as u32 != 0 {
        bits |= ready::READABLE;
    }
    if revents & libc::POLLOUT as u32 != 0 {
        bits |= ready::WRITABLE;
    }
    if revents & libc::POLLPRI as u32 != 0 {
        bits |= ready::PRIORITIZED;
    }
    if revents & libc::POLLRDHUP as u32 != 0 {
        bits |= ready::DISCONNECT;
    }
    if revents & libc::POLLHUP as u32 != 0 {
        // A hung-up fd reads EOF and fails writes: let both kinds of watcher find out.
        bits |= ready::READABLE | ready::WRITABLE | ready::DISCONNECT;
    }
    if revents & libc::POLLERR as u32 != 0 {
        bits |= ready::READABLE | ready::WRITABLE | ready::ERROR;
    }
    bits
}

/// What a readiness poll reports: the `ready::*` bits the kernel's `revents` mean, limited to
/// those the watcher asked for (`want`) and errors, as libuv reports them. One function for both
/// backends, so a watcher sees the same bits whichever runs.
pub(crate) fn watched_readiness(revents: u32, want: u32) -> u32 {
    readiness_bits(revents) & (want | ready::ERROR)
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum Op {
    /// Multishot: each completion is an accepted, non-blocking, close-on-exec fd or `-errno`.
    Accept { fd: RawFd },
    /// Multishot: each completion is a chunk of received bytes in a backend buffer; `0` is EOF
    /// (final). Errors are final.
    Recv { fd: RawFd },
    /// As `Recv`, for a file that is not a socket (a pipe, a FIFO, a terminal): `read` instead
    /// of `recv`. Its kind is `Recv`'s.
    Read { fd: RawFd },
    /// Multishot: each completion is one datagram with its source address.
    RecvFrom { fd: RawFd },
    /// Multishot, level-triggered: each completion is the readiness bits (`ready::*`) seen for
    /// `events`, and readiness the loop leaves in place (data not read) is reported again.
    Poll { fd: RawFd, events: u32 },
    /// Multishot: completes each time the eventfd is signalled, after resetting its counter.
    Wake { fd: RawFd },
    /// One-shot: send `len` bytes from `ptr`; the result may be short.
    Send { fd: RawFd, ptr: *const u8, len: usize },
    /// As `Send`, for a file that is not a socket: `write` instead of `send`. Its kind is
    /// `Send`'s.
    Write { fd: RawFd, ptr: *const u8, len: usize },
    /// One-shot: send one datagram to `addr`.
    SendTo {
        fd: RawFd,
        ptr: *const u8,
        len: usize,
        addr: *const RawAddr,
    },
    /// One-shot: connect a non-blocking socket to `addr`.
    Connect { fd: RawFd, addr: *const RawAddr },
    /// One-shot: shut down the write side.
    Shutdown { fd: RawFd },
}

impl Op {
    pub(crate) fn kind(&self) -> OpKind {
        match self {
            Op::Accept { .. } => OpKind::Accept,
            Op::Recv { .. } | Op::Read { .. } => OpKind::Recv,
            Op::RecvFrom { .. } => OpKind::RecvFrom,
            Op::Poll { .. } => OpKind::Poll,
            Op::Wake { .. } => OpKind::Wake,
            Op::Send { .. } | Op::Write { .. } => OpKind::Send,
            Op::SendTo { .. } => OpKind::SendTo,
            Op::Connect { .. } => OpKind::Connect,
            Op::Shutdown { .. } => OpKind::Shutdown,
        }
    }
}

/// One result of an operation.
pub(crate) struct Completion {
    pub(crate) token: Token,
    /// Bytes, an fd, readiness bits, or `-errno`.
    pub(crate) res: i32,
    /// The operation stays armed and will complete again.
    pub(crate) more: bool,
    /// Received bytes (`res` of them) for `Recv`/`RecvFrom`, else null.
    pub(crate) data: *const u8,
    /// Source address for `RecvFrom`, else null.
    pub(crate) addr: *const RawAddr,
    /// Identifies the lent buffer for [`Backend::recycle`].
    pub(crate) buf_id: u32,
}

impl Completion {
    pub(crate) fn new(token: Token, res: i32, more: bool) -> Completion {
        Completion {
            token,
            res,
            more,
            data: std::ptr::null(),
            addr: std::ptr::null(),
            buf_id: NO_BUFFER,
        }
    }

    /// The received bytes.
    ///
    /// # Safety
    /// Only until the next `next_completion`/`recycle` call on the backend that produced it.
    pub(crate) unsafe fn bytes<'a>(&self) -> &'a [u8] {
        if self.data.is_null() || self.res <= 0 {
            &[]
        } else {
            // SAFETY: the backend guarantees `res` valid bytes at `data` until recycled.
            unsafe { std::slice::from_raw_parts(self.data, self.res as usize) }
        }
    }
}

pub(crate) const NO_BUFFER: u32 = u32::MAX;

/// What a backend counts about itself (see `Loop::stats`).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Counters {
    pub(crate) waits: u64,
    pub(crate) buffer_exhaustions: u64,
    pub(crate) overflow_flushes: u64,
    pub(crate) offloaded_file_ops: u64,
    pub(crate) read_buffer_loans: u64,
}

/// Which kernel interface a loop uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum BackendKind {
    /// io_uring where the kernel allows it, else epoll. `EVLOOP_BACKEND` overrides it.
    #[default]
    Auto,
    /// epoll: readiness, with the loop performing each system call.
    Epoll,
    /// io_uring. Fails with the kernel's error (`ENOSYS`, `EPERM`…) where it cannot run.
    Uring,
}

impl BackendKind {
    /// Parses `auto`, `epoll` or `uring` (as in `EVLOOP_BACKEND`).
    pub fn parse(s: &str) -> Option<BackendKind> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" | "" => Some(BackendKind::Auto),
            "epoll" => Some(BackendKind::Epoll),
            "uring" | "io_uring" => Some(BackendKind::Uring),
            _ => None,
        }
    }
}

/// The backends behind one interface; an enum rather than a trait object so the hot calls
/// inline. One lives in each loop, so the variants' size difference costs a few hundred bytes
/// per loop, where boxing would cost an indirection per call.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Backend {
    Epoll(epoll::EpollBackend),
    Uring(uring::UringBackend),
}

impl Backend {
    pub(crate) fn new(
        kind: BackendKind,
        recv_buffer_size: usize,
        config: uring::UringConfig,
    ) -> Result<Backend> {
        let kind = match kind {
            BackendKind::Auto => match std::env::var("EVLOOP_BACKEND") {
                Ok(v) => BackendKind::parse(&v).ok_or(crate::Error::EINVAL)?,
                Err(_) => BackendKind::Auto,
            },
            other => other,
        };
        match kind {
            BackendKind::Epoll => Ok(Backend::Epoll(epoll::EpollBackend::new(recv_buffer_size)?)),
            BackendKind::Uring => Ok(Backend::Uring(uring::UringBackend::new(config)?)),
            BackendKind::Auto => match uring::UringBackend::new(config) {
                Ok(b) => Ok(Backend::Uring(b)),
                Err(e) => {
                    // io_uring refused (ENOSYS, EPERM from seccomp, kernel.io_uring_disabled) or
                    // lacking a required feature: epoll, silently unless asked.
                    static ONCE: std::sync::Once = std::sync::Once::new();
                    if std::env::var_os("EVLOOP_DEBUG").is_some() {
                        ONCE.call_once(|| eprintln!("evloop: io_uring unavailable ({e}); using epoll"));
                    }
                    Ok(Backend::Epoll(epoll::EpollBackend::new(recv_buffer_size)?))
                }
            },
        }
    }

    pub(crate) fn receive_buffers_incremental(&self) -> bool {
        match self {
            Backend::Epoll(_) => false,
            Backend::Uring(b) => b.receive_buffers_incremental(),
        }
    }

    /// io_uring: stream receive buffers posted to the kernel now (0 on epoll).
    pub(crate) fn receive_buffers_posted(&self) -> u16 {
        match self {
            Backend::Epoll(_) => 0,
            Backend::Uring(b) => b.receive_buffers_posted(),
        }
    }

    pub(crate) fn name(&self) -> &'static str {
        match self {
            Backend::Epoll(_) => "epoll",
            Backend::Uring(_) => "uring",
        }
    }

    #[inline]
    pub(crate) fn submit(&mut self, token: Token, op: Op) -> Option<i32> {
        match self {
            Backend::Epoll(b) => b.submit(token, op),
            Backend::Uring(b) => b.submit(token, op),
        }
    }

    #[inline]
    pub(crate) fn cancel(&mut self, token: Token, fd: RawFd, kind: OpKind) {
        match self {
            Backend::Epoll(b) => b.cancel(token, fd),
            Backend::Uring(b) => b.cancel(token, kind),
        }
    }

    /// Whether a stream write of `len` bytes is copied and submitted as a send that happens
    /// after `write` returns: on io_uring for every write made while the last wait brought
    /// several completions, which go to the kernel together in the next enter; on epoll for
    /// small writes of such a pass, which it sends together at the end of the pass (see
    /// `epoll.rs`). A large write on epoll is sent at once from the caller's memory, where a copy
    /// would cost more than the fairness is worth, and so is a write of a pass that had one
    /// event or none, on either backend: one reply has no other to wait for.
    #[inline]
    pub(crate) fn copies_send(&self, len: usize) -> bool {
        match self {
            Backend::Epoll(_) => len < EPOLL_COPIED_SEND_MAX && self.in_crowded_pass(),
            Backend::Uring(_) => self.in_crowded_pass(),
        }
    }

    /// Whether the last wait brought more than the backend's `CROWDED_PASS`: the pass's small
    /// replies are worth sending together (see `copies_send`).
    #[inline]
    fn in_crowded_pass(&self) -> bool {
        match self {
            Backend::Epoll(b) => b.pass_size() > epoll::CROWDED_PASS,
            Backend::Uring(b) => b.pass_size() > uring::CROWDED_PASS,
        }
    }

    /// Performs epoll's queued stream sends (see `epoll.rs`) and returns whether completions
    /// wait to be dispatched; false on io_uring, whose sends go with its next submission.
    #[inline]
    pub(crate) fn perform_sends(&mut self) -> bool {
        match self {
            Backend::Epoll(b) => b.perform_sends(),
            Backend::Uring(_) => false,
        }
    }

    /// Runs `send` (a send from a borrowed buffer: a stream write, a gathered write, a datagram)
    /// now, if this backend sends synchronously at this point: epoll always, io_uring when the
    /// last wait brought one completion or none (`uring::CROWDED_PASS`). `None`: submit a send
    /// operation with owned memory instead.
    #[inline]
    pub(crate) fn send_now<T>(&mut self, send: impl FnOnce() -> Result<T>) -> Option<Result<T>> {
        match self {
            Backend::Uring(_) if self.in_crowded_pass() => None,
            _ => Some(send()),
        }
    }

    /// Starts a file-system operation in the kernel; `false` if this backend cannot (epoll, or
    /// a kernel without the opcode), and the caller runs it on the thread pool instead. One
    /// completion follows an accepted operation.
    #[inline]
    pub(crate) fn submit_file(&mut self, token: Token, op: file_op::FileOp) -> bool {
        match self {
            Backend::Epoll(_) => false,
            Backend::Uring(b) => b.submit_file(token, op),
        }
    }

    /// io_uring only: a linked open → read → read (end-of-file probe) of a small file
    /// (see `UringBackend::submit_read_file_chain`); `None` where it cannot run.
    pub(crate) fn submit_read_file_chain(
        &mut self,
        token: Token,
        path: *const libc::c_char,
        buf: *mut u8,
        len: u32,
        probe: *mut u8,
    ) -> Option<u32> {
        match self {
            Backend::Epoll(_) => None,
            Backend::Uring(b) => b.submit_read_file_chain(token, path, buf, len, probe),
        }
    }

    pub(crate) fn release_direct_slot(&mut self, slot: u32) {
        if let Backend::Uring(b) = self {
            b.release_direct_slot(slot);
        }
    }

    /// See `UringBackend::close_direct_slot`; `false` on epoll, which never hands out a slot.
    pub(crate) fn close_direct_slot(&mut self, slot: u32, install: Option<Token>) -> bool {
        match self {
            Backend::Epoll(_) => false,
            Backend::Uring(b) => {
                b.close_direct_slot(slot, install);
                true
            }
        }
    }

    /// Changes the events of an armed multishot poll in place; `false` if this backend cannot,
    /// and the poll must be cancelled and submitted again.
    pub(crate) fn update_poll(&mut self, token: Token, fd: RawFd, events: u32) -> bool {
        match self {
            Backend::Epoll(b) => {
                b.update_poll(token, fd, events);
                true
            }
            Backend::Uring(_) => false,
        }
    }

    /// Operations are queued that only a kernel entry will start (for embedders' timeouts): on
    /// io_uring unsubmitted entries, on epoll interest changes not yet written to the kernel.
    pub(crate) fn has_unsubmitted(&self) -> bool {
        match self {
            Backend::Epoll(b) => b.has_unsubmitted(),
            Backend::Uring(b) => b.has_unsubmitted(),
        }
    }

    /// Waits up to `timeout_ms` (negative: no limit) for completions, submitting what is queued.
    #[inline]
    pub(crate) fn wait(&mut self, timeout_ms: i32) -> Result<()> {
        match self {
            Backend::Epoll(b) => b.wait(timeout_ms),
            Backend::Uring(b) => b.wait(timeout_ms),
        }
    }

    #[inline]
    pub(crate) fn next_completion(&mut self) -> Option<Completion> {
        match self {
            Backend::Epoll(b) => b.next_completion(),
            Backend::Uring(b) => b.next_completion(),
        }
    }

    /// Returns a buffer lent by a receive completion.
    #[inline]
    pub(crate) fn recycle(&mut self, c: &Completion) {
        match self {
            Backend::Epoll(b) => b.recycle(c),
            Backend::Uring(b) => b.recycle(c),
        }
    }

    /// Marks the receive buffer `buf_id` as held by a write (not recycled after its callback);
    /// false if this backend cannot (epoll reuses one buffer) or enough are held already that
    /// receives could run short.
    #[inline]
    pub(crate) fn lend_read_buffer(&mut self, buf_id: u32) -> bool {
        match self {
            Backend::Epoll(_) => false,
            Backend::Uring(b) => b.lend_read_buffer(buf_id),
        }
    }

    /// Gives back a buffer `lend_read_buffer` held, for reuse.
    pub(crate) fn return_read_buffer(&mut self, buf_id: u32) {
        if let Backend::Uring(b) = self {
            b.return_read_buffer(buf_id);
        }
    }

    /// How many events (epoll) or completions (io_uring) the last wait brought.
    #[inline]
    pub(crate) fn pass_size(&self) -> usize {
        match self {
            Backend::Epoll(b) => b.pass_size(),
            Backend::Uring(b) => b.pass_size(),
        }
    }

    /// Completions are ready without waiting (the loop must not block).
    #[inline]
    pub(crate) fn has_ready(&self) -> bool {
        match self {
            Backend::Epoll(b) => b.has_ready(),
            Backend::Uring(b) => b.has_ready(),
        }
    }

    /// Forgets `fd` before the loop closes it; every operation on it has finished.
    pub(crate) fn release_fd(&mut self, fd: RawFd, owned: bool) {
        match self {
            Backend::Epoll(b) => b.release_fd(fd, owned),
            // Nothing is registered per fd; every operation on it has completed.
            Backend::Uring(_) => {}
        }
    }

    pub(crate) fn counters(&self) -> Counters {
        match self {
            Backend::Epoll(b) => b.counters,
            Backend::Uring(b) => b.counters,
        }
    }

    /// Closes an fd the loop owns once every operation on it has finished: through the ring on
    /// io_uring (in the next enter, with nothing to wait for), directly on epoll.
    pub(crate) fn close_fd(&mut self, fd: RawFd) {
        match self {
            Backend::Epoll(_) => crate::sys::close(fd),
            Backend::Uring(b) => b.close_fd(fd),
        }
    }

    /// Outside `run`: has the kernel finish queued cancellations now, so the files they held
    /// are released before the caller closes them (io_uring; epoll holds nothing in flight).
    pub(crate) fn settle(&mut self) -> Result<()> {
        match self {
            Backend::Epoll(_) => Ok(()),
            Backend::Uring(b) => b.settle(),
        }
    }

    /// Hands the kernel what is queued, without waiting, if anything is: `run` returns, or a
    /// close callback runs, only after the fds closed through the ring are closed, and a loop
    /// polled through `backend_fd` by a foreign loop has its interests registered before that
    /// loop sleeps.
    /// `submit_queued` once the caller has handled the last run's events (see `Loop::flush`):
    /// io_uring's readiness polls are re-armed now too.
    pub(crate) fn flush(&mut self) -> Result<()> {
        if let Backend::Uring(b) = self {
            b.arm_polls_again();
        }
        self.submit_queued()
    }

    pub(crate) fn submit_queued(&mut self) -> Result<()> {
        match self {
            Backend::Epoll(b) => {
                b.perform_sends();
                b.sync_interest();
                Ok(())
            }
            Backend::Uring(b) => b.submit_queued(),
        }
    }

    /// Whether fds were queued for closing since the kernel last took the queue.
    pub(crate) fn closes_queued(&self) -> bool {
        match self {
            Backend::Epoll(_) => false,
            Backend::Uring(b) => b.closes_queued,
        }
    }

    /// An fd that polls readable when completions are pending (for embedding).
    pub(crate) fn fd(&mut self) -> Result<RawFd> {
        match self {
            Backend::Epoll(b) => Ok(b.fd()),
            Backend::Uring(b) => b.fd(),
        }
    }
}
