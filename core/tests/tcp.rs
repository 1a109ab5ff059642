mod common;

use common::*;
use evloop::{BindOptions, Error, Handle, Loop, Read, Stream};
use std::cell::{Cell, RefCell};
use std::io::Write;
use std::net::SocketAddr;
use std::rc::Rc;

/// An echo server on `addr`; returns the listener and its bound address.
fn echo_server(lp: &mut Loop, addr: &str) -> (Stream, SocketAddr) {
    let server = Stream::tcp_bind(lp, addr.parse().unwrap(), BindOptions::default()).unwrap();
    let bound = server.local_addr(lp).unwrap();
    listen_echo(lp, server);
    (server, bound)
}

/// A connected pair: an evloop client and the std socket the listener accepted. The loop runs
/// until the connect completes (io_uring starts it only when the loop enters the kernel).
fn connected_pair(lp: &mut Loop) -> (Stream, std::net::TcpStream) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let connected = Rc::new(Cell::new(false));
    let c = connected.clone();
    let client = Stream::tcp_connect(lp, addr, move |_, _, r| {
        r.unwrap();
        c.set(true);
    })
    .unwrap();
    run_until(lp, LIMIT, |_| connected.get());
    let (peer, _) = listener.accept().unwrap();
    (client, peer)
}

fn echo_round_trips(addr: &str) {
    each_backend(|lp| {
        let (server, bound) = echo_server(lp, addr);
        let received = Rc::new(RefCell::new(Vec::new()));
        let connected = Rc::new(Cell::new(false));
        let (r, c) = (received.clone(), connected.clone());
        let client = Stream::tcp_connect(lp, bound, move |lp, s, res| {
            res.unwrap();
            c.set(true);
            assert_eq!(s.peer_addr(lp).unwrap(), bound);
        })
        .unwrap();
        client
            .read_start(lp, move |_, _, read| {
                if let Read::Data(b) = read {
                    r.borrow_mut().extend_from_slice(b);
                }
            })
            .unwrap();
        // Writes made before the connect completes wait for it.
        let written = Rc::new(Cell::new(0));
        for chunk in [&b"hello "[..], b"evloop"] {
            let w = written.clone();
            client
                .write(
                    lp,
                    chunk,
                    Some(Box::new(move |_, _, res| {
                        res.unwrap();
                        w.set(w.get() + 1);
                    })),
                )
                .unwrap();
        }
        run_until(lp, LIMIT, |_| received.borrow().len() == 12);
        assert!(connected.get());
        assert_eq!(written.get(), 2);
        assert_eq!(&received.borrow()[..], b"hello evloop");
        // A larger payload, echoed in many reads.
        let big: Vec<u8> = (0..1_000_000u32).map(|i| (i * 7) as u8).collect();
        received.borrow_mut().clear();
        client.write(lp, &big, None).unwrap();
        run_until(lp, LIMIT, |_| received.borrow().len() == big.len());
        assert!(received.borrow()[..] == big[..]);
        client.close(lp, None).unwrap();
        server.close(lp, None).unwrap();
        lp.run(evloop::RunMode::Default).unwrap();
        assert!(!lp.alive());
    });
}

#[test]
fn tcp_echo_ipv4() {
    echo_round_trips("127.0.0.1:0");
}

#[test]
fn tcp_echo_ipv6() {
    echo_round_trips("[::1]:0");
}

#[test]
fn eof_is_distinct_from_reset() {
    each_backend(|lp| {
        let server = Stream::tcp_bind(lp, "127.0.0.1:0".parse().unwrap(), BindOptions::default()).unwrap();
        let addr = server.local_addr(lp).unwrap();
        let outcomes = Rc::new(RefCell::new(Vec::new()));
        let o = outcomes.clone();
        let accepted = Rc::new(Cell::new(0));
        let a = accepted.clone();
        server
            .listen(lp, 16, move |lp, _, conn| {
                a.set(a.get() + 1);
                let o = o.clone();
                conn.unwrap()
                    .read_start(lp, move |lp, conn, read| match read {
                        Read::Data(_) => {}
                        Read::Eof => {
                            o.borrow_mut().push("eof".to_string());
                            conn.close(lp, None).unwrap();
                        }
                        Read::Error(e) => {
                            o.borrow_mut().push(e.name().to_string());
                            conn.close(lp, None).unwrap();
                        }
                    })
                    .unwrap();
            })
            .unwrap();
        // A graceful close: EOF.
        let mut graceful = std::net::TcpStream::connect(addr).unwrap();
        graceful.write_all(b"x").unwrap();
        graceful.shutdown(std::net::Shutdown::Write).unwrap();
        run_until(lp, LIMIT, |_| outcomes.borrow().len() == 1);
        // An abortive close (SO_LINGER 0): RST, seen as ECONNRESET.
        let abortive = std::net::TcpStream::connect(addr).unwrap();
        reset_on_close(&abortive);
        run_until(lp, LIMIT, |_| accepted.get() == 2);
        drop(abortive);
        run_until(lp, LIMIT, |_| outcomes.borrow().len() == 2);
        assert_eq!(
            *outcomes.borrow(),
            vec!["eof".to_string(), "ECONNRESET".to_string()]
        );
        drop(graceful);
        server.close(lp, None).unwrap();
        lp.run(evloop::RunMode::Default).unwrap();
    });
}

