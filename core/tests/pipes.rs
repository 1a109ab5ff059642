//! Pipes as streams (`Stream::pipe_open`, `Stream::pipe_pair`): the stream contract over
//! `read`/`write`, the write end's report of its reader's departure, and what fails how.
//! `EVLOOP_NO_MULTISHOT_READ=1` runs the io_uring cases on the single-shot read that kernels
//! before 6.7 get (scripts/test.sh runs this file both ways).
mod common;

use common::*;
use evloop::{Error, Handle, Read, RunMode, Stream};
use std::cell::{Cell, RefCell};
use std::rc::Rc;

/// Collects what a stream reads and whether (and how) it ended.
#[derive(Default)]
struct Received {
    bytes: Vec<u8>,
    reads: usize,
    end: Option<Result<(), Error>>,
}

fn collect(lp: &mut evloop::Loop, s: Stream) -> Rc<RefCell<Received>> {
    let got = Rc::new(RefCell::new(Received::default()));
    let g = got.clone();
    s.read_start(lp, move |_, _, r| {
        let mut g = g.borrow_mut();
        match r {
            Read::Data(b) => {
                g.bytes.extend_from_slice(b);
                g.reads += 1;
            }
            Read::Eof => g.end = Some(Ok(())),
            Read::Error(e) => g.end = Some(Err(e)),
        }
    })
    .unwrap();
    got
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

#[test]
fn a_megabyte_goes_through_a_pipe_in_order_then_eof() {
    each_backend(|lp| {
        let (reader, writer) = Stream::pipe_pair(lp).unwrap();
        assert!(reader.is_pipe(lp) && writer.is_pipe(lp));
        let got = collect(lp, reader);
        let data = pattern(1 << 20);
        // Far more than the pipe holds (64 KiB): most of it queues and goes as the reader reads.
        let written = Rc::new(Cell::new(0));
        for chunk in data.chunks(100_000) {
            let w = written.clone();
            let n = chunk.len();
            writer
                .write(
                    lp,
                    chunk,
                    Some(Box::new(move |_, _, r| {
                        r.unwrap();
                        w.set(w.get() + n);
                    })),
                )
                .unwrap();
        }
        assert!(
            writer.write_queue_size(lp) > 0,
            "a megabyte does not fit in a pipe"
        );
        run_until(lp, LIMIT, |_| written.get() == data.len());
        writer.close(lp, None).unwrap();
        run_until(lp, LIMIT, |_| got.borrow().end.is_some());
        let got = got.borrow();
        assert_eq!(
            got.end,
            Some(Ok(())),
            "closing the write end ends the reader with EOF"
        );
        assert_eq!(got.bytes.len(), data.len());
        assert!(got.bytes == data, "bytes arrive whole and in order");
        reader.close(lp, None).unwrap();
        lp.run(RunMode::Default).unwrap();
    });
}

#[test]
fn the_write_end_hears_its_reader_leave_without_writing() {
    each_backend(|lp| {
        let (reader, writer) = Stream::pipe_pair(lp).unwrap();
        let heard = collect(lp, writer);
        lp.run(RunMode::NoWait).unwrap();
        assert!(heard.borrow().end.is_none(), "the reader is still there");
        reader.close(lp, None).unwrap();
        run_until(lp, LIMIT, |_| heard.borrow().end.is_some());
        let heard = heard.borrow();
        assert_eq!(heard.end, Some(Ok(())), "reported as the end of reading");
        assert_eq!(heard.reads, 0, "a write end reads no data");
        writer.close(lp, None).unwrap();
        lp.run(RunMode::Default).unwrap();
    });
}

#[test]
fn the_write_end_keeps_watching_across_read_stop_and_start() {
    each_backend(|lp| {
        let (reader, writer) = Stream::pipe_pair(lp).unwrap();
        let heard = collect(lp, writer);
        lp.run(RunMode::NoWait).unwrap();
        writer.read_stop(lp).unwrap();
        lp.run(RunMode::NoWait).unwrap();
        reader.close(lp, None).unwrap();
        lp.run(RunMode::NoWait).unwrap();
        assert!(heard.borrow().end.is_none(), "not watching while stopped");
        let heard = collect(lp, writer);
        run_until(lp, LIMIT, |_| heard.borrow().end.is_some());
        assert_eq!(heard.borrow().end, Some(Ok(())));
        writer.close(lp, None).unwrap();
        lp.run(RunMode::Default).unwrap();
    });
}

#[test]
fn writing_after_the_reader_left_fails_with_epipe() {
    each_backend(|lp| {
        let (reader, writer) = Stream::pipe_pair(lp).unwrap();
        reader.close(lp, None).unwrap();
        lp.run(RunMode::Default).unwrap();
        let result = Outcome::default();
        writer
            .write(lp, b"nobody reads this", Some(record_into(&result)))
            .unwrap();
        run_until(lp, LIMIT, |_| result.borrow().is_some());
        assert_eq!(*result.borrow(), Some(Err(Error::EPIPE)));
        assert_eq!(writer.write_error(lp), Some(Error::EPIPE));
        // The error is sticky, as on sockets.
        assert_eq!(writer.write(lp, b"again", None), Err(Error::EPIPE));
        writer.close(lp, None).unwrap();
        lp.run(RunMode::Default).unwrap();
    });
}

#[test]
fn a_queued_write_fails_when_the_reader_leaves() {
    each_backend(|lp| {
        let (reader, writer) = Stream::pipe_pair(lp).unwrap();
        let result = Outcome::default();
        let data = pattern(512 * 1024);
        writer.write(lp, &data, Some(record_into(&result))).unwrap();
        lp.run(RunMode::NoWait).unwrap();
        assert!(result.borrow().is_none(), "the pipe is full, the write waits");
        reader.close(lp, None).unwrap();
        run_until(lp, LIMIT, |_| result.borrow().is_some());
        assert_eq!(*result.borrow(), Some(Err(Error::EPIPE)));
        writer.close(lp, None).unwrap();
        lp.run(RunMode::Default).unwrap();
    });
}

#[test]
fn reading_paused_keeps_the_bytes_in_order() {
    each_backend(|lp| {
        let (reader, writer) = Stream::pipe_pair(lp).unwrap();
        let got = collect(lp, reader);
        writer.write(lp, b"one ", None).unwrap();
        run_until(lp, LIMIT, |_| got.borrow().bytes.len() == 4);
        reader.read_stop(lp).unwrap();
        assert!(!reader.is_reading(lp));
        writer.write(lp, b"two ", None).unwrap();
        lp.run(RunMode::NoWait).unwrap();
        lp.run(RunMode::NoWait).unwrap();
        writer.write(lp, b"three", None).unwrap();
        let more = collect(lp, reader);
        run_until(lp, LIMIT, |_| more.borrow().bytes.len() == 9);
        assert_eq!(got.borrow().bytes, b"one ");
        assert_eq!(more.borrow().bytes, b"two three");
        reader.close(lp, None).unwrap();
        writer.close(lp, None).unwrap();
        lp.run(RunMode::Default).unwrap();
    });
}

#[test]
fn gathered_and_immediate_writes_work_on_pipes() {
    each_backend(|lp| {
        let (reader, writer) = Stream::pipe_pair(lp).unwrap();
        let got = collect(lp, reader);
        assert_eq!(writer.write_error(lp), None);
        assert_eq!(writer.try_write(lp, b"try "), Ok(4));
        writer
            .write_vectored(lp, &[b"head ", b"body ", b"tail"], None)
            .unwrap();
        run_until(lp, LIMIT, |_| got.borrow().bytes.len() == 18);
        assert_eq!(got.borrow().bytes, b"try head body tail");
        reader.close(lp, None).unwrap();
        writer.close(lp, None).unwrap();
        lp.run(RunMode::Default).unwrap();
    });
}

#[test]
fn shutdown_of_a_pipe_fails_with_enotsock() {
    each_backend(|lp| {
        let (reader, writer) = Stream::pipe_pair(lp).unwrap();
        let result = Outcome::default();
        writer.shutdown(lp, Some(record_into(&result))).unwrap();
        run_until(lp, LIMIT, |_| result.borrow().is_some());
        assert_eq!(*result.borrow(), Some(Err(Error::ENOTSOCK)));
        reader.close(lp, None).unwrap();
        writer.close(lp, None).unwrap();
        lp.run(RunMode::Default).unwrap();
    });
}

fn raw_pipe() -> (i32, i32) {
    let mut fds = [-1; 2];
    // SAFETY: pipe2 fills the two-element array.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    (fds[0], fds[1])
}

fn is_open(fd: i32) -> bool {
    // SAFETY: F_GETFD on any fd number only reads its flags.
    unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
}

#[test]
fn pipe_open_takes_blocking_fds_and_closes_them() {
    each_backend(|lp| {
        let (r, w) = raw_pipe();
        let reader = Stream::pipe_open(lp, r).unwrap();
        let writer = Stream::pipe_open(lp, w).unwrap();
        // SAFETY: F_GETFL only reads the flags.
        assert_ne!(
            unsafe { libc::fcntl(r, libc::F_GETFL) } & libc::O_NONBLOCK,
            0,
            "made non-blocking"
        );
        let got = collect(lp, reader);
        writer.write(lp, b"from a raw pipe", None).unwrap();
        writer.close(lp, None).unwrap();
        run_until(lp, LIMIT, |_| got.borrow().end.is_some());
        assert_eq!(got.borrow().bytes, b"from a raw pipe");
        reader.close(lp, None).unwrap();
        lp.run(RunMode::Default).unwrap();
        assert!(!is_open(r) && !is_open(w), "the loop closed both fds");
    });
}

#[test]
fn pipe_open_refuses_what_is_not_a_pipe() {
    each_backend(|lp| {
        let file = std::fs::File::open("/proc/self/status").unwrap();
        use std::os::fd::AsRawFd;
        assert_eq!(Stream::pipe_open(lp, file.as_raw_fd()).err(), Some(Error::EINVAL));
        let dir = std::fs::File::open("/").unwrap();
        assert_eq!(Stream::pipe_open(lp, dir.as_raw_fd()).err(), Some(Error::EINVAL));
        assert_eq!(Stream::pipe_open(lp, -1).err(), Some(Error::EBADF));
        assert_eq!(Stream::pipe_open(lp, 100_000).err(), Some(Error::EBADF));
    });
}

#[test]
fn pipe_open_of_a_socket_makes_a_socket_stream() {
    each_backend(|lp| {
        let (left, right) = socket_pair();
        let a = Stream::pipe_open(lp, left).unwrap();
        let b = Stream::pipe_open(lp, right).unwrap();
        assert!(!a.is_pipe(lp), "a socket keeps the socket path (shutdown works)");
        let got = collect(lp, b);
        a.write(lp, b"socketpair", None).unwrap();
        a.shutdown(lp, None).unwrap();
        run_until(lp, LIMIT, |_| got.borrow().end.is_some());
        assert_eq!(got.borrow().bytes, b"socketpair");
        assert_eq!(got.borrow().end, Some(Ok(())));
        a.close(lp, None).unwrap();
        b.close(lp, None).unwrap();
        lp.run(RunMode::Default).unwrap();
    });
}

#[test]
fn a_child_process_output_arrives_through_a_pipe() {
    each_backend(|lp| {
        let (r, w) = raw_pipe();
        // SAFETY: `w` is open and only this owner closes it (after the spawn).
        let child_out = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(w) };
        let mut child = std::process::Command::new("sh")
            .args(["-c", "printf 'line one\\n'; sleep 0.05; printf 'line two\\n'"])
            .stdout(std::process::Stdio::from(child_out))
            .spawn()
            .unwrap();
        let reader = Stream::pipe_open(lp, r).unwrap();
        let got = collect(lp, reader);
        run_until(lp, LIMIT, |_| got.borrow().end.is_some());
        assert_eq!(got.borrow().bytes, b"line one\nline two\n");
        assert_eq!(got.borrow().end, Some(Ok(())), "EOF once the child exits");
        assert!(child.wait().unwrap().success());
        reader.close(lp, None).unwrap();
        lp.run(RunMode::Default).unwrap();
    });
}

#[test]
fn closing_a_pipe_stream_while_reading_and_writing_is_clean() {
    each_backend(|lp| {
        for _ in 0..50 {
            let (reader, writer) = Stream::pipe_pair(lp).unwrap();
            let _got = collect(lp, reader);
            let _heard = collect(lp, writer);
            let failed = Rc::new(Cell::new(false));
            let f = failed.clone();
            writer
                .write(
                    lp,
                    &pattern(200_000),
                    Some(Box::new(move |_, _, r| f.set(r.is_err()))),
                )
                .unwrap();
            lp.run(RunMode::NoWait).unwrap();
            writer.close(lp, None).unwrap();
            reader.close(lp, None).unwrap();
            lp.run(RunMode::Default).unwrap();
            assert!(failed.get(), "the unfinished write was cancelled");
        }
    });
}
