//! fd watchers (libuv's `uv_poll_t`): readiness of any pollable fd the caller owns.

use crate::backend::{Completion, Op, OpKind};
use crate::error::{Error, Result};
use crate::event_loop::{gen_matches, token, Loop};
use crate::handle::{handle_type, CloseCb, Common, Kind, RawHandle};
use std::os::fd::RawFd;

pub use crate::backend::ready;

handle_type!(
    /// Watches an fd it does not own for readability, writability and hang-up.
    FdWatcher,
    Kind::Poll
);

/// Receives the readiness bits (`ready::*`) seen, or an error.
pub type PollCb = Box<dyn FnMut(&mut Loop, FdWatcher, Result<u32>)>;

pub(crate) struct PollEntry {
    pub(crate) common: Common,
    fd: RawFd,
    events: u32,
    /// A multishot poll is in the backend.
    armed: bool,
    /// Its cancellation was asked for; its final completion has not arrived.
    cancelling: bool,
    cb: Option<PollCb>,
}

const ALL: u32 = ready::READABLE | ready::WRITABLE | ready::DISCONNECT | ready::PRIORITIZED;

impl FdWatcher {
    /// A watcher for `fd`, which stays the caller's: closing the watcher does not close it.
    /// `EBADF` for a closed fd; `EPERM` for a regular file or a directory, which are always
    /// ready (epoll refuses them, and a ring poll would report them ready for ever), as libuv's
    /// `uv_poll_init` does.
    pub fn new(lp: &mut Loop, fd: RawFd) -> Result<FdWatcher> {
        if fd < 0 {
            return Err(Error::EBADF);
        }
        if matches!(crate::sys::file_type(fd)?, libc::S_IFREG | libc::S_IFDIR) {
            return Err(Error::EPERM);
        }
        let (idx, gen) = lp.polls.insert(PollEntry {
            common: Common::new(),
            fd,
            events: 0,
            armed: false,
            cancelling: false,
            cb: None,
        });
        Ok(FdWatcher { idx, gen })
    }

    /// Starts (or changes) watching for `events` (`ready::READABLE | ready::WRITABLE | …`).
    /// Readiness is level-triggered on every backend: while the fd stays ready, each loop
    /// iteration reports it again. No events at all stops the watcher, as in libuv. `EEXIST`
    /// while another watcher of this loop is active on the same fd (stop or close it first).
    pub fn start(
        self,
        lp: &mut Loop,
        events: u32,
        cb: impl FnMut(&mut Loop, FdWatcher, Result<u32>) + 'static,
    ) -> Result<()> {
        if events & !ALL != 0 {
            return Err(Error::EINVAL);
        }
        if events == 0 {
            return self.stop(lp);
        }
        let e = match lp.polls.get_mut(self.idx, self.gen) {
            Some(e) if !e.common.closing => e,
            _ => return Err(Error::EBADF),
        };
        // One active watcher per fd, as in libuv: a second would split the fd's readiness
        // between them differently on each backend.
        match lp.watched_fds.get(&e.fd) {
            Some(&owner) if owner != (self.idx, self.gen) => return Err(Error::EEXIST),
            Some(_) => {}
            None => {
                lp.watched_fds.insert(e.fd, (self.idx, self.gen));
            }
        }
        e.cb = Some(Box::new(cb));
        let changed = e.events != events;
        e.events = events;
        e.common.set_active(&mut lp.alive_refs, true);
        if !e.armed {
            lp.poll_arm(self.idx, self.gen);
        } else if changed && !e.cancelling {
            let (fd, t) = (e.fd, token(Kind::Poll, 0, self.idx, self.gen));
            if !lp.backend.update_poll(t, fd, events) {
                // Re-armed with the new events when the cancellation's final completion lands.
                lp.poll_cancel(self.idx, self.gen);
            }
        }

        Ok(())
    }