#[test]
fn peer_closing_mid_write_gives_an_error_not_sigpipe() {
    each_backend(|lp| {
        let result = Outcome::default();
        let (client, peer) = connected_pair(lp);

        reset_on_close(&peer);
        let chunk = vec![7u8; 256 * 1024];
        client.write(lp, &chunk, Some(record_into(&result))).unwrap();
        run_until(lp, LIMIT, |lp| client.write_queue_size(lp) < chunk.len());
        drop(peer);
        // Keep writing until the failure surfaces.
        let mut attempts = 0;
        run_until(lp, LIMIT, |_| {
            attempts += 1;
            if result.borrow().is_none() {
                return false;
            }
            true
        });
        let first = result.borrow_mut().take().unwrap();
        let err = match first {
            Err(e) => e,
            Ok(()) => {
                // The first write reached the kernel before the reset; a later one fails.
                let _ = client.write(lp, &chunk, Some(record_into(&result)));
                run_until(lp, LIMIT, |_| result.borrow().is_some());
                let later = result.borrow_mut().take().unwrap();
                later.expect_err("write to a reset connection fails")
            }
        };
        assert!(err == Error::EPIPE || err == Error::ECONNRESET, "got {err}");
        // Further writes fail at once with the same error.
        assert_eq!(client.write(lp, b"more", None), Err(err));
        client.close(lp, None).unwrap();
        lp.run(evloop::RunMode::Default).unwrap();
        assert!(attempts > 0);
    });
}

#[test]
fn backpressure_with_high_water_mark_and_drain() {
    each_backend(|lp| {
        let (client, mut peer) = connected_pair(lp);
        client.set_high_water_mark(lp, 64 * 1024).unwrap();
        let drained = Rc::new(Cell::new(0));
        let d = drained.clone();
        client.on_drain(lp, move |_, _| d.set(d.get() + 1)).unwrap();
        // The peer does not read: the queue grows past the mark.
        let chunk = vec![1u8; 16 * 1024];
        let mut total = 0usize;
        let mut below = true;
        while below {
            below = client.write(lp, &chunk, None).unwrap();
            total += chunk.len();
            lp.run(evloop::RunMode::NoWait).unwrap();
            assert!(total < 512 * 1024 * 1024, "kernel buffers never filled");
        }
        assert!(client.write_queue_size(lp) >= 64 * 1024);
        assert_eq!(drained.get(), 0);
        // The peer reads everything: the queue empties and drain fires once.
        peer.set_nonblocking(true).unwrap();
        let mut got = 0usize;
        let mut buf = vec![0u8; 256 * 1024];
        run_until(lp, LIMIT, |_| {
            use std::io::Read as _;
            while let Ok(n) = peer.read(&mut buf) {
                if n == 0 {
                    break;
                }
                got += n;
            }
            got == total
        });
        run_until(lp, LIMIT, |_| drained.get() == 1);
        assert_eq!(client.write_queue_size(lp), 0);
        client.close(lp, None).unwrap();
        lp.run(evloop::RunMode::Default).unwrap();
    });
}

#[test]
fn connect_refused() {
    each_backend(|lp| {
        let addr = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let result = Outcome::default();
        let s = Stream::tcp_connect(lp, addr, record_into(&result)).unwrap();
        run_until(lp, LIMIT, |_| result.borrow().is_some());
        assert_eq!(result.borrow_mut().take().unwrap(), Err(Error::ECONNREFUSED));
        s.close(lp, None).unwrap();
        lp.run(evloop::RunMode::Default).unwrap();
    });
}

