//! The io_uring backend: operations run in the kernel; one `io_uring_enter` per loop iteration
//! both submits what was queued and waits.
//!
//! What it uses, and why:
//! - Multishot accept and multishot receive into a provided-buffer ring ([`BufRing`]): one
//!   submission serves many completions, so a busy connection costs no submission per message
//!   and an idle one holds no buffer. Readiness polls are one-shot and re-armed, so they are
//!   level-triggered as on epoll ([`LevelPoll`]).
//! - SINGLE_ISSUER + DEFER_TASKRUN where the kernel has them (completions are produced when the
//!   loop asks, in batches), COOP_TASKRUN otherwise; a registered ring fd where possible.
//! - The wait's timeout travels in the enter call's extended argument: no timeout SQE, never one
//!   per timer.
//! - A full submission queue is submitted and refilled; completions the kernel had to hold back
//!   (CQ overflow) are flushed by entering again before the loop sleeps.
//! - A batch of file operations queued in one iteration is shared between this ring (run inline
//!   by the loop thread's enter) and an [`OffloadRing`] served by a kernel thread on another
//!   core (see `offload_turn`).

use super::buf_ring::BufRing;
use super::fd_reserve::FdReserve;
use super::file_op::FileOp;
use super::offload_ring::OffloadRing;
use super::{poll_events, watched_readiness, Completion, Op, OpKind, Token, NO_BUFFER};
use crate::error::{Error, Result};
use crate::sys::socket::RawAddr;
use io_uring::{cqueue, opcode, squeue, types, IoUring};
use std::collections::HashMap;
use std::os::fd::RawFd;

/// Operations' kinds ride in the top bits of user_data; cancellation SQEs use zero, which no
/// loop token can be (its handle-kind bits are never zero).
const KIND_SHIFT: u32 = 60;
const TOKEN_MASK: u64 = (1 << KIND_SHIFT) - 1;
const INTERNAL: u64 = 0;
/// Kind tag of the one-shot poll that stands in for an accept after EMFILE (see next_completion).
const ACCEPT_WAIT: u64 = 15;
/// Kind tag of the eventfd read that completes when the offload ring has completions.
const OFFLOAD_WAKE: u64 = 14;
/// A file operation goes to the offload ring while the kernel thread has at most this many times
/// as many entries unfinished as the loop has queued for itself since its last enter: the loop
/// thread also runs every callback, so the kernel thread takes the larger share.
const OFFLOAD_WEIGHT: usize = 2;
/// Marks a direct slot of the offload ring's table (the main ring's slots are below it).
const OFFLOAD_SLOT: u32 = 1 << 16;
/// The kernel's `IORING_ENTER_GETEVENTS` (io_uring.h); the crate keeps its constants private.
const IORING_ENTER_GETEVENTS: u32 = 1;
/// A pass with more completions than this sends its replies together, in the next enter. A lone
/// reply has nothing to wait for and goes out at once with its own system call, which saves the
/// loop an enter and an iteration (its send would complete inside that enter, and the
/// completion satisfy the wait).
pub(crate) const CROWDED_PASS: usize = 1;
const BUFFER_GROUP: u16 = 0;
/// The least size of an incremental ring's receive buffers: the largest message a loopback
/// socket hands over at once (its MTU), so that it arrives in one completion.
const INCREMENTAL_BUFFER_SIZE: u32 = 64 * 1024;
/// Datagrams get buffers of their own: a receive must hold a whole datagram (up to 64 KiB),
/// which the stream buffers (16 KiB by default) would truncate.
const DATAGRAM_GROUP: u16 = 1;
const DATAGRAM_BUFFERS: u16 = 32;
/// The largest UDP payload (65,535 less the UDP header) plus recvmsg's header and address.
const DATAGRAM_BUFFER_SIZE: u32 = 64 * 1024 + 256;
/// Marks a completion's `buf_id` as one of the datagram buffers.
const DATAGRAM_BUF: u32 = 1 << 16;
/// Direct-descriptor slots for linked whole-file reads: how many may be in flight at once.
const DIRECT_SLOTS: u32 = 1024;

/// Sizes of the ring and its receive buffers, and whether file batches may use an offload ring.
#[derive(Clone, Copy, Debug)]
pub(crate) struct UringConfig {
    pub(crate) entries: u32,
    pub(crate) buffers: u16,
    pub(crate) buffer_size: u32,
    pub(crate) file_offload: bool,
}

/// A readiness poll as the loop sees it: level-triggered, like epoll's and libuv's. The ring's
/// multishot poll is edge-triggered (it posts on wake-ups, so data a callback leaves unread is
/// never reported again), so each poll is a one-shot request, re-armed after it completes; the
/// kernel checks readiness when a poll is armed, so whatever is still ready completes at the
/// next enter. The re-arm waits (in `rearms`) until the loop next waits or is flushed: by then
/// the callbacks have run, whether inside `run` (C) or after it returns (Python, Node), and
/// an fd they drained is not reported again. It rides in the submission batch the loop makes
/// anyway: no system call.
#[derive(Clone, Copy)]
struct LevelPoll {
    fd: RawFd,
    /// The `ready::*` bits asked for.
    want: u32,
    /// The loop asked to cancel it: its next completion is the final one.
    cancelled: bool,
}

/// The second ring for file operations: made on the first batch that wants it.
enum Offload {
    /// Not allowed (configuration, one CPU) or the kernel refused it.
    Off,
    NotYet,
    On(Box<OffloadRing>),
}

