//! Where timers' state lives: in the loop's slab, or in memory the caller provides
//! ([`TimerPlace`], for bindings that keep a record per timer of their own, as the C ABI does).
//!
//! A timer in a place is reached by its id through a small slab of pointers, but its hot
//! operations (start, stop) can go straight to the place: one record to fetch instead of an id,
//! then a slab entry. With a million pending timers each is a cache miss, and they were most of
//! a C program's stop (see docs/ARCHITECTURE.md, "Timers in caller memory").

use std::mem::MaybeUninit;
use std::ptr::NonNull;

use super::wheel::{Node, Nodes};
use super::TimerEntry;
use crate::slab::Slab;

/// Marks the ids of timers in places: their index is in `Timers::placed`.
const PLACED: u32 = 1 << 31;

/// Memory for one timer's state, provided by the caller of [`crate::Timer::new_in`]. Its size
/// and alignment belong to this build of the library (`size_of`/`align_of`), not to an ABI.
#[repr(transparent)]
pub struct TimerPlace(MaybeUninit<TimerEntry>);

pub(crate) struct Timers {
    inline: Slab<TimerEntry>,
    placed: Places,
}

/// The table of timers in places: one pointer per slot, 8 bytes a timer (a `Slab` would add a
/// generation word, 16 bytes). The generation lives in the entry, in the place; a slot's next
/// occupant takes the next value of a counter of the whole table, so an id that outlived its
/// timer finds another generation, or an empty slot. Slots come in chunks that never move: a
/// vector that doubled copied the whole table and faulted in twice its pages, which was a
/// third of creating a timer in a place.
struct Places {
    chunks: Vec<Box<[Option<NonNull<TimerEntry>>; CHUNK]>>,
    len: u32,
    free: Vec<u32>,
    next_gen: u32,
}

const CHUNK_BITS: u32 = 10;
const CHUNK: usize = 1 << CHUNK_BITS;

impl Places {
    const fn new() -> Places {
        Places {
            chunks: Vec::new(),
            len: 0,
            free: Vec::new(),
            next_gen: 0,
        }
    }

    #[inline]
    fn slot(&self, idx: u32) -> Option<&Option<NonNull<TimerEntry>>> {
        let chunk = self.chunks.get((idx >> CHUNK_BITS) as usize)?;
        Some(&chunk[idx as usize & (CHUNK - 1)])
    }

    #[inline]
    fn slot_mut(&mut self, idx: u32) -> &mut Option<NonNull<TimerEntry>> {
        &mut self.chunks[(idx >> CHUNK_BITS) as usize][idx as usize & (CHUNK - 1)]
    }

    fn insert(&mut self, ptr: NonNull<TimerEntry>) -> (u32, u32) {
        self.next_gen = self.next_gen.wrapping_add(1).max(1);
        let idx = match self.free.pop() {
            Some(idx) => idx,
            None => {
                assert!(self.len < PLACED, "more than 2^31 timers in places");
                if self.len as usize == self.chunks.len() * CHUNK {
                    self.chunks.push(Box::new([None; CHUNK]));
                }
                self.len += 1;
                self.len - 1
            }
        };
        *self.slot_mut(idx) = Some(ptr);
        (idx, self.next_gen)
    }

    /// The occupant of slot `idx` and its generation.
    #[inline]
    fn at(&self, idx: u32) -> Option<(u32, NonNull<TimerEntry>)> {
        let ptr = (*self.slot(idx)?)?;
        // SAFETY: an occupied slot's place is valid until `remove` empties the slot (the
        // contract of `insert_placed`).
        Some((unsafe { ptr.as_ref() }.gen, ptr))
    }

    #[inline]
    fn get(&self, idx: u32, gen: u32) -> Option<NonNull<TimerEntry>> {
        self.at(idx).and_then(|(g, ptr)| (g == gen).then_some(ptr))
    }

    fn remove(&mut self, idx: u32, gen: u32) -> Option<NonNull<TimerEntry>> {
        let ptr = self.get(idx, gen)?;
        *self.slot_mut(idx) = None;
        self.free.push(idx);
        Some(ptr)
    }
}

impl Timers {
    pub(crate) const fn new() -> Timers {
        Timers {
            inline: Slab::new(),
            placed: Places::new(),
        }
    }

    pub(crate) fn insert(&mut self, entry: TimerEntry) -> (u32, u32) {
        let (idx, gen) = self.inline.insert(entry);
        self.inline.live_by_index(idx).gen = gen;
        (idx, gen)
    }

    /// Writes a new stopped timer into `place` and gives it an id.
    ///
    /// # Safety
    /// `place` must stay valid, and must not be moved, read or written by anyone else, until
    /// the timer is removed (its close has completed) or the `Timers` are dropped.
    pub(crate) unsafe fn insert_placed(&mut self, place: NonNull<TimerPlace>) -> (u32, u32) {
        let ptr = place.cast::<TimerEntry>();
        let (idx, gen) = self.placed.insert(ptr);
        // SAFETY: the caller gives memory for a `TimerEntry` (a `TimerPlace` is one), ours alone.
        unsafe { TimerEntry::write_new(ptr.as_ptr(), gen) };
        (idx | PLACED, gen)
    }

    #[inline]
    pub(crate) fn get(&self, idx: u32, gen: u32) -> Option<&TimerEntry> {
        if idx & PLACED == 0 {
            return self.inline.get(idx, gen);
        }
        let ptr = self.placed.get(idx & !PLACED, gen)?;
        // SAFETY: a placed entry is valid until `remove` (the contract of `insert_placed`).
        Some(unsafe { ptr.as_ref() })
    }

