//! A steady-state echo round trip allocates nothing: checked with a counting global allocator.
mod common;

use common::*;
use evloop::{BindOptions, Handle, Read, RunMode, Stream};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::rc::Rc;

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: delegates to the system allocator; only counts calls on the current thread.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(|c| c.get())
}

const WARMUP: u64 = 200;
const MEASURED: u64 = 5_000;

#[test]
fn steady_state_echo_round_trip_allocates_nothing_with_plain_and_gathered_writes() {
    // One connection: every pass has one completion, so replies go at once on both backends.
    each_backend(|lp| echo_allocates_nothing(lp, 1));
}

#[test]
fn busy_passes_allocate_nothing_either() {
    // 32 connections in flight: passes bring many completions, and small replies are copied
    // and sent together (epoll at the end of the pass, io_uring in the next enter).
    each_backend(|lp| echo_allocates_nothing(lp, 32));
}

/// `clients` connections echo 64 B messages through a server on the same loop; between the
/// end of the warm-up and the end of the measured round trips nothing is allocated.
fn echo_allocates_nothing(lp: &mut evloop::Loop, clients: u64) {
    let server = Stream::tcp_bind(lp, "127.0.0.1:0".parse().unwrap(), BindOptions::default()).unwrap();
    let addr = server.local_addr(lp).unwrap();
    listen_echo(lp, server);
    let trips = Rc::new(Cell::new(0u64));
    let counted = Rc::new(Cell::new((0u64, 0u64)));
    let open = Rc::new(Cell::new(clients));
    // Each client goes on past the measured window, so all are busy until it ends.
    let per_client = WARMUP + MEASURED + WARMUP;
    for _ in 0..clients {
        let client = Stream::tcp_connect(lp, addr, |lp, c, r| {
            r.unwrap();
            c.write(lp, &[42u8; 64], None).unwrap();
        })
        .unwrap();
        let (t, k, o) = (trips.clone(), counted.clone(), open.clone());
        let mut pending = 0usize;
        let mut mine = 0u64;
        client
            .read_start(lp, move |lp, c, r| {
                let Read::Data(b) = r else {
                    panic!("unexpected {r:?}")
                };
                pending += b.len();
                if pending < 64 {
                    return;
                }
                pending -= 64;
                mine += 1;
                t.set(t.get() + 1);
                if t.get() == WARMUP * clients {
                    k.set((allocations(), 0));
                } else if t.get() == (WARMUP + MEASURED) * clients {
                    k.set((k.get().0, allocations()));
                }
                if mine == per_client {
                    c.close(lp, None).unwrap();
                    o.set(o.get() - 1);
                    if o.get() == 0 {
                        server.close(lp, None).unwrap();
                    }
                    return;
                }
                // Every other message as a header and a body (a gathered write).
                if mine.is_multiple_of(2) {
                    c.write(lp, &[42u8; 64], None).unwrap();
                } else {
                    c.write_vectored(lp, &[&[42u8; 16], &[42u8; 48]], None).unwrap();
                }
            })
            .unwrap();
    }
    // A watchdog that fails the test instead of hanging; it never fires when all is well.
    let watchdog = evloop::Timer::new(lp);
    watchdog
        .start(lp, LIMIT.as_millis() as u64, 0, |_, _| {
            panic!("echo did not finish in time")
        })
        .unwrap();
    watchdog.unref(lp).unwrap();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(trips.get(), per_client * clients);
    let (before, after) = counted.get();
    assert_eq!(
        after - before,
        0,
        "{} allocations in {} round trips over {clients} connections",
        after - before,
        MEASURED * clients
    );
    watchdog.close(lp, None).unwrap();
    lp.run(RunMode::Default).unwrap();
}

fn echo_plain(lp: &mut evloop::Loop, s: Stream, read: Read<'_>, _: usize) {
    match read {
        Read::Data(b) => {
            s.write(lp, b, None).unwrap();
        }
        Read::Eof | Read::Error(_) => s.close(lp, None).unwrap(),
    }
}

