//! The thread pool: work the kernel cannot do asynchronously (name resolution; file I/O on the
//! epoll backend, and on io_uring where the kernel lacks an opcode) runs on a process-wide set of worker threads, and its result returns to
//! the loop that queued it through that loop's wake-up eventfd (libuv's `uv_queue_work`).
//!
//! The pool starts with the first job. Its size is `EVLOOP_THREADPOOL_SIZE` (1 to 128, default
//! 4), read once. A job not yet started can be cancelled: cancellation and the worker race on
//! one atomic state, so exactly one of them wins. Jobs queued during an iteration reach the
//! pool together, just before the loop waits: one lock and a wake-up per idle worker per
//! iteration, not per job.

use crate::error::{Error, Result};
use crate::event_loop::Loop;
use crate::sys;
use crate::wake_flag::WakeFlag;
use crate::wakeup::WakeFd;
use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};

const QUEUED: u8 = 0;
const RUNNING: u8 = 1;
const CANCELLED: u8 = 2;

type Output = Box<dyn Any + Send>;
type Work = Box<dyn FnOnce() -> Output + Send>;
type After = Box<dyn FnOnce(&mut Loop, Result<Output>)>;

/// Identifies queued work, for [`Loop::cancel_work`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct WorkId(pub u64);

/// Finished jobs of one loop, and how to wake it.
pub(crate) struct DoneQueue {
    items: Mutex<Vec<(u64, Option<Output>)>>,
    wake: Arc<WakeFd>,
    /// A wake-up is on its way: later finishes need not write the eventfd again.
    signalled: WakeFlag,
}

struct Job {
    id: u64,
    state: Arc<AtomicU8>,
    done: Arc<DoneQueue>,
    work: Work,
}

struct Queue {
    jobs: VecDeque<Job>,
    /// Workers waiting for a job: only then is a wake-up (a futex call) needed.
    idle: usize,
}

struct Pool {
    queue: Mutex<Queue>,
    available: Condvar,
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| {
        let size = std::env::var("EVLOOP_THREADPOOL_SIZE")
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
            .unwrap_or(4)
            .clamp(1, 128);
        for i in 0..size {
            let spawned = std::thread::Builder::new()
                .name(format!("evloop-worker-{i}"))
                .stack_size(256 * 1024)
                .spawn(worker);
            if spawned.is_err() && i == 0 {
                // Not one worker: jobs would wait forever. Nothing sensible remains.
                panic!("evloop: cannot start a thread-pool worker");
            }
        }
        Pool {
            queue: Mutex::new(Queue {
                jobs: VecDeque::new(),
                idle: 0,
            }),
            available: Condvar::new(),
        }
    })
}

fn worker() {
    let pool = pool();
    loop {
        let job = {
            let mut queue = pool.queue.lock().unwrap_or_else(|p| p.into_inner());
            loop {
                match queue.jobs.pop_front() {
                    Some(job) => break job,
                    None => {
                        queue.idle += 1;
                        queue = pool.available.wait(queue).unwrap_or_else(|p| p.into_inner());
                        queue.idle -= 1;
                    }
                }
            }
        };
        if job
            .state
            .compare_exchange(QUEUED, RUNNING, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            continue; // cancelled before it started
        }
        // A panicking job reports EIO instead of taking the worker down.
        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job.work)).ok();
        job.done
            .items
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((job.id, out));
        if job.done.signalled.raise() {
            sys::eventfd_signal(job.done.wake.0);
        }
    }
}

/// The loop's side: callbacks of queued work, keyed by id.
pub(crate) struct WorkState {
    next_id: u64,
    pending: HashMap<u64, (Arc<AtomicU8>, After)>,
    done: Option<Arc<DoneQueue>>,
    finished: Vec<(u64, Option<Output>)>,
    /// Jobs queued during this iteration, not yet in the pool's queue.
    outbox: Vec<Job>,
}

impl WorkState {
    pub(crate) fn new() -> WorkState {
        WorkState {
            next_id: 1,
            pending: HashMap::new(),
            done: None,
            finished: Vec::new(),
            outbox: Vec::new(),
        }
    }
}

