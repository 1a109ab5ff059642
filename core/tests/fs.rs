//! File operations on every backend: io_uring runs them in the ring, epoll on the thread pool;
//! results and errors must be the same.
mod common;

use common::*;
use evloop::fs::{self, FileType};
use evloop::{BackendKind, Config, Error, Loop, RunMode};
use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// A fresh directory per test and backend, removed afterwards.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str, lp: &Loop) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "evloop-fs-{}-{}-{}",
            std::process::id(),
            tag,
            lp.backend_name()
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A cell the callbacks fill and the test reads after running the loop.
fn slot<T>() -> Rc<RefCell<Option<T>>> {
    Rc::new(RefCell::new(None))
}

fn take<T>(s: &Rc<RefCell<Option<T>>>) -> T {
    s.borrow_mut().take().expect("callback ran")
}

#[test]
fn write_file_then_read_file_stat_rename_unlink() {
    each_backend(|lp| {
        let dir = TempDir::new("whole", lp);
        let a = dir.path("a.txt");
        // Larger than the first read chunk, so read_file needs several reads.
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let wrote = slot();
        let w = wrote.clone();
        fs::write_file(lp, &a, data.clone(), move |_, r| *w.borrow_mut() = Some(r)).unwrap();
        lp.run(RunMode::Default).unwrap();
        take(&wrote).unwrap();
        assert_eq!(std::fs::read(&a).unwrap(), data);

        let read = slot();
        let r = read.clone();
        fs::read_file(lp, &a, move |_, got| *r.borrow_mut() = Some(got)).unwrap();
        lp.run(RunMode::Default).unwrap();
        assert_eq!(take(&read).unwrap(), data);

        let st = slot();
        let s = st.clone();
        fs::stat(lp, &a, move |_, m| *s.borrow_mut() = Some(m)).unwrap();
        lp.run(RunMode::Default).unwrap();
        let m = take(&st).unwrap();
        assert_eq!(m.size, data.len() as u64);
        assert!(m.is_file() && !m.is_dir());
        assert!(m.mtime.sec > 1_600_000_000);

        let b = dir.path("b.txt");
        let renamed = slot();
        let rn = renamed.clone();
        fs::rename(lp, &a, &b, move |_, r| *rn.borrow_mut() = Some(r)).unwrap();
        lp.run(RunMode::Default).unwrap();
        take(&renamed).unwrap();
        assert!(!a.exists() && b.exists());

        let unlinked = slot();
        let u = unlinked.clone();
        fs::unlink(lp, &b, move |_, r| *u.borrow_mut() = Some(r)).unwrap();
        lp.run(RunMode::Default).unwrap();
        take(&unlinked).unwrap();
        assert!(!b.exists());

        // Everything is gone now: each call reports ENOENT.
        let errs = Rc::new(RefCell::new(Vec::new()));
        let e = errs.clone();
        fs::read_file(lp, &b, move |_, r| e.borrow_mut().push(r.unwrap_err())).unwrap();
        let e = errs.clone();
        fs::stat(lp, &b, move |_, r| e.borrow_mut().push(r.unwrap_err())).unwrap();
        let e = errs.clone();
        fs::unlink(lp, &b, move |_, r| e.borrow_mut().push(r.unwrap_err())).unwrap();
        let e = errs.clone();
        fs::rename(lp, &b, &a, move |_, r| e.borrow_mut().push(r.unwrap_err())).unwrap();
        lp.run(RunMode::Default).unwrap();
        assert_eq!(*errs.borrow(), vec![Error::ENOENT; 4]);
    });
}

