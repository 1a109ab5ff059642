//! The loop: one per thread, running timers, deferred callbacks and I/O completions.

use crate::backend::{Backend, BackendKind, Completion, Token};
use crate::error::{Error, Result};
use crate::handle::{CloseCb, Common, Kind, RawHandle};
use crate::poll::PollEntry;
use crate::signal::SignalEntry;
use crate::slab::Slab;
use crate::stream::StreamEntry;
use crate::sys;
use crate::timer::wheel::{Expired, Wheel};
use crate::timer::Timers;
use crate::udp::UdpEntry;
use crate::wakeup::{AsyncEntry, WakeState};
use std::collections::VecDeque;
use std::marker::PhantomData;
use std::os::fd::RawFd;

/// How long `run` goes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunMode {
    /// Until the loop has nothing alive, or `stop` is called.
    Default,
    /// One iteration, blocking for I/O at most once.
    Once,
    /// One iteration without blocking.
    NoWait,
    /// One iteration without blocking, whether or not the loop is alive: for a foreign loop
    /// that runs this one when `backend_fd` polls readable or `backend_timeout` elapses, and
    /// asks `alive()` whether this loop should keep it running. Unlike `NoWait` (which, as in
    /// libuv, does nothing on a loop that is not alive), unreferenced handles still get their
    /// events, and queued work still reaches the kernel.
    Ready,
}

/// Counters of what a loop has done, for tests, benchmarks and diagnostics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Loop iterations run.
    pub iterations: u64,
    /// Calls into the kernel that waited for events (`epoll_wait`, `io_uring_enter`).
    pub kernel_waits: u64,
    /// Completions dispatched.
    pub completions: u64,
    /// io_uring: multishot receives ended by an empty provided-buffer ring (then re-armed).
    pub receive_buffer_exhaustions: u64,
    /// io_uring: extra kernel entries made to flush completions held back by a full CQ.
    pub completion_overflow_flushes: u64,
    /// io_uring: file operations (each step of a linked chain counts) handed to the offload
    /// ring, whose kernel thread runs them on another core.
    pub offloaded_file_ops: u64,
    /// io_uring: writes sent straight from the receive buffer their bytes arrived in (held
    /// until sent) instead of being copied into the write queue.
    pub sends_from_receive_buffers: u64,
    /// io_uring: stream receive buffers posted to the kernel now. Only as many as recent passes
    /// used stay posted, so that the same few, warm in the cache, take each receive.
    pub receive_buffers_posted: u64,
}

/// Code run around each wait in the kernel that may block (see [`Loop::set_wait_hook`]).
///
/// A host runtime whose callbacks run under a lock releases it in `before_wait` and takes it
/// back in `after_wait` (Python's GIL): other threads run while the loop sleeps, and the loop's
/// callbacks, which run between waits, never pay for taking the lock each.
pub trait WaitHook {
    /// Whether the host has work of its own ready (callbacks queued by the loop's callbacks in
    /// the host's own queue): the loop then polls without blocking. Asked just before each
    /// wait that would block.
    fn has_pending_work(&mut self) -> bool {
        false
    }
    /// Called just before the loop may block; the loop calls nothing else until `after_wait`.
    fn before_wait(&mut self);
    /// Called as soon as the wait returns, before any callback runs.
    fn after_wait(&mut self);
}

/// Settings for [`Loop::with_config`].
#[derive(Clone, Debug)]
pub struct Config {
    /// Which kernel interface to use. `EVLOOP_BACKEND` overrides `Auto`.
    pub backend: BackendKind,
    /// epoll: size of the one loop-owned receive buffer lent to read callbacks.
    pub recv_buffer_size: usize,
    /// io_uring: submission queue entries (the completion queue gets four times as many).
    pub ring_entries: u32,
    /// io_uring: receive buffers in the provided-buffer ring (rounded up to a power of two).
    /// Where the kernel fills buffers a piece at a time (6.12+, see
    /// [`Loop::receive_buffers_incremental`]) the same bytes are regrouped into buffers of at
    /// least 64 KiB.
    pub ring_buffers: u16,
    /// io_uring: size of each provided receive buffer (see `ring_buffers`).
    pub ring_buffer_size: u32,
    /// io_uring, two or more CPUs: share batches of file operations with a second ring whose
    /// kernel thread (SQPOLL) runs them on another core. `EVLOOP_FILE_OFFLOAD=0` turns it off.
    pub file_offload: bool,
    /// The largest file [`crate::fs::read_file`] reads whole; a longer one (or an endless one,
    /// such as `/dev/zero`) fails with `EFBIG`. Default 1 GiB.
    pub read_file_limit: usize,
}