pub(crate) struct UringBackend {
    // Dropped first: the kernel lets go of the buffer ring before its memory is unmapped.
    ring: IoUring,
    taskrun: Taskrun,
    /// Submission queue size the ring was made with (a remade ring gets the same).
    entries: u32,
    /// Entries pushed before the ring was first entered, kept so that a ring remade for a
    /// foreign loop (see `fd`) starts with them; `None` once the kernel has seen any of them.
    preamble: Option<Vec<squeue::Entry>>,
    buffers: BufRing,
    cqes: Vec<cqueue::Entry>,
    cursor: usize,
    /// SQEs pushed since the last enter.
    queued: usize,
    /// Some of them close fds.
    pub(crate) closes_queued: bool,
    wake: Option<(Token, RawFd)>,
    wake_cancelled: bool,
    wake_buf: Box<[u8; 8]>,
    /// Template for multishot recvmsg: room for any address, no control data.
    msghdr: Box<libc::msghdr>,
    /// The datagram buffer group, registered when the first datagram receive is armed (a loop
    /// without UDP never maps it). Dropped after `ring`, which holds its registration.
    datagram_buffers: Option<BufRing>,
    recv_addr: RawAddr,
    /// Listeners' fds by accept token, to drain them at the descriptor limit.
    listeners: HashMap<Token, RawFd>,
    /// Armed readiness polls by token (see [`LevelPoll`]).
    polls: HashMap<Token, LevelPoll>,
    /// Polls that completed and are re-armed at the next wait or flush (see [`LevelPoll`]).
    rearms: Vec<Token>,
    /// Completions made here rather than by the kernel: the final one of a poll cancelled
    /// while waiting to be re-armed.
    made_here: Vec<Completion>,
    reserve: FdReserve,
    /// File operations this kernel runs in the ring, as bits by `FileOp::index`.
    file_ops: u16,
    /// The kernel has multishot `read` (Linux 6.7) for pipes; older ones get a single-shot
    /// read with buffer selection, which the stream re-arms after each completion.
    multishot_read: bool,
    /// The size of each receive buffer (a single-shot read asks for this much).
    buffer_size: u32,
    /// Receive buffers held by writes that send from them (see `lend_read_buffer`).
    lent_read_buffers: u16,
    /// Free slots of the registered (direct) descriptor table that whole-file reads use to
    /// link open → read → close; empty if the kernel refused the table.
    direct_slots: Vec<u32>,
    offload: Offload,
    /// Entries of file operations queued in this ring since the last enter.
    inline_file_sqes: usize,
    /// For embedding: an eventfd registered with the ring, made by the first `fd()` call.
    embed_fd: RawFd,
    /// Completions the last wait brought (see [`CROWDED_PASS`]).
    pass_completions: usize,
    pub(crate) counters: super::Counters,
}

/// The opcode each file operation needs, at its `FileOp::index`.
const FILE_OPCODES: [u8; FileOp::COUNT] = [
    opcode::OpenAt::CODE,
    opcode::Close::CODE,
    opcode::Read::CODE,
    opcode::Write::CODE,
    opcode::Readv::CODE,
    opcode::Writev::CODE,
    opcode::Fsync::CODE,
    opcode::Statx::CODE,
    opcode::UnlinkAt::CODE,
    opcode::RenameAt::CODE,
    opcode::MkDirAt::CODE,
];

/// Which file operations `probe` says the kernel runs in the ring, as bits by `FileOp::index`.
fn probe_file_ops(probe: &io_uring::Probe) -> u16 {
    (0..FileOp::COUNT)
        .filter(|&i| probe.is_supported(FILE_OPCODES[i]))
        .fold(0, |bits, i| bits | 1 << i)
}

/// Multishot receive needs Linux 6.0; older kernels get epoll.
fn kernel_has_multishot_receive() -> bool {
    // SAFETY: uname fills a zeroed utsname.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut u) } != 0 {
        return false;
    }
    let release: String = u
        .release
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8 as char)
        .collect();
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|p| p.parse::<u32>().ok());
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) >= (6, 0)
}

/// Submits a no-op and waits for it. A seccomp profile may allow io_uring_setup and refuse
/// io_uring_enter (or a kernel may refuse rings at run time): a ring that cannot run must fail
/// here, where `Auto` can still choose epoll, not in the first `run`.
fn prove_ring_runs(ring: &mut IoUring) -> Result<()> {
    // SAFETY: a no-op carries no pointers.
    unsafe {
        ring.submission()
            .push(&opcode::Nop::new().build().user_data(INTERNAL))
    }
    .map_err(|_| Error::EBUSY)?;
    ring.submit_and_wait(1)?;
    ring.completion().for_each(drop);
    Ok(())
}

/// The offload ring only pays where its kernel thread gets a core of its own.
fn two_cpus() -> bool {
    std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2)
}

/// How the ring hands completions to the loop's thread.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Taskrun {
    /// DEFER_TASKRUN: completions are produced only inside the loop's own `io_uring_enter`, in
    /// batches. Only a thread that waits in that enter is told of them.
    Deferred,
    /// COOP_TASKRUN (or the kernel's default): completions are produced by task work that wakes
    /// the thread wherever it sleeps, so a foreign loop asleep on the registered eventfd hears
    /// of every one.
    Wakes,
}

fn build_ring(entries: u32, taskrun: Taskrun) -> std::io::Result<(IoUring, Taskrun)> {
    let cq = entries.saturating_mul(4).max(entries);
    let einval = |r: &std::io::Result<IoUring>| matches!(r, Err(e) if e.raw_os_error() == Some(libc::EINVAL));
    if taskrun == Taskrun::Deferred {
        let fast = IoUring::builder()
            .setup_cqsize(cq)
            .setup_single_issuer()
            .setup_defer_taskrun()
            .setup_submit_all()
            .build(entries);
        if !einval(&fast) {
            return fast.map(|r| (r, Taskrun::Deferred));
        }
    }
    let mut ring = IoUring::builder()
        .setup_cqsize(cq)
        .setup_single_issuer()
        .setup_coop_taskrun()
        .setup_submit_all()
        .build(entries);
    if einval(&ring) {
        ring = IoUring::builder()
            .setup_cqsize(cq)
            .setup_coop_taskrun()
            .build(entries);
    }
    if einval(&ring) {
        ring = IoUring::builder().setup_cqsize(cq).build(entries);
    }
    ring.map(|r| (r, Taskrun::Wakes))
}

/// Registers with `ring` what the loop's operations rely on: the ring fd (optional, saves a
/// file lookup per enter), the stream receive buffers, the datagram buffers if they exist, and
/// the direct-descriptor table if `direct_wanted` (optional: returns whether it was taken).
fn register_resources(
    ring: &IoUring,
    buffers: &BufRing,
    datagram_buffers: Option<&BufRing>,
    direct_wanted: bool,
) -> Result<bool> {
    let _ = ring.submitter().register_ring_fd();
    register_buf_ring(ring, buffers, BUFFER_GROUP)?;
    if let Some(b) = datagram_buffers {
        register_buf_ring(ring, b, DATAGRAM_GROUP)?;
    }
    Ok(direct_wanted && ring.submitter().register_files_sparse(DIRECT_SLOTS).is_ok())
}