#[test]
fn read_write_at_offsets_vectored_sync_fstat_and_eof() {
    each_backend(|lp| {
        let dir = TempDir::new("rw", lp);
        let p = dir.path("f");
        let fd = slot();
        let f = fd.clone();
        fs::open(
            lp,
            &p,
            libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC,
            0o600,
            move |_, r| *f.borrow_mut() = Some(r),
        )
        .unwrap();
        lp.run(RunMode::Default).unwrap();
        let fd = take(&fd).unwrap();
        assert!(fd >= 0);

        let log = Rc::new(RefCell::new(Vec::<String>::new()));
        // Gather-write at offset 0, then a plain write at offset 10 (chained: order matters).
        let l = log.clone();
        fs::writev(
            lp,
            fd,
            vec![b"hello ".to_vec(), b"world".to_vec()],
            Some(0),
            move |lp, r, bufs| {
                assert_eq!(r.unwrap(), 11);
                assert_eq!(bufs.len(), 2, "the buffers come back");
                l.borrow_mut().push("writev".into());
                let l = l.clone();
                fs::write(lp, fd, *b"D!", Some(10), move |lp, r, _| {
                    assert_eq!(r.unwrap(), 2);
                    l.borrow_mut().push("write".into());
                    let l = l.clone();
                    fs::fdatasync(lp, fd, move |lp, r| {
                        r.unwrap();
                        let l = l.clone();
                        fs::fsync(lp, fd, move |_, r| {
                            r.unwrap();
                            l.borrow_mut().push("synced".into());
                        })
                        .unwrap();
                    })
                    .unwrap();
                })
                .unwrap();
            },
        )
        .unwrap();
        lp.run(RunMode::Default).unwrap();
        assert_eq!(*log.borrow(), ["writev", "write", "synced"]);
        assert_eq!(std::fs::read(&p).unwrap(), b"hello worlD!");

        // Reads at offsets, scatter-read, reading past the end.
        let got = Rc::new(RefCell::new(Vec::new()));
        let g = got.clone();
        fs::read(lp, fd, vec![0u8; 5], Some(6), move |_, r, buf| {
            g.borrow_mut().push(buf[..r.unwrap()].to_vec())
        })
        .unwrap();
        let g = got.clone();
        fs::readv(
            lp,
            fd,
            vec![vec![0u8; 3], vec![0u8; 100]],
            Some(0),
            move |_, r, bufs| {
                let n = r.unwrap();
                assert_eq!(n, 12);
                let mut all = bufs[0].clone();
                all.extend_from_slice(&bufs[1][..n - 3]);
                g.borrow_mut().push(all);
            },
        )
        .unwrap();
        let g = got.clone();
        fs::read(lp, fd, vec![0u8; 16], Some(1000), move |_, r, _| {
            assert_eq!(r.unwrap(), 0, "past EOF reads 0 bytes");
            g.borrow_mut().push(b"eof".to_vec());
        })
        .unwrap();
        let st = slot();
        let s = st.clone();
        fs::fstat(lp, fd, move |_, m| *s.borrow_mut() = Some(m)).unwrap();
        lp.run(RunMode::Default).unwrap();
        let mut got = got.borrow().clone();
        got.sort();
        assert_eq!(
            got,
            vec![b"eof".to_vec(), b"hello worlD!".to_vec(), b"worlD".to_vec()]
        );
        let m = take(&st).unwrap();
        assert_eq!(
            (m.size, m.mode & 0o777, m.file_type()),
            (12, 0o600, FileType::File)
        );

        // Reads at the file position advance it.
        let pos = Rc::new(RefCell::new(Vec::new()));
        let p2 = pos.clone();
        fs::close(lp, fd, |_, r| r.unwrap()).unwrap();
        lp.run(RunMode::Default).unwrap();
        fs::open(lp, &p, libc::O_RDONLY, 0, move |lp, fd| {
            let fd = fd.unwrap();
            let p2 = p2.clone();
            fs::read(lp, fd, [0u8; 6], None, move |lp, r, b| {
                p2.borrow_mut().push(b[..r.unwrap()].to_vec());
                let p2 = p2.clone();
                fs::read(lp, fd, [0u8; 6], None, move |lp, r, b| {
                    p2.borrow_mut().push(b[..r.unwrap()].to_vec());
                    fs::close(lp, fd, |_, r| r.unwrap()).unwrap();
                })
                .unwrap();
            })
            .unwrap();
        })
        .unwrap();
        lp.run(RunMode::Default).unwrap();
        assert_eq!(*pos.borrow(), vec![b"hello ".to_vec(), b"worlD!".to_vec()]);

        // A closed fd is EBADF from the kernel; a negative one is refused at once.
        let bad = slot();
        let b = bad.clone();
        fs::read(lp, fd, vec![0u8; 4], Some(0), move |_, r, _| {
            *b.borrow_mut() = Some(r)
        })
        .unwrap();
        lp.run(RunMode::Default).unwrap();
        assert_eq!(take(&bad), Err(Error::EBADF));
        assert_eq!(fs::close(lp, -1, |_, _| {}), Err(Error::EBADF));
        assert_eq!(
            fs::read(lp, 0, vec![0u8; 1], Some(u64::MAX), |_, _, _| {}),
            Err(Error::EINVAL)
        );
        assert_eq!(
            fs::readv::<Vec<u8>>(lp, 0, vec![], None, |_, _, _| {}),
            Err(Error::EINVAL)
        );
        assert_eq!(fs::stat(lp, "a\0b", |_, _| {}), Err(Error::EINVAL));
        assert!(!lp.alive(), "a refused call leaves nothing behind");
    });
}

