//! What every handle shares: the life cycle (start/stop → close → close callback), reference
//! counting for loop liveness, and the typed ids users hold.

use crate::error::Result;
use crate::event_loop::Loop;

/// Runs once, after the handle is fully closed.
pub type CloseCb = Box<dyn FnOnce(&mut Loop)>;

/// State every handle kind keeps.
pub(crate) struct Common {
    /// Doing something that keeps the loop alive (if referenced).
    pub(crate) active: bool,
    pub(crate) referenced: bool,
    pub(crate) closing: bool,
    /// Operations submitted to the backend whose final completion has not arrived.
    pub(crate) inflight: u32,
    /// Boxed once more so that every handle pays one word for it, not two: only closing handles
    /// have one.
    close_cb: Option<Box<CloseCb>>,
}

impl Common {
    pub(crate) fn new() -> Common {
        Common {
            active: false,
            referenced: true,
            closing: false,
            inflight: 0,
            close_cb: None,
        }
    }

    pub(crate) fn set_close_cb(&mut self, cb: Option<CloseCb>) {
        self.close_cb = cb.map(Box::new);
    }

    pub(crate) fn take_close_cb(&mut self) -> Option<CloseCb> {
        self.close_cb.take().map(|cb| *cb)
    }

    /// Changes the active state, keeping the loop's count of live references in step.
    #[inline]
    pub(crate) fn set_active(&mut self, alive_refs: &mut usize, active: bool) {
        if self.active != active {
            self.active = active;
            if self.referenced {
                if active {
                    *alive_refs += 1;
                } else {
                    *alive_refs -= 1;
                }
            }
        }
    }

    pub(crate) fn set_ref(&mut self, alive_refs: &mut usize, referenced: bool) {
        if self.referenced != referenced {
            self.referenced = referenced;
            if self.active {
                if referenced {
                    *alive_refs += 1;
                } else {
                    *alive_refs -= 1;
                }
            }
        }
    }
}

/// Handle kinds, as they appear in tokens and in the closing queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Kind {
    Timer = 1,
    Stream = 2,
    Udp = 3,
    Poll = 4,
    Async = 5,
    Signal = 6,
    Process = 7,
}

/// A reference to any handle: kind, slab index and generation. Opaque outside the crate.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawHandle {
    pub(crate) kind: Kind,
    pub(crate) idx: u32,
    pub(crate) gen: u32,
}

/// The life cycle shared by every handle type: close, ref/unref, activity.
pub trait Handle: Copy {
    #[doc(hidden)]
    fn raw(self) -> RawHandle;

    /// Closes the handle: stops it, cancels its operations, and runs `cb` once, after the
    /// kernel has let go of everything the handle lent it and its fd is closed. After this call
    /// none of the handle's own callbacks (read, accept, timer, poll, signal, wake-up, exit)
    /// runs. Requests it had started (writes, connect, shutdown, datagram sends) each still get
    /// their callback once, as in libuv: with their result if they had finished, else with
    /// `ECANCELED`, before `cb`, which runs last. Closing from inside the handle's own callback
    /// is fine. A handle closed twice, or already gone, gives `EBADF`.
    fn close(self, lp: &mut Loop, cb: Option<CloseCb>) -> Result<()> {
        lp.close_handle(self.raw(), cb)
    }

    /// Lets the handle keep the loop alive while active (the default).
    fn ref_(self, lp: &mut Loop) -> Result<()> {
        lp.set_handle_ref(self.raw(), true)
    }

    /// Stops the handle from keeping the loop alive on its own.
    fn unref(self, lp: &mut Loop) -> Result<()> {
        lp.set_handle_ref(self.raw(), false)
    }

    /// Whether the handle keeps the loop alive when active.
    fn has_ref(self, lp: &Loop) -> bool {
        lp.with_common(self.raw(), |c| c.referenced).unwrap_or(false)
    }

    /// Whether the handle is doing something (timer started, socket reading or writing…).
    fn is_active(self, lp: &Loop) -> bool {
        lp.with_common(self.raw(), |c| c.active && !c.closing)
            .unwrap_or(false)
    }

    /// Whether `close` was called and the close callback has not run yet.
    fn is_closing(self, lp: &Loop) -> bool {
        lp.with_common(self.raw(), |c| c.closing).unwrap_or(false)
    }

    /// Whether the handle still exists (its close callback has not run).
    fn is_alive(self, lp: &Loop) -> bool {
        lp.with_common(self.raw(), |_| ()).is_some()
    }
}

macro_rules! handle_type {
    ($(#[$m:meta])* $name:ident, $kind:expr) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub struct $name {
            pub(crate) idx: u32,
            pub(crate) gen: u32,
        }

        impl $crate::handle::Handle for $name {
            fn raw(self) -> $crate::handle::RawHandle {
                $crate::handle::RawHandle { kind: $kind, idx: self.idx, gen: self.gen }
            }
        }

        impl $name {
            /// A number identifying the handle while it lives (for maps keyed by handle).
            pub fn id(self) -> u64 {
                (self.gen as u64) << 32 | self.idx as u64
            }
        }
    };
}
pub(crate) use handle_type;