fn register_buf_ring(ring: &IoUring, buffers: &BufRing, group: u16) -> Result<()> {
    // SAFETY: every BufRing a ring is given lives in the backend beside the ring, which is
    // dropped before it (field order), so the kernel lets go of the memory first.
    unsafe {
        ring.submitter().register_buf_ring_with_flags(
            buffers.ring_addr(),
            buffers.count(),
            group,
            buffers.registration_flags(),
        )
    }?;
    Ok(())
}

impl UringBackend {
    pub(crate) fn new(config: UringConfig) -> Result<UringBackend> {
        if !kernel_has_multishot_receive() {
            return Err(Error::ENOSYS);
        }
        let entries = config.entries.clamp(4, 32768);
        let (mut ring, taskrun) = build_ring(entries, Taskrun::Deferred)?;
        prove_ring_runs(&mut ring)?;
        let mut probe = io_uring::Probe::new();
        ring.submitter().register_probe(&mut probe)?;
        let needed = [
            opcode::AcceptMulti::CODE,
            opcode::RecvMulti::CODE,
            opcode::RecvMsgMulti::CODE,
            opcode::Send::CODE,
            opcode::PollAdd::CODE,
            opcode::AsyncCancel::CODE,
            opcode::Connect::CODE,
            opcode::Shutdown::CODE,
            opcode::Read::CODE,
            opcode::Close::CODE,
        ];
        if !needed.iter().all(|&op| probe.is_supported(op)) {
            return Err(Error::ENOSYS);
        }
        let count = config.buffers.clamp(1, 32768).next_power_of_two();
        let size = config.buffer_size.max(64);
        let plain = || BufRing::new(count, size);
        let mut buffers = if std::env::var_os("EVLOOP_NO_INCREMENTAL_BUFFERS").is_none() {
            // The same bytes in buffers of at least 64 KiB, filled a piece at a time.
            let big = size.max(INCREMENTAL_BUFFER_SIZE);
            let total = count as u64 * size as u64;
            let big_count = (total / big as u64).clamp(8, 32768).next_power_of_two() as u16;
            BufRing::new_incremental(big_count, big)?
        } else {
            plain()?
        };
        // Optional: linked whole-file reads need these opcodes and a direct-descriptor table.
        let chain = [
            opcode::Statx::CODE,
            opcode::OpenAt::CODE,
            opcode::Read::CODE,
            opcode::Close::CODE,
            opcode::FixedFdInstall::CODE,
        ];
        let direct_wanted = chain.iter().all(|&op| probe.is_supported(op));
        let direct = match register_resources(&ring, &buffers, None, direct_wanted) {
            // A kernel before 6.12 refuses incremental rings: whole buffers, then.
            Err(_) if buffers.is_incremental() => {
                buffers = plain()?;
                register_resources(&ring, &buffers, None, direct_wanted)?
            }
            other => other?,
        };
        let buffer_size = buffers.buffer_size();
        let direct_slots = if direct {
            (0..DIRECT_SLOTS).rev().collect()
        } else {
            Vec::new()
        };
        // SAFETY: an all-zero msghdr is valid; only the lengths matter for multishot recvmsg.
        let mut msghdr: Box<libc::msghdr> = Box::new(unsafe { std::mem::zeroed() });
        msghdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as u32;
        Ok(UringBackend {
            ring,
            taskrun,
            entries,
            preamble: Some(Vec::new()),
            buffers,
            cqes: Vec::with_capacity(1024),
            cursor: 0,
            queued: 0,
            closes_queued: false,
            wake: None,
            wake_cancelled: false,
            wake_buf: Box::new([0; 8]),
            msghdr,
            datagram_buffers: None,
            recv_addr: RawAddr::empty(),
            listeners: HashMap::new(),
            polls: HashMap::new(),
            rearms: Vec::new(),
            made_here: Vec::new(),
            reserve: FdReserve::empty(),
            file_ops: probe_file_ops(&probe),
            multishot_read: probe.is_supported(opcode::ReadMulti::CODE)
                && std::env::var_os("EVLOOP_NO_MULTISHOT_READ").is_none(),
            buffer_size,
            lent_read_buffers: 0,
            direct_slots,
            offload: if config.file_offload && two_cpus() {
                Offload::NotYet
            } else {
                Offload::Off
            },
            inline_file_sqes: 0,
            embed_fd: -1,
            pass_completions: 0,
            counters: super::Counters::default(),
        })
    }

    /// The offload ring, if the file operation being queued (`sqes` entries) should go there.
    /// The first of an iteration's file operations always runs inline, so a lone operation pays
    /// no hand-off; the rest of a batch goes to whichever side has less unfinished work (see
    /// [`OFFLOAD_WEIGHT`]). The ring itself is made for the first batch that could use it.
    fn offload_turn(&mut self, sqes: usize) -> Option<&mut OffloadRing> {
        // A loop driven by a foreign loop keeps its file operations on its own ring: the
        // offload ring's completions reach it through a read armed in this ring, and under a
        // foreign loop asleep on `fd()` that chain lost wake-ups (found by the Node addon on
        // kernel 6.18; core/tests/contracts.rs, file_batches_finish_under_a_foreign_loop).
        if self.inline_file_sqes > 0 && self.embed_fd < 0 {
            if let Offload::NotYet = self.offload {
                self.offload = match OffloadRing::new(DIRECT_SLOTS) {
                    Ok(r) => {
                        let mut r = Box::new(r);
                        let wake = r.wake_read().user_data(OFFLOAD_WAKE << KIND_SHIFT);
                        self.push(wake);
                        Offload::On(r)
                    }
                    Err(_) => Offload::Off,
                };
            }
            if let Offload::On(r) = &mut self.offload {
                if r.backlog() <= OFFLOAD_WEIGHT * self.inline_file_sqes && r.has_room(sqes) {
                    return Some(r);
                }
            }
        }
        self.inline_file_sqes += sqes;
        None
    }