#[test]
fn shutdown_sends_eof_and_later_writes_fail() {
    each_backend(|lp| {
        let (client, mut peer) = connected_pair(lp);
        client.write(lp, b"last words", None).unwrap();
        let done = Rc::new(Cell::new(false));
        let d = done.clone();
        client
            .shutdown(
                lp,
                Some(Box::new(move |_, _, r| {
                    r.unwrap();
                    d.set(true);
                })),
            )
            .unwrap();
        assert_eq!(client.shutdown(lp, None), Err(Error::EALREADY));
        assert_eq!(client.write(lp, b"x", None), Err(Error::EPIPE));
        run_until(lp, LIMIT, |_| done.get());
        let mut all = Vec::new();
        use std::io::Read as _;
        peer.read_to_end(&mut all).unwrap();
        assert_eq!(all, b"last words");
        client.close(lp, None).unwrap();
        lp.run(evloop::RunMode::Default).unwrap();
    });
}

#[test]
fn a_reply_written_just_before_close_still_leaves() {
    // The "Connection: close" pattern: write, then close at once. The send a backend had not
    // performed yet (epoll sends at the end of the pass, io_uring at its next submission) is
    // not cancelled when the socket can take it.
    each_backend(|lp| {
        let (client, mut peer) = connected_pair(lp);
        let result = Outcome::default();
        client
            .write(lp, b"last words", Some(record_into(&result)))
            .unwrap();
        client.close(lp, None).unwrap();
        lp.run(evloop::RunMode::Default).unwrap();
        assert_eq!(*result.borrow(), Some(Ok(())));
        let mut got = Vec::new();
        std::io::Read::read_to_end(&mut peer, &mut got).unwrap();
        assert_eq!(got, b"last words");
    });
}

#[test]
fn replies_written_just_before_close_in_a_busy_pass_still_leave() {
    // The same pattern with many requests ready at once: both backends hold a busy pass's small
    // replies to send them together (epoll from 9 events on, io_uring from 2), and the close
    // that follows each must not cancel them.
    each_backend(|lp| {
        let results = Rc::new(RefCell::new(Vec::new()));
        let mut peers = Vec::new();
        for _ in 0..16 {
            let (conn, peer) = connected_pair(lp);
            let r = results.clone();
            conn.read_start(lp, move |lp, conn, read| {
                assert!(matches!(read, evloop::Read::Data(b"ping")));
                let r = r.clone();
                conn.write(
                    lp,
                    b"pong",
                    Some(Box::new(move |_, _, res| r.borrow_mut().push(res))),
                )
                .unwrap();
                conn.close(lp, None).unwrap();
            })
            .unwrap();
            peers.push(peer);
        }
        // Every request is in before the loop looks: one wait returns them all.
        for peer in &mut peers {
            std::io::Write::write_all(peer, b"ping").unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        lp.run(evloop::RunMode::Default).unwrap();
        assert_eq!(*results.borrow(), vec![Ok(()); 16]);
        for peer in &mut peers {
            let mut got = Vec::new();
            std::io::Read::read_to_end(peer, &mut got).unwrap();
            assert_eq!(got, b"pong");
        }
    });
}

#[test]
fn close_cancels_pending_writes_before_the_close_callback() {
    each_backend(|lp| {
        let (client, _peer) = connected_pair(lp);
        let events = Rc::new(RefCell::new(Vec::new()));
        let chunk = vec![0u8; 4 * 1024 * 1024];
        let e = events.clone();
        client
            .write(
                lp,
                &chunk,
                Some(Box::new(move |_, _, r| {
                    e.borrow_mut()
                        .push(format!("write {:?}", r.err().map(|e| e.name())))
                })),
            )
            .unwrap();
        run_until(lp, LIMIT, |lp| client.write_queue_size(lp) > 0);
        let e = events.clone();
        client
            .close(lp, Some(Box::new(move |_| e.borrow_mut().push("closed".into()))))
            .unwrap();
        assert_eq!(
            client.write(lp, b"x", None),
            Err(Error::EBADF),
            "write after close"
        );
        lp.run(evloop::RunMode::Default).unwrap();
        assert_eq!(
            *events.borrow(),
            vec!["write Some(\"ECANCELED\")".to_string(), "closed".into()]
        );
    });
}

#[test]
fn options_addresses_and_adopt() {
    each_backend(|lp| {
        let (server, addr) = echo_server(lp, "127.0.0.1:0");
        let std_client = std::net::TcpStream::connect(addr).unwrap();
        use std::os::fd::IntoRawFd;
        let local = std_client.local_addr().unwrap();
        let s = Stream::adopt(lp, std_client.into_raw_fd()).unwrap();
        assert_eq!(s.local_addr(lp).unwrap(), local);
        assert_eq!(s.peer_addr(lp).unwrap(), addr);
        s.set_nodelay(lp, true).unwrap();
        s.set_keepalive(lp, true, 30).unwrap();
        assert_eq!(s.set_keepalive(lp, true, 0), Err(Error::EINVAL));
        let got = Rc::new(RefCell::new(Vec::new()));
        let g = got.clone();
        s.read_start(lp, move |_, _, r| {
            if let Read::Data(b) = r {
                g.borrow_mut().extend_from_slice(b)
            }
        })
        .unwrap();
        s.write(lp, b"adopted", None).unwrap();
        run_until(lp, LIMIT, |_| got.borrow().len() == 7);
        assert_eq!(&got.borrow()[..], b"adopted");
        assert_eq!(Stream::adopt(lp, -1), Err(Error::EBADF));
        // Two listeners on one port with SO_REUSEPORT.
        let opts = BindOptions {
            reuse_port: true,
            v6_only: false,
        };
        let a = Stream::tcp_bind(lp, "127.0.0.1:0".parse().unwrap(), opts).unwrap();
        let port = a.local_addr(lp).unwrap();
        let b = Stream::tcp_bind(lp, port, opts).unwrap();
        for l in [a, b] {
            l.listen(lp, 8, |lp, _, c| c.unwrap().close(lp, None).unwrap())
                .unwrap();
        }
        assert_eq!(
            Stream::tcp_bind(lp, port, BindOptions::default()),
            Err(Error::EADDRINUSE)
        );
        for h in [s, server, a, b] {
            h.close(lp, None).unwrap();
        }
        lp.run(evloop::RunMode::Default).unwrap();
    });
}

#[test]
fn try_write_sends_now_or_refuses() {
    each_backend(|lp| {
        let (client, mut peer) = connected_pair(lp);
        assert_eq!(client.try_write(lp, b"now"), Ok(3));
        use std::io::Read as _;
        let mut buf = [0u8; 3];
        peer.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"now");
        // With a write queued behind a full socket, try_write must not overtake it.
        let big = vec![0u8; 16 << 20];
        client.write(lp, &big, None).unwrap();
        assert!(client.write_queue_size(lp) > 0);
        assert_eq!(client.try_write(lp, b"x"), Err(Error::EAGAIN));
        client.close(lp, None).unwrap();
        lp.run(evloop::RunMode::Default).unwrap();
        assert_eq!(client.try_write(lp, b"x"), Err(Error::EBADF));
    });
}