    /// Stops watching.
    pub fn stop(self, lp: &mut Loop) -> Result<()> {
        let e = match lp.polls.get_mut(self.idx, self.gen) {
            Some(e) if !e.common.closing => e,
            _ => return Err(Error::EBADF),
        };
        e.common.set_active(&mut lp.alive_refs, false);
        lp.poll_unregister(self.idx, self.gen);
        lp.poll_cancel(self.idx, self.gen);
        Ok(())
    }
}

impl Loop {
    fn poll_arm(&mut self, idx: u32, gen: u32) {
        let Some(e) = self.polls.get_mut(idx, gen) else {
            return;
        };
        match self.backend.submit(
            token(Kind::Poll, 0, idx, gen),
            Op::Poll {
                fd: e.fd,
                events: e.events,
            },
        ) {
            None => {
                e.armed = true;
                e.common.inflight += 1;
            }
            Some(res) => {
                let err = Error::from_errno(-res);
                e.common.set_active(&mut self.alive_refs, false);
                self.poll_unregister(idx, gen);
                self.call_soon(move |lp| {
                    if let Some(mut cb) = lp.polls.get_mut(idx, gen).and_then(|e| e.cb.take()) {
                        cb(lp, FdWatcher { idx, gen }, Err(err));
                    }
                });
            }
        }
    }

    /// Gives up the watcher's claim on its fd (it stopped, failed or is closing).
    pub(crate) fn poll_unregister(&mut self, idx: u32, gen: u32) {
        if let Some(e) = self.polls.get(idx, gen) {
            if self.watched_fds.get(&e.fd) == Some(&(idx, gen)) {
                self.watched_fds.remove(&e.fd);
            }
        }
    }

    pub(crate) fn poll_cancel(&mut self, idx: u32, gen: u32) {
        let Some(e) = self.polls.get_mut(idx, gen) else {
            return;
        };
        if e.armed && !e.cancelling {
            e.cancelling = true;
            let fd = e.fd;
            self.backend
                .cancel(token(Kind::Poll, 0, idx, gen), fd, OpKind::Poll);
            if !self.running {
                // The caller may close the fd as soon as this returns (libuv allows it); a poll
                // left in the ring would keep the file open until the next run.
                let _ = self.backend.settle();
            }
        }
    }

    pub(crate) fn poll_completion(&mut self, idx: u32, c: &Completion) {
        let Some((gen, e)) = self.polls.get_by_index(idx) else {
            return;
        };
        if !gen_matches(gen, c.token) {
            return;
        }
        if !c.more {
            e.armed = false;
            e.cancelling = false;
            if Loop::op_finished(&mut e.common) {
                self.maybe_finish_close(RawHandle {
                    kind: Kind::Poll,
                    idx,
                    gen,
                });
                return;
            }
            if e.common.active && !e.common.closing {
                // Restarted while its cancellation was in flight.
                self.poll_arm(idx, gen);
            }
        }
        let Some(e) = self.polls.get_mut(idx, gen) else {
            return;
        };
        if c.res == -libc::ECANCELED || !e.common.active || e.common.closing || e.cancelling {
            return;
        }
        let result = if c.res < 0 {
            Err(Error::from_errno(-c.res))
        } else {
            // A poll armed before the events changed may still report the old ones.
            let bits = c.res as u32 & (e.events | ready::ERROR);
            if bits == 0 {
                return;
            }
            Ok(bits)
        };
        let Some(mut cb) = e.cb.take() else { return };
        cb(self, FdWatcher { idx, gen }, result);
        if let Some(e) = self.polls.get_mut(idx, gen) {
            if e.cb.is_none() && !e.common.closing {
                e.cb = Some(cb);
            }
        }
    }

    pub(crate) fn poll_release(&mut self, idx: u32, gen: u32) -> Option<CloseCb> {
        let mut e = self.polls.remove(idx, gen)?;
        // The fd is the caller's and stays open: remove it from the kernel's interest set.
        self.backend.release_fd(e.fd, false);
        e.common.take_close_cb()
    }
}
