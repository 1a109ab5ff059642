//! Timer benchmark: 1,000,000 pending one-shot timers with random timeouts of 1–100 s, started
//! then stopped (in start order and in random order), and 1,000,000 timers firing within 1 s.
//! Prints one `RESULT` line; bench/c/timers.c prints the same for libuv and the C API.

use evloop::{Handle, Loop, RunMode, Timer};
use std::cell::Cell;
use std::rc::Rc;
use std::time::Instant;

const N: usize = 1_000_000;

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn cpu_ns() -> u64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid out-pointer.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    (us(ru.ru_utime) + us(ru.ru_stime)) * 1000
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn main() {
    let mut lp = Loop::new().expect("loop");
    let mut rng = Rng(0x9E3779B97F4A7C15);
    let timeouts: Vec<u64> = (0..N).map(|_| 1_000 + rng.next() % 99_000).collect();
    let mut order: Vec<usize> = (0..N).collect();
    for i in (1..N).rev() {
        order.swap(i, (rng.next() % (i as u64 + 1)) as usize);
    }
    let rss_before = rss_bytes();
    let t0 = Instant::now();
    let timers: Vec<Timer> = (0..N).map(|_| Timer::new(&mut lp)).collect();
    let init_ns = t0.elapsed().as_nanos() as f64 / N as f64;

    let t0 = Instant::now();
    for (t, &ms) in timers.iter().zip(&timeouts) {
        t.start(&mut lp, ms, 0, |_, _| {}).unwrap();
    }
    let start_ns = t0.elapsed().as_nanos() as f64 / N as f64;
    let bytes_per_timer = rss_bytes().saturating_sub(rss_before) as f64 / N as f64;

    let t0 = Instant::now();
    for t in &timers {
        t.stop(&mut lp).unwrap();
    }
    let stop_in_order_ns = t0.elapsed().as_nanos() as f64 / N as f64;

    for (t, &ms) in timers.iter().zip(&timeouts) {
        t.start(&mut lp, ms, 0, |_, _| {}).unwrap();
    }
    let t0 = Instant::now();
    for &i in &order {
        timers[i].stop(&mut lp).unwrap();
    }
    let stop_random_ns = t0.elapsed().as_nanos() as f64 / N as f64;
    // Nothing is pending: one iteration must cost nothing for the cancelled timers.
    let t0 = Instant::now();
    lp.run(RunMode::NoWait).unwrap();
    let iteration_after_cancel_us = t0.elapsed().as_micros();

    // Firing: every timer due within the next second.
    let fired = Rc::new(Cell::new(0usize));
    for t in &timers {
        let f = fired.clone();
        t.start(&mut lp, rng.next() % 1_000, 0, move |_, _| f.set(f.get() + 1))
            .unwrap();
    }
    let cpu0 = cpu_ns();
    let t0 = Instant::now();
    lp.run(RunMode::Default).unwrap();
    let fire_cpu_ns = (cpu_ns() - cpu0) as f64 / N as f64;
    assert_eq!(fired.get(), N);
    let fire_wall_ms = t0.elapsed().as_millis();
    for t in timers {
        t.close(&mut lp, None).unwrap();
    }
    lp.run(RunMode::Default).unwrap();
    println!(
        "RESULT impl=evloop-{} init_ns={init_ns:.1} start_ns={start_ns:.1} stop_in_order_ns={stop_in_order_ns:.1} stop_random_ns={stop_random_ns:.1} \
         iteration_after_cancel_us={iteration_after_cancel_us} fire_cpu_ns={fire_cpu_ns:.1} fire_wall_ms={fire_wall_ms} bytes_per_timer={bytes_per_timer:.0}",
        lp.backend_name()
    );
}
