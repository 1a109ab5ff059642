//! File-read benchmark: read every file in a directory (`read_file_into`: open, read to EOF, close)
//! with at most `INFLIGHT` files in flight, several passes over a warm page cache. Prints one
//! `RESULT` line; bench/c/uv_files.c does the same with libuv's `uv_fs_*` (thread pool).
//!
//! usage: files DIR [PASSES] [INFLIGHT]   (EVLOOP_BACKEND picks the backend)

use evloop::{fs, Loop, RunMode};
use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Instant;

struct State {
    paths: Vec<PathBuf>,
    next: usize,
    done: usize,
    bytes: usize,
    /// Buffers of finished files, for the next ones.
    spare: Vec<Vec<u8>>,
}

fn start_next(lp: &mut Loop, st: &Rc<RefCell<State>>) {
    let path = {
        let mut s = st.borrow_mut();
        if s.next == s.paths.len() {
            return;
        }
        s.next += 1;
        s.paths[s.next - 1].clone()
    };
    let st2 = st.clone();
    // Each file in flight has a buffer, handed on to the next file, as each job of
    // bench/c/uv_files.c has its own.
    let buf = st.borrow_mut().spare.pop().unwrap_or_default();
    fs::read_file_into(lp, path, buf, move |lp, r| {
        let data = r.expect("read_file");
        {
            let mut s = st2.borrow_mut();
            s.done += 1;
            s.bytes += data.len();
            s.spare.push(data);
        }
        start_next(lp, &st2);
    })
    .expect("read_file submit");
}

fn cpu_us() -> u64 {
    // SAFETY: valid out-pointer.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    us(ru.ru_utime) + us(ru.ru_stime)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = PathBuf::from(args.get(1).expect("usage: files DIR [PASSES] [INFLIGHT]"));
    let passes: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(3);
    let inflight: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(256);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    let mut lp = Loop::new().unwrap();
    let (cpu0, t0) = (cpu_us(), Instant::now());
    let mut files = 0;
    let mut bytes = 0;
    for _ in 0..passes {
        let st = Rc::new(RefCell::new(State {
            paths: paths.clone(),
            next: 0,
            done: 0,
            bytes: 0,
            spare: Vec::new(),
        }));
        for _ in 0..inflight {
            start_next(&mut lp, &st);
        }
        lp.run(RunMode::Default).unwrap();
        let s = st.borrow();
        assert_eq!(s.done, paths.len(), "every file read");
        files += s.done;
        bytes += s.bytes;
    }
    let secs = t0.elapsed().as_secs_f64();
    let cpu = cpu_us() - cpu0;
    println!(
        "RESULT impl=evloop-{} files={files} bytes={bytes} seconds={secs:.4} files_per_s={:.0} cpu_us_per_file={:.3} iterations={}",
        lp.backend_name(),
        files as f64 / secs,
        cpu as f64 / files as f64,
        lp.stats().iterations
    );
}
