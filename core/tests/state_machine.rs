//! A state-machine property test: random sequences of loop operations (timers, stream pairs with
//! writes, reads, shutdowns and closes, fd watchers, wake-ups), on both backends, checking the
//! invariants every program relies on:
//! - every close callback runs exactly once;
//! - nothing of a handle runs after its close callback;
//! - every byte written arrives in order (a prefix while a side is closing, all of it otherwise);
//! - no socket the loop owned is left open after the last close.
//!
//! `EVLOOP_STATE_SEEDS` sets how many seeds run (default 150 per backend); a failure names the
//! seed, and `EVLOOP_STATE_FIRST` starts from it.
mod common;

use common::*;
use evloop::{ready, Async, FdWatcher, Handle, Loop, Read, RunMode, Stream, Timer};
use std::cell::RefCell;
use std::collections::HashMap;
use std::os::fd::{AsRawFd, IntoRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::{Duration, Instant};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// An index below `len` (0 when `len` is 0: `get_mut` then finds nothing).
    fn pick(&mut self, len: usize) -> usize {
        self.below(len.max(1) as u64) as usize
    }
}

/// What the test knows of every handle, by a name of its own.
#[derive(Default)]
struct Ledger {
    /// Close callbacks run, by handle name.
    closed: HashMap<u32, u32>,
    /// A callback ran for a handle whose close callback had already run.
    late: Vec<String>,
    /// Bytes received per pair.
    received: HashMap<u32, Vec<u8>>,
}

type Shared = Rc<RefCell<Ledger>>;

fn note_callback(ledger: &Shared, name: u32, what: &str) {
    let mut l = ledger.borrow_mut();
    if l.closed.contains_key(&name) {
        l.late
            .push(format!("{what} of handle {name} after its close callback"));
    }
}

fn close_cb(ledger: &Shared, name: u32) -> evloop::CloseCb {
    let l = ledger.clone();
    Box::new(move |_| *l.borrow_mut().closed.entry(name).or_insert(0) += 1)
}

struct Pair {
    name: u32,
    writer: Stream,
    reader: Stream,
    writer_closed: bool,
    reader_closed: bool,
    shut: bool,
    reading: bool,
    written: Vec<u8>,
    /// `socket:[inode]` of both ends, to check they are gone at the end.
    identities: Vec<(RawFd, String)>,
}

