//! Signal watchers (libuv's `uv_signal_t`): signals delivered as loop callbacks.
//!
//! A process-wide handler (installed with `sigaction` while any watcher of that signal exists,
//! and the previous disposition restored after the last one stops) marks the signal pending in a
//! fixed table of loops and writes to each loop's wake eventfd. Both steps are async-signal-safe.
//! Up to 64 loops in one process can watch signals; the 65th gets `EMFILE`. Signal masks are not
//! touched, so the host process (Python, Node) keeps its own signal arrangements for the signals
//! no watcher claims.

use crate::error::{Error, Result};
use crate::event_loop::Loop;
use crate::handle::{handle_type, Common, Kind};
use crate::sys;
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;

handle_type!(
    /// Watches one signal at a time.
    Signal,
    Kind::Signal
);

/// Runs on the loop thread with the signal number, once per batch of deliveries.
pub type SignalCb = Box<dyn FnMut(&mut Loop, Signal, i32)>;

const MAX_LOOPS: usize = 64;
const MAX_SIGNAL: i32 = 64;

struct LoopSlot {
    fd: AtomicI32,
    /// Handlers currently using `fd`: a loop waits for zero before closing it.
    busy: AtomicU32,
    /// Bit `n - 1` set: signal `n` arrived.
    pending: AtomicU64,
}

#[allow(clippy::declare_interior_mutable_const)]
const EMPTY_SLOT: LoopSlot = LoopSlot {
    fd: AtomicI32::new(-1),
    busy: AtomicU32::new(0),
    pending: AtomicU64::new(0),
};
static SLOTS: [LoopSlot; MAX_LOOPS] = [EMPTY_SLOT; MAX_LOOPS];

struct Registry {
    watchers: [u32; MAX_SIGNAL as usize + 1],
    previous: Vec<Option<libc::sigaction>>,
    slot_used: [bool; MAX_LOOPS],
}

static REGISTRY: Mutex<Option<Registry>> = Mutex::new(None);

fn with_registry<R>(f: impl FnOnce(&mut Registry) -> R) -> R {
    let mut guard = REGISTRY.lock().unwrap_or_else(|p| p.into_inner());
    let reg = guard.get_or_insert_with(|| Registry {
        watchers: [0; MAX_SIGNAL as usize + 1],
        previous: vec![None; MAX_SIGNAL as usize + 1],
        slot_used: [false; MAX_LOOPS],
    });
    f(reg)
}

extern "C" fn on_signal(signum: libc::c_int) {
    // SAFETY: errno is thread-local; saving and restoring it keeps the interrupted code's view.
    let saved_errno = unsafe { *libc::__errno_location() };
    if (1..=MAX_SIGNAL).contains(&signum) {
        for slot in SLOTS.iter() {
            if slot.fd.load(Ordering::Relaxed) < 0 {
                continue;
            }
            slot.busy.fetch_add(1, Ordering::SeqCst);
            let fd = slot.fd.load(Ordering::SeqCst);
            if fd >= 0 {
                slot.pending.fetch_or(1 << (signum - 1), Ordering::SeqCst);
                sys::eventfd_signal(fd);
            }
            slot.busy.fetch_sub(1, Ordering::SeqCst);
        }
    }
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = saved_errno };
}

fn install(reg: &mut Registry, signum: i32) -> Result<()> {
    // SAFETY: a zeroed sigaction is valid; we fill in the handler and an empty mask.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
    action.sa_flags = libc::SA_RESTART | libc::SA_ONSTACK;
    // SAFETY: valid pointer to the mask inside `action`.
    unsafe { libc::sigemptyset(&mut action.sa_mask) };
    // SAFETY: zeroed out-parameter for the previous action.
    let mut previous: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid; the kernel validates `signum`.
    sys::cvt(unsafe { libc::sigaction(signum, &action, &mut previous) })?;
    reg.previous[signum as usize] = Some(previous);
    Ok(())
}

fn restore(reg: &mut Registry, signum: i32) {
    if let Some(previous) = reg.previous[signum as usize].take() {
        // SAFETY: restores an action the kernel gave us.
        unsafe { libc::sigaction(signum, &previous, std::ptr::null_mut()) };
    }
}

pub(crate) struct SignalEntry {
    pub(crate) common: Common,
    signum: i32,
    cb: Option<SignalCb>,
}

impl Signal {
    /// A stopped signal watcher.
    pub fn new(lp: &mut Loop) -> Result<Signal> {
        let (idx, gen) = lp.signals.insert(SignalEntry {
            common: Common::new(),
            signum: 0,
            cb: None,
        });
        Ok(Signal { idx, gen })
    }

