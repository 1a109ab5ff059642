//! A hierarchical timing wheel: 6 levels of 64 slots at 1 ms resolution (about 2.2 years of
//! range before a timer is parked at the top level and re-examined).
//!
//! Insertion and removal are O(1): each timer is a node of an intrusive doubly-linked list in its
//! slot. The nodes live inside the timers' own entries (see [`Nodes`]), so stopping a timer
//! touches its entry and its two neighbours and nothing else. Finding the next deadline scans at
//! most six 64-bit occupancy masks. Timers due in the same millisecond come out in start order
//! (by sequence number), whatever level they waited in.

use std::cell::Cell;

const LEVELS: usize = 6;
const SLOT_BITS: u32 = 6;
const SLOTS: usize = 1 << SLOT_BITS;
const SLOT_MASK: u64 = SLOTS as u64 - 1;
/// The furthest a timer is placed ahead of now: 63 of the 64 top-level slots, so a clamped timer
/// never shares the top-level slot now is in (the top level is used as a ring).
const MAX_SPAN: u64 = (63 << (SLOT_BITS as u64 * (LEVELS as u64 - 1))) - 1;
const NIL: u32 = u32::MAX;
const UNLINKED: u16 = u16::MAX;

/// A timer's place in the wheel: kept by the caller, in the timer's own record.
#[derive(Clone, Copy)]
pub(crate) struct Node {
    deadline: u64,
    seq: u64,
    prev: u32,
    next: u32,
    bucket: u16,
}

impl Default for Node {
    fn default() -> Node {
        Node {
            deadline: 0,
            seq: 0,
            prev: NIL,
            next: NIL,
            bucket: UNLINKED,
        }
    }
}

impl Node {
    /// When the timer is (or was last) due, in ms on the loop's clock.
    pub(crate) fn deadline(&self) -> u64 {
        self.deadline
    }

    /// The sequence number it was last scheduled with.
    pub(crate) fn seq(&self) -> u64 {
        self.seq
    }
}

/// Where the wheel finds the node of timer `idx`. Every index the wheel holds must stay
/// reachable until it is removed or expires.
pub(crate) trait Nodes {
    fn node(&mut self, idx: u32) -> &mut Node;
}

/// An expired timer: `(deadline, sequence, index)`.
pub(crate) type Expired = (u64, u64, u32);

pub(crate) struct Wheel {
    /// Every slot before this tick has been processed.
    elapsed: u64,
    heads: [u32; LEVELS * SLOTS],
    tails: [u32; LEVELS * SLOTS],
    occupied: [u64; LEVELS],
    len: usize,
    /// `next_expiration`'s last answer, until a link, an unlink or a new `elapsed`: a loop asks
    /// twice per iteration (its wait's timeout, then `advance`), and scanning the levels up to a
    /// far timer's cost more than the rest of an idle iteration's timer work.
    next: Cell<Option<Option<Slot>>>,
}

/// A slot of the wheel and the tick it starts at: (level, slot, tick).
type Slot = (usize, usize, u64);

fn level_for(elapsed: u64, when: u64) -> usize {
    let masked = (elapsed ^ when) | SLOT_MASK;
    let significant = 63 - masked.leading_zeros() as usize;
    (significant / SLOT_BITS as usize).min(LEVELS - 1)
}

fn slot_for(when: u64, level: usize) -> usize {
    ((when >> (level as u32 * SLOT_BITS)) & SLOT_MASK) as usize
}

impl Wheel {
    pub(crate) fn new() -> Wheel {
        Wheel {
            elapsed: 0,
            heads: [NIL; LEVELS * SLOTS],
            tails: [NIL; LEVELS * SLOTS],
            occupied: [0; LEVELS],
            len: 0,
            next: Cell::new(None),
        }
    }

    /// Timers currently waiting.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Schedules timer `idx` (which must not be linked) for `deadline` (ms, on the loop's clock).
    pub(crate) fn insert(&mut self, nodes: &mut impl Nodes, idx: u32, deadline: u64, seq: u64) {
        let node = nodes.node(idx);
        debug_assert_eq!(node.bucket, UNLINKED);
        node.deadline = deadline;
        node.seq = seq;
        self.link(nodes, idx);
        self.len += 1;
    }

    fn link(&mut self, nodes: &mut impl Nodes, idx: u32) {
        self.next.set(None);
        let node = nodes.node(idx);
        // A past deadline goes in the current slot; a far one waits at the top level.
        let when = node.deadline.clamp(self.elapsed, self.elapsed + MAX_SPAN);
        let level = level_for(self.elapsed, when);
        let bucket = level * SLOTS + slot_for(when, level);
        let tail = self.tails[bucket];
        node.bucket = bucket as u16;
        node.prev = tail;
        node.next = NIL;
        if tail == NIL {
            self.heads[bucket] = idx;
        } else {
            nodes.node(tail).next = idx;
        }
        self.tails[bucket] = idx;
        self.occupied[level] |= 1 << (bucket % SLOTS);
    }