    /// The fd a foreign loop polls to learn that this one has work: an eventfd the kernel
    /// signals whenever it posts completions. Made on first use, so loops that are not embedded
    /// pay nothing for the signalling; each `wait` resets it.
    ///
    /// A DEFER_TASKRUN ring cannot serve a foreign loop. Its work is queued for the loop's own
    /// enter, and only a thread waiting in that enter is woken: not pollers of the ring fd, and
    /// the registered eventfd only unreliably (kernel 6.18: when the kernel queues the work from
    /// a context that may not signal an eventfd it defers the signal by an RCU grace period,
    /// 4-24 ms here, so a one-connection echo under Node had a 16 ms p99). So the first call
    /// remakes the ring with COOP_TASKRUN, whose completions are posted by task work that wakes
    /// the thread wherever it sleeps, and the CQE posting signals the eventfd at once. That can
    /// only be done before the kernel has seen any operation of the ring (the entries queued
    /// so far move to the new ring); later it fails with `EBUSY`: an embedder asks for the fd
    /// before the loop's first run.
    pub(crate) fn fd(&mut self) -> Result<RawFd> {
        if self.embed_fd >= 0 {
            return Ok(self.embed_fd);
        }
        if self.taskrun == Taskrun::Deferred {
            self.remake_ring_for_foreign_loop()?;
        }
        let fd = crate::sys::eventfd()?;
        if let Err(e) = self.ring.submitter().register_eventfd(fd) {
            crate::sys::close(fd);
            return Err(e.into());
        }
        self.embed_fd = fd;
        Ok(fd)
    }

    /// Replaces the DEFER_TASKRUN ring by one whose completions wake a foreign loop (see `fd`).
    fn remake_ring_for_foreign_loop(&mut self) -> Result<()> {
        let Some(preamble) = self.preamble.as_ref() else {
            return Err(Error::EBUSY);
        };
        let (mut ring, taskrun) = build_ring(self.entries, Taskrun::Wakes)?;
        prove_ring_runs(&mut ring)?;
        let direct = register_resources(
            &ring,
            &self.buffers,
            self.datagram_buffers.as_ref(),
            !self.direct_slots.is_empty(),
        )?;
        if !direct {
            self.direct_slots.clear();
        }
        for entry in preamble {
            // SAFETY: the entries were queued on the old ring under the same contract as every
            // push (their pointers stay valid until their completions), and none reached the
            // kernel there.
            unsafe { ring.submission().push(entry) }.map_err(|_| Error::EBUSY)?;
        }
        // The old ring goes with the entries the kernel never saw, and its registrations.
        self.ring = ring;
        self.taskrun = taskrun;
        Ok(())
    }

    fn push(&mut self, entry: squeue::Entry) {
        loop {
            // SAFETY: every pointer an entry carries (buffers, addresses, the msghdr template,
            // the wake buffer) stays valid until the operation's final completion, as the
            // backend contract requires of submitters and as this type keeps for its own.
            if unsafe { self.ring.submission().push(&entry) }.is_ok() {
                self.queued += 1;
                if let Some(p) = self.preamble.as_mut() {
                    p.push(entry);
                }
                return;
            }
            // Full: hand the queue to the kernel and try again. EBUSY means completions must be
            // reaped first.
            self.preamble = None;
            match self.ring.submit() {
                Ok(_) => {
                    self.queued = 0;
                    self.closes_queued = false;
                }
                Err(_) => self.reap(),
            }
        }
    }

    pub(crate) fn submit(&mut self, token: Token, op: Op) -> Option<i32> {
        debug_assert_eq!(token >> KIND_SHIFT, 0);
        let ud = token | (op.kind() as u64) << KIND_SHIFT;
        let entry = match op {
            Op::Accept { fd } => {
                self.listeners.insert(token, fd);
                self.reserve.ensure();
                opcode::AcceptMulti::new(types::Fd(fd))
                    .flags(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC)
                    .build()
            }
            Op::Recv { fd } => opcode::RecvMulti::new(types::Fd(fd), BUFFER_GROUP).build(),
            // The position -1 reads at the file's own position, which a pipe ignores.
            Op::Read { fd } if self.multishot_read => opcode::ReadMulti::new(types::Fd(fd), 0, BUFFER_GROUP)
                .offset(u64::MAX)
                .build(),
            Op::Read { fd } => opcode::Read::new(types::Fd(fd), std::ptr::null_mut(), self.buffer_size)
                .offset(u64::MAX)
                .buf_group(BUFFER_GROUP)
                .build()
                .flags(squeue::Flags::BUFFER_SELECT),
            Op::RecvFrom { fd } => {
                if let Err(e) = self.register_datagram_buffers() {
                    return Some(e.code());
                }
                opcode::RecvMsgMulti::new(types::Fd(fd), &*self.msghdr, DATAGRAM_GROUP).build()
            }
            Op::Poll { fd, events } => {
                let arm = LevelPoll {
                    fd,
                    want: events,
                    cancelled: false,
                };
                self.polls.insert(token, arm);
                opcode::PollAdd::new(types::Fd(fd), poll_events(events)).build()
            }
            Op::Wake { fd } => {
                self.wake = Some((token, fd));
                self.wake_cancelled = false;
                opcode::Read::new(types::Fd(fd), self.wake_buf.as_mut_ptr(), 8).build()
            }
            Op::Send { fd, ptr, len } => {
                opcode::Send::new(types::Fd(fd), ptr, len.min(u32::MAX as usize) as u32)
                    .flags(libc::MSG_NOSIGNAL)
                    .build()
            }
            Op::Write { fd, ptr, len } => {
                opcode::Write::new(types::Fd(fd), ptr, len.min(u32::MAX as usize) as u32)
                    .offset(u64::MAX)
                    .build()
            }
            Op::SendTo { fd, ptr, len, addr } => {
                // SAFETY: the address stays valid until completion (contract).
                let a = unsafe { &*addr };
                opcode::Send::new(types::Fd(fd), ptr, len.min(u32::MAX as usize) as u32)
                    .flags(libc::MSG_NOSIGNAL)
                    .dest_addr(a.as_ptr())
                    .dest_addr_len(a.len)
                    .build()
            }
            Op::Connect { fd, addr } => {
                // SAFETY: as above.
                let a = unsafe { &*addr };
                opcode::Connect::new(types::Fd(fd), a.as_ptr(), a.len).build()
            }
            Op::Shutdown { fd } => opcode::Shutdown::new(types::Fd(fd), libc::SHUT_WR).build(),
        };
        self.push(entry.user_data(ud));
        None
    }

