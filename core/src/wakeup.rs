//! Cross-thread wake-ups (libuv's `uv_async_t`): any thread calls [`Waker::wake`]; the loop
//! runs the handle's callback on its own thread. Wakes that arrive before the callback runs
//! coalesce into one call; a wake after the callback started always causes another call.
//!
//! All wake-up handles of a loop, and its signal watchers, share one eventfd.

use crate::backend::{Completion, Op};
use crate::error::{Error, Result};
use crate::event_loop::{token, Loop};
use crate::handle::{handle_type, Common, Kind};
use crate::sys;
use crate::wake_flag::WakeFlag;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

handle_type!(
    /// A wake-up handle; [`Async::waker`] gives the `Send + Sync` side other threads use.
    Async,
    Kind::Async
);

/// Runs on the loop thread after one or more wakes.
pub type AsyncCb = Box<dyn FnMut(&mut Loop, Async)>;

/// The eventfd, closed when the loop and every waker have let go of it.
pub(crate) struct WakeFd(pub(crate) RawFd);

impl Drop for WakeFd {
    fn drop(&mut self) {
        sys::close(self.0);
    }
}

struct Shared {
    pending: WakeFlag,
    /// The handle is closing or gone: wakes are refused.
    closed: AtomicBool,
    fd: Arc<WakeFd>,
}

/// Wakes an [`Async`] handle from any thread. Cheap to clone. Waking after the handle or its
/// loop is gone does nothing.
#[derive(Clone)]
pub struct Waker(Arc<Shared>);

impl Waker {
    /// Asks the loop to run the handle's callback. Only the first wake since the callback last
    /// ran touches the kernel.
    pub fn wake(&self) {
        let _ = self.try_wake();
    }

    /// [`Waker::wake`], telling whether the handle could be woken: `EBADF` once it is closing
    /// or gone (its callback will not run again).
    pub fn try_wake(&self) -> Result<()> {
        if self.0.closed.load(Ordering::Acquire) {
            return Err(Error::EBADF);
        }
        if self.0.pending.raise() {
            sys::eventfd_signal(self.0.fd.0);
        }
        Ok(())
    }
}

pub(crate) struct AsyncEntry {
    pub(crate) common: Common,
    shared: Arc<Shared>,
    cb: Option<AsyncCb>,
}

impl AsyncEntry {
    /// From now on, wakes are refused (`close` calls it; so does dropping the entry).
    pub(crate) fn refuse_wakes(&self) {
        self.shared.closed.store(true, Ordering::Release);
    }
}

impl Drop for AsyncEntry {
    fn drop(&mut self) {
        self.refuse_wakes();
    }
}

pub(crate) struct WakeState {
    pub(crate) fd: Option<Arc<WakeFd>>,
    armed: bool,
    sweep: Vec<(u32, u32)>,
    /// This loop's place in the process-wide signal table, once it watches a signal.
    pub(crate) signal_slot: Option<usize>,
}

impl WakeState {
    pub(crate) fn new() -> WakeState {
        WakeState {
            fd: None,
            armed: false,
            sweep: Vec::new(),
            signal_slot: None,
        }
    }
}

impl Async {
    /// A wake-up handle whose callback runs on the loop thread. It is active (keeps the loop
    /// alive) until closed or unref'd, as in libuv.
    pub fn new(lp: &mut Loop, cb: impl FnMut(&mut Loop, Async) + 'static) -> Result<Async> {
        let fd = lp.wake_fd()?;
        let mut common = Common::new();
        common.set_active(&mut lp.alive_refs, true);
        let shared = Arc::new(Shared {
            pending: WakeFlag::new(),
            closed: AtomicBool::new(false),
            fd,
        });
        let (idx, gen) = lp.asyncs.insert(AsyncEntry {
            common,
            shared,
            cb: Some(Box::new(cb)),
        });
        Ok(Async { idx, gen })
    }

    /// The thread-safe side of the handle.
    pub fn waker(self, lp: &Loop) -> Result<Waker> {
        let e = lp.asyncs.get(self.idx, self.gen).ok_or(Error::EBADF)?;
        Ok(Waker(e.shared.clone()))
    }
}

impl Loop {
    /// The loop's wake eventfd, created and armed on first use.
    pub(crate) fn wake_fd(&mut self) -> Result<Arc<WakeFd>> {
        let fd = match &self.wake.fd {
            Some(fd) => fd.clone(),
            None => {
                let fd = Arc::new(WakeFd(sys::eventfd()?));
                self.wake.fd = Some(fd.clone());
                fd
            }
        };
        self.arm_wake();
        Ok(fd)
    }

    fn arm_wake(&mut self) {
        if self.wake.armed {
            return;
        }
        let Some(fd) = self.wake.fd.as_ref().map(|f| f.0) else {
            return;
        };
        if self
            .backend
            .submit(token(Kind::Async, 0, 0, 0), Op::Wake { fd })
            .is_none()
        {
            self.wake.armed = true;
        }
    }

    pub(crate) fn wake_completion(&mut self, c: &Completion) {
        if !c.more {
            self.wake.armed = false;
            self.arm_wake();
        }
        if c.res < 0 {
            return;
        }
        self.signal_dispatch();
        self.work_dispatch();
        let mut sweep = std::mem::take(&mut self.wake.sweep);
        self.asyncs.live(&mut sweep);
        for &(idx, gen) in &sweep {
            let Some(e) = self.asyncs.get_mut(idx, gen) else {
                continue;
            };
            if e.common.closing || !e.shared.pending.take() {
                continue;
            }
            let Some(mut cb) = e.cb.take() else { continue };
            cb(self, Async { idx, gen });
            if let Some(e) = self.asyncs.get_mut(idx, gen) {
                if e.cb.is_none() && !e.common.closing {
                    e.cb = Some(cb);
                }
            }
        }
        self.wake.sweep = sweep;
    }
}
