//! A provided-buffer ring (io_uring buffer group): receive buffers the kernel picks from, so a
//! multishot receive needs no buffer per request and an idle connection holds none.
//!
//! Incremental rings (`IOU_PBUF_RING_INC`, Linux 6.12) let the kernel fill a buffer a piece at a
//! time, one receive after another, whichever sockets they are for: a completion says where its
//! bytes are by the buffer and how much of it earlier completions took. So buffers can be large
//! (a 64 KiB message arrives in one completion, not four of 16 KiB, and is sent on in one send;
//! see docs/ARCHITECTURE.md, "Receive buffers") while small messages still fill them densely. A
//! buffer goes back to the ring when the kernel has moved past it and every completion's bytes
//! in it have been let go (`release`).
//!
//! Only as many buffers as recent passes used are posted to the kernel; the rest wait in a stack,
//! the last one let go on top. The kernel takes buffers in the order they were posted, so a ring
//! holding all of them would cycle every receive through all of its memory (8 MiB by default),
//! each one a cold cache line for the kernel's copy: at one connection that copy cost 60% more
//! than epoll's into its one warm buffer. Posting few keeps the same few buffers in use; a pass
//! that takes more raises the depth at once (and running dry raises it to all of them), and the
//! depth sinks back slowly (see docs/ARCHITECTURE.md, "Receive buffers").
//!
//! Layout rules this type keeps: the ring of `io_uring_buf` entries is page-aligned memory whose
//! size is a power of two of entries; the ring's tail is the `resv` field of entry 0, written with
//! release ordering after the entries it publishes; a buffer id is an index into one contiguous
//! allocation of `count * size` bytes.

use crate::error::{Error, Result};
use std::sync::atomic::{AtomicU16, Ordering};

#[repr(C)]
struct BufEntry {
    addr: u64,
    len: u32,
    bid: u16,
    resv: u16,
}

pub(crate) struct BufRing {
    ring: *mut BufEntry,
    ring_bytes: usize,
    data: *mut u8,
    data_bytes: usize,
    count: u16,
    size: u32,
    tail: u16,
    /// Set for an incremental ring: what each buffer's completions took, and who holds them.
    incremental: Option<Box<[Filling]>>,
    /// Buffers posted that the kernel has not moved past yet.
    posted: u16,
    /// Free buffers not posted, the most recently freed (warmest) last.
    spare: Vec<u16>,
    /// How many buffers to keep posted (`top_up`).
    depth: u16,
    /// Buffers the kernel moved past since the last `top_up`.
    used_since_top_up: u16,
    /// The most buffers recent passes used, sinking slowly while passes use fewer.
    recent_peak: u16,
    /// A receive found no buffer since the last `top_up`.
    ran_dry: bool,
}

/// The fewest buffers kept posted: enough for a pass or two of one busy connection.
const LEAST_DEPTH: u16 = 4;

/// An incremental ring's bookkeeping for one buffer between two trips to the kernel.
#[derive(Clone, Copy, Default)]
struct Filling {
    /// Bytes completions have taken from its start; the next completion's bytes follow.
    taken: u32,
    /// Completions whose bytes are not let go yet.
    views: u32,
    /// The kernel has moved on to another buffer: this one is ours once `views` is 0.
    left_by_kernel: bool,
}

/// `io_uring_buf_reg.flags` for an incremental ring.
const IOU_PBUF_RING_INC: u16 = 2;

fn map(bytes: usize) -> Result<*mut u8> {
    // SAFETY: an anonymous private mapping; the kernel validates the length.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            bytes,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        Err(Error::last_os_error())
    } else {
        Ok(p.cast())
    }
}

impl BufRing {
    /// An incremental ring (see the module's comment) of `count` buffers of `size` bytes.
    pub(crate) fn new_incremental(count: u16, size: u32) -> Result<BufRing> {
        let mut r = BufRing::new(count, size)?;
        r.incremental = Some(vec![Filling::default(); count as usize].into_boxed_slice());
        Ok(r)
    }

    /// Whether the kernel fills buffers a piece at a time (`new_incremental`).
    pub(crate) fn is_incremental(&self) -> bool {
        self.incremental.is_some()
    }

    /// The flags to register the ring with.
    pub(crate) fn registration_flags(&self) -> u16 {
        if self.is_incremental() {
            IOU_PBUF_RING_INC
        } else {
            0
        }
    }

    /// `count` buffers (a power of two, at most 32768) of `size` bytes each.
    pub(crate) fn new(count: u16, size: u32) -> Result<BufRing> {
        if !count.is_power_of_two() || count > 32768 || size == 0 {
            return Err(Error::EINVAL);
        }
        let ring_bytes = (count as usize * std::mem::size_of::<BufEntry>()).max(4096);
        let data_bytes = count as usize * size as usize;
        let ring = map(ring_bytes)?.cast::<BufEntry>();
        let data = match map(data_bytes) {
            Ok(d) => d,
            Err(e) => {
                // SAFETY: unmapping what was just mapped.
                unsafe { libc::munmap(ring.cast(), ring_bytes) };
                return Err(e);
            }
        };
        let mut r = BufRing {
            ring,
            ring_bytes,
            data,
            data_bytes,
            count,
            size,
            tail: 0,
            incremental: None,
            posted: 0,
            // Popped from the end: buffer 0 is posted first.
            spare: (0..count).rev().collect(),
            depth: count.min(LEAST_DEPTH),
            used_since_top_up: 0,
            recent_peak: 0,
            ran_dry: false,
        };
        r.post_spares();
        Ok(r)
    }