/// The default [`Config::read_file_limit`].
pub const DEFAULT_READ_FILE_LIMIT: usize = 1 << 30;

impl Default for Config {
    fn default() -> Config {
        Config {
            backend: BackendKind::Auto,
            recv_buffer_size: 64 * 1024,
            ring_entries: 1024,
            ring_buffers: 512,
            ring_buffer_size: 16 * 1024,
            file_offload: std::env::var("EVLOOP_FILE_OFFLOAD").map_or(true, |v| v.trim() != "0"),
            read_file_limit: DEFAULT_READ_FILE_LIMIT,
        }
    }
}

pub(crate) type SoonCb = Box<dyn FnOnce(&mut Loop)>;

/// Work the loop owes a handle outside any completion (e.g. callbacks of writes that finished
/// at submission, which must not run inside the `write` call).
#[derive(Clone, Copy)]
pub(crate) enum Deferred {
    StreamWrites(u32, u32),
    UdpSends(u32, u32),
}

/// An event loop. Not `Send`: it lives and runs on the thread that made it; other threads reach
/// it through [`crate::Waker`].
pub struct Loop {
    pub(crate) backend: Backend,
    start_ns: u64,
    now_ns: u64,
    now_ms: u64,
    stop_requested: bool,
    /// A callback asked that this pass dispatch no more completions (`end_pass`).
    pass_ended: bool,
    /// Inside `run`: work queued now is handed to the pool in one batch before the next wait.
    pub(crate) running: bool,
    /// Active, referenced handles: the loop is alive while this is non-zero.
    pub(crate) alive_refs: usize,
    pub(crate) wheel: Wheel,
    pub(crate) timers: Timers,
    pub(crate) timer_seq: u64,
    expired: Vec<Expired>,
    soon: VecDeque<SoonCb>,
    pub(crate) deferred: VecDeque<Deferred>,
    pub(crate) streams: Slab<StreamEntry>,
    pub(crate) udps: Slab<UdpEntry>,
    pub(crate) polls: Slab<PollEntry>,
    /// The active fd watcher of each watched fd (one per fd).
    pub(crate) watched_fds: std::collections::HashMap<RawFd, (u32, u32)>,
    pub(crate) asyncs: Slab<AsyncEntry>,
    pub(crate) signals: Slab<SignalEntry>,
    pub(crate) processes: Slab<crate::process::ProcessEntry>,
    /// pidfds of children whose handles closed before they exited, watched until reaped.
    pub(crate) orphans: Slab<RawFd>,
    pub(crate) wake: WakeState,
    pub(crate) work: crate::threadpool::WorkState,
    /// File requests in the ring (the thread pool holds the others).
    pub(crate) file_reqs: Slab<Option<crate::fs::FileWaiter>>,
    pub(crate) read_file_limit: usize,
    closing: Vec<RawHandle>,
    /// Handles closed while operations were in flight, waiting for their final completions.
    closes_in_flight: usize,
    closing_now: Vec<RawHandle>,
    close_cbs: Vec<CloseCb>,
    wait_hook: Option<Box<dyn WaitHook>>,
    /// The received bytes a read callback is being given, while it runs: a write of them from
    /// that callback may hold the backend's buffer instead of copying it (`stream_lend_read`).
    pub(crate) lendable: crate::stream::Lendable,
    /// The completion being dispatched lent its buffer to a write: it is not recycled now.
    pub(crate) read_lent: bool,
    iterations: u64,
    completions: u64,
    _not_send: PhantomData<*mut ()>,
}

