//! evloop: a completion-style event loop for Linux.
//!
//! One [`Loop`] per thread runs timers, deferred callbacks and I/O. Handles ([`Timer`],
//! [`Stream`], [`Udp`], [`FdWatcher`], [`Async`], [`Signal`]) follow one life cycle: create →
//! start/stop → [`Handle::close`] → close callback. Callbacks receive `&mut Loop`, so they can
//! start, stop and close anything, including their own handle.
//!
//! ```no_run
//! use evloop::{Handle, Loop, Read, RunMode, Stream, BindOptions};
//!
//! let mut lp = Loop::new()?;
//! let server = Stream::tcp_bind(&mut lp, "127.0.0.1:7000".parse().unwrap(), BindOptions::default())?;
//! server.listen(&mut lp, 128, |lp, _server, conn| {
//!     let Ok(conn) = conn else { return };
//!     let _ = conn.read_start(lp, |lp, conn, read| match read {
//!         Read::Data(bytes) => { let _ = conn.write(lp, bytes, None); }
//!         Read::Eof | Read::Error(_) => { let _ = conn.close(lp, None); }
//!     });
//! })?;
//! lp.run(RunMode::Default)?;
//! # Ok::<(), evloop::Error>(())
//! ```

#![warn(missing_docs)]

mod backend;
mod error;
mod event_loop;
pub mod fs;
mod handle;
mod poll;
mod process;
mod resolve;
mod signal;
mod slab;
mod stream;
mod sys;
mod threadpool;
mod timer;
mod udp;
mod wake_flag;
mod wakeup;

pub use backend::{ready, BackendKind};
pub use error::{Error, Result};
pub use event_loop::{Config, Loop, RunMode, Stats, WaitHook, DEFAULT_READ_FILE_LIMIT};
pub use handle::{CloseCb, Handle};
pub use poll::{FdWatcher, PollCb};
pub use process::{ExitCb, ExitStatus, Process, SpawnOptions, Spawned, Stdio};
pub use resolve::{Family, ResolveOptions};
pub use signal::{Signal, SignalCb};
pub use stream::tcp::BindOptions;
pub use stream::{AcceptCb, DoneCb, DrainCb, KeptBytes, Read, ReadCb, ReadFn, Stream};
pub use sys::monotonic_ns;
pub use threadpool::WorkId;
pub use timer::{Timer, TimerCb, TimerFn, TimerPlace};
pub use udp::{RecvCb, SendCb, Udp, UdpBindOptions};
pub use wakeup::{Async, AsyncCb, Waker};