#[test]
fn errors_eisdir_eacces_eexist_enotempty() {
    each_backend(|lp| {
        let dir = TempDir::new("errs", lp);
        let errs = Rc::new(RefCell::new(Vec::new()));
        // read_file of a directory: open succeeds, the read fails.
        let e = errs.clone();
        fs::read_file(lp, &dir.0, move |_, r| {
            e.borrow_mut().push(("read dir", r.unwrap_err()))
        })
        .unwrap();
        // A 0444 sysctl refuses writers, root included.
        let e = errs.clone();
        fs::open(
            lp,
            "/proc/sys/kernel/osrelease",
            libc::O_WRONLY,
            0,
            move |_, r| e.borrow_mut().push(("open ro", r.unwrap_err())),
        )
        .unwrap();
        lp.run(RunMode::Default).unwrap();
        let sub = dir.path("sub");
        let e = errs.clone();
        let sub2 = sub.clone();
        fs::mkdir(lp, &sub, 0o755, move |lp, r| {
            r.unwrap();
            let e2 = e.clone();
            fs::mkdir(lp, &sub2, 0o755, move |_, r| {
                e2.borrow_mut().push(("mkdir twice", r.unwrap_err()))
            })
            .unwrap();
        })
        .unwrap();
        lp.run(RunMode::Default).unwrap();
        std::fs::write(sub.join("x"), b"x").unwrap();
        let e = errs.clone();
        fs::rmdir(lp, &sub, move |_, r| {
            e.borrow_mut().push(("rmdir full", r.unwrap_err()))
        })
        .unwrap();
        let e = errs.clone();
        fs::unlink(lp, &sub, move |_, r| {
            e.borrow_mut().push(("unlink dir", r.unwrap_err()))
        })
        .unwrap();
        lp.run(RunMode::Default).unwrap();
        let mut got = errs.borrow().clone();
        got.sort_by_key(|x| x.0);
        assert_eq!(
            got,
            vec![
                ("mkdir twice", Error::EEXIST),
                ("open ro", Error::EACCES),
                ("read dir", Error::EISDIR),
                ("rmdir full", Error::ENOTEMPTY),
                ("unlink dir", Error::EISDIR),
            ]
        );
    });
}