/// Bytes a peer reads arrive in write order whether each write went to the kernel at once or
/// queued behind earlier ones, and writes go straight out again once the queue has drained.
#[test]
fn writes_keep_their_order_between_queued_and_direct_sends() {
    each_backend(|lp| {
        let (client, mut peer) = connected_pair(lp);
        let mut expected = Vec::new();
        let mut next = 0u32;
        let mut write_numbered = |lp: &mut Loop, count: usize, expected: &mut Vec<u8>| {
            let mut chunk = Vec::with_capacity(count * 4);
            for _ in 0..count {
                chunk.extend_from_slice(&next.to_le_bytes());
                next += 1;
            }
            client.write(lp, &chunk, None).unwrap();
            expected.extend_from_slice(&chunk);
        };
        // The peer does not read: big writes fill the kernel buffers and the rest queues, and
        // small writes after them must queue too.
        while client.write_queue_size(lp) == 0 {
            write_numbered(lp, 16 * 1024, &mut expected);
            lp.run(evloop::RunMode::NoWait).unwrap();
            assert!(expected.len() < 512 * 1024 * 1024, "kernel buffers never filled");
        }
        for _ in 0..100 {
            write_numbered(lp, 3, &mut expected);
        }
        assert!(client.write_queue_size(lp) > 0);
        let mut got = Vec::new();
        let mut buf = vec![0u8; 256 * 1024];
        peer.set_nonblocking(true).unwrap();
        let mut read_available = |got: &mut Vec<u8>| {
            use std::io::Read as _;
            while let Ok(n) = peer.read(&mut buf) {
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
        };
        run_until(lp, LIMIT, |lp| {
            read_available(&mut got);
            got.len() == expected.len() && client.write_queue_size(lp) == 0
        });
        assert!(got == expected, "bytes reordered or lost while queued");
        // Drained: small writes are sent whole at once again (epoll) or by the ring, in order.
        for _ in 0..100 {
            write_numbered(lp, 5, &mut expected);
            lp.run(evloop::RunMode::NoWait).unwrap();
        }
        run_until(lp, LIMIT, |_| {
            read_available(&mut got);
            got.len() == expected.len()
        });
        assert!(got == expected, "bytes reordered or lost after the queue drained");
        assert_eq!(client.write_queue_size(lp), 0);
        client.close(lp, None).unwrap();
        lp.run(evloop::RunMode::Default).unwrap();
    });
}

/// Several buffers written as one: the bytes arrive in order, whole, after what was written
/// before and before what is written after, and the callback runs once, whether the socket
/// took them at once, in part (a buffer larger than the socket's) or behind a queue.
#[test]
fn write_vectored_keeps_order_and_runs_its_callback_once() {
    use std::io::Read as _;
    each_backend(|lp| {
        let (client, mut peer) = connected_pair(lp);
        let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let mut expected = Vec::new();
        let calls = Rc::new(Cell::new(0));
        let c = calls.clone();
        client
            .write_vectored(lp, &[b"head:", b"", b"body;"], None)
            .unwrap();
        expected.extend_from_slice(b"head:body;");
        client
            .write_vectored(
                lp,
                &[b"<", &big, b">"],
                Some(Box::new(move |_, _, r| {
                    r.unwrap();
                    c.set(c.get() + 1);
                })),
            )
            .unwrap();
        expected.push(b'<');
        expected.extend_from_slice(&big);
        expected.push(b'>');
        // Behind a queue now (the big buffer cannot all have gone yet).
        client.write_vectored(lp, &[b"tail", b"!"], None).unwrap();
        expected.extend_from_slice(b"tail!");
        let reader = std::thread::spawn(move || {
            let mut got = vec![0u8; expected.len()];
            peer.read_exact(&mut got).unwrap();
            assert!(got == expected, "bytes arrived out of order or changed");
            peer
        });
        run_until(lp, LIMIT, |lp| {
            client.write_queue_size(lp) == 0 && calls.get() == 1
        });
        let _peer = reader.join().unwrap();
        assert_eq!(calls.get(), 1);
        client.close(lp, None).unwrap();
        lp.run(evloop::RunMode::Default).unwrap();
    });
}

/// Lent memory that records when the stream lets it go.
struct Lent {
    bytes: Vec<u8>,
    dropped: Rc<Cell<usize>>,
}

// SAFETY: the vector's heap buffer neither moves nor changes while the value lives.
unsafe impl evloop::KeptBytes for Lent {
    fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        self.dropped.set(self.dropped.get() + 1);
    }
}