    /// Queues a file operation; `false` if this kernel lacks its opcode.
    pub(crate) fn submit_file(&mut self, token: Token, op: FileOp) -> bool {
        debug_assert_eq!(token >> KIND_SHIFT, 0);
        if self.file_ops & 1 << op.index() == 0 {
            return false;
        }
        let cwd = types::Fd(libc::AT_FDCWD);
        let entry = match op {
            FileOp::Open { path, flags, mode } => {
                opcode::OpenAt::new(cwd, path).flags(flags).mode(mode).build()
            }
            FileOp::Close { fd } => opcode::Close::new(types::Fd(fd)).build(),
            FileOp::Read { fd, ptr, len, offset } => {
                opcode::Read::new(types::Fd(fd), ptr, len).offset(offset).build()
            }
            FileOp::Write { fd, ptr, len, offset } => {
                opcode::Write::new(types::Fd(fd), ptr, len).offset(offset).build()
            }
            FileOp::Readv {
                fd,
                iov,
                count,
                offset,
            } => opcode::Readv::new(types::Fd(fd), iov, count)
                .offset(offset)
                .build(),
            FileOp::Writev {
                fd,
                iov,
                count,
                offset,
            } => opcode::Writev::new(types::Fd(fd), iov, count)
                .offset(offset)
                .build(),
            FileOp::Fsync { fd, data_only } => {
                let flags = if data_only {
                    types::FsyncFlags::DATASYNC
                } else {
                    types::FsyncFlags::empty()
                };
                opcode::Fsync::new(types::Fd(fd)).flags(flags).build()
            }
            FileOp::Statx {
                dirfd,
                path,
                flags,
                buf,
            } => opcode::Statx::new(types::Fd(dirfd), path, buf.cast())
                .flags(flags)
                .mask(libc::STATX_BASIC_STATS | libc::STATX_BTIME)
                .build(),
            FileOp::Unlink { path, flags } => opcode::UnlinkAt::new(cwd, path).flags(flags).build(),
            FileOp::Rename { from, to } => opcode::RenameAt::new(cwd, from, cwd, to).build(),
            FileOp::Mkdir { path, mode } => opcode::MkDirAt::new(cwd, path).mode(mode).build(),
        };
        let entry = entry.user_data(token | (OpKind::File as u64) << KIND_SHIFT);
        let offloaded = self
            .offload_turn(1)
            .is_some_and(|r| r.push(std::slice::from_ref(&entry), 1));
        if offloaded {
            self.counters.offloaded_file_ops += 1;
        } else {
            self.push(entry);
        }
        true
    }

    /// Queues open(path) into a direct slot → read(slot, `buf`, `len`) → read(slot, `probe`, 1)
    /// as one linked chain: a whole small file in one round trip, with no entry in the
    /// process's descriptor table. Both reads use the file position, so the probe reads where
    /// the first read stopped and returns 0 exactly at end of file. The steps complete with
    /// `token | step << 32` (step 0..3; the open only if it fails). Returns the slot, which
    /// after the probe's completion goes back through [`UringBackend::release_direct_slot`]
    /// (the open failed) or [`UringBackend::close_direct_slot`]; `None` if the chain cannot run
    /// here.
    pub(crate) fn submit_read_file_chain(
        &mut self,
        token: Token,
        path: *const libc::c_char,
        buf: *mut u8,
        len: u32,
        probe: *mut u8,
    ) -> Option<u32> {
        if let Some(r) = self.offload_turn(CHAIN_LEN) {
            if let Some(slot) = r.take_slot() {
                let chain = read_file_chain(token, slot, path, buf, len, probe);
                if chain.is_some_and(|c| r.push(&c, CHAIN_COMPLETIONS)) {
                    self.counters.offloaded_file_ops += CHAIN_LEN as u64;
                    return Some(slot | OFFLOAD_SLOT);
                }
                r.release_slot(slot);
            }
        }
        let slot = self.direct_slots.pop()?;
        // A chain must not straddle two submissions (the kernel ends a link at a batch's end).
        if self.sq_room() < CHAIN_LEN {
            match self.ring.submit() {
                Ok(_) => self.queued = 0,
                Err(_) => self.reap(),
            }
            if self.sq_room() < CHAIN_LEN {
                self.direct_slots.push(slot);
                return None;
            }
        }
        let Some(chain) = read_file_chain(token, slot, path, buf, len, probe) else {
            self.direct_slots.push(slot);
            return None;
        };
        for e in chain {
            self.push(e);
        }
        Some(slot)
    }

    fn sq_room(&mut self) -> usize {
        let sq = self.ring.submission();
        sq.capacity() - sq.len()
    }

    /// Returns a direct slot that holds no file (its chain's open failed).
    pub(crate) fn release_direct_slot(&mut self, slot: u32) {
        if slot & OFFLOAD_SLOT == 0 {
            self.direct_slots.push(slot);
        } else if let Offload::On(r) = &mut self.offload {
            r.release_slot(slot & !OFFLOAD_SLOT);
        }
    }

    /// Closes the file in a direct slot and frees the slot, first installing it as an ordinary
    /// close-on-exec descriptor that completes with `install` if given (a file the chain did not
    /// finish goes on through it, without opening its path again). The close posts nothing
    /// unless it fails (and a failure leaves nothing to do); the slot is free as soon as the
    /// close is in the queue, since the ring issues entries in order and an install and a
    /// fixed-file close both run inline, so neither can be overtaken.
    pub(crate) fn close_direct_slot(&mut self, slot: u32, install: Option<Token>) {
        let install = install.map(|token| token | (OpKind::File as u64) << KIND_SHIFT);
        if slot & OFFLOAD_SLOT == 0 {
            if let Some(ud) = install {
                self.push(install_slot_entry(slot).user_data(ud));
            }
            self.push(close_slot_entry(slot));
            self.direct_slots.push(slot);
        } else if let Offload::On(r) = &mut self.offload {
            r.close_slot(slot & !OFFLOAD_SLOT, install);
        }
    }

