//! Timer handles (libuv's `uv_timer_t`) over the timing wheel.

mod store;
pub(crate) mod wheel;

pub use store::TimerPlace;
pub(crate) use store::Timers;
use wheel::Node;

use std::ptr::NonNull;

use crate::error::{Error, Result};
use crate::event_loop::Loop;
use crate::handle::{handle_type, Common, Kind};

/// Called when a timer fires.
pub type TimerCb = Box<dyn FnMut(&mut Loop, Timer)>;
/// A timer callback that needs no allocation: a plain function and a word it is given back
/// (see [`Timer::start_fn`]).
pub type TimerFn = fn(&mut Loop, Timer, usize);

enum Callback {
    Boxed(TimerCb),
    Plain(TimerFn, usize),
}

handle_type!(
    /// A one-shot or repeating timer. Create with [`Timer::new`], then `start`/`stop`/`again`,
    /// and `close` when done.
    Timer,
    Kind::Timer
);

/// `repr(C)`, in the order a stop reads it: what a stop touches (the common state, the
/// generation a place checks, the node's slot and stopped flag) is in the first 28 bytes, so
/// that a timer in caller memory, behind its 40-byte C record, stops within one or two adjacent
/// cache lines.
#[repr(C)]
pub(crate) struct TimerEntry {
    pub(crate) common: Common,
    /// Its generation, which a timer reached through its place checks (`Timers::get_in`); a
    /// `u32` fits where the entry had padding, a whole id would not.
    gen: u32,
    started_once: bool,
    /// Its place in the wheel, with its deadline and start order (a sequence number, so that
    /// timers due in the same millisecond fire in the order they were started).
    node: Node,
    repeat: u64,
    cb: Option<Callback>,
}

impl Timer {
    /// A stopped timer.
    pub fn new(lp: &mut Loop) -> Timer {
        let (idx, gen) = lp.timers.insert(TimerEntry::new());
        Timer { idx, gen }
    }

    /// A stopped timer whose state lives in `place`, memory the caller provides (a binding that
    /// keeps a record per timer puts it there): creating it allocates nothing, and
    /// [`Timer::start_fn_in`] and [`Timer::stop_in`] reach it without the loop's tables. Every
    /// other function works as for any timer.
    ///
    /// # Safety
    /// `place` must stay valid and in place, untouched by anyone else, until the timer's close
    /// has completed (its close callback runs) or the loop is dropped.
    pub unsafe fn new_in(lp: &mut Loop, place: NonNull<TimerPlace>) -> Timer {
        // SAFETY: forwarded from the caller.
        let (idx, gen) = unsafe { lp.timers.insert_placed(place) };
        Timer { idx, gen }
    }

    /// Fires `cb` after `timeout_ms`, then every `repeat_ms` if that is non-zero. Restarts the
    /// timer if it was running.
    pub fn start(
        self,
        lp: &mut Loop,
        timeout_ms: u64,
        repeat_ms: u64,
        cb: impl FnMut(&mut Loop, Timer) + 'static,
    ) -> Result<()> {
        self.start_boxed(lp, timeout_ms, repeat_ms, Box::new(cb))
    }

    /// [`Timer::start`] with a callback already boxed (no allocation if it is reused).
    pub fn start_boxed(self, lp: &mut Loop, timeout_ms: u64, repeat_ms: u64, cb: TimerCb) -> Result<()> {
        self.start_with(lp, timeout_ms, repeat_ms, Callback::Boxed(cb))
    }

    /// [`Timer::start`] with `f(loop, timer, data)` as the callback: nothing is allocated, so
    /// a binding that keeps its own per-timer record (the C ABI's handle) starts timers at the
    /// cost of the wheel alone. What `data` points to must outlive the timer's callbacks: the
    /// loop never drops or frees it.
    pub fn start_fn(
        self,
        lp: &mut Loop,
        timeout_ms: u64,
        repeat_ms: u64,
        f: TimerFn,
        data: usize,
    ) -> Result<()> {
        self.start_with(lp, timeout_ms, repeat_ms, Callback::Plain(f, data))
    }