#[test]
fn scandir_lists_names_and_types_and_rmdir_removes() {
    each_backend(|lp| {
        let dir = TempDir::new("scan", lp);
        std::fs::write(dir.path("file"), b"1").unwrap();
        std::fs::create_dir(dir.path("dir")).unwrap();
        std::os::unix::fs::symlink("file", dir.path("link")).unwrap();
        let listing = slot();
        let l = listing.clone();
        fs::scandir(lp, &dir.0, move |_, r| *l.borrow_mut() = Some(r)).unwrap();
        lp.run(RunMode::Default).unwrap();
        let mut entries: Vec<(String, FileType)> = take(&listing)
            .unwrap()
            .into_iter()
            .map(|e| (e.name.into_string().unwrap(), e.file_type))
            .collect();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            entries,
            vec![
                ("dir".into(), FileType::Dir),
                ("file".into(), FileType::File),
                ("link".into(), FileType::Symlink)
            ]
        );
        let lst = slot();
        let l = lst.clone();
        fs::lstat(lp, dir.path("link"), move |_, m| {
            *l.borrow_mut() = Some(m.unwrap().file_type())
        })
        .unwrap();
        let missing = slot();
        let m = missing.clone();
        fs::scandir(lp, dir.path("nope"), move |_, r| {
            *m.borrow_mut() = Some(r.map(|_| ()))
        })
        .unwrap();
        let removed = slot();
        let r = removed.clone();
        fs::rmdir(lp, dir.path("dir"), move |_, res| *r.borrow_mut() = Some(res)).unwrap();
        lp.run(RunMode::Default).unwrap();
        assert_eq!(take(&lst), FileType::Symlink);
        assert_eq!(take(&missing), Err(Error::ENOENT));
        take(&removed).unwrap();
        assert!(!dir.path("dir").exists());
    });
}

#[test]
fn many_files_in_flight_and_the_ring_does_the_work() {
    each_backend(|lp| {
        let dir = TempDir::new("many", lp);
        // More than the 1,024 direct descriptors io_uring's linked reads use: the rest take the
        // stepwise path.
        let n = 1500;
        for i in 0..n {
            std::fs::write(dir.path(&format!("{i}")), format!("file number {i}")).unwrap();
        }
        let got = Rc::new(RefCell::new(vec![None; n]));
        for i in 0..n {
            let g = got.clone();
            fs::read_file(lp, dir.path(&format!("{i}")), move |_, r| {
                g.borrow_mut()[i] = Some(r.unwrap())
            })
            .unwrap();
        }
        // A primitive too: on io_uring a ring operation, on epoll thread-pool work.
        let stat = Rc::new(RefCell::new(None));
        let st = stat.clone();
        fs::stat(lp, dir.path("0"), move |_, m| {
            *st.borrow_mut() = Some(m.unwrap().size)
        })
        .unwrap();
        // io_uring reads in the ring; epoll hands each open (and the stat) to the thread pool.
        let expect_pool = if lp.backend_name() == "uring" { 0 } else { n + 1 };
        assert_eq!(lp.pending_work(), expect_pool);
        lp.run(RunMode::Default).unwrap();
        for (i, r) in got.borrow().iter().enumerate() {
            assert_eq!(r.as_deref(), Some(format!("file number {i}").as_bytes()));
        }
        assert_eq!(*stat.borrow(), Some("file number 0".len() as u64));
    });
}

#[test]
fn read_file_of_empty_and_proc_files() {
    each_backend(|lp| {
        let dir = TempDir::new("special", lp);
        std::fs::write(dir.path("empty"), b"").unwrap();
        let got = Rc::new(RefCell::new(Vec::new()));
        for p in [
            dir.path("empty"),
            PathBuf::from("/proc/self/status"),
            PathBuf::from("/proc/self/maps"),
        ] {
            let g = got.clone();
            fs::read_file(lp, p, move |_, r| g.borrow_mut().push(r.unwrap())).unwrap();
        }
        lp.run(RunMode::Default).unwrap();
        let got = got.borrow();
        assert_eq!(got.len(), 3);
        let by = |needle: &[u8]| {
            got.iter()
                .find(|d| d.windows(needle.len()).any(|w| w == needle))
                .cloned()
        };
        assert!(got.iter().any(|d| d.is_empty()), "the empty file reads as empty");
        // /proc reports size 0 and hands out a page per read: only reading to EOF gets it all.
        let status = by(b"Name:").expect("/proc/self/status");
        assert!(status.ends_with(b"\n") && std::str::from_utf8(&status).unwrap().contains("VmRSS"));
        let maps = by(b"[stack]").expect("/proc/self/maps");
        assert!(maps.ends_with(b"\n"), "a whole maps file ends with a full line");
    });
}