    pub(crate) fn cancel(&mut self, token: Token, kind: OpKind) {
        if kind == OpKind::Wake {
            self.wake_cancelled = true;
        }
        if kind == OpKind::Poll {
            if let Some(p) = self.polls.get_mut(&token) {
                p.cancelled = true;
            }
        }
        if kind == OpKind::Accept {
            // The accept may be waiting as a readiness poll (after EMFILE): cancel that too;
            // whichever is live ends with the final completion.
            self.push(
                opcode::AsyncCancel::new(token | ACCEPT_WAIT << KIND_SHIFT)
                    .build()
                    .user_data(INTERNAL),
            );
        }
        let ud = token | (kind as u64) << KIND_SHIFT;
        self.push(opcode::AsyncCancel::new(ud).build().user_data(INTERNAL));
    }

    pub(crate) fn close_fd(&mut self, fd: RawFd) {
        self.push(opcode::Close::new(types::Fd(fd)).build().user_data(INTERNAL));
        self.closes_queued = true;
    }

    /// Queues the re-arms of the polls that completed since the loop last waited (see
    /// [`LevelPoll`]); a poll cancelled meanwhile is not in the kernel, so its final completion
    /// is made here.
    pub(crate) fn arm_polls_again(&mut self) {
        for token in std::mem::take(&mut self.rearms) {
            match self.polls.get(&token).copied() {
                Some(p) if !p.cancelled => {
                    let again = opcode::PollAdd::new(types::Fd(p.fd), poll_events(p.want)).build();
                    self.push(again.user_data(token | (OpKind::Poll as u64) << KIND_SHIFT));
                }
                _ => {
                    self.polls.remove(&token);
                    self.made_here
                        .push(Completion::new(token, -libc::ECANCELED, false));
                }
            }
        }
    }

    /// Submits what is queued without waiting (a close runs inline as it is submitted).
    pub(crate) fn submit_queued(&mut self) -> Result<()> {
        if self.queued > 0 {
            self.enter_without_waiting(0)?;
        }
        if let Offload::On(r) = &mut self.offload {
            if r.needs_kick() {
                r.kick();
            }
        }
        self.closes_queued = false;
        Ok(())
    }

    /// Outside `run`: submits what is queued and lets the kernel finish it now. A cancelled
    /// poll, whose completion DEFER_TASKRUN would otherwise hold back until the next enter with
    /// GETEVENTS, drops its hold on the file here, so the caller may close the fd next. The
    /// completions are dispatched by the next run.
    pub(crate) fn settle(&mut self) -> Result<()> {
        self.enter_without_waiting(IORING_ENTER_GETEVENTS)?;
        self.closes_queued = false;
        self.reap();
        Ok(())
    }

    /// Submits every queued entry with `flags`, waiting for nothing; retried on EINTR, and on
    /// EBUSY (a full CQ) after making room.
    fn enter_without_waiting(&mut self, flags: u32) -> Result<()> {
        self.preamble = None;
        loop {
            let to_submit = self.ring.submission().len() as u32;
            // SAFETY: a plain enter: no argument struct (size 0, NULL pointer), no wait
            // (min_complete 0); the SQEs it submits were fully written when queued.
            let r = unsafe {
                self.ring
                    .submitter()
                    .enter::<libc::sigset_t>(to_submit, 0, flags, None)
            };
            match r {
                Ok(_) => break,
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => self.reap(),
                Err(e) => return Err(e.into()),
            }
        }
        self.queued = 0;
        Ok(())
    }

    /// Moves completions from the kernel's queue into ours, freeing CQ space at once.
    fn reap(&mut self) {
        if self.cursor == self.cqes.len() {
            self.cqes.clear();
            self.cursor = 0;
        }
        self.cqes.extend(self.ring.completion());
        if let Offload::On(r) = &mut self.offload {
            r.reap_into(&mut self.cqes);
        }
    }

    pub(crate) fn has_ready(&self) -> bool {
        self.cursor < self.cqes.len() || !self.made_here.is_empty()
    }

    pub(crate) fn has_unsubmitted(&self) -> bool {
        self.queued > 0
            || !self.rearms.is_empty()
            || matches!(&self.offload, Offload::On(r) if r.needs_kick() || r.has_completions_now())
    }