impl Loop {
    /// Runs `work` on the thread pool, then `after` on this loop's thread with its result, or
    /// with `ECANCELED` if [`Loop::cancel_work`] stopped it before it started (or `EIO` if it
    /// panicked). Queued work keeps the loop alive.
    pub fn queue_work<T: Send + 'static>(
        &mut self,
        work: impl FnOnce() -> T + Send + 'static,
        after: impl FnOnce(&mut Loop, Result<T>) + 'static,
    ) -> Result<WorkId> {
        let wake = self.wake_fd()?;
        let done = self
            .work
            .done
            .get_or_insert_with(|| {
                Arc::new(DoneQueue {
                    items: Mutex::new(Vec::new()),
                    wake,
                    signalled: WakeFlag::new(),
                })
            })
            .clone();
        let id = self.work.next_id;
        self.work.next_id += 1;
        let state = Arc::new(AtomicU8::new(QUEUED));
        let after: After = Box::new(move |lp, out| {
            after(
                lp,
                out.map(|b| {
                    *b.downcast::<T>()
                        .expect("work returns the type its callback takes")
                }),
            )
        });
        self.work.pending.insert(id, (state.clone(), after));
        self.alive_refs += 1;
        let job = Job {
            id,
            state,
            done,
            work: Box::new(move || Box::new(work()) as Output),
        };
        // Inside `run`, handed to the pool in one batch before the loop next waits; outside it,
        // at once (nothing else would start it).
        self.work.outbox.push(job);
        if !self.running {
            self.work_flush();
        }
        Ok(WorkId(id))
    }

    /// Hands the jobs queued since the last flush to the pool: one lock and at most one wake-up
    /// per idle worker per loop iteration, rather than per job.
    pub(crate) fn work_flush(&mut self) {
        if self.work.outbox.is_empty() {
            return;
        }
        let pool = pool();
        let wake = {
            let mut queue = pool.queue.lock().unwrap_or_else(|p| p.into_inner());
            let n = self.work.outbox.len();
            queue.jobs.extend(self.work.outbox.drain(..));
            n.min(queue.idle)
        };
        for _ in 0..wake {
            pool.available.notify_one();
        }
    }

    /// Jobs queued and not yet handed to the pool.
    pub(crate) fn work_unflushed(&self) -> bool {
        !self.work.outbox.is_empty()
    }

    /// Cancels work that has not started: its callback runs soon with `ECANCELED`. `EBUSY` if it
    /// is running or finished (its callback will run with the result), `EBADF` if the id is not
    /// pending on this loop.
    pub fn cancel_work(&mut self, id: WorkId) -> Result<()> {
        let (state, _) = self.work.pending.get(&id.0).ok_or(Error::EBADF)?;
        if state
            .compare_exchange(QUEUED, CANCELLED, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return Err(Error::EBUSY);
        }
        let (_, after) = self.work.pending.remove(&id.0).expect("checked above");
        self.work.outbox.retain(|j| j.id != id.0);
        self.alive_refs -= 1;
        self.call_soon(move |lp| after(lp, Err(Error::ECANCELED)));
        Ok(())
    }

    /// Work queued and not yet called back.
    pub fn pending_work(&self) -> usize {
        self.work.pending.len()
    }

    /// For a loop being dropped: a worker that reported the last result may not have let go of
    /// the loop's completion queue yet, and with it the wake-up eventfd. Wait (briefly, bounded)
    /// for that, so the descriptor is closed when the drop returns rather than a moment later.
    pub(crate) fn work_release(&mut self) {
        let Some(done) = self.work.done.take() else {
            return;
        };
        if self.work.pending.is_empty() {
            let mut spins = 0;
            while Arc::strong_count(&done) > 1 && spins < 100_000 {
                std::thread::yield_now();
                spins += 1;
            }
        }
    }

    /// Runs the callbacks of finished work (called on every wake-up).
    pub(crate) fn work_dispatch(&mut self) {
        let Some(done) = self.work.done.clone() else {
            return;
        };
        done.signalled.take();
        let mut finished = std::mem::take(&mut self.work.finished);
        std::mem::swap(
            &mut finished,
            &mut *done.items.lock().unwrap_or_else(|p| p.into_inner()),
        );
        for (id, out) in finished.drain(..) {
            if let Some((_, after)) = self.work.pending.remove(&id) {
                self.alive_refs -= 1;
                after(self, out.ok_or(Error::EIO));
            }
        }
        self.work.finished = finished;
    }
}
