//! A hierarchical timing wheel: 6 levels of 64 slots at 1 ms resolution (about 2.2 years of
//! range before a timer is parked at the top level and re-examined).
//!
//! Insertion and removal are O(1): each timer is a node of an intrusive doubly-linked list in its
//! slot. The nodes live inside the timers' own entries (see [`Nodes`]). Stopping a timer touches
//! its own node and nothing else: the node stays in its list, marked stopped, and leaves it when
//! its slot is next processed, when the timer is scheduled again, or when it is removed (see
//! [`Wheel::stop`]). Finding the next deadline scans at most six 64-bit masks of the slots that
//! hold running timers. Timers due in the same millisecond come out in start order (by sequence
//! number), whatever level they waited in.

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
/// `repr(C)` with the slot and the stopped flag first: a stop reads and writes those alone.
#[derive(Clone, Copy)]
#[repr(C)]
pub(crate) struct Node {
    bucket: u16,
    /// Linked but stopped: it waits in its list to be unlinked, and never fires from there.
    stopped: bool,
    prev: u32,
    next: u32,
    deadline: u64,
    seq: u64,
}

impl Default for Node {
    fn default() -> Node {
        Node {
            deadline: 0,
            seq: 0,
            prev: NIL,
            next: NIL,
            bucket: UNLINKED,
            stopped: false,
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
    /// Running (not stopped) timers in each slot's list.
    running: [u32; LEVELS * SLOTS],
    /// Per level, the slots with running timers.
    occupied: [u64; LEVELS],
    /// Running timers.
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
            running: [0; LEVELS * SLOTS],
            occupied: [0; LEVELS],
            len: 0,
            next: Cell::new(None),
        }
    }

    /// Timers currently running.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Schedules timer `idx` (which must not be linked) for `deadline` (ms, on the loop's clock).
    pub(crate) fn insert(&mut self, nodes: &mut impl Nodes, idx: u32, deadline: u64, seq: u64) {
        let tail = self.schedule(idx, nodes.node(idx), deadline, seq);
        self.append_after(nodes, tail, idx);
    }

    /// Schedules timer `idx` again: unlinks it if it is linked, running or stopped, then
    /// inserts it. `node` is its node, which the caller has in hand (the wheel reaches only its
    /// neighbours through `nodes`).
    pub(crate) fn reschedule(
        &mut self,
        nodes: &mut impl Nodes,
        idx: u32,
        node: &mut Node,
        deadline: u64,
        seq: u64,
    ) {
        if let Some(links) = self.detach(node) {
            self.close_gap(nodes, links);
        }
        let tail = self.schedule(idx, node, deadline, seq);
        self.append_after(nodes, tail, idx);
    }

    fn schedule(&mut self, idx: u32, node: &mut Node, deadline: u64, seq: u64) -> u32 {
        debug_assert_eq!(node.bucket, UNLINKED);
        node.deadline = deadline;
        node.seq = seq;
        self.len += 1;
        self.link_node(idx, node)
    }

    /// Puts `node` (timer `idx`'s) at the end of its deadline's slot; returns the slot's old
    /// tail, whose `next` the caller points at `idx` (see `append_after`).
    fn link_node(&mut self, idx: u32, node: &mut Node) -> u32 {
        self.next.set(None);
        // A past deadline goes in the current slot; a far one waits at the top level.
        let when = node.deadline.clamp(self.elapsed, self.elapsed + MAX_SPAN);
        let level = level_for(self.elapsed, when);
        let bucket = level * SLOTS + slot_for(when, level);
        let tail = self.tails[bucket];
        node.bucket = bucket as u16;
        node.prev = tail;
        node.next = NIL;
        node.stopped = false;
        if tail == NIL {
            self.heads[bucket] = idx;
        }
        self.tails[bucket] = idx;
        self.running[bucket] += 1;
        self.occupied[level] |= 1 << (bucket % SLOTS);
        tail
    }

    fn append_after(&mut self, nodes: &mut impl Nodes, tail: u32, idx: u32) {
        if tail != NIL {
            nodes.node(tail).next = idx;
        }
    }

    /// One running timer fewer in `bucket`; the slot no longer counts as occupied without any.
    fn not_running(&mut self, bucket: usize) {
        self.len -= 1;
        self.running[bucket] -= 1;
        if self.running[bucket] == 0 {
            self.occupied[bucket / SLOTS] &= !(1 << (bucket % SLOTS));
            self.next.set(None);
        }
    }

    /// Stops timer `idx` (it will not fire) without unlinking it; does nothing if it is not
    /// running. Unlinking writes to both neighbours, which in a wheel of many timers are cache
    /// misses of their own, so it is left to whatever visits the node next: processing its slot,
    /// scheduling the timer again, or `remove`. Each stopped node is unlinked once, so the cost
    /// is deferred, never repeated; and a slot that holds only stopped timers is not occupied, so
    /// it never wakes the loop. (Go's runtime timers defer deletion in the same way.)
    pub(crate) fn stop(&mut self, nodes: &mut impl Nodes, idx: u32) {
        self.stop_node(nodes.node(idx));
    }

    /// `stop` for a node the caller has in hand.
    pub(crate) fn stop_node(&mut self, node: &mut Node) {
        if node.bucket == UNLINKED || node.stopped {
            return;
        }
        node.stopped = true;
        let bucket = node.bucket as usize;
        self.not_running(bucket);
    }

    /// Unschedules timer `idx`, running or stopped, and unlinks it; does nothing if it is not
    /// linked.
    pub(crate) fn remove(&mut self, nodes: &mut impl Nodes, idx: u32) {
        if let Some(links) = self.detach(nodes.node(idx)) {
            self.close_gap(nodes, links);
        }
    }

