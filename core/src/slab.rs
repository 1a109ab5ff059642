//! Storage for handles: a vector of entries with generation counters, so an id that outlived
//! its handle is detected instead of reaching the slot's next occupant.

pub(crate) struct Slab<T> {
    entries: Vec<Entry<T>>,
    free: Vec<u32>,
}

struct Entry<T> {
    gen: u32,
    value: Option<T>,
}

impl<T> Slab<T> {
    pub(crate) const fn new() -> Slab<T> {
        Slab {
            entries: Vec::new(),
            free: Vec::new(),
        }
    }

    /// Stores `value`; returns its (index, generation).
    pub(crate) fn insert(&mut self, value: T) -> (u32, u32) {
        if let Some(idx) = self.free.pop() {
            let e = &mut self.entries[idx as usize];
            e.value = Some(value);
            (idx, e.gen)
        } else {
            let idx = self.entries.len() as u32;
            self.entries.push(Entry {
                gen: 1,
                value: Some(value),
            });
            (idx, 1)
        }
    }

    #[inline]
    pub(crate) fn get(&self, idx: u32, gen: u32) -> Option<&T> {
        match self.entries.get(idx as usize) {
            Some(e) if e.gen == gen => e.value.as_ref(),
            _ => None,
        }
    }

    #[inline]
    pub(crate) fn get_mut(&mut self, idx: u32, gen: u32) -> Option<&mut T> {
        match self.entries.get_mut(idx as usize) {
            Some(e) if e.gen == gen => e.value.as_mut(),
            _ => None,
        }
    }

    /// Looks up by index alone, for completions whose token carries a truncated generation.
    #[inline]
    pub(crate) fn get_by_index(&mut self, idx: u32) -> Option<(u32, &mut T)> {
        let e = self.entries.get_mut(idx as usize)?;
        let gen = e.gen;
        e.value.as_mut().map(|v| (gen, v))
    }

    /// The value at `idx`, which the caller knows to be live; reaching it reads nothing of the
    /// entry but what the caller then touches (an intrusive list's neighbours are written, not
    /// read, when a node leaves it).
    #[inline]
    pub(crate) fn live_by_index(&mut self, idx: u32) -> &mut T {
        let e = &mut self.entries[idx as usize];
        debug_assert!(e.value.is_some(), "slab entry {idx} is vacant");
        // SAFETY: callers pass only indices whose value they keep alive (the timing wheel holds
        // live timers only: a timer leaves it before its entry is removed).
        unsafe { e.value.as_mut().unwrap_unchecked() }
    }

    pub(crate) fn remove(&mut self, idx: u32, gen: u32) -> Option<T> {
        let e = self.entries.get_mut(idx as usize)?;
        if e.gen != gen {
            return None;
        }
        let v = e.value.take()?;
        e.gen = e.gen.wrapping_add(1).max(1);
        self.free.push(idx);
        Some(v)
    }

    /// Live entries.
    pub(crate) fn len(&self) -> usize {
        self.entries.len() - self.free.len()
    }

    /// Indices of live entries (a snapshot, for sweeps that call back into the loop).
    pub(crate) fn live(&self, out: &mut Vec<(u32, u32)>) {
        out.clear();
        for (i, e) in self.entries.iter().enumerate() {
            if e.value.is_some() {
                out.push((i as u32, e.gen));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Slab;

    #[test]
    fn stale_ids_never_reach_the_next_occupant() {
        let mut s = Slab::new();
        let (a, ga) = s.insert("a");
        let (b, gb) = s.insert("b");
        assert_eq!(s.remove(a, ga), Some("a"));
        assert_eq!(s.remove(a, ga), None, "removed twice");
        let (c, gc) = s.insert("c");
        assert_eq!(c, a, "the slot is reused");
        assert_ne!(gc, ga, "with a new generation");
        assert_eq!(s.get(a, ga), None);
        assert_eq!(s.get_mut(a, ga), None);
        assert_eq!(s.get(c, gc), Some(&"c"));
        assert_eq!(s.get_by_index(b).map(|(g, v)| (g, *v)), Some((gb, "b")));
        *s.live_by_index(b) = "B";
        assert_eq!(s.get(b, gb), Some(&"B"));
        *s.live_by_index(b) = "b";
        assert_eq!(s.len(), 2);
        let mut live = Vec::new();
        s.live(&mut live);
        live.sort_unstable();
        assert_eq!(live, vec![(a, gc), (b, gb)]);
        assert_eq!(s.get(99, 1), None);
    }

    #[test]
    fn generations_wrap_without_reaching_zero() {
        let mut s = Slab::new();
        let (i, _) = s.insert(0u8);
        s.entries[i as usize].gen = u32::MAX;
        assert_eq!(s.remove(i, u32::MAX), Some(0));
        let (j, g) = s.insert(1);
        assert_eq!(
            (j, g),
            (i, 1),
            "wraps to 1: 0 stays free for ids that never existed"
        );
    }

    #[test]
    fn many_inserts_and_removes_keep_every_value() {
        let mut s = Slab::new();
        let mut ids = Vec::new();
        for round in 0..if cfg!(miri) { 3 } else { 50 } {
            for v in 0..64u32 {
                ids.push((s.insert(round * 64 + v), round * 64 + v));
            }
            // Remove every other one.
            let mut kept = Vec::new();
            for (k, ((i, g), v)) in ids.drain(..).enumerate() {
                if k % 2 == 0 {
                    assert_eq!(s.remove(i, g), Some(v));
                } else {
                    kept.push(((i, g), v));
                }
            }
            ids = kept;
            for &((i, g), v) in &ids {
                assert_eq!(s.get(i, g), Some(&v));
            }
        }
        assert_eq!(s.len(), ids.len());
    }
}