    /// Watches `signum` (replacing a signal watched before). `SIGKILL`, `SIGSTOP` and numbers
    /// outside 1..=64 give `EINVAL`.
    pub fn start(
        self,
        lp: &mut Loop,
        signum: i32,
        cb: impl FnMut(&mut Loop, Signal, i32) + 'static,
    ) -> Result<()> {
        if !(1..=MAX_SIGNAL).contains(&signum) || signum == libc::SIGKILL || signum == libc::SIGSTOP {
            return Err(Error::EINVAL);
        }
        match lp.signals.get(self.idx, self.gen) {
            Some(e) if !e.common.closing => {}
            _ => return Err(Error::EBADF),
        }
        lp.signal_stop_entry(self.idx, self.gen);
        let fd = lp.wake_fd()?.0;
        let slot = match lp.wake.signal_slot {
            Some(s) => s,
            None => {
                let s = with_registry(|reg| {
                    let s = reg.slot_used.iter().position(|u| !u)?;
                    reg.slot_used[s] = true;
                    Some(s)
                })
                .ok_or(Error::EMFILE)?;
                SLOTS[s].pending.store(0, Ordering::SeqCst);
                SLOTS[s].fd.store(fd, Ordering::SeqCst);
                lp.wake.signal_slot = Some(s);
                s
            }
        };
        let _ = slot;
        with_registry(|reg| {
            if reg.watchers[signum as usize] == 0 {
                install(reg, signum)?;
            }
            reg.watchers[signum as usize] += 1;
            Ok::<(), Error>(())
        })?;
        let e = lp.signals.get_mut(self.idx, self.gen).expect("checked above");
        e.signum = signum;
        e.cb = Some(Box::new(cb));
        e.common.set_active(&mut lp.alive_refs, true);
        Ok(())
    }

    /// Stops watching; the signal's previous disposition returns when no watcher is left.
    pub fn stop(self, lp: &mut Loop) -> Result<()> {
        lp.signals.get(self.idx, self.gen).ok_or(Error::EBADF)?;
        lp.signal_stop_entry(self.idx, self.gen);
        Ok(())
    }

    /// The signal watched, or 0.
    pub fn signum(self, lp: &Loop) -> i32 {
        lp.signals.get(self.idx, self.gen).map_or(0, |e| e.signum)
    }
}

impl Loop {
    pub(crate) fn signal_stop_entry(&mut self, idx: u32, gen: u32) {
        let Some(e) = self.signals.get_mut(idx, gen) else {
            return;
        };
        let signum = std::mem::take(&mut e.signum);
        e.common.set_active(&mut self.alive_refs, false);
        if signum != 0 {
            with_registry(|reg| {
                reg.watchers[signum as usize] -= 1;
                if reg.watchers[signum as usize] == 0 {
                    restore(reg, signum);
                }
            });
        }
    }

    pub(crate) fn signal_dispatch(&mut self) {
        let Some(slot) = self.wake.signal_slot else {
            return;
        };
        let bits = SLOTS[slot].pending.swap(0, Ordering::SeqCst);
        if bits == 0 {
            return;
        }
        let mut live = Vec::new();
        self.signals.live(&mut live);
        for (idx, gen) in live {
            let Some(e) = self.signals.get_mut(idx, gen) else {
                continue;
            };
            let signum = e.signum;
            if signum == 0 || e.common.closing || bits & (1 << (signum - 1)) == 0 {
                continue;
            }
            let Some(mut cb) = e.cb.take() else { continue };
            cb(self, Signal { idx, gen }, signum);
            if let Some(e) = self.signals.get_mut(idx, gen) {
                if e.cb.is_none() && !e.common.closing {
                    e.cb = Some(cb);
                }
            }
        }
    }

    /// Stops every watcher and gives the loop's slot back before its eventfd can close.
    pub(crate) fn signal_loop_dropped(&mut self) {
        let mut live = Vec::new();
        self.signals.live(&mut live);
        for (idx, gen) in live {
            self.signal_stop_entry(idx, gen);
        }
        if let Some(s) = self.wake.signal_slot.take() {
            SLOTS[s].fd.store(-1, Ordering::SeqCst);
            while SLOTS[s].busy.load(Ordering::SeqCst) != 0 {
                std::hint::spin_loop();
            }
            with_registry(|reg| reg.slot_used[s] = false);
        }
    }
}
