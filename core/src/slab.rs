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