    pub(crate) fn ring_addr(&self) -> u64 {
        self.ring as u64
    }

    pub(crate) fn count(&self) -> u16 {
        self.count
    }

    /// Bytes in each buffer.
    pub(crate) fn buffer_size(&self) -> u32 {
        self.size
    }

    /// Bytes of buffer `bid`.
    pub(crate) fn buffer(&self, bid: u16) -> *const u8 {
        debug_assert!(bid < self.count);
        // SAFETY: `bid < count`, so the offset stays inside the data mapping.
        unsafe { self.data.add(bid as usize * self.size as usize) }
    }

    fn push(&mut self, bid: u16) {
        let idx = (self.tail & (self.count - 1)) as usize;
        // SAFETY: `idx < count` entries of the ring mapping. Entry 0's `resv` is the shared tail,
        // so fields are written one by one, never the whole entry.
        unsafe {
            let e = self.ring.add(idx);
            std::ptr::addr_of_mut!((*e).addr).write(self.buffer(bid) as u64);
            std::ptr::addr_of_mut!((*e).len).write(self.size);
            std::ptr::addr_of_mut!((*e).bid).write(bid);
        }
        self.tail = self.tail.wrapping_add(1);
    }

    fn publish(&self) {
        // SAFETY: the tail lives at entry 0's `resv` (offset 14), 2-byte aligned; the kernel
        // reads it concurrently, hence the atomic release store after the entries are written.
        unsafe {
            let tail = std::ptr::addr_of_mut!((*self.ring).resv) as *const AtomicU16;
            (*tail).store(self.tail, Ordering::Release);
        }
    }

    /// Posts spare buffers, warmest first, until `depth` are posted.
    fn post_spares(&mut self) {
        let before = self.posted;
        while self.posted < self.depth {
            let Some(bid) = self.spare.pop() else { break };
            self.push(bid);
            self.posted += 1;
        }
        if self.posted != before {
            self.publish();
        }
    }

    /// Called before each wait: sets the depth from what recent passes used and posts up to it.
    pub(crate) fn top_up(&mut self) {
        let used = std::mem::take(&mut self.used_since_top_up);
        self.recent_peak = if std::mem::take(&mut self.ran_dry) {
            self.count
        } else if used >= self.recent_peak {
            used
        } else {
            self.recent_peak - (self.recent_peak / 16).max(1)
        };
        // Twice the peak: a pass may bring as much again before the next top-up.
        self.depth = self.recent_peak.saturating_mul(2).clamp(LEAST_DEPTH, self.count);
        self.post_spares();
    }

    /// A receive found the ring empty (`ENOBUFS`): post every buffer at the next top-up.
    pub(crate) fn note_ran_dry(&mut self) {
        self.ran_dry = true;
    }

    /// How many buffers are posted to the kernel now.
    pub(crate) fn posted(&self) -> u16 {
        self.posted
    }

    /// The kernel moved past one posted buffer.
    fn left_by_kernel(&mut self) {
        debug_assert!(self.posted > 0);
        self.posted -= 1;
        self.used_since_top_up = self.used_since_top_up.saturating_add(1);
    }

    /// A free buffer: posted again at once if the ring is below its depth, else kept spare.
    fn free(&mut self, bid: u16) {
        self.spare.push(bid);
        self.post_spares();
    }

    /// Buffer `bid` came back in a completion that used none of it (an end or an error, on a
    /// ring that is not incremental): it is free again.
    pub(crate) fn recycle(&mut self, bid: u16) {
        self.left_by_kernel();
        self.free(bid);
    }

    /// Where a completion's `len` received bytes in buffer `bid` start; `kernel_more`: the
    /// completion said the kernel goes on filling the buffer (`IORING_CQE_F_BUF_MORE`). The bytes
    /// stay until `release(bid)`.
    pub(crate) fn take(&mut self, bid: u16, len: u32, kernel_more: bool) -> *const u8 {
        let base = self.buffer(bid);
        let Some(fillings) = self.incremental.as_mut() else {
            self.left_by_kernel();
            return base;
        };
        let f = &mut fillings[bid as usize];
        let start = f.taken;
        debug_assert!(start as u64 + len as u64 <= self.size as u64);
        f.taken += len;
        f.views += 1;
        f.left_by_kernel = !kernel_more;
        if !kernel_more {
            self.left_by_kernel();
        }
        // SAFETY: the kernel placed the bytes inside the buffer, after those it placed before.
        unsafe { base.add(start as usize) }
    }

    /// Lets go of one completion's bytes in buffer `bid` (`take`); the buffer goes back to the
    /// kernel when nothing holds it any more (at once, for a ring that is not incremental).
    pub(crate) fn release(&mut self, bid: u16) {
        if let Some(fillings) = self.incremental.as_mut() {
            let f = &mut fillings[bid as usize];
            debug_assert!(f.views > 0, "buffer {bid} released more often than taken");
            f.views -= 1;
            if f.views > 0 || !f.left_by_kernel {
                return;
            }
            *f = Filling::default();
        }
        self.free(bid);
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // SAFETY: unmapping our own mappings; the ring was unregistered or is being destroyed.
        unsafe {
            libc::munmap(self.ring.cast(), self.ring_bytes);
            libc::munmap(self.data.cast(), self.data_bytes);
        }
    }
}