// Token layout: index in bits 0..32, operation in 32..36, handle kind in 36..40, the low 20 bits
// of the handle's generation in 40..60; bits 60..64 stay zero for the backend's use.
const GEN_MASK: u64 = 0xf_ffff;

pub(crate) fn token(kind: Kind, op: u8, idx: u32, gen: u32) -> Token {
    idx as u64 | ((op as u64 & 0xf) << 32) | ((kind as u64) << 36) | ((gen as u64 & GEN_MASK) << 40)
}

pub(crate) fn gen_matches(gen: u32, token: Token) -> bool {
    gen as u64 & GEN_MASK == (token >> 40) & GEN_MASK
}

impl Loop {
    /// A loop with the default configuration.
    pub fn new() -> Result<Loop> {
        Loop::with_config(Config::default())
    }

    /// A loop with `config`. Asking for a backend the system cannot run is an error, not a
    /// silent fallback.
    pub fn with_config(config: Config) -> Result<Loop> {
        let uring = crate::backend::uring::UringConfig {
            entries: config.ring_entries,
            buffers: config.ring_buffers,
            buffer_size: config.ring_buffer_size,
            file_offload: config.file_offload,
        };
        let backend = Backend::new(config.backend, config.recv_buffer_size, uring)?;
        let start_ns = sys::monotonic_ns();
        Ok(Loop {
            backend,
            start_ns,
            now_ns: start_ns,
            now_ms: 0,
            stop_requested: false,
            pass_ended: false,
            running: false,
            alive_refs: 0,
            wheel: Wheel::new(),
            timers: Timers::new(),
            timer_seq: 0,
            expired: Vec::new(),
            soon: VecDeque::new(),
            deferred: VecDeque::new(),
            streams: Slab::new(),
            udps: Slab::new(),
            polls: Slab::new(),
            watched_fds: std::collections::HashMap::new(),
            asyncs: Slab::new(),
            signals: Slab::new(),
            processes: Slab::new(),
            orphans: Slab::new(),
            wake: WakeState::new(),
            work: crate::threadpool::WorkState::new(),
            file_reqs: Slab::new(),
            read_file_limit: config.read_file_limit,
            closing: Vec::new(),
            closes_in_flight: 0,
            closing_now: Vec::new(),
            close_cbs: Vec::new(),
            wait_hook: None,
            lendable: crate::stream::Lendable::NONE,
            read_lent: false,
            iterations: 0,
            completions: 0,
            _not_send: PhantomData,
        })
    }