    #[inline]
    pub(crate) fn get_mut(&mut self, idx: u32, gen: u32) -> Option<&mut TimerEntry> {
        if idx & PLACED == 0 {
            return self.inline.get_mut(idx, gen);
        }
        let ptr = self.placed.get(idx & !PLACED, gen)?;
        // SAFETY: as in `get`; `&mut self` keeps it the only reference made through us.
        Some(unsafe { &mut *ptr.as_ptr() })
    }

    /// The entry of timer (`idx`, `gen`) in `place`, without the table: the caller says where
    /// it is, and the entry confirms that it is that timer's.
    ///
    /// # Safety
    /// `place` must be the place given to `insert_placed` for a timer whose close has not
    /// completed. No other reference to that entry may be live while the result is, and the
    /// caller must hold the loop exclusively (`&mut Loop`) meanwhile.
    #[inline]
    pub(crate) unsafe fn get_in<'a>(
        place: NonNull<TimerPlace>,
        idx: u32,
        gen: u32,
    ) -> Option<&'a mut TimerEntry> {
        // SAFETY: forwarded from the caller.
        let e = unsafe { &mut *place.cast::<TimerEntry>().as_ptr() };
        (idx & PLACED != 0 && e.gen == gen).then_some(e)
    }

    /// By index alone, with its generation (for the wheel's expired timers).
    #[inline]
    pub(crate) fn get_by_index(&mut self, idx: u32) -> Option<(u32, &mut TimerEntry)> {
        if idx & PLACED == 0 {
            return self.inline.get_by_index(idx);
        }
        let (gen, ptr) = self.placed.at(idx & !PLACED)?;
        // SAFETY: as in `get_mut`.
        Some((gen, unsafe { &mut *ptr.as_ptr() }))
    }

    /// Removes the timer and returns its state; a place is the caller's again.
    pub(crate) fn remove(&mut self, idx: u32, gen: u32) -> Option<TimerEntry> {
        if idx & PLACED == 0 {
            return self.inline.remove(idx, gen);
        }
        let ptr = self.placed.remove(idx & !PLACED, gen)?;
        // SAFETY: valid until now; the entry is moved out and the place never read again.
        Some(unsafe { ptr.as_ptr().read() })
    }
}

impl Drop for Timers {
    /// Timers still open in places when the loop goes: what they hold (a boxed callback) is
    /// dropped, and the places are their owners' again.
    fn drop(&mut self) {
        for slot in self.placed.chunks.iter_mut().flat_map(|chunk| chunk.iter_mut()) {
            if let Some(ptr) = slot.take() {
                // SAFETY: valid until removed, which this is; never read again.
                drop(unsafe { ptr.as_ptr().read() });
            }
        }
    }
}

impl Nodes for Timers {
    #[inline]
    fn node(&mut self, idx: u32) -> &mut Node {
        // The wheel holds only timers that are alive: a closing timer leaves it before its entry
        // is removed.
        if idx & PLACED == 0 {
            return &mut self.inline.live_by_index(idx).node;
        }
        let ptr = *self.placed.slot_mut(idx & !PLACED);
        debug_assert!(ptr.is_some(), "placed timer {idx} is gone");
        // SAFETY: as in `get_mut`; a live timer's slot is occupied (see above).
        unsafe { &mut (*ptr.unwrap_unchecked().as_ptr()).node }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::MaybeUninit;

    /// Places and inline entries side by side: ids find their own timers, a stale id finds
    /// nothing once its slot has a new occupant, and what a place holds is dropped with the table
    /// (Miri checks the pointer use: `scripts/model_checks.sh`).
    #[test]
    fn ids_reach_their_places_and_stale_ids_do_not() {
        let mut places: Vec<MaybeUninit<TimerPlace>> = (0..3).map(|_| MaybeUninit::uninit()).collect();
        let ptrs: Vec<NonNull<TimerPlace>> = places.iter_mut().map(|p| NonNull::from(p).cast()).collect();
        let mut timers = Timers::new();
        let inline = timers.insert(TimerEntry::new());
        // SAFETY: the places outlive `timers`, dropped first below.
        let (a, b) = unsafe { (timers.insert_placed(ptrs[0]), timers.insert_placed(ptrs[1])) };
        assert_eq!(inline.0 & PLACED, 0);
        assert_ne!(a.0 & PLACED, 0);
        timers.get_mut(a.0, a.1).unwrap().repeat = 7;
        // SAFETY: the place `a` was made in, not removed.
        assert_eq!(
            unsafe { Timers::get_in(ptrs[0], a.0, a.1) }.map(|e| e.repeat),
            Some(7)
        );
        assert!(unsafe { Timers::get_in(ptrs[0], a.0, a.1 + 1) }.is_none());
        assert_eq!(timers.get_by_index(b.0).map(|(g, _)| g), Some(b.1));
        let node: *const Node = timers.node(b.0);
        assert!(std::ptr::eq(node, &timers.get(b.0, b.1).unwrap().node));
        let gone = timers.remove(a.0, a.1).expect("removed once");
        assert_eq!(gone.repeat, 7);
        assert!(timers.remove(a.0, a.1).is_none());
        assert!(timers.get(a.0, a.1).is_none());
        // SAFETY: as above.
        let c = unsafe { timers.insert_placed(ptrs[2]) };
        assert_eq!(c.0, a.0, "the slot is reused");
        assert!(timers.get(a.0, a.1).is_none(), "by another generation");
        assert!(timers.get(c.0, c.1).is_some());
        timers.get_mut(c.0, c.1).unwrap().cb = Some(super::super::Callback::Boxed(Box::new(|_, _| {})));
        drop(timers);
        drop(places);
    }
}
