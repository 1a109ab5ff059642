//! The thread pool and name resolution, on every backend (results return through the loop's
//! wake-up, which each backend arms differently).
mod common;

use common::*;
use evloop::{Error, Family, ResolveOptions, RunMode};
use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

#[test]
fn work_runs_off_the_loop_thread_and_returns_its_result() {
    each_backend(|lp| {
        let loop_thread = std::thread::current().id();
        let results = Rc::new(RefCell::new(Vec::new()));
        for i in 0..50u64 {
            let r = results.clone();
            lp.queue_work(
                move || {
                    assert_ne!(std::thread::current().id(), loop_thread);
                    i * i
                },
                move |_, out| r.borrow_mut().push(out.unwrap()),
            )
            .unwrap();
        }
        assert_eq!(lp.pending_work(), 50);
        assert!(lp.alive(), "queued work keeps the loop alive");
        lp.run(RunMode::Default).unwrap();
        let mut got = results.borrow().clone();
        got.sort();
        assert_eq!(got, (0..50u64).map(|i| i * i).collect::<Vec<_>>());
        assert_eq!(lp.pending_work(), 0);
    });
}

#[test]
fn work_not_yet_started_can_be_cancelled() {
    each_backend(|lp| {
        // Occupy every worker (the pool has 4 unless EVLOOP_THREADPOOL_SIZE says otherwise), so
        // the last job is still queued when it is cancelled.
        let workers: usize = std::env::var("EVLOOP_THREADPOOL_SIZE")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(4);
        let gate = Arc::new(Barrier::new(workers + 1));
        let started = Arc::new(AtomicUsize::new(0));
        let outcomes = Rc::new(RefCell::new(Vec::new()));
        let mut ids = Vec::new();
        for _ in 0..workers {
            let (g, s, o) = (gate.clone(), started.clone(), outcomes.clone());
            ids.push(
                lp.queue_work(
                    move || {
                        s.fetch_add(1, Ordering::SeqCst);
                        g.wait();
                        "ran"
                    },
                    move |_, r: evloop::Result<&str>| o.borrow_mut().push(r.map_err(|e| e.name())),
                )
                .unwrap(),
            );
        }
        while started.load(Ordering::SeqCst) < workers {
            std::thread::sleep(Duration::from_millis(1));
        }
        let o = outcomes.clone();
        let queued = lp
            .queue_work(
                || "must not run",
                move |_, r: evloop::Result<&str>| o.borrow_mut().push(r.map_err(|e| e.name())),
            )
            .unwrap();
        assert_eq!(lp.cancel_work(queued), Ok(()));
        assert_eq!(lp.cancel_work(queued), Err(Error::EBADF), "already cancelled");
        assert_eq!(
            lp.cancel_work(ids[0]),
            Err(Error::EBUSY),
            "running work cannot be cancelled"
        );
        gate.wait();
        lp.run(RunMode::Default).unwrap();
        let got = outcomes.borrow().clone();
        assert_eq!(got.len(), workers + 1);
        assert_eq!(got.iter().filter(|r| **r == Ok("ran")).count(), workers);
        assert_eq!(got.iter().filter(|r| **r == Err("ECANCELED")).count(), 1);
    });
}

#[test]
fn panicking_work_reports_eio_and_the_pool_survives() {
    each_backend(|lp| {
        let out = Rc::new(RefCell::new(Vec::new()));
        let o = out.clone();
        lp.queue_work(
            || -> u32 { panic!("work that fails") },
            move |_, r| o.borrow_mut().push(r),
        )
        .unwrap();
        let o = out.clone();
        lp.queue_work(|| 7u32, move |_, r| o.borrow_mut().push(r))
            .unwrap();
        lp.run(RunMode::Default).unwrap();
        let mut got = out.borrow().clone();
        got.sort_by_key(|r| r.is_ok());
        assert_eq!(got, vec![Err(Error::EIO), Ok(7)]);
    });
}

#[test]
fn getaddrinfo_and_getnameinfo() {
    each_backend(|lp| {
        let found = Rc::new(RefCell::new(Vec::new()));
        let f = found.clone();
        lp.getaddrinfo("127.0.0.1", 8080, ResolveOptions::default(), move |_, r| {
            f.borrow_mut().push(r)
        })
        .unwrap();
        let f = found.clone();
        let v6 = ResolveOptions {
            family: Family::V6,
            numeric_host: true,
        };
        lp.getaddrinfo("::1", 53, v6, move |_, r| f.borrow_mut().push(r))
            .unwrap();
        let f = found.clone();
        lp.getaddrinfo("localhost", 80, ResolveOptions::default(), move |_, r| {
            f.borrow_mut().push(r)
        })
        .unwrap();
        // Numeric-only lookups fail at once, without asking any resolver.
        let f = found.clone();
        let numeric = ResolveOptions {
            numeric_host: true,
            ..Default::default()
        };
        lp.getaddrinfo("not-a-number", 1, numeric, move |_, r| f.borrow_mut().push(r))
            .unwrap();
        assert_eq!(
            lp.getaddrinfo("nul\0inside", 1, numeric, |_, _| {}).err(),
            Some(Error::EINVAL)
        );
        let names = Rc::new(RefCell::new(None));
        let n = names.clone();
        lp.getnameinfo("127.0.0.1:22".parse().unwrap(), move |_, r| {
            *n.borrow_mut() = Some(r)
        })
        .unwrap();
        lp.run(RunMode::Default).unwrap();
        let found = found.borrow();
        let mut by_kind: Vec<_> = found.iter().cloned().collect();
        let first: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        assert!(by_kind.contains(&Ok(vec![first])), "{by_kind:?}");
        assert!(
            by_kind.contains(&Ok(vec!["[::1]:53".parse().unwrap()])),
            "{by_kind:?}"
        );
        assert!(by_kind.contains(&Err(Error::ENOENT)), "{by_kind:?}");
        by_kind.retain(|r| matches!(r, Ok(v) if v.iter().any(|a| a.port() == 80)));
        let localhost = by_kind.pop().expect("localhost resolved").unwrap();
        assert!(localhost.iter().all(|a| a.ip().is_loopback()), "{localhost:?}");
        let (host, service) = names.borrow_mut().take().unwrap().unwrap();
        assert!(!host.is_empty());
        assert!(service == "ssh" || service == "22", "{service}");
    });
}