/// Starting to read with a plain function (`read_start_fn`, what the C ABI uses) allocates
/// nothing, where a boxed closure allocates one box per connection; and it reads.
#[test]
fn read_start_fn_allocates_nothing_per_stream() {
    each_backend(|lp| {
        let mut pairs = Vec::new();
        for _ in 0..50 {
            let (mine, peer) = socket_pair();
            let s = Stream::adopt(lp, mine).unwrap();
            pairs.push((s, peer));
        }
        // Warm the stream slab and the backend's per-fd state.
        for &(s, _) in &pairs {
            s.read_start_fn(lp, echo_plain, 0).unwrap();
            s.read_stop(lp).unwrap();
        }
        lp.run(RunMode::NoWait).unwrap();
        let before = allocations();
        for &(s, _) in &pairs {
            s.read_start_fn(lp, echo_plain, 0).unwrap();
        }
        let after = allocations();
        assert_eq!(after - before, 0, "read_start_fn allocated");
        // And it delivers: one pair echoes.
        let (_, peer) = pairs[0];
        // SAFETY: writes 4 bytes from a live array to our socket.
        assert_eq!(unsafe { libc::write(peer, b"ping".as_ptr().cast(), 4) }, 4);
        let mut got = [0u8; 4];
        run_until(lp, LIMIT, |_| {
            // SAFETY: reads into a live array, non-blocking.
            unsafe { libc::recv(peer, got.as_mut_ptr().cast(), 4, libc::MSG_DONTWAIT) == 4 }
        });
        assert_eq!(&got, b"ping");
        for (s, peer) in pairs {
            s.close(lp, None).unwrap();
            // SAFETY: closing our own fd.
            unsafe { libc::close(peer) };
        }
        lp.run(RunMode::Default).unwrap();
    });
}

/// Timers in places (`Timer::new_in`, what the C ABI's evl_timer_init_in uses): making, starting,
/// stopping and restarting them allocates nothing once the loop's table of places has room.
#[test]
fn timers_in_places_allocate_nothing() {
    use evloop::{Timer, TimerPlace};
    use std::mem::MaybeUninit;
    use std::ptr::NonNull;
    fn noop(_: &mut evloop::Loop, _: Timer, _: usize) {}
    each_backend(|lp| {
        const N: usize = 1000;
        let mut places: Vec<MaybeUninit<TimerPlace>> = (0..N).map(|_| MaybeUninit::uninit()).collect();
        let ptrs: Vec<NonNull<TimerPlace>> = places.iter_mut().map(|p| NonNull::from(p).cast()).collect();
        // Warm the table of places: make and close as many timers first.
        // SAFETY: every place outlives its timer (closed and run below before the places go).
        let warm: Vec<Timer> = ptrs.iter().map(|&p| unsafe { Timer::new_in(lp, p) }).collect();
        for t in warm {
            t.close(lp, None).unwrap();
        }
        lp.run(RunMode::NoWait).unwrap();
        let mut timers: Vec<Timer> = Vec::with_capacity(N);
        let before = allocations();
        for &p in &ptrs {
            // SAFETY: as above.
            timers.push(unsafe { Timer::new_in(lp, p) });
        }
        for (i, (&t, &p)) in timers.iter().zip(&ptrs).enumerate() {
            // SAFETY: the place each was made in, open.
            unsafe {
                t.start_fn_in(lp, p, 1000 + i as u64, 0, noop, 0).unwrap();
                t.stop_in(lp, p).unwrap();
                t.start_fn_in(lp, p, 2000, 0, noop, 0).unwrap();
            }
        }
        let after = allocations();
        assert_eq!(after - before, 0, "timers in places allocated");
        for t in timers {
            t.close(lp, None).unwrap();
        }
        lp.run(RunMode::Default).unwrap();
        drop(places);
    });
}
