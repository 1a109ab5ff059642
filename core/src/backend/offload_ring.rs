//! A second io_uring whose submissions a kernel thread (SQPOLL) picks up and runs, on another
//! core, while the loop thread runs its own share of a batch of file operations inline.
//!
//! Why: a file operation on a warm page cache completes inside the submitting call (path lookup,
//! copy), so a single ring does all of a batch's kernel work on the loop's core. Work pushed to
//! io-wq workers costs a wake-up and a hand-off per operation; an SQPOLL thread instead takes
//! whole batches from shared memory, with no system call while it is awake. Its completions land
//! in this ring's CQ, which the loop reads directly; a registered eventfd, read by an operation
//! armed in the main ring, wakes the loop when it sleeps. The eventfd stays enabled: a completed
//! read is re-armed only after the loop has seen it, so the wake-ups number at most one per loop
//! iteration, however many operations complete.

use super::uring::{close_slot_entry, install_slot_entry};
use io_uring::{cqueue, opcode, squeue, types, IoUring};
use std::collections::VecDeque;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// How long the kernel thread keeps polling for new submissions before it sleeps (ms); after
/// that the next batch costs one enter to wake it.
const IDLE_MS: u32 = 2;
/// Submission queue entries; the completion queue holds eight times as many.
const ENTRIES: u32 = 512;

pub(crate) struct OffloadRing {
    ring: IoUring,
    /// Free slots of this ring's own direct-descriptor table.
    direct_slots: Vec<u32>,
    /// Completions expected from entries handed to the kernel and not reaped yet: kept within
    /// the CQ's size, so the kernel (almost) never has to hold completions back.
    in_flight: usize,
    cq_capacity: usize,
    eventfd: OwnedFd,
    /// Where the main ring's eventfd read lands; never looked at.
    wake_buf: Box<[u8; 8]>,
    /// Slots to close (after installing them as descriptors, for the given user_data) that
    /// found the submission queue full; a slot is free only once its close is queued.
    to_close: VecDeque<(u32, Option<u64>)>,
    /// Entries were queued since the last `kick`: a sleeping kernel thread does not see them
    /// until the loop enters, so a foreign loop driving this one must not sleep first.
    unkicked: bool,
}

impl OffloadRing {
    /// A ring with its own kernel thread and a sparse direct-descriptor table of `slots`.
    pub(crate) fn new(slots: u32) -> std::io::Result<OffloadRing> {
        // Newer kernels: a whole batch even if an entry fails to prepare (5.18), no locking for
        // other submitters when the kernel thread is the only one (6.0), entries taken straight
        // from the ring without the index array (6.6). Older kernels get the plain ring.
        let build = |newer: bool| {
            let mut b = IoUring::builder();
            b.setup_sqpoll(IDLE_MS).setup_cqsize(ENTRIES * 8);
            if newer {
                b.setup_submit_all().setup_single_issuer().setup_no_sqarray();
            }
            b.build(ENTRIES)
        };
        let ring = build(true).or_else(|_| build(false))?;
        ring.submitter().register_files_sparse(slots)?;
        // SAFETY: eventfd takes no pointers; the result is checked before it is owned.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor nobody else owns.
        let eventfd = unsafe { OwnedFd::from_raw_fd(fd) };
        ring.submitter().register_eventfd(eventfd.as_raw_fd())?;
        let cq_capacity = ring.params().cq_entries() as usize;
        Ok(OffloadRing {
            ring,
            direct_slots: (0..slots).rev().collect(),
            in_flight: 0,
            cq_capacity,
            eventfd,
            wake_buf: Box::new([0; 8]),
            to_close: VecDeque::new(),
            unkicked: false,
        })
    }

    /// The read for the main ring that completes when this ring posts completions.
    pub(crate) fn wake_read(&mut self) -> squeue::Entry {
        opcode::Read::new(types::Fd(self.eventfd.as_raw_fd()), self.wake_buf.as_mut_ptr(), 8).build()
    }

