//! Soak: connect / echo / close cycles, a third of them ended by the client's reset, against an
//! echo server, on both backends. The server's descriptors and resident memory are measured
//! after a warm-up and at the end: neither may grow beyond a small constant. One test in this
//! binary, so nothing else in the process moves the figures.
//!
//! `EVLOOP_SOAK_CYCLES` sets the cycles per backend (default 20,000; `bench/soak.sh` runs
//! 200,000).
mod common;

use common::*;
use evloop::{Handle, RunMode};
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn connect_echo_close_cycles_leave_no_descriptor_or_memory_behind() {
    let cycles: u64 = std::env::var("EVLOOP_SOAK_CYCLES").map_or(20_000, |v| v.parse().unwrap());
    let warmup = (cycles / 10).max(500);
    for kind in backends() {
        eprintln!("-- backend {kind:?}");
        let mut lp = new_loop(kind);
        let lp = &mut lp;
        let (server, addr, counts) = counting_echo_server(lp);
        let open = counts.open.clone();
        // The client runs on a thread of its own: each cycle connects, sends 64 bytes, reads the
        // echo, then closes, or resets every third time.
        let done = Arc::new(AtomicU64::new(0));
        let d = done.clone();
        let client = std::thread::spawn(move || {
            let msg = [7u8; 64];
            let mut back = [0u8; 64];
            for i in 0..cycles {
                let mut c = TcpStream::connect(addr).unwrap();
                c.write_all(&msg).unwrap();
                c.read_exact(&mut back).unwrap();
                assert_eq!(back, msg);
                if i % 3 == 0 {
                    reset_on_close(&c);
                }
                drop(c);
                d.store(i + 1, Ordering::Release);
            }
        });
        let settled = |lp: &mut evloop::Loop, n: u64| {
            let deadline = Instant::now() + Duration::from_secs(120);
            run_until(lp, Duration::from_secs(180), |_| {
                let ok = done.load(Ordering::Acquire) >= n && open.get() == 0;
                assert!(
                    ok || Instant::now() < deadline,
                    "{} cycles, {} open",
                    done.load(Ordering::Acquire),
                    open.get()
                );
                ok
            });
        };
        settled(lp, warmup);
        lp.run(RunMode::NoWait).unwrap();
        let (fds_before, rss_before) = (open_fds(), rss_kib());
        settled(lp, cycles);
        client.join().unwrap();
        lp.run(RunMode::NoWait).unwrap();
        let (fds_after, rss_after) = (open_fds(), rss_kib());
        eprintln!(
            "{kind:?}: {cycles} cycles; fds {fds_before} -> {fds_after}; RSS {rss_before} -> {rss_after} KiB"
        );
        assert!(
            fds_after <= fds_before,
            "descriptors grew: {fds_before} -> {fds_after}"
        );
        assert!(
            rss_after <= rss_before + 2048,
            "resident memory grew by {} KiB",
            rss_after - rss_before
        );
        server.close(lp, None).unwrap();
        lp.run(RunMode::Default).unwrap();
    }
}
