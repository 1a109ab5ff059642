//! A provided-buffer ring (io_uring buffer group): receive buffers the kernel picks from, so a
//! multishot receive needs no buffer per request and an idle connection holds none.
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
}

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