/// Lent buffers (`write_kept`) go out in order with copied writes around them, sent from where
/// they are, each dropped once when sent; closing drops what is still queued.
#[test]
fn kept_writes_keep_order_with_copied_ones_and_are_dropped_once() {
    use std::io::Read as _;
    each_backend(|lp| {
        let (client, mut peer) = connected_pair(lp);
        let dropped = Rc::new(Cell::new(0));
        let lent = |fill: u8, len: usize| {
            Box::new(Lent {
                bytes: (0..len).map(|i| fill ^ (i % 253) as u8).collect(),
                dropped: dropped.clone(),
            })
        };
        let mut expected = Vec::new();
        let done = Rc::new(Cell::new(0));
        for round in 0..20u8 {
            client.write(lp, &[round; 3], None).unwrap();
            expected.extend_from_slice(&[round; 3]);
            let buf = lent(round, 1_000_000 + round as usize * 1000);
            expected.extend_from_slice(&buf.bytes);
            let d = done.clone();
            client
                .write_kept(
                    lp,
                    buf,
                    Some(Box::new(move |_, _, r| {
                        r.unwrap();
                        d.set(d.get() + 1);
                    })),
                )
                .unwrap();
        }
        client.write(lp, b"end", None).unwrap();
        expected.extend_from_slice(b"end");
        assert!(
            client.write_queue_size(lp) > 0,
            "twenty megabytes do not fit in the socket"
        );
        let len = expected.len();
        let reader = std::thread::spawn(move || {
            let mut got = vec![0u8; len];
            peer.read_exact(&mut got).unwrap();
            (got, peer)
        });
        run_until(lp, LIMIT, |lp| {
            client.write_queue_size(lp) == 0 && done.get() == 20
        });
        let (got, _peer) = reader.join().unwrap();
        assert!(got == expected, "bytes reordered or changed");
        assert_eq!(
            dropped.get(),
            20,
            "each lent buffer dropped once, after it was sent"
        );

        // Closing with lent buffers queued drops them (and fails their writes).
        dropped.set(0);
        let failed = Rc::new(Cell::new(0));
        for _ in 0..40 {
            let f = failed.clone();
            client
                .write_kept(
                    lp,
                    lent(7, 1 << 20),
                    Some(Box::new(move |_, _, r| {
                        if r == Err(Error::ECANCELED) {
                            f.set(f.get() + 1);
                        }
                    })),
                )
                .unwrap();
        }
        client.close(lp, None).unwrap();
        lp.run(evloop::RunMode::Default).unwrap();
        assert_eq!(dropped.get(), 40);
        // The socket's buffers (a few megabytes on loopback) took the first few.
        assert!(failed.get() >= 20, "the writes that had not gone fail");
    });
}