    /// The backend this loop runs on: `"epoll"` or `"uring"`.
    pub fn backend_name(&self) -> &'static str {
        self.backend.name()
    }

    /// Whether the kernel fills the io_uring backend's receive buffers a piece at a time
    /// (incremental provided-buffer rings, Linux 6.12+; not with `EVLOOP_NO_INCREMENTAL_BUFFERS`
    /// set): then a message of up to 64 KiB arrives in one or two reads, where whole 16 KiB
    /// buffers take one read per 16 KiB. False on epoll, which reads into one 64 KiB buffer.
    pub fn receive_buffers_incremental(&self) -> bool {
        self.backend.receive_buffers_incremental()
    }

    /// The loop's cached time in milliseconds, updated at the start of each iteration.
    pub fn now(&self) -> u64 {
        self.now_ms
    }

    /// The loop's cached time in nanoseconds (same clock and epoch as [`Loop::now`]).
    pub fn now_ns(&self) -> u64 {
        self.now_ns - self.start_ns
    }

    /// Refreshes the cached time.
    pub fn update_time(&mut self) {
        self.now_ns = sys::monotonic_ns();
        self.now_ms = (self.now_ns - self.start_ns) / 1_000_000;
    }

    /// The largest file `fs::read_file` reads whole (see [`Config::read_file_limit`]).
    pub fn read_file_limit(&self) -> usize {
        self.read_file_limit
    }

    /// Sets the largest file `fs::read_file` reads whole; reads already started keep theirs.
    pub fn set_read_file_limit(&mut self, bytes: usize) {
        self.read_file_limit = bytes;
    }

    /// What the loop has done so far.
    pub fn stats(&self) -> Stats {
        let c = self.backend.counters();
        Stats {
            iterations: self.iterations,
            kernel_waits: c.waits,
            completions: self.completions,
            receive_buffer_exhaustions: c.buffer_exhaustions,
            completion_overflow_flushes: c.overflow_flushes,
            offloaded_file_ops: c.offloaded_file_ops,
            sends_from_receive_buffers: c.read_buffer_loans,
            receive_buffers_posted: self.backend.receive_buffers_posted().into(),
        }
    }

    /// Sets (or with `None` removes) the code run around each wait that may block. Waits that
    /// cannot block (a zero timeout) run without it.
    pub fn set_wait_hook(&mut self, hook: Option<Box<dyn WaitHook>>) {
        self.wait_hook = hook;
    }

    /// Makes `run` return after the current iteration.
    pub fn stop(&mut self) {
        self.stop_requested = true;
    }

    /// From a callback: the current pass dispatches no further completion. Those not yet
    /// dispatched stay ready (`backend_timeout` is 0) and come first in the next iteration,
    /// without a wait; with `RunMode::Ready` the run returns first. For a foreign loop that
    /// acts on each event after `run` returns (the Node addon runs JavaScript then): it takes
    /// events one at a time, so a reply leaves before the next request is even read, as when
    /// callbacks run inside the pass.
    pub fn end_pass(&mut self) {
        self.pass_ended = true;
    }

    /// How many events (epoll) or completions (io_uring) the last wait brought: how busy the
    /// loop is. An embedder that takes events one at a time (`end_pass`) does so in small
    /// passes, where a reply waiting for the others costs more than batching saves.
    pub fn pass_size(&self) -> usize {
        self.backend.pass_size()
    }

    /// Whether anything keeps the loop running: active referenced handles, queued callbacks or
    /// handles waiting for their close callback.
    pub fn alive(&self) -> bool {
        self.alive_refs > 0
            || !self.soon.is_empty()
            || !self.deferred.is_empty()
            || !self.closing.is_empty()
            || self.closes_in_flight > 0
    }

    /// Runs `cb` on the next iteration, after I/O is polled. Callbacks queued while the queue
    /// drains wait for the next iteration, so a callback that re-queues itself cannot starve I/O.
    pub fn call_soon(&mut self, cb: impl FnOnce(&mut Loop) + 'static) {
        self.soon.push_back(Box::new(cb));
    }

    /// Callbacks queued with `call_soon` and not yet run.
    pub fn pending_calls(&self) -> usize {
        self.soon.len()
    }

    /// An fd that becomes readable when the loop has work; poll it from a foreign loop and call
    /// `run(RunMode::Ready)` when it fires, or when [`Loop::backend_timeout`] elapses. On epoll
    /// it is the epoll fd; on io_uring an eventfd registered with the ring on the first call. A
    /// wake-up may find nothing new: the run then returns at once.
    ///
    /// On io_uring ask for it before the loop first runs: the first call sets the ring up to be
    /// driven from outside (a ring that batches completions for its own waits cannot wake a
    /// foreign loop reliably), which can only be done before the kernel has seen any of its
    /// operations. Asked later, it fails with `EBUSY`. Handles made before the call are fine.
    pub fn backend_fd(&mut self) -> Result<RawFd> {
        self.backend.fd()
    }

    /// Hands the kernel what callbacks asked for since the loop last waited: the replies a busy
    /// pass gathered (epoll) and the operations queued (io_uring). `run` does this as it
    /// returns. A foreign loop that acts on this loop's events after `run` returns (the Node
    /// addon runs JavaScript for them then) calls it once they are handled, so that their
    /// replies leave now, not with the next run.
    pub fn flush(&mut self) -> Result<()> {
        self.backend.flush()
    }

    /// Milliseconds until the loop needs to run again without I/O (`-1`: no deadline; `0`: it has
    /// work now).
    pub fn backend_timeout(&self) -> i32 {
        if self.stop_requested
            || !self.soon.is_empty()
            || !self.deferred.is_empty()
            || !self.closing.is_empty()
            || self.backend.has_ready()
            || self.backend.has_unsubmitted()
            || self.work_unflushed()
        {
            return 0;
        }
        let now = (sys::monotonic_ns() - self.start_ns) / 1_000_000;
        match self.wheel.timeout(now) {
            Some(ms) => ms.min(i32::MAX as u64) as i32,
            None => -1,
        }
    }

    /// Runs the loop. Returns whether it is still alive (has more to do).
    pub fn run(&mut self, mode: RunMode) -> Result<bool> {
        let mut alive = self.alive() || mode == RunMode::Ready;
        if !alive {
            self.update_time();
        }
        self.running = true;
        while alive && !self.stop_requested {
            self.iterations += 1;
            self.update_time();
            self.run_timers();
            self.run_deferred();
            self.run_soon();
            if self.backend.perform_sends() {
                // epoll's sends of the last pass, of the callbacks just run, or of the end of
                // the last `run` have gone: settle them now, so that the wait below can block.
                self.dispatch_completions();
                self.run_deferred();
            }
            let timeout = if matches!(mode, RunMode::NoWait | RunMode::Ready)
                || self.stop_requested
                || !self.alive()
                || !self.soon.is_empty()
                || !self.deferred.is_empty()
                || !self.closing.is_empty()
            {
                0
            } else {
                match self.wheel.timeout(self.now_ms) {
                    Some(ms) => ms.min(i32::MAX as u64) as i32,
                    None => -1,
                }
            };
            self.work_flush();
            let timeout = match &mut self.wait_hook {
                Some(hook) if timeout != 0 => {
                    if hook.has_pending_work() {
                        0
                    } else {
                        timeout
                    }
                }
                _ => timeout,
            };
            let hooked = match &mut self.wait_hook {
                Some(hook) if timeout != 0 => {
                    hook.before_wait();
                    Some(hook)
                }
                _ => None,
            };
            let waited = self.backend.wait(timeout);
            if let Some(hook) = hooked {
                hook.after_wait();
            }
            if let Err(e) = waited {
                self.running = false;
                return Err(e);
            }
            self.update_time();
            self.dispatch_completions();
            self.run_deferred();
            if mode == RunMode::Once {
                // Timers that came due while waiting belong to this iteration.
                self.run_timers();
            }
            self.run_closing();
            alive = self.alive();
            if mode != RunMode::Default {
                break;
            }
        }
        self.running = false;
        self.stop_requested = false;
        // Nothing the callbacks asked for (a close, a send) waits for a next run to happen.
        self.backend.submit_queued()?;
        Ok(alive)
    }

    fn run_timers(&mut self) {
        if !self.wheel.is_due(self.now_ms) {
            // Most iterations: one comparison with the wheel's cached next slot.
            return self.wheel.catch_up(self.now_ms);
        }
        let mut expired = std::mem::take(&mut self.expired);
        self.wheel.advance(&mut self.timers, self.now_ms, &mut expired);
        for &(_, seq, idx) in &expired {
            self.fire_timer(idx, seq);
        }
        expired.clear();
        self.expired = expired;
    }

    fn run_soon(&mut self) {
        let n = self.soon.len();
        for _ in 0..n {
            match self.soon.pop_front() {
                Some(cb) => cb(self),
                None => break,
            }
        }
    }

    fn run_deferred(&mut self) {
        while let Some(d) = self.deferred.pop_front() {
            match d {
                Deferred::StreamWrites(idx, gen) => self.stream_finish_writes(idx, gen),
                Deferred::UdpSends(idx, gen) => self.udp_finish_sends(idx, gen),
            }
        }
    }

    fn dispatch_completions(&mut self) {
        self.pass_ended = false;
        while let Some(c) = self.backend.next_completion() {
            self.completions += 1;
            self.dispatch(&c);
            if !c.data.is_null() && !std::mem::take(&mut self.read_lent) {
                self.backend.recycle(&c);
            }
            if std::mem::take(&mut self.pass_ended) {
                break;
            }
        }
    }

    fn dispatch(&mut self, c: &Completion) {
        let idx = c.token as u32;
        let op = ((c.token >> 32) & 0xf) as u8;
        match (c.token >> 36) & 0xf {
            k if k == Kind::Stream as u64 => self.stream_completion(idx, op, c),
            k if k == Kind::Udp as u64 => self.udp_completion(idx, op, c),
            k if k == Kind::Poll as u64 => self.poll_completion(idx, c),
            k if k == Kind::Async as u64 => self.wake_completion(c),
            k if k == Kind::Process as u64 => self.process_completion(idx, op, c),
            crate::fs::FILE_TOKEN_KIND => self.file_completion(idx, c.res, c.token),
            _ => debug_assert!(false, "completion with unknown token {:#x}", c.token),
        }
    }

    /// Runs `f` on the common state of `h`, if it still exists.
    pub(crate) fn with_common<R>(&self, h: RawHandle, f: impl FnOnce(&Common) -> R) -> Option<R> {
        match h.kind {
            Kind::Timer => self.timers.get(h.idx, h.gen).map(|e| f(&e.common)),
            Kind::Stream => self.streams.get(h.idx, h.gen).map(|e| f(&e.common)),
            Kind::Udp => self.udps.get(h.idx, h.gen).map(|e| f(&e.common)),
            Kind::Poll => self.polls.get(h.idx, h.gen).map(|e| f(&e.common)),
            Kind::Async => self.asyncs.get(h.idx, h.gen).map(|e| f(&e.common)),
            Kind::Signal => self.signals.get(h.idx, h.gen).map(|e| f(&e.common)),
            Kind::Process => self.processes.get(h.idx, h.gen).map(|e| f(&e.common)),
        }
    }

    fn common_mut(&mut self, h: RawHandle) -> Option<&mut Common> {
        match h.kind {
            Kind::Timer => self.timers.get_mut(h.idx, h.gen).map(|e| &mut e.common),
            Kind::Stream => self.streams.get_mut(h.idx, h.gen).map(|e| &mut e.common),
            Kind::Udp => self.udps.get_mut(h.idx, h.gen).map(|e| &mut e.common),
            Kind::Poll => self.polls.get_mut(h.idx, h.gen).map(|e| &mut e.common),
            Kind::Async => self.asyncs.get_mut(h.idx, h.gen).map(|e| &mut e.common),
            Kind::Signal => self.signals.get_mut(h.idx, h.gen).map(|e| &mut e.common),
            Kind::Process => self.processes.get_mut(h.idx, h.gen).map(|e| &mut e.common),
        }
    }

    pub(crate) fn set_handle_ref(&mut self, h: RawHandle, referenced: bool) -> Result<()> {
        let mut refs = self.alive_refs;
        let c = self.common_mut(h).ok_or(Error::EBADF)?;
        c.set_ref(&mut refs, referenced);
        self.alive_refs = refs;
        Ok(())
    }

    pub(crate) fn close_handle(&mut self, h: RawHandle, cb: Option<CloseCb>) -> Result<()> {
        let mut refs = self.alive_refs;
        let c = self.common_mut(h).ok_or(Error::EBADF)?;
        if c.closing {
            return Err(Error::EBADF);
        }
        c.closing = true;
        c.set_close_cb(cb);
        c.set_active(&mut refs, false);
        self.alive_refs = refs;
        // Stop the handle's work; operations in flight are cancelled and counted down as their
        // final completions arrive.
        match h.kind {
            Kind::Timer => self.timer_closing(h.idx, h.gen),
            Kind::Stream => self.stream_cancel_all(h.idx, h.gen),
            Kind::Udp => self.udp_cancel_all(h.idx, h.gen),
            Kind::Poll => {
                self.poll_unregister(h.idx, h.gen);
                self.poll_cancel(h.idx, h.gen);
            }
            Kind::Async => {
                if let Some(e) = self.asyncs.get(h.idx, h.gen) {
                    e.refuse_wakes();
                }
            }
            Kind::Signal => self.signal_stop_entry(h.idx, h.gen),
            Kind::Process => self.process_cancel(h.idx, h.gen),
        }
        self.closes_in_flight += 1;
        self.maybe_finish_close(h);
        Ok(())
    }

    /// Queues the close callback once a closing handle has no operation left in the kernel.
    pub(crate) fn maybe_finish_close(&mut self, h: RawHandle) {
        if let Some(c) = self.common_mut(h) {
            if c.closing && c.inflight == 0 {
                // Mark it so it is queued once: inflight can no longer rise for a closing handle.
                c.inflight = u32::MAX;
                self.closes_in_flight -= 1;
                self.closing.push(h);
            }
        }
    }

    fn run_closing(&mut self) {
        // Close callbacks may close more handles; those run in the next pass of this loop.
        while !self.closing.is_empty() {
            let mut batch = std::mem::take(&mut self.closing_now);
            std::mem::swap(&mut batch, &mut self.closing);
            let mut callbacks = std::mem::take(&mut self.close_cbs);
            for &h in &batch {
                if let Some(cb) = self.release_handle(h) {
                    callbacks.push(cb);
                }
            }
            // A close callback may count on the fd being closed (to bind the port again, say):
            // hand the batch's closes to the kernel first.
            if self.backend.closes_queued() {
                let _ = self.backend.submit_queued();
            }
            for cb in callbacks.drain(..) {
                cb(self);
            }
            self.close_cbs = callbacks;
            batch.clear();
            self.closing_now = batch;
        }
    }

    /// Frees a fully closed handle and its fd; returns its close callback.
    fn release_handle(&mut self, h: RawHandle) -> Option<CloseCb> {
        match h.kind {
            Kind::Timer => self
                .timers
                .remove(h.idx, h.gen)
                .and_then(|mut e| e.common.take_close_cb()),
            Kind::Stream => self.stream_release(h.idx, h.gen),
            Kind::Udp => self.udp_release(h.idx, h.gen),
            Kind::Poll => self.poll_release(h.idx, h.gen),
            Kind::Async => self
                .asyncs
                .remove(h.idx, h.gen)
                .and_then(|mut e| e.common.take_close_cb()),
            Kind::Signal => self
                .signals
                .remove(h.idx, h.gen)
                .and_then(|mut e| e.common.take_close_cb()),
            Kind::Process => self.process_release(h.idx, h.gen),
        }
    }

    /// Counts down a final completion of a handle's operation.
    #[inline]
    pub(crate) fn op_finished(common: &mut Common) -> bool {
        common.inflight -= 1;
        common.closing && common.inflight == 0
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        self.signal_loop_dropped();
        // File requests in the ring may still write into their buffers: wait for the kernel to
        // finish them (their callbacks are dropped, not run). Bounded, in case a file system
        // hangs: then leaking beats freeing memory the kernel writes into.
        let mut rounds = 0;
        while self.file_reqs_in_flight() && rounds < 500 {
            rounds += 1;
            if self.backend.wait(10).is_err() {
                break;
            }
            while let Some(c) = self.backend.next_completion() {
                if (c.token >> 36) & 0xf == crate::fs::FILE_TOKEN_KIND {
                    // Finished requests are dropped, not run.
                    drop(self.file_step(c.token as u32, c.res, c.token));
                } else if !c.data.is_null() {
                    self.backend.recycle(&c);
                }
            }
        }
        if self.file_reqs_in_flight() {
            std::mem::forget(std::mem::replace(&mut self.file_reqs, Slab::new()));
        }
        self.work_release();
        // Handles never closed still own fds: close them so dropping a loop leaks nothing.
        let mut live = Vec::new();
        self.streams.live(&mut live);
        for &(i, g) in &live {
            if let Some(e) = self.streams.get(i, g) {
                if e.fd >= 0 {
                    sys::close(e.fd);
                }
            }
        }
        self.udps.live(&mut live);
        for &(i, g) in &live {
            if let Some(e) = self.udps.get(i, g) {
                sys::close(e.fd);
            }
        }
        self.process_loop_dropped();
    }
}