#[test]
fn a_loop_dropped_with_file_requests_in_flight_waits_for_the_kernel() {
    for kind in backends() {
        let dir = {
            let lp = new_loop(kind);
            TempDir::new("drop", &lp)
        };
        let p: &Path = &dir.path("f");
        std::fs::write(p, vec![7u8; 1 << 20]).unwrap();
        let mut lp = new_loop(kind);
        for _ in 0..32 {
            fs::read_file(&mut lp, p, |_, _| panic!("a dropped loop runs no callback")).unwrap();
        }
        lp.run(RunMode::NoWait).unwrap(); // the opens complete; the reads are in flight
                                          // io_uring: the drop waits for the reads still in the ring; epoll: the pool's workers
                                          // own the buffers and finish on their own. Either way, no callback runs.
        drop(lp);
        assert_eq!(std::fs::metadata(p).unwrap().len(), 1 << 20);
    }
}

#[test]
fn a_batch_shared_with_the_offload_ring_gives_the_same_results_and_errors() {
    let two_cpus = std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2);
    for kind in backends() {
        for offload in [true, false] {
            let mut lp = Loop::with_config(Config {
                backend: kind,
                file_offload: offload,
                ..Config::default()
            })
            .unwrap();
            let lp = &mut lp;
            let dir = TempDir::new(if offload { "offload" } else { "inline" }, lp);
            // Sizes around the first read (16 KiB) and the one-byte end-of-file probe.
            let sizes = [0usize, 1, 4095, 4096, 16383, 16384, 16385, 40000];
            let n = 240;
            let content =
                |i: usize| -> Vec<u8> { (0..sizes[i % sizes.len()]).map(|b| (b * 7 + i) as u8).collect() };
            for i in 0..n {
                std::fs::write(dir.path(&format!("{i}")), content(i)).unwrap();
            }
            std::fs::create_dir(dir.path("a-dir")).unwrap();
            let reads = Rc::new(RefCell::new(vec![None; n]));
            let errors = Rc::new(RefCell::new(Vec::new()));
            let stats = Rc::new(RefCell::new(Vec::new()));
            for i in 0..n {
                let r = reads.clone();
                fs::read_file(lp, dir.path(&format!("{i}")), move |_, d| {
                    r.borrow_mut()[i] = Some(d.unwrap())
                })
                .unwrap();
                // Interleaved with the reads: failing ones, and primitives.
                if i % 8 == 0 {
                    let e = errors.clone();
                    fs::read_file(lp, dir.path(&format!("missing-{i}")), move |_, d| {
                        e.borrow_mut().push(d.unwrap_err())
                    })
                    .unwrap();
                    let e = errors.clone();
                    fs::read_file(lp, dir.path("a-dir"), move |_, d| {
                        e.borrow_mut().push(d.unwrap_err())
                    })
                    .unwrap();
                    let s = stats.clone();
                    fs::stat(lp, dir.path(&format!("{i}")), move |_, m| {
                        s.borrow_mut().push((i, m.unwrap().size))
                    })
                    .unwrap();
                }
            }
            // A path relative to the working directory (the offload ring's kernel thread shares
            // it with the process).
            let relative = slot();
            let rel = relative.clone();
            fs::read_file(lp, "tests/fs.rs", move |_, d| *rel.borrow_mut() = Some(d)).unwrap();
            lp.run(RunMode::Default).unwrap();
            for (i, r) in reads.borrow().iter().enumerate() {
                assert_eq!(r.as_deref(), Some(&content(i)[..]), "file {i}");
            }
            let errors = errors.borrow();
            assert_eq!(errors.len(), 2 * n / 8);
            assert_eq!(errors.iter().filter(|e| **e == Error::ENOENT).count(), n / 8);
            assert_eq!(errors.iter().filter(|e| **e == Error::EISDIR).count(), n / 8);
            let stats = stats.borrow();
            assert_eq!(stats.len(), n / 8);
            assert!(stats.iter().all(|&(i, size)| size == content(i).len() as u64));
            assert_eq!(take(&relative).unwrap(), std::fs::read("tests/fs.rs").unwrap());
            let offloaded = lp.stats().offloaded_file_ops;
            if kind == BackendKind::Uring && offload && two_cpus {
                assert!(offloaded > 0, "nothing went to the offload ring");
            } else {
                assert_eq!(offloaded, 0);
            }
        }
    }
}