    /// [`Timer::start_fn`] for a timer made by [`Timer::new_in`], reached through its place.
    ///
    /// # Safety
    /// `place` must be the one the timer was made in, and the timer not closed yet (its close
    /// callback has not run).
    pub unsafe fn start_fn_in(
        self,
        lp: &mut Loop,
        place: NonNull<TimerPlace>,
        timeout_ms: u64,
        repeat_ms: u64,
        f: TimerFn,
        data: usize,
    ) -> Result<()> {
        // SAFETY: forwarded from the caller. The entry is the caller's memory, not the loop's, so
        // holding it does not borrow `lp`; the wheel reaches other timers' nodes only.
        let e = unsafe { Timers::get_in(place, self.idx, self.gen) }.ok_or(Error::EBADF)?;
        e.start(Callback::Plain(f, data), repeat_ms)?;
        let (deadline, seq) = lp.next_schedule(timeout_ms);
        e.common.set_active(&mut lp.alive_refs, true);
        lp.wheel
            .reschedule(&mut lp.timers, self.idx, &mut e.node, deadline, seq);
        Ok(())
    }

    fn start_with(self, lp: &mut Loop, timeout_ms: u64, repeat_ms: u64, cb: Callback) -> Result<()> {
        let e = lp.timers.get_mut(self.idx, self.gen).ok_or(Error::EBADF)?;
        e.start(cb, repeat_ms)?;
        lp.arm_timer(self.idx, self.gen, timeout_ms);
        Ok(())
    }

    /// Stops the timer; its callback stays for `again`.
    pub fn stop(self, lp: &mut Loop) -> Result<()> {
        let e = lp.timers.get_mut(self.idx, self.gen).ok_or(Error::EBADF)?;
        e.common.set_active(&mut lp.alive_refs, false);
        lp.wheel.stop(&mut lp.timers, self.idx);
        Ok(())
    }

    /// [`Timer::stop`] for a timer made by [`Timer::new_in`], reached through its place: the
    /// stop touches nothing but the place (the wheel defers unlinking it, see `Wheel::stop`).
    ///
    /// # Safety
    /// As for [`Timer::start_fn_in`].
    pub unsafe fn stop_in(self, lp: &mut Loop, place: NonNull<TimerPlace>) -> Result<()> {
        // SAFETY: forwarded from the caller.
        let e = unsafe { Timers::get_in(place, self.idx, self.gen) }.ok_or(Error::EBADF)?;
        e.common.set_active(&mut lp.alive_refs, false);
        lp.wheel.stop_node(&mut e.node);
        Ok(())
    }

    /// Restarts a repeating timer with its repeat interval as the timeout. `EINVAL` if the timer
    /// was never started; a non-repeating timer is left as it is, running or not (what
    /// `uv_timer_again` does).
    pub fn again(self, lp: &mut Loop) -> Result<()> {
        let e = lp.timers.get_mut(self.idx, self.gen).ok_or(Error::EBADF)?;
        if !e.started_once || e.common.closing {
            return Err(Error::EINVAL);
        }
        let repeat = e.repeat;
        if repeat > 0 {
            self.stop(lp)?;
            lp.arm_timer(self.idx, self.gen, repeat);
        }
        Ok(())
    }

    /// Sets the repeat interval used from the next firing on.
    pub fn set_repeat(self, lp: &mut Loop, repeat_ms: u64) -> Result<()> {
        lp.timers.get_mut(self.idx, self.gen).ok_or(Error::EBADF)?.repeat = repeat_ms;
        Ok(())
    }

    /// The repeat interval in milliseconds.
    pub fn repeat(self, lp: &Loop) -> Result<u64> {
        Ok(lp.timers.get(self.idx, self.gen).ok_or(Error::EBADF)?.repeat)
    }

    /// Milliseconds until the timer fires (0 if it is due or stopped).
    pub fn due_in(self, lp: &Loop) -> Result<u64> {
        let e = lp.timers.get(self.idx, self.gen).ok_or(Error::EBADF)?;
        Ok(if e.common.active {
            e.node.deadline().saturating_sub(lp.now())
        } else {
            0
        })
    }
}

impl TimerEntry {
    fn new() -> TimerEntry {
        TimerEntry {
            common: Common::new(),
            gen: 0,
            repeat: 0,
            node: Node::default(),
            started_once: false,
            cb: None,
        }
    }