/// An echo of large reads on io_uring sends each reply from the receive buffer it arrived in
/// (held until sent, then given back) instead of copying it: the bytes come back whole and in
/// order, again and again, so buffers are returned and reused, never sent after reuse.
#[test]
fn echoed_reads_are_sent_from_their_receive_buffers() {
    use std::io::{Read as _, Write as _};
    each_backend(|lp| {
        let (server, addr) = echo_server(lp, "127.0.0.1:0");
        let payload: Vec<u8> = (0..16_000_000u32).map(|i| (i * 31 + i / 4099) as u8).collect();
        let expected = payload.clone();
        let client = std::thread::spawn(move || {
            let mut sock = std::net::TcpStream::connect(addr).unwrap();
            let mut reader = sock.try_clone().unwrap();
            let reading = std::thread::spawn(move || {
                let mut got = vec![0u8; expected.len()];
                reader.read_exact(&mut got).unwrap();
                got == expected
            });
            for chunk in payload.chunks(64 * 1024) {
                sock.write_all(chunk).unwrap();
            }
            let same = reading.join().unwrap();
            drop(sock);
            same
        });
        let before = lp.stats().sends_from_receive_buffers;
        run_until(lp, LIMIT, |_| client.is_finished());
        assert!(client.join().unwrap(), "the echo changed or reordered bytes");
        let lent = lp.stats().sends_from_receive_buffers - before;
        if lp.backend_name() == "uring" {
            // 16 MB in reads of up to 64 KiB (incremental buffers; 16 KiB without): hundreds of
            // replies. Those under 4 KiB are copied, and so is any while sends hold as many
            // reads as half the ring's buffers.
            assert!(
                lent > 40,
                "only {lent} replies were sent from their receive buffers"
            );
        } else {
            assert_eq!(lent, 0, "epoll reuses one receive buffer: nothing to lend");
        }
        server.close(lp, None).unwrap();
        lp.run(evloop::RunMode::Default).unwrap();
    });
}

/// Whether the running kernel's version is at least `major.minor`.
fn kernel_at_least(major: u32, minor: u32) -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let mut parts = release
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let (have_major, have_minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (have_major, have_minor) >= (major, minor)
}

/// io_uring's receive buffers are filled a piece at a time (incremental rings, Linux 6.12+), so
/// a 64 KiB message arrives in at most two reads, where 16 KiB buffers took at least four; with
/// `EVLOOP_NO_INCREMENTAL_BUFFERS` (how an older kernel runs) the old geometry must still work.
/// Many connections share each buffer at once, with small and large messages mixed and some
/// reads held by echoes (`sends_from_receive_buffers`): every byte must come back unchanged and
/// in order after the buffers have gone round the ring many times.
/// Echo clients on threads: `conns` connections, each sending `rounds` messages of `size` bytes
/// and reading each one back before the next. Returns the most receive buffers the loop had
/// posted while they ran.
fn most_buffers_posted_during(
    lp: &mut Loop,
    addr: SocketAddr,
    conns: usize,
    rounds: usize,
    size: usize,
) -> u64 {
    use std::io::Read as _;
    let clients: Vec<_> = (0..conns)
        .map(|n| {
            std::thread::spawn(move || {
                let mut sock = std::net::TcpStream::connect(addr).unwrap();
                let mut back = vec![0u8; size];
                for round in 0..rounds {
                    let message = vec![(n + round) as u8; size];
                    sock.write_all(&message).unwrap();
                    sock.read_exact(&mut back).unwrap();
                    assert!(back == message, "echo {round} of connection {n} differs");
                }
            })
        })
        .collect();
    let mut most = 0;
    run_until(lp, LIMIT, |lp| {
        most = most.max(lp.stats().receive_buffers_posted);
        clients.iter().all(|c| c.is_finished())
    });
    for c in clients {
        c.join().unwrap();
    }
    most
}