    /// Unschedules timer `idx`; does nothing if it is not linked.
    pub(crate) fn remove(&mut self, nodes: &mut impl Nodes, idx: u32) {
        let node = nodes.node(idx);
        if node.bucket == UNLINKED {
            return;
        }
        self.next.set(None);
        let (bucket, prev, next) = (node.bucket as usize, node.prev, node.next);
        node.bucket = UNLINKED;
        node.prev = NIL;
        node.next = NIL;
        if prev == NIL {
            self.heads[bucket] = next;
        } else {
            nodes.node(prev).next = next;
        }
        if next == NIL {
            self.tails[bucket] = prev;
        } else {
            nodes.node(next).prev = prev;
        }
        if self.heads[bucket] == NIL {
            self.occupied[bucket / SLOTS] &= !(1 << (bucket % SLOTS));
        }
        self.len -= 1;
    }

    /// The earliest tick at which a slot holds timers: exact for the lowest level, a lower bound
    /// for higher ones (their timers are redistributed when it is reached).
    pub(crate) fn next_expiration(&self) -> Option<Slot> {
        if let Some(known) = self.next.get() {
            return known;
        }
        let next = self.find_next_expiration();
        self.next.set(Some(next));
        next
    }

    fn find_next_expiration(&self) -> Option<Slot> {
        if self.len == 0 {
            return None;
        }
        for level in 0..LEVELS {
            let shift = level as u32 * SLOT_BITS;
            let current = slot_for(self.elapsed, level);
            let level_range = 1u64 << (shift + SLOT_BITS);
            let level_start = self.elapsed & !(level_range - 1);
            if level < LEVELS - 1 {
                // Below the top, timers sit at or after the current slot of their level.
                let pending = self.occupied[level] & (u64::MAX << current);
                if pending != 0 {
                    let slot = pending.trailing_zeros() as usize;
                    return Some((level, slot, level_start + ((slot as u64) << shift)));
                }
            } else if self.occupied[level] != 0 {
                // The top level is a ring: a slot before the current one is in the next turn.
                let ahead = self.occupied[level].rotate_right(current as u32).trailing_zeros() as usize;
                let slot = (current + ahead) % SLOTS;
                let mut at = level_start + ((slot as u64) << shift);
                if slot < current {
                    at += level_range;
                }
                return Some((level, slot, at));
            }
        }
        None
    }

    /// Whether a timer may be due at `now` (`advance` has work), from the cached next slot.
    #[inline]
    pub(crate) fn is_due(&self, now: u64) -> bool {
        self.next_expiration().is_some_and(|(_, _, at)| at <= now)
    }

    /// Moves the wheel's clock to `now` when nothing is due before it (see `is_due`).
    #[inline]
    pub(crate) fn catch_up(&mut self, now: u64) {
        debug_assert!(!self.is_due(now));
        self.set_elapsed(now);
    }

    fn set_elapsed(&mut self, tick: u64) {
        if tick > self.elapsed {
            self.elapsed = tick;
            self.next.set(None);
        }
    }

    /// Milliseconds from `now` until the wheel next needs attention, or `None` when it is empty.
    pub(crate) fn timeout(&self, now: u64) -> Option<u64> {
        self.next_expiration().map(|(_, _, at)| at.saturating_sub(now))
    }