fn identity(fd: RawFd) -> Option<String> {
    std::fs::read_link(format!("/proc/self/fd/{fd}"))
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

/// Handle names of a pair's two streams, apart from every other handle's name.
fn writer_name(pair: u32) -> u32 {
    1_000_000 + pair * 2
}

fn reader_name(pair: u32) -> u32 {
    writer_name(pair) + 1
}

fn start_reading(lp: &mut Loop, ledger: &Shared, p: &Pair) {
    let (l, name) = (ledger.clone(), p.name);
    p.reader
        .read_start(lp, move |_, _, r| {
            note_callback(&l, reader_name(name), "read");
            if let Read::Data(b) = r {
                l.borrow_mut()
                    .received
                    .entry(name)
                    .or_default()
                    .extend_from_slice(b);
            }
        })
        .unwrap();
}

/// Runs one seed; returns the bytes delivered and the close callbacks run, so the test can tell
/// it exercised something.
fn run_seed(lp: &mut Loop, seed: u64) -> (usize, usize) {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let ledger: Shared = Rc::default();
    let mut next_name = 0u32;
    let mut timers: Vec<(u32, Timer, bool)> = Vec::new();
    let mut pairs: Vec<Pair> = Vec::new();
    let mut watchers: Vec<(u32, FdWatcher, UnixStream, UnixStream, bool)> = Vec::new();
    let mut asyncs: Vec<(u32, Async, bool)> = Vec::new();
    let mut expected_closes: Vec<u32> = Vec::new();
    // Bounds every blocking iteration (RunMode::Once) while reading streams and wake-up handles
    // keep the loop alive with nothing to do.
    let tick = Timer::new(lp);
    tick.start(lp, 1, 1, |_, _| {}).unwrap();
    tick.unref(lp).unwrap();

    for _ in 0..120 {
        match rng.below(16) {
            0 | 1 => {
                // A timer, started with a short timeout; its callback may close or stop it.
                let name = next_name;
                next_name += 1;
                let t = Timer::new(lp);
                let (l, action) = (ledger.clone(), rng.below(3));
                t.start(lp, rng.below(4), rng.below(3), move |lp, t| {
                    note_callback(&l, name, "timer");
                    match action {
                        0 => {
                            let _ = t.stop(lp);
                        }
                        1 if !t.is_closing(lp) => {
                            t.close(lp, Some(close_cb(&l, name))).unwrap();
                        }
                        _ => {}
                    }
                })
                .unwrap();
                timers.push((name, t, action == 1));
                if action == 1 {
                    expected_closes.push(name);
                }
            }
            2 => {
                if let Some((name, t, closing)) = {
                    let i = rng.pick(timers.len());
                    timers.get_mut(i)
                } {
                    if !*closing && !t.is_closing(lp) && t.is_alive(lp) {
                        *closing = true;
                        t.close(lp, Some(close_cb(&ledger, *name))).unwrap();
                        expected_closes.push(*name);
                    }
                }
            }
            3 => {
                // A connected pair of streams (both ends owned by the loop).
                let (a, b) = UnixStream::pair().unwrap();
                let identities = vec![
                    (a.as_raw_fd(), identity(a.as_raw_fd()).unwrap()),
                    (b.as_raw_fd(), identity(b.as_raw_fd()).unwrap()),
                ];
                let writer = Stream::adopt(lp, a.into_raw_fd()).unwrap();
                let reader = Stream::adopt(lp, b.into_raw_fd()).unwrap();
                let name = next_name;
                next_name += 1;
                let p = Pair {
                    name,
                    writer,
                    reader,
                    writer_closed: false,
                    reader_closed: false,
                    shut: false,
                    reading: true,
                    written: Vec::new(),
                    identities,
                };
                start_reading(lp, &ledger, &p);
                pairs.push(p);
            }
            4..=6 => {
                if let Some(p) = {
                    let i = rng.pick(pairs.len());
                    pairs.get_mut(i)
                } {
                    if !p.writer_closed && !p.shut {
                        let big = rng.below(8) == 0;
                        let len = 1 + rng.below(if big { 200_000 } else { 300 }) as usize;
                        let start = p.written.len();
                        let data: Vec<u8> = (start..start + len).map(|i| (i % 251) as u8).collect();
                        let (l, name) = (ledger.clone(), p.name);
                        let cb: evloop::DoneCb =
                            Box::new(move |_, _, _| note_callback(&l, writer_name(name), "write"));
                        match p.writer.write(lp, &data, Some(cb)) {
                            Ok(_) => p.written.extend_from_slice(&data),
                            // Only once the reading end is gone (EPIPE) or broke.
                            Err(e) => assert!(p.reader_closed, "seed {seed}: write failed: {e}"),
                        }
                    }
                }
            }
            7 => {
                if let Some(p) = {
                    let i = rng.pick(pairs.len());
                    pairs.get_mut(i)
                } {
                    if !p.reader_closed {
                        if p.reading {
                            p.reader.read_stop(lp).unwrap();
                        } else {
                            start_reading(lp, &ledger, p);
                        }
                        p.reading = !p.reading;
                    }
                }
            }
            8 => {
                if let Some(p) = {
                    let i = rng.pick(pairs.len());
                    pairs.get_mut(i)
                } {
                    if !p.writer_closed && !p.shut {
                        p.shut = true;
                        let (l, name) = (ledger.clone(), p.name);
                        p.writer
                            .shutdown(
                                lp,
                                Some(Box::new(move |_, _, _| {
                                    note_callback(&l, writer_name(name), "shutdown")
                                })),
                            )
                            .unwrap();
                    }
                }
            }
            9 => {
                if let Some(p) = {
                    let i = rng.pick(pairs.len());
                    pairs.get_mut(i)
                } {
                    let side = rng.below(2);
                    if side == 0 && !p.writer_closed {
                        p.writer_closed = true;
                        p.writer
                            .close(lp, Some(close_cb(&ledger, writer_name(p.name))))
                            .unwrap();
                        expected_closes.push(writer_name(p.name));
                    } else if side == 1 && !p.reader_closed {
                        p.reader_closed = true;
                        p.reader
                            .close(lp, Some(close_cb(&ledger, reader_name(p.name))))
                            .unwrap();
                        expected_closes.push(reader_name(p.name));
                    }
                }
            }
            10 => {
                // An fd watcher on a socket the test owns; readable callbacks read one byte.
                let (a, b) = UnixStream::pair().unwrap();
                a.set_nonblocking(true).unwrap();
                let name = next_name;
                next_name += 1;
                let w = FdWatcher::new(lp, a.as_raw_fd()).unwrap();
                let (l, fd) = (ledger.clone(), a.as_raw_fd());
                w.start(lp, ready::READABLE | ready::WRITABLE, move |_, _, r| {
                    note_callback(&l, name, "poll");
                    if r.is_ok_and(|bits| bits & ready::READABLE != 0) {
                        let mut byte = [0u8; 1];
                        // SAFETY: reads one byte into a local buffer.
                        unsafe { libc::read(fd, byte.as_mut_ptr().cast(), 1) };
                    }
                })
                .unwrap();
                watchers.push((name, w, a, b, false));
            }
            11 => {
                if let Some((name, w, _, b, closing)) = {
                    let i = rng.pick(watchers.len());
                    watchers.get_mut(i)
                } {
                    match rng.below(3) {
                        0 => {
                            use std::io::Write;
                            let _ = (&*b).write_all(b"xyz");
                        }
                        1 if !*closing => {
                            *closing = true;
                            w.close(lp, Some(close_cb(&ledger, *name))).unwrap();
                            expected_closes.push(*name);
                        }
                        _ if !*closing => {
                            let _ = w.stop(lp);
                        }
                        _ => {}
                    }
                }
            }
            12 => {
                let name = next_name;
                next_name += 1;
                let l = ledger.clone();
                let a = Async::new(lp, move |_, _| note_callback(&l, name, "async")).unwrap();
                a.waker(lp).unwrap().wake();
                asyncs.push((name, a, false));
            }
            13 => {
                if let Some((name, a, closing)) = {
                    let i = rng.pick(asyncs.len());
                    asyncs.get_mut(i)
                } {
                    if !*closing {
                        let waker = a.waker(lp).unwrap();
                        waker.wake();
                        if rng.below(2) == 0 {
                            *closing = true;
                            a.close(lp, Some(close_cb(&ledger, *name))).unwrap();
                            expected_closes.push(*name);
                            // From another thread, after the close: refused, never delivered.
                            std::thread::spawn(move || {
                                let _ = waker.try_wake();
                            })
                            .join()
                            .unwrap();
                        }
                    }
                }
            }
            14 => {
                lp.run(RunMode::Once).unwrap();
            }
            _ => {
                lp.run(RunMode::NoWait).unwrap();
            }
        }
    }

    // Every pair still whole delivers everything written, in order.
    for p in &pairs {
        if !p.reader_closed && !p.reading {
            start_reading(lp, &ledger, p);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    run_until(lp, Duration::from_secs(30), |_| {
        let l = ledger.borrow();
        let done = pairs.iter().all(|p| {
            p.reader_closed
                || p.writer_closed
                || l.received.get(&p.name).map_or(0, |r| r.len()) == p.written.len()
        });
        assert!(
            done || Instant::now() < deadline,
            "seed {seed}: data not delivered"
        );
        done
    });
    for p in &pairs {
        let l = ledger.borrow();
        let got = l.received.get(&p.name).map_or(&[][..], |r| &r[..]);
        assert!(
            got.len() <= p.written.len(),
            "seed {seed}: pair {} received more than written",
            p.name
        );
        assert!(
            got == &p.written[..got.len()],
            "seed {seed}: pair {} bytes out of order",
            p.name
        );
        if !p.reader_closed && !p.writer_closed {
            assert_eq!(
                got.len(),
                p.written.len(),
                "seed {seed}: pair {} lost bytes",
                p.name
            );
        }
    }

    // Close everything left, run to the end.
    tick.close(lp, None).unwrap();
    for (name, t, closing) in &mut timers {
        if !*closing && t.is_alive(lp) && !t.is_closing(lp) {
            t.close(lp, Some(close_cb(&ledger, *name))).unwrap();
            expected_closes.push(*name);
        }
    }
    for p in &mut pairs {
        if !p.writer_closed {
            p.writer
                .close(lp, Some(close_cb(&ledger, writer_name(p.name))))
                .unwrap();
            expected_closes.push(writer_name(p.name));
        }
        if !p.reader_closed {
            p.reader
                .close(lp, Some(close_cb(&ledger, reader_name(p.name))))
                .unwrap();
            expected_closes.push(reader_name(p.name));
        }
    }
    for (name, w, _, _, closing) in &mut watchers {
        if !*closing {
            w.close(lp, Some(close_cb(&ledger, *name))).unwrap();
            expected_closes.push(*name);
        }
    }
    for (name, a, closing) in &mut asyncs {
        if !*closing {
            a.close(lp, Some(close_cb(&ledger, *name))).unwrap();
            expected_closes.push(*name);
        }
    }
    lp.run(RunMode::Default).unwrap();
    assert!(!lp.alive(), "seed {seed}: loop still alive after every close");

    let l = ledger.borrow();
    assert!(l.late.is_empty(), "seed {seed}: {:?}", l.late);
    expected_closes.sort_unstable();
    expected_closes.dedup();
    for name in &expected_closes {
        assert_eq!(
            l.closed.get(name),
            Some(&1),
            "seed {seed}: close callback of handle {name}"
        );
    }
    let unexpected: Vec<_> = l.closed.keys().filter(|n| !expected_closes.contains(n)).collect();
    assert!(
        unexpected.is_empty(),
        "seed {seed}: unexpected close callbacks of {unexpected:?}"
    );
    for p in &pairs {
        for (fd, id) in &p.identities {
            assert_ne!(
                identity(*fd).as_ref(),
                Some(id),
                "seed {seed}: socket fd {fd} left open"
            );
        }
    }
    (l.received.values().map(Vec::len).sum(), l.closed.len())
}

#[test]
fn random_operations_keep_the_loop_invariants() {
    let seeds: u64 = std::env::var("EVLOOP_STATE_SEEDS").map_or(150, |v| v.parse().unwrap());
    let first: u64 = std::env::var("EVLOOP_STATE_FIRST").map_or(1, |v| v.parse().unwrap());
    for kind in backends() {
        eprintln!("-- backend {kind:?}");
        let mut lp = new_loop(kind);
        let (mut bytes, mut closes) = (0, 0);
        for seed in first..first + seeds {
            let (b, c) = run_seed(&mut lp, seed);
            bytes += b;
            closes += c;
        }
        eprintln!("{seeds} seeds: {bytes} bytes delivered, {closes} close callbacks");
        assert!(bytes > 0 && closes > 0, "the sequences exercised nothing");
    }
}