#[test]
fn receive_buffers_posted_follow_the_load() {
    each_backend(|lp| {
        // The clients wait for every byte of each reply: no Nagle on the server's side.
        let server = Stream::tcp_bind(lp, "127.0.0.1:0".parse().unwrap(), BindOptions::default()).unwrap();
        let addr = server.local_addr(lp).unwrap();
        listen_echo_with(lp, server, true);
        // One connection: a few buffers posted, so the same few (warm in the cache) take every
        // receive instead of the kernel cycling through all of them.
        let light = most_buffers_posted_during(lp, addr, 1, 300, 64 * 1024);
        // Many connections at once: the ring deepens for them rather than running dry.
        let heavy = most_buffers_posted_during(lp, addr, 48, 20, 64 * 1024);
        if lp.backend_name() == "uring" {
            assert!(
                (1..=24).contains(&light),
                "one connection kept {light} buffers posted"
            );
            assert!(
                heavy >= 2 * light && heavy > 32,
                "48 connections: {heavy} buffers posted at most, one: {light}"
            );
        } else {
            assert_eq!((light, heavy), (0, 0), "epoll posts no buffers");
        }
        server.close(lp, None).unwrap();
        lp.run(evloop::RunMode::Default).unwrap();
    });
}

#[test]
fn receive_buffers_shared_by_many_connections_keep_every_byte() {
    use std::io::Read as _;
    each_backend(|lp| {
        // A 64 KiB message from a peer: how many reads does it take?
        let (client, mut peer) = connected_pair(lp);
        let reads = Rc::new(Cell::new(0usize));
        let got = Rc::new(Cell::new(0usize));
        let (r, g) = (reads.clone(), got.clone());
        client
            .read_start(lp, move |_, _, read| {
                if let Read::Data(d) = read {
                    r.set(r.get() + 1);
                    g.set(g.get() + d.len());
                }
            })
            .unwrap();
        peer.write_all(&vec![7u8; 64 * 1024]).unwrap();
        run_until(lp, LIMIT, |_| got.get() == 64 * 1024);
        if lp.backend_name() == "uring" {
            let forced_off = std::env::var_os("EVLOOP_NO_INCREMENTAL_BUFFERS").is_some();
            assert_eq!(
                lp.receive_buffers_incremental(),
                !forced_off && kernel_at_least(6, 12),
                "incremental receive buffers: used where the kernel has them, unless turned off"
            );
            if lp.receive_buffers_incremental() {
                assert!(reads.get() <= 2, "a 64 KiB message took {} reads", reads.get());
            } else {
                assert!(reads.get() >= 4, "16 KiB buffers, yet {} reads", reads.get());
            }
        }
        client.close(lp, None).unwrap();

        let (server, addr) = echo_server(lp, "127.0.0.1:0");
        let clients: Vec<_> = (0..24u32)
            .map(|n| {
                std::thread::spawn(move || {
                    let mut sock = std::net::TcpStream::connect(addr).unwrap();
                    let mut reader = sock.try_clone().unwrap();
                    // Sizes from 1 byte to 96 KiB, different per connection.
                    let sizes: Vec<usize> = (0..60u32)
                        .map(|i| 1 + ((i * 7919 + n * 104_729) % 98_304) as usize)
                        .collect();
                    let total: usize = sizes.iter().sum();
                    let payload: Vec<u8> = (0..total as u32)
                        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8 ^ n as u8)
                        .collect();
                    let expected = payload.clone();
                    let reading = std::thread::spawn(move || {
                        let mut got = vec![0u8; expected.len()];
                        reader.read_exact(&mut got).unwrap();
                        got == expected
                    });
                    let mut at = 0;
                    for size in sizes {
                        sock.write_all(&payload[at..at + size]).unwrap();
                        at += size;
                    }
                    reading.join().unwrap()
                })
            })
            .collect();
        run_until(lp, LIMIT, |_| clients.iter().all(|c| c.is_finished()));
        for c in clients {
            assert!(c.join().unwrap(), "an echo changed or reordered bytes");
        }
        server.close(lp, None).unwrap();
        lp.run(evloop::RunMode::Default).unwrap();
    });
}

