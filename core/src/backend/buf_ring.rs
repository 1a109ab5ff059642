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
}

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
        };
        for bid in 0..count {
            r.push(bid);
        }
        r.publish();
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

    /// Gives buffer `bid` back to the kernel.
    pub(crate) fn recycle(&mut self, bid: u16) {
        self.push(bid);
        self.publish();
    }

    /// Where a completion's `len` received bytes in buffer `bid` start; `kernel_more`: the
    /// completion said the kernel goes on filling the buffer (`IORING_CQE_F_BUF_MORE`). The bytes
    /// stay until `release(bid)`.
    pub(crate) fn take(&mut self, bid: u16, len: u32, kernel_more: bool) -> *const u8 {
        let base = self.buffer(bid);
        let Some(fillings) = self.incremental.as_mut() else {
            return base;
        };
        let f = &mut fillings[bid as usize];
        let start = f.taken;
        debug_assert!(start as u64 + len as u64 <= self.size as u64);
        f.taken += len;
        f.views += 1;
        f.left_by_kernel = !kernel_more;
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
        self.recycle(bid);
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