    /// Advances the wheel to `now`, unlinking every timer due at or before it into `expired`,
    /// sorted by deadline then start order.
    pub(crate) fn advance(&mut self, nodes: &mut impl Nodes, now: u64, expired: &mut Vec<Expired>) {
        if self.len == 0 {
            self.set_elapsed(now);
            return;
        }
        let first = expired.len();
        while let Some((level, slot, at)) = self.next_expiration() {
            if at > now {
                break;
            }
            self.set_elapsed(at);
            self.next.set(None);
            let bucket = level * SLOTS + slot;
            let mut idx = std::mem::replace(&mut self.heads[bucket], NIL);
            self.tails[bucket] = NIL;
            self.occupied[level] &= !(1 << slot);
            while idx != NIL {
                let node = nodes.node(idx);
                let next = node.next;
                node.bucket = UNLINKED;
                node.prev = NIL;
                node.next = NIL;
                if node.deadline <= now {
                    expired.push((node.deadline, node.seq, idx));
                    self.len -= 1;
                } else {
                    self.link(nodes, idx);
                }
                idx = next;
            }
        }
        self.set_elapsed(now);
        expired[first..].sort_unstable_by_key(|&(deadline, seq, _)| (deadline, seq));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Nodes in a plain vector, grown on demand, for the tests.
    #[derive(Default)]
    struct TestNodes(Vec<Node>);

    impl Nodes for TestNodes {
        fn node(&mut self, idx: u32) -> &mut Node {
            let i = idx as usize;
            if i >= self.0.len() {
                self.0.resize(i + 1, Node::default());
            }
            &mut self.0[i]
        }
    }

    impl TestNodes {
        fn is_linked(&mut self, idx: u32) -> bool {
            self.node(idx).bucket != UNLINKED
        }
    }

    fn drain(w: &mut Wheel, n: &mut TestNodes, now: u64) -> Vec<u32> {
        let mut out = Vec::new();
        w.advance(n, now, &mut out);
        out.into_iter().map(|(_, _, i)| i).collect()
    }

    #[test]
    fn fires_in_deadline_then_start_order() {
        let (mut w, mut n) = (Wheel::new(), TestNodes::default());
        w.insert(&mut n, 0, 5000, 0); // starts high, cascades down
        w.insert(&mut n, 1, 10, 1);
        w.insert(&mut n, 2, 10, 2);
        assert_eq!(drain(&mut w, &mut n, 4000), vec![1, 2]);
        w.insert(&mut n, 3, 5000, 3); // same deadline, started later, lands low directly
        assert_eq!(drain(&mut w, &mut n, 4999), Vec::<u32>::new());
        assert_eq!(drain(&mut w, &mut n, 5000), vec![0, 3]);
        assert_eq!(w.len(), 0);
    }

    #[test]
    fn remove_and_timeout() {
        let (mut w, mut n) = (Wheel::new(), TestNodes::default());
        w.insert(&mut n, 7, 100, 0);
        w.insert(&mut n, 8, 200, 1);
        assert!(w.timeout(0).unwrap() <= 100);
        w.remove(&mut n, 7);
        assert!(!n.is_linked(7));
        w.remove(&mut n, 7);
        assert_eq!(drain(&mut w, &mut n, 150), Vec::<u32>::new());
        assert_eq!(drain(&mut w, &mut n, 200), vec![8]);
        assert_eq!(w.timeout(200), None);
    }

    #[test]
    fn far_and_past_deadlines() {
        let (mut w, mut n) = (Wheel::new(), TestNodes::default());
        w.insert(&mut n, 0, MAX_SPAN * 3, 0);
        w.insert(&mut n, 1, 0, 1);
        assert_eq!(drain(&mut w, &mut n, 0), vec![1]);
        assert_eq!(drain(&mut w, &mut n, MAX_SPAN * 2), Vec::<u32>::new());
        assert_eq!(drain(&mut w, &mut n, MAX_SPAN * 3), vec![0]);
    }

    #[test]
    fn far_timer_inserted_late_in_a_top_level_turn() {
        let (mut w, mut n) = (Wheel::new(), TestNodes::default());
        let late = 63 << 30;
        assert_eq!(drain(&mut w, &mut n, late), Vec::<u32>::new());
        w.insert(&mut n, 0, late + 3 * MAX_SPAN, 0);
        w.insert(&mut n, 1, late + 5, 1);
        assert_eq!(w.timeout(late), Some(5));
        assert_eq!(drain(&mut w, &mut n, late + 5), vec![1]);
        assert_eq!(drain(&mut w, &mut n, late + 3 * MAX_SPAN - 1), Vec::<u32>::new());
        assert_eq!(drain(&mut w, &mut n, late + 3 * MAX_SPAN), vec![0]);
    }

    #[test]
    fn many_random_deadlines_come_out_sorted() {
        let (mut w, mut n) = (Wheel::new(), TestNodes::default());
        let mut x: u64 = 0x9e3779b97f4a7c15;
        let mut want = Vec::new();
        // Miri interprets every step: a smaller sample there checks the same paths.
        let count = if cfg!(miri) { 300 } else { 20_000u32 };
        for i in 0..count {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let d = x % 5_000_000;
            w.insert(&mut n, i, d, i as u64);
            want.push((d, i));
        }
        want.sort();
        let mut got = Vec::new();
        let mut now = 0;
        let step = if cfg!(miri) { 49_999 } else { 997 };
        while w.len() > 0 {
            now += step;
            got.extend(drain(&mut w, &mut n, now));
        }
        assert_eq!(got, want.into_iter().map(|(_, i)| i).collect::<Vec<_>>());
    }
}