    /// Takes `node` out of the counts and marks it unlinked; returns its slot and neighbours,
    /// between which `close_gap` then closes the list (None if it was not linked).
    fn detach(&mut self, node: &mut Node) -> Option<(usize, u32, u32)> {
        if node.bucket == UNLINKED {
            return None;
        }
        let links = (node.bucket as usize, node.prev, node.next);
        if !node.stopped {
            self.not_running(links.0);
        }
        node.bucket = UNLINKED;
        node.prev = NIL;
        node.next = NIL;
        node.stopped = false;
        Some(links)
    }

    fn close_gap(&mut self, nodes: &mut impl Nodes, (bucket, prev, next): (usize, u32, u32)) {
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
    /// sorted by deadline then start order, and every stopped timer it passes.
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
            self.running[bucket] = 0;
            self.occupied[level] &= !(1 << slot);
            while idx != NIL {
                let node = nodes.node(idx);
                let next = node.next;
                node.bucket = UNLINKED;
                node.prev = NIL;
                node.next = NIL;
                if std::mem::take(&mut node.stopped) {
                    // Counted out when it was stopped.
                } else if node.deadline <= now {
                    expired.push((node.deadline, node.seq, idx));
                    self.len -= 1;
                } else {
                    let tail = self.link_node(idx, nodes.node(idx));
                    self.append_after(nodes, tail, idx);
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

    impl Wheel {
        /// What the loop does to (re)start a timer: unlink it wherever it is, then insert it.
        fn insert_again(&mut self, nodes: &mut TestNodes, idx: u32, deadline: u64, seq: u64) {
            self.remove(nodes, idx);
            self.insert(nodes, idx, deadline, seq);
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
    fn a_stopped_timer_neither_fires_nor_sets_the_timeout_and_leaves_with_its_slot() {
        let (mut w, mut n) = (Wheel::new(), TestNodes::default());
        w.insert(&mut n, 1, 100, 0);
        w.insert(&mut n, 2, 100, 1);
        w.insert(&mut n, 3, 5000, 2);
        w.stop(&mut n, 1);
        w.stop(&mut n, 1);
        assert_eq!(w.len(), 2);
        assert!(n.is_linked(1), "a stop leaves the node where it is");
        w.stop(&mut n, 2);
        // Only stopped timers are left in the 100 ms slot: the wheel waits for the far one.
        assert!(w.timeout(0).unwrap() > 100);
        w.stop(&mut n, 3);
        assert_eq!((w.len(), w.timeout(0)), (0, None));
        // Scheduled again, a stopped timer leaves its old slot first.
        w.insert_again(&mut n, 2, 200, 3);
        assert!(n.is_linked(1) && n.node(1).stopped && !n.node(2).stopped);
        assert_eq!(drain(&mut w, &mut n, 150), Vec::<u32>::new());
        assert_eq!(drain(&mut w, &mut n, 200), vec![2]);
        // Processing slots passes the stopped nodes and unlinks them.
        w.insert(&mut n, 4, 6000, 4);
        assert_eq!(drain(&mut w, &mut n, 6000), vec![4]);
        for idx in [1, 3] {
            w.remove(&mut n, idx);
            assert!(!n.is_linked(idx));
        }
        assert_eq!((w.len(), w.timeout(6000)), (0, None));
    }

    #[test]
    fn random_starts_stops_and_removals_fire_what_a_model_fires() {
        let (mut w, mut n) = (Wheel::new(), TestNodes::default());
        // The model: each timer's (deadline, seq) while it runs.
        let count = if cfg!(miri) { 64 } else { 2_000u32 };
        let mut model: Vec<Option<(u64, u64)>> = vec![None; count as usize];
        let mut x: u64 = 0x2545f4914f6cdd1d;
        let (mut now, mut seq) = (0u64, 0u64);
        let steps = if cfg!(miri) { 400 } else { 60_000 };
        for _ in 0..steps {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let idx = (x % count as u64) as u32;
            match (x >> 32) % 8 {
                0..=3 => {
                    seq += 1;
                    let deadline = now + (x >> 40) % 300_000;
                    w.insert_again(&mut n, idx, deadline, seq);
                    model[idx as usize] = Some((deadline, seq));
                }
                4 | 5 => {
                    w.stop(&mut n, idx);
                    model[idx as usize] = None;
                }
                6 => {
                    w.remove(&mut n, idx);
                    assert!(!n.is_linked(idx));
                    model[idx as usize] = None;
                }
                _ => {
                    now += (x >> 45) % 5_000;
                    let mut want: Vec<(u64, u64, u32)> = (0..count)
                        .filter_map(|i| {
                            model[i as usize]
                                .filter(|&(d, _)| d <= now)
                                .map(|(d, s)| (d, s, i))
                        })
                        .collect();
                    want.sort();
                    for &(_, _, i) in &want {
                        model[i as usize] = None;
                    }
                    let got = drain(&mut w, &mut n, now);
                    assert_eq!(got, want.into_iter().map(|(_, _, i)| i).collect::<Vec<_>>());
                    assert_eq!(w.len(), model.iter().flatten().count());
                    let earliest = model.iter().flatten().map(|&(d, _)| d).min();
                    match (w.timeout(now), earliest) {
                        (None, None) => {}
                        (Some(t), Some(d)) => {
                            assert!(now + t <= d, "the wheel wakes no later than its first timer")
                        }
                        other => panic!("timeout and model disagree: {other:?}"),
                    }
                }
            }
        }
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
