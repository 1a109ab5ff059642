//! An echo server: one loop per thread, sharing the port through SO_REUSEPORT.
//!
//! `cargo run --release --example echo_server -- [PORT] [THREADS]` (defaults: 7000, 1).
//! Prints the backend it runs on, nothing per request, and exits cleanly on SIGINT/SIGTERM.

use evloop::{BindOptions, Handle, Loop, Read, RunMode, Signal, Stream};
use std::net::SocketAddr;

fn serve(addr: SocketAddr, reuse_port: bool, announce: bool) -> evloop::Result<()> {
    let mut lp = Loop::new()?;
    let server = Stream::tcp_bind(
        &mut lp,
        addr,
        BindOptions {
            reuse_port,
            v6_only: false,
        },
    )?;
    server.listen(&mut lp, 1024, |lp, _, conn| {
        let Ok(conn) = conn else { return };
        let _ = conn.set_nodelay(lp, true);
        let _ = conn.read_start(lp, |lp, conn, read| match read {
            Read::Data(bytes) => {
                if conn.write(lp, bytes, None).is_err() {
                    let _ = conn.close(lp, None);
                }
            }
            Read::Eof | Read::Error(_) => {
                let _ = conn.close(lp, None);
            }
        });
    })?;
    for signum in [libc::SIGINT, libc::SIGTERM] {
        let sig = Signal::new(&mut lp)?;
        sig.start(&mut lp, signum, move |lp, _, _| {
            // Closing the listener and the signal watchers lets `run` return once connections end;
            // stop() ends it now.
            lp.stop();
        })?;
    }
    if let Some(secs) = std::env::var("ECHO_SERVER_SECONDS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
    {
        // For measurement under tools that delay signals (valgrind): stop by the loop's own timer.
        let t = evloop::Timer::new(&mut lp);
        t.start(&mut lp, secs * 1000, 0, |lp, _| lp.stop())?;
    }
    if announce {
        println!(
            "echo server on {} ({} backend)",
            server.local_addr(&lp)?,
            lp.backend_name()
        );
    }
    lp.run(RunMode::Default)?;
    if std::env::var_os("ECHO_SERVER_STATS").is_some() {
        eprintln!("{:?}", lp.stats());
    }
    Ok(())
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("--probe") {
        // Used by bench/echo.py: can a loop start with the backend EVLOOP_BACKEND asks for?
        match Loop::new() {
            Ok(lp) => println!("{}", lp.backend_name()),
            Err(e) => {
                eprintln!("{e}");
                std::process::exit(1);
            }
        }
        return;
    }
    let mut args = std::env::args().skip(1);

    let port: u16 = args.next().and_then(|p| p.parse().ok()).unwrap_or(7000);
    let threads: usize = args.next().and_then(|t| t.parse().ok()).unwrap_or(1).max(1);
    let addr: SocketAddr = SocketAddr::from(([127, 0, 0, 1], port));
    let workers: Vec<_> = (0..threads)
        .map(|i| std::thread::spawn(move || serve(addr, threads > 1, i == 0)))
        .collect();
    for w in workers {
        if let Err(e) = w.join().expect("worker panicked") {
            eprintln!("echo server: {e}");
            std::process::exit(1);
        }
    }
}