/// A read callback's bytes written back with a completion callback, one message at a time: on
/// io_uring an idle stream in a quiet pass sends at once with a system call, and what that send
/// took must not also be queued as a loan of the receive buffer (it was, and every byte went out
/// twice: found by the C suite's echo once reads reached 64 KiB).
#[test]
fn echoed_reads_with_write_callbacks_go_out_once() {
    use std::io::Read as _;
    each_backend(|lp| {
        let listener = Stream::tcp_bind(lp, "127.0.0.1:0".parse().unwrap(), BindOptions::default()).unwrap();
        let addr = listener.local_addr(lp).unwrap();
        let written = Rc::new(Cell::new(0usize));
        let w = written.clone();
        listener
            .listen(lp, 16, move |lp, _, conn| {
                let conn = conn.unwrap();
                let w = w.clone();
                conn.read_start(lp, move |lp, s, read| {
                    if let Read::Data(d) = read {
                        let w = w.clone();
                        let n = d.len();
                        s.write(
                            lp,
                            d,
                            Some(Box::new(move |_, _, r| {
                                r.unwrap();
                                w.set(w.get() + n);
                            })),
                        )
                        .unwrap();
                    }
                })
                .unwrap();
            })
            .unwrap();
        let client = std::thread::spawn(move || {
            let mut sock = std::net::TcpStream::connect(addr).unwrap();
            sock.set_nodelay(true).unwrap();
            for round in 0..200u32 {
                let msg: Vec<u8> = (0..32 * 1024u32)
                    .map(|i| (i.wrapping_mul(7) ^ round) as u8)
                    .collect();
                sock.write_all(&msg).unwrap();
                let mut got = vec![0u8; msg.len()];
                sock.read_exact(&mut got).unwrap();
                if got != msg {
                    return Err(format!("round {round}: the echo differs"));
                }
            }
            // Then 8 MiB at once, read back by a second thread: the echo's sends fill the socket
            // and queue, and whatever a quiet pass had left queued goes out with them.
            let big: Vec<u8> = (0..8u32 << 20)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
                .collect();
            let expected = big.clone();
            let mut reader = sock.try_clone().unwrap();
            let reading = std::thread::spawn(move || {
                let mut got = vec![0u8; expected.len()];
                reader.read_exact(&mut got).unwrap();
                got == expected
            });
            sock.write_all(&big).unwrap();
            if !reading.join().unwrap() {
                return Err("the 8 MiB echo differs".into());
            }
            // Nothing more may follow.
            sock.set_read_timeout(Some(std::time::Duration::from_millis(300)))
                .unwrap();
            let mut extra = [0u8; 1];
            match sock.read(&mut extra) {
                Ok(n) if n > 0 => Err("bytes beyond the echo".into()),
                _ => Ok(()),
            }
        });
        run_until(lp, LIMIT, |_| client.is_finished());
        client.join().unwrap().unwrap();
        run_until(lp, LIMIT, |_| written.get() == 200 * 32 * 1024 + (8 << 20));
        listener.close(lp, None).unwrap();
        lp.run(evloop::RunMode::Default).unwrap();
    });
}

#[test]
fn accept_from_a_listener_the_caller_owns() {
    use std::io::Read as _;
    use std::os::fd::AsRawFd;
    each_backend(|lp| {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        assert_eq!(
            Stream::accept_from(lp, listener.as_raw_fd(), libc::AF_INET).err(),
            Some(Error::EAGAIN)
        );
        let mut peers: Vec<_> = (0..3)
            .map(|_| std::net::TcpStream::connect(addr).unwrap())
            .collect();
        let mut accepted = Vec::new();
        while accepted.len() < 3 {
            match Stream::accept_from(lp, listener.as_raw_fd(), libc::AF_INET) {
                Ok(s) => accepted.push(s),
                Err(Error::EAGAIN) => std::thread::sleep(std::time::Duration::from_millis(1)),
                Err(e) => panic!("accept_from: {e:?}"),
            }
        }
        for (i, s) in accepted.iter().enumerate() {
            assert_eq!(s.local_addr(lp).unwrap(), addr);
            s.write(lp, format!("to {i}").as_bytes(), None).unwrap();
        }
        let got = Rc::new(RefCell::new(Vec::new()));
        for s in &accepted {
            let g = got.clone();
            s.read_start(lp, move |_, _, read| {
                if let Read::Data(b) = read {
                    g.borrow_mut().extend_from_slice(b);
                }
            })
            .unwrap();
        }
        for (i, p) in peers.iter_mut().enumerate() {
            p.write_all(format!("from {i};").as_bytes()).unwrap();
        }
        run_until(lp, LIMIT, |_| got.borrow().len() >= "from 0;".len() * 3);
        let mut text = String::from_utf8(got.borrow().clone()).unwrap();
        let mut parts: Vec<&str> = text.split_terminator(';').collect();
        parts.sort();
        assert_eq!(parts, ["from 0", "from 1", "from 2"]);
        text.clear();
        let closed = Rc::new(Cell::new(0));
        for s in accepted {
            let c = closed.clone();
            s.close(lp, Some(Box::new(move |_| c.set(c.get() + 1)))).unwrap();
        }
        run_until(lp, LIMIT, |_| closed.get() == 3);
        for (i, p) in peers.iter_mut().enumerate() {
            let mut reply = String::new();
            p.read_to_string(&mut reply).unwrap();
            assert_eq!(reply, format!("to {i}"));
        }
    });
}