    pub(crate) fn wait(&mut self, timeout_ms: i32) -> Result<()> {
        self.arm_polls_again();
        self.buffers.top_up();
        if let Some(b) = self.datagram_buffers.as_mut() {
            b.top_up();
        }
        let mut timeout_ms = if self.has_ready() { 0 } else { timeout_ms };
        if self.embed_fd >= 0 {
            // Reset the embedding eventfd before entering: whatever is posted from here on
            // signals it again, so the foreign loop misses nothing (at worst it wakes once
            // for completions this enter already took).
            let _ = crate::sys::read(self.embed_fd, &mut [0u8; 8]);
        }
        self.inline_file_sqes = 0;
        if let Offload::On(r) = &mut self.offload {
            r.kick();
            if r.has_completions() {
                timeout_ms = 0;
            } else if r.closes_waiting() && !(0..=1).contains(&timeout_ms) {
                // Closes that found its queue full may post nothing that would wake this wait.
                timeout_ms = 1;
            }
        }
        self.preamble = None;
        let to_submit = self.ring.submission().len() as u32;
        let submitter = self.ring.submitter();
        let res = if timeout_ms == 0 && self.embed_fd >= 0 {
            // A foreign loop's ring (`Taskrun::Wakes`): task work posts its completions on the
            // way out of any system call, the eventfd read above included, so only queued
            // entries need an enter.
            if to_submit > 0 {
                submitter.submit()
            } else {
                Ok(0)
            }
        } else if timeout_ms == 0 {
            // With DEFER_TASKRUN completions exist only after an enter with GETEVENTS, so even a
            // zero timeout enters; it waits for none (min_complete 0) rather than for one with
            // a zero timespec, which would arm a kernel timer that fires at once: on a VM a
            // timer interrupt per call (aiohttp at one connection: 1.6x uvloop's CPU per request,
            // half of it there).
            // SAFETY: a plain enter: no argument struct (size 0, NULL pointer), no wait; the
            // SQEs it submits were fully written when queued.
            unsafe { submitter.enter::<libc::sigset_t>(to_submit, 0, IORING_ENTER_GETEVENTS, None) }
        } else if timeout_ms < 0 {
            submitter.submit_and_wait(1)
        } else {
            let ms = timeout_ms as u64;
            let ts = types::Timespec::new()
                .sec(ms / 1000)
                .nsec(((ms % 1000) * 1_000_000) as u32);
            submitter.submit_with_args(1, &types::SubmitArgs::new().timespec(&ts))
        };
        self.queued = 0;
        self.closes_queued = false;
        self.counters.waits += 1;
        match res {
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ETIME | libc::EINTR | libc::EBUSY | libc::EAGAIN)
                ) => {}
            Err(e) => return Err(e.into()),
        }
        self.reap();
        // Completions the kernel held back while the CQ was full: flush them now, so none waits
        // for the next event to surface.
        let mut rounds = 0;
        while self.ring.submission().cq_overflow() && rounds < 64 {
            rounds += 1;
            self.counters.overflow_flushes += 1;
            let _ = self.ring.submitter().submit_and_wait(0);
            self.reap();
        }
        self.pass_completions = self.cqes.len() - self.cursor;
        Ok(())
    }

    /// Completions the last wait brought (those dispatched since included).
    #[inline]
    pub(crate) fn pass_size(&self) -> usize {
        self.pass_completions
    }

    pub(crate) fn recycle(&mut self, c: &Completion) {
        match c.buf_id {
            NO_BUFFER => {}
            id if id & DATAGRAM_BUF != 0 => self.recycle_datagram_buffer(id as u16),
            id => self.buffers.release(id as u16),
        }
    }

    pub(crate) fn receive_buffers_incremental(&self) -> bool {
        self.buffers.is_incremental()
    }

    pub(crate) fn receive_buffers_posted(&self) -> u16 {
        self.buffers.posted()
    }

    pub(crate) fn lend_read_buffer(&mut self, buf_id: u32) -> bool {
        // Stream buffers only (datagram ones are few and large), and at most half of them: the
        // rest keep multishot receives supplied while sends from the lent ones wait.
        if buf_id >= DATAGRAM_BUF || self.lent_read_buffers >= self.buffers.count() / 2 {
            return false;
        }
        self.lent_read_buffers += 1;
        self.counters.read_buffer_loans += 1;
        true
    }

    pub(crate) fn return_read_buffer(&mut self, buf_id: u32) {
        debug_assert!(buf_id < DATAGRAM_BUF && self.lent_read_buffers > 0);
        self.lent_read_buffers -= 1;
        self.buffers.release(buf_id as u16);
    }

    fn recycle_datagram_buffer(&mut self, bid: u16) {
        if let Some(b) = self.datagram_buffers.as_mut() {
            b.recycle(bid);
        }
    }

    fn register_datagram_buffers(&mut self) -> Result<()> {
        if self.datagram_buffers.is_some() {
            return Ok(());
        }
        let buffers = BufRing::new(DATAGRAM_BUFFERS, DATAGRAM_BUFFER_SIZE)?;
        register_buf_ring(&self.ring, &buffers, DATAGRAM_GROUP)?;
        self.datagram_buffers = Some(buffers);
        Ok(())
    }

    pub(crate) fn next_completion(&mut self) -> Option<Completion> {
        if let Some(c) = self.made_here.pop() {
            return Some(c);
        }
        loop {
            let cqe = self.cqes.get(self.cursor)?;
            let (ud, res, flags) = (cqe.user_data(), cqe.result(), cqe.flags());
            self.cursor += 1;
            if ud == INTERNAL {
                continue;
            }
            let token = ud & TOKEN_MASK;

            let more = cqueue::more(flags);
            if res == -libc::ENOBUFS {
                self.counters.buffer_exhaustions += 1;
                match (ud >> KIND_SHIFT) as u8 {
                    k if k == OpKind::Recv as u8 => self.buffers.note_ran_dry(),
                    k if k == OpKind::RecvFrom as u8 => {
                        if let Some(b) = self.datagram_buffers.as_mut() {
                            b.note_ran_dry();
                        }
                    }
                    _ => {}
                }
            }
            let mut c = Completion::new(token, res, more);
            let kind = (ud >> KIND_SHIFT) as u8;
            match kind {
                k if k == OpKind::Recv as u8 => {
                    if let Some(bid) = cqueue::buffer_select(flags) {
                        if res > 0 {
                            c.data = self.buffers.take(bid, res as u32, cqueue::buffer_more(flags));
                            c.buf_id = bid as u32;
                        } else if !self.buffers.is_incremental() {
                            self.buffers.recycle(bid);
                        }
                        // An end or an error takes nothing from an incremental buffer, which
                        // stays the kernel's (whatever the flags say: kernels before the fix
                        // for liburing issue 1553 reported it consumed without moving past it).
                    }
                }
                k if k == OpKind::RecvFrom as u8 => {
                    if let Some(bid) = cqueue::buffer_select(flags) {
                        if !self.parse_datagram(&mut c, bid) {
                            self.recycle_datagram_buffer(bid);
                        }
                    }
                }
                k if k == OpKind::Accept as u8 => {
                    if res == -libc::EMFILE || res == -libc::ENFILE {
                        // io_uring's accept takes a descriptor before it looks at the socket,
                        // so at the limit a re-armed accept fails at once, connection or not.
                        // Drop what is queued, then wait for readability, as epoll does, and
                        // accept again only when a connection is there. To the loop the accept
                        // goes on (`more`).
                        if let Some(&fd) = self.listeners.get(&token) {
                            self.reserve.drop_pending_connections(fd);
                            let wait = opcode::PollAdd::new(types::Fd(fd), libc::POLLIN as u32).build();
                            self.push(wait.user_data(token | ACCEPT_WAIT << KIND_SHIFT));
                            c.more = true;
                        }
                    }
                    if !c.more {
                        self.listeners.remove(&token);
                    }
                }
                k if k as u64 == ACCEPT_WAIT => {
                    let listener = self.listeners.get(&token).copied();
                    match listener {
                        Some(fd) if res >= 0 => {
                            let accept = opcode::AcceptMulti::new(types::Fd(fd))
                                .flags(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC)
                                .build();
                            self.push(accept.user_data(token | (OpKind::Accept as u64) << KIND_SHIFT));
                            continue; // internal: nothing for the loop yet
                        }
                        _ => {
                            // Cancelled (listener closing) or failed: the accept's final completion.
                            self.listeners.remove(&token);
                            c.more = false;
                            c.res = if res >= 0 { -libc::ECANCELED } else { res };
                        }
                    }
                }
                k if k == OpKind::Poll as u8 => {
                    let want = match self.polls.get(&token).copied() {
                        Some(p) if res >= 0 && !p.cancelled => {
                            self.rearms.push(token);
                            c.more = true;
                            p.want
                        }
                        p => {
                            self.polls.remove(&token);
                            c.more = false;
                            p.map_or(0, |p| p.want)
                        }
                    };
                    if res >= 0 {
                        c.res = watched_readiness(res as u32, want) as i32;
                        if c.res == 0 && c.more {
                            continue; // nothing the watcher asked for; re-armed
                        }
                    }
                }
                k if k as u64 == OFFLOAD_WAKE => {
                    // The offload ring posted completions (reaped with this ring's): listen again.
                    if let Offload::On(r) = &mut self.offload {
                        let wake = r.wake_read().user_data(OFFLOAD_WAKE << KIND_SHIFT);
                        self.push(wake);
                    }
                    continue;
                }

                k if k == OpKind::Wake as u8 => {
                    if res >= 0 && !self.wake_cancelled {
                        // Re-arm the eventfd read; to the loop it is one multishot operation.
                        if let Some((t, fd)) = self.wake {
                            let e = opcode::Read::new(types::Fd(fd), self.wake_buf.as_mut_ptr(), 8).build();
                            self.push(e.user_data(t | (OpKind::Wake as u64) << KIND_SHIFT));
                        }
                        c.more = true;
                        c.res = 0;
                    } else {
                        c.more = false;
                        self.wake = None;
                    }
                }
                _ => {}
            }
            return Some(c);
        }
    }

    /// Points a recvmsg completion at its payload and source address; false if the buffer
    /// holds no usable datagram.
    fn parse_datagram(&mut self, c: &mut Completion, bid: u16) -> bool {
        if c.res <= 0 {
            return false;
        }
        let Some(buffers) = self.datagram_buffers.as_ref() else {
            return false;
        };
        // SAFETY: the kernel wrote `res` bytes into buffer `bid`, which it lent to us until
        // we recycle it.
        let buf = unsafe { std::slice::from_raw_parts(buffers.buffer(bid), c.res as usize) };
        let Ok(out) = types::RecvMsgOut::parse(buf, &self.msghdr) else {
            return false;
        };
        let name = out.name_data();
        let n = name.len().min(std::mem::size_of::<libc::sockaddr_storage>());
        self.recv_addr = RawAddr::empty();
        // SAFETY: copies at most sizeof(sockaddr_storage) bytes into the storage.
        unsafe { std::ptr::copy_nonoverlapping(name.as_ptr(), self.recv_addr.as_mut_ptr().cast::<u8>(), n) };
        self.recv_addr.len = n as u32;
        let payload = out.payload_data();
        c.data = payload.as_ptr();
        c.res = payload.len() as i32;
        c.addr = &self.recv_addr;
        c.buf_id = DATAGRAM_BUF | bid as u32;
        true
    }
}