    /// Room for `n` more entries, both in the submission queue and in the completion queue.
    pub(crate) fn has_room(&mut self, n: usize) -> bool {
        let sq = self.ring.submission();
        sq.capacity() - sq.len() >= n && self.in_flight + n <= self.cq_capacity
    }

    /// Queues `entries` together (one publication of the tail, so the kernel thread never sees
    /// half a linked chain), which will post `completions` completions when they succeed;
    /// `false`, with nothing queued, if the submission queue lacks room. The caller has checked
    /// [`OffloadRing::has_room`] for the completion queue.
    pub(crate) fn push(&mut self, entries: &[squeue::Entry], completions: usize) -> bool {
        // SAFETY: as for the main ring, every pointer an entry carries stays valid until its
        // completion (the backend contract).
        if unsafe { self.ring.submission().push_multiple(entries) }.is_err() {
            return false;
        }
        self.in_flight += completions;
        self.unkicked = true;
        true
    }

    pub(crate) fn take_slot(&mut self) -> Option<u32> {
        self.direct_slots.pop()
    }

    pub(crate) fn release_slot(&mut self, slot: u32) {
        self.direct_slots.push(slot);
    }

    /// Closes the file in `slot` and frees the slot, first installing it as a descriptor whose
    /// number completes with user_data `install` if given (see
    /// `UringBackend::close_direct_slot`). Waits in line if the submission queue is full.
    pub(crate) fn close_slot(&mut self, slot: u32, install: Option<u64>) {
        if !self.to_close.is_empty() || !self.try_close(slot, install) {
            self.to_close.push_back((slot, install));
        }
    }

    /// Closes still waiting for room in the submission queue.
    pub(crate) fn closes_waiting(&self) -> bool {
        !self.to_close.is_empty()
    }

    /// Entries (or closes waiting for room) that only the loop's next `kick` hands over.
    pub(crate) fn needs_kick(&self) -> bool {
        self.unkicked || !self.to_close.is_empty()
    }

    fn try_close(&mut self, slot: u32, install: Option<u64>) -> bool {
        let close = close_slot_entry(slot);
        let queued = match install {
            None => self.has_room(1) && self.push(&[close], 0),
            Some(ud) => self.has_room(2) && self.push(&[install_slot_entry(slot).user_data(ud), close], 1),
        };
        if queued {
            self.direct_slots.push(slot);
        }
        queued
    }

    fn queue_waiting_closes(&mut self) {
        while let Some(&(slot, install)) = self.to_close.front() {
            if !self.try_close(slot, install) {
                return;
            }
            self.to_close.pop_front();
        }
    }

    /// Wakes the kernel thread if it has gone to sleep with entries queued (no system call while
    /// it is polling), and flushes completions the kernel held back.
    pub(crate) fn kick(&mut self) {
        self.queue_waiting_closes();
        self.unkicked = false;
        let sq = self.ring.submission();
        // Not a bare submit(): that would enter to wake a sleeping thread with nothing queued.
        if !sq.is_empty() || sq.cq_overflow() {
            drop(sq);
            let _ = self.ring.submit();
        }
    }

    /// Completions still to come from the kernel thread (a failed open posts one more than
    /// counted, hence saturating).
    pub(crate) fn backlog(&mut self) -> usize {
        self.in_flight.saturating_sub(self.ring.completion().len())
    }

    pub(crate) fn has_completions(&mut self) -> bool {
        !self.ring.completion().is_empty()
    }

    /// [`OffloadRing::has_completions`] for callers holding the ring shared.
    pub(crate) fn has_completions_now(&self) -> bool {
        // SAFETY: only reads the queue's head and tail; nothing else holds a CompletionQueue
        // of this ring while `&self` is borrowed.
        !unsafe { self.ring.completion_shared() }.is_empty()
    }

    /// Moves this ring's completions to `out`.
    pub(crate) fn reap_into(&mut self, out: &mut Vec<cqueue::Entry>) {
        let before = out.len();
        out.extend(self.ring.completion());
        self.in_flight = self.in_flight.saturating_sub(out.len() - before);
    }
}