    /// Writes a new stopped timer with generation `gen` at `at`, field by field: built whole and
    /// copied, the entry went through the stack, and reading it back there in wider pieces than
    /// it was written stalled store forwarding.
    ///
    /// # Safety
    /// `at` must be valid for writes of a `TimerEntry` and aligned for it.
    unsafe fn write_new(at: *mut TimerEntry, gen: u32) {
        // Taken apart whole, so that a field added to the entry cannot be left unwritten here.
        let TimerEntry {
            common,
            gen: _,
            started_once,
            node,
            repeat,
            cb,
        } = TimerEntry::new();
        // SAFETY: forwarded from the caller; each field is written once, none read.
        unsafe {
            std::ptr::addr_of_mut!((*at).common).write(common);
            std::ptr::addr_of_mut!((*at).gen).write(gen);
            std::ptr::addr_of_mut!((*at).started_once).write(started_once);
            std::ptr::addr_of_mut!((*at).node).write(node);
            std::ptr::addr_of_mut!((*at).repeat).write(repeat);
            std::ptr::addr_of_mut!((*at).cb).write(cb);
        }
    }

    /// Takes the callback and repeat interval of a start (the caller then schedules it).
    fn start(&mut self, cb: Callback, repeat_ms: u64) -> Result<()> {
        if self.common.closing {
            return Err(Error::EBADF);
        }
        self.cb = Some(cb);
        self.repeat = repeat_ms;
        self.started_once = true;
        Ok(())
    }
}

impl Loop {
    /// The deadline and start sequence of a timer started now for `timeout_ms`.
    fn next_schedule(&mut self, timeout_ms: u64) -> (u64, u64) {
        self.timer_seq += 1;
        (self.now().saturating_add(timeout_ms), self.timer_seq)
    }

    fn arm_timer(&mut self, idx: u32, gen: u32, timeout_ms: u64) {
        let (deadline, seq) = self.next_schedule(timeout_ms);
        let Some(e) = self.timers.get_mut(idx, gen) else {
            return;
        };
        e.common.set_active(&mut self.alive_refs, true);
        self.wheel.remove(&mut self.timers, idx);
        self.wheel.insert(&mut self.timers, idx, deadline, seq);
    }

    /// A closing timer leaves the wheel, and its callback (with what it holds) goes at once, not
    /// when the close completes: it can never fire again.
    pub(crate) fn timer_closing(&mut self, idx: u32, gen: u32) {
        self.wheel.remove(&mut self.timers, idx);
        let cb = self.timers.get_mut(idx, gen).and_then(|e| e.cb.take());
        drop(cb);
    }

    pub(crate) fn fire_timer(&mut self, idx: u32, seq: u64) {
        let now = self.now();
        let Some((gen, e)) = self.timers.get_by_index(idx) else {
            return;
        };
        // A timer stopped or restarted by an earlier callback of this batch has a new sequence.
        if e.node.seq() != seq || !e.common.active || e.common.closing {
            return;
        }
        let repeat = e.repeat;
        let e = if repeat > 0 {
            // Re-arm before the callback, from the due time, so repeats do not drift.
            let deadline = e
                .node
                .deadline()
                .max(now.saturating_sub(repeat))
                .saturating_add(repeat);
            self.timer_seq += 1;
            self.wheel.insert(&mut self.timers, idx, deadline, self.timer_seq);
            match self.timers.get_by_index(idx) {
                Some((_, again)) => again,
                None => return,
            }
        } else {
            e.common.set_active(&mut self.alive_refs, false);
            e
        };
        let timer = Timer { idx, gen };
        let mut cb = match e.cb {
            // Copied, not taken: the entry keeps it, whatever the function does to the timer.
            Some(Callback::Plain(f, data)) => return f(self, timer, data),
            Some(Callback::Boxed(_)) => e.cb.take(),
            None => return,
        };
        if let Some(Callback::Boxed(f)) = cb.as_mut() {
            f(self, timer);
        }
        if let Some(e) = self.timers.get_mut(idx, gen) {
            if e.cb.is_none() && !e.common.closing {
                e.cb = cb;
            }
        }
    }
}

// Every pending timer pays for its entry: a C program's, with its record, is held to libuv's
// 152 bytes per timer (BENCHMARKS.md, "Timers").
const _: () = assert!(std::mem::size_of::<TimerEntry>() <= 88);