/// Steps of [`read_file_chain`] (open, read, end-of-file probe).
pub(crate) const CHAIN_LEN: usize = 3;
/// Completions of a [`read_file_chain`]: one per step, whatever happens.
const CHAIN_COMPLETIONS: usize = CHAIN_LEN;

/// open(path) into direct `slot` → read(slot, `buf`, `len`) → read(slot, `probe`, 1), with
/// hard links: every step runs even if one before it fails (after a failed open the reads fail
/// with EBADF), so the probe's completion, always the last, ends the chain. Every step posts a
/// completion: an open that fails while being prepared (an empty path, one of 4,096 bytes or
/// more) turns the hard links into plain ones and cancels the reads, and had the open asked to
/// skip its success completion, the kernel would post nothing for the cancelled reads, leaving
/// the request waiting for good. The close is not part of the chain: only the probe's result tells
/// whether the file is done or must go on through the same open file (a FIFO, a /proc file, a
/// file longer than the buffer), and a link cannot depend on a result.
fn read_file_chain(
    token: Token,
    slot: u32,
    path: *const libc::c_char,
    buf: *mut u8,
    len: u32,
    probe: *mut u8,
) -> Option<[squeue::Entry; CHAIN_LEN]> {
    let ud = |step: u64| token | step << 32 | (OpKind::File as u64) << KIND_SHIFT;
    let cwd = types::Fd(libc::AT_FDCWD);
    let dest = types::DestinationSlot::try_from_slot_target(slot).ok()?;
    let link = squeue::Flags::IO_HARDLINK;
    Some([
        // No O_CLOEXEC: a direct descriptor is never in the fd table (the kernel refuses it).
        opcode::OpenAt::new(cwd, path)
            .flags(libc::O_RDONLY)
            .file_index(Some(dest))
            .build()
            .flags(link)
            .user_data(ud(0)),
        opcode::Read::new(types::Fixed(slot), buf, len)
            .offset(u64::MAX)
            .build()
            .flags(link)
            .user_data(ud(1)),
        opcode::Read::new(types::Fixed(slot), probe, 1)
            .offset(u64::MAX)
            .build()
            .user_data(ud(2)),
    ])
}

/// close(direct `slot`), posting a completion only if it fails, which the loop skips.
pub(crate) fn close_slot_entry(slot: u32) -> squeue::Entry {
    opcode::Close::new(types::Fixed(slot))
        .build()
        .flags(squeue::Flags::SKIP_SUCCESS)
        .user_data(INTERNAL)
}

/// Installs direct `slot` as an ordinary descriptor, close-on-exec (the kernel's default).
pub(crate) fn install_slot_entry(slot: u32) -> squeue::Entry {
    opcode::FixedFdInstall::new(types::Fixed(slot), 0).build()
}

impl Drop for UringBackend {
    fn drop(&mut self) {
        // Queued closes (and cancellations) must reach the kernel before the ring goes.
        if self.queued > 0 {
            let _ = self.ring.submit();
        }
        if self.embed_fd >= 0 {
            crate::sys::close(self.embed_fd);
        }
    }
}