/// A FIFO is read to its end, across writes that arrive apart: `read_file` must keep the one
/// descriptor it opened (a second open would find the data gone, or no writer), and must read
/// at the file position (a FIFO cannot be read at an offset).
#[test]
fn read_file_of_a_fifo_reads_every_write_until_the_writer_closes() {
    each_backend(|lp| {
        let dir = TempDir::new("fifo", lp);
        let fifo = dir.path("fifo");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let first = b"first write".to_vec();
        let second: Vec<u8> = (0..40_000u32).map(|i| (i * 13) as u8).collect();
        let (f, s, p) = (first.clone(), second.clone(), fifo.clone());
        let writer = std::thread::spawn(move || {
            use std::io::Write;
            let mut w = std::fs::OpenOptions::new().write(true).open(p).unwrap();
            w.write_all(&f).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(150));
            w.write_all(&s).unwrap();
        });
        let got = slot();
        let g = got.clone();
        fs::read_file(lp, &fifo, move |_, r| *g.borrow_mut() = Some(r)).unwrap();
        lp.run(RunMode::Default).unwrap();
        writer.join().unwrap();
        let mut want = first;
        want.extend_from_slice(&second);
        assert_eq!(take(&got).unwrap(), want);
    });
}

/// `read_file_into` replaces what the buffer held, reads into the memory it already has when
/// the file fits, and grows it when the file does not.
#[test]
fn read_file_into_reuses_the_buffer_it_is_given() {
    each_backend(|lp| {
        let dir = TempDir::new("into", lp);
        let small: Vec<u8> = (0..3000u32).map(|i| (i * 3) as u8).collect();
        let large: Vec<u8> = (0..100_000u32).map(|i| (i * 5) as u8).collect();
        std::fs::write(dir.path("small"), &small).unwrap();
        std::fs::write(dir.path("large"), &large).unwrap();
        let read = |lp: &mut Loop, path: PathBuf, buf: Vec<u8>| {
            let got = slot();
            let g = got.clone();
            fs::read_file_into(lp, path, buf, move |_, r| *g.borrow_mut() = Some(r)).unwrap();
            lp.run(RunMode::Default).unwrap();
            take(&got)
        };
        let mut stale = vec![0xAAu8; 100];
        stale.reserve(64 * 1024);
        let memory = stale.as_ptr();
        let buf = read(lp, dir.path("small"), stale).unwrap();
        assert_eq!(buf, small);
        assert_eq!(buf.as_ptr(), memory, "the file went into the memory given");
        let buf = read(lp, dir.path("large"), buf).unwrap();
        assert_eq!(buf, large);
        let buf = read(lp, dir.path("small"), buf).unwrap();
        assert_eq!(buf, small);
        assert_eq!(read(lp, dir.path("missing"), buf).unwrap_err(), Error::ENOENT);
    });
}
