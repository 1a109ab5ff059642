mod common;

use common::*;
use evloop::{Error, Handle, Read, RunMode, Stream, Timer, Udp, UdpBindOptions};
use std::cell::RefCell;
use std::rc::Rc;

fn unix_echo(name: Vec<u8>) {
    each_backend(|lp| {
        if name.first() != Some(&0) {
            // A path socket leaves its file behind: the previous backend's run made it.
            let _ = std::fs::remove_file(std::path::Path::new(std::str::from_utf8(&name).unwrap()));
        }
        let server = Stream::unix_bind(lp, &name).unwrap();

        assert_eq!(server.unix_local_name(lp).unwrap(), name);
        assert_eq!(server.local_addr(lp), Err(Error::ENOTSUP), "not a TCP socket");
        listen_echo(lp, server);
        let got = Rc::new(RefCell::new(Vec::new()));
        let g = got.clone();
        let client = Stream::unix_connect(lp, &name, |_, _, r| r.unwrap()).unwrap();
        client
            .read_start(lp, move |_, _, r| {
                if let Read::Data(b) = r {
                    g.borrow_mut().extend_from_slice(b)
                }
            })
            .unwrap();
        client.write(lp, b"over a unix socket", None).unwrap();
        run_until(lp, LIMIT, |_| got.borrow().len() == 18);
        assert_eq!(&got.borrow()[..], b"over a unix socket");
        assert_eq!(client.unix_peer_name(lp).unwrap(), name);
        client.close(lp, None).unwrap();
        server.close(lp, None).unwrap();
        lp.run(RunMode::Default).unwrap();
    });
}

#[test]
fn unix_echo_on_a_path() {
    let dir = std::env::temp_dir().join(format!("evloop-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("echo.sock");
    let _ = std::fs::remove_file(&path);
    unix_echo(path.as_os_str().as_encoded_bytes().to_vec());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unix_echo_on_an_abstract_name() {
    unix_echo(format!("\0evloop-test-{}", std::process::id()).into_bytes());
}

#[test]
fn unix_names_are_validated() {
    each_backend(|lp| {
        assert_eq!(Stream::unix_bind(lp, b"").err(), Some(Error::EINVAL));
        assert_eq!(Stream::unix_bind(lp, vec![b'a'; 200]).err(), Some(Error::EINVAL));
        assert_eq!(Stream::unix_bind(lp, b"bad\0name").err(), Some(Error::EINVAL));
        let missing = std::env::temp_dir().join("evloop-no-such-dir/x.sock");
        let res = Rc::new(RefCell::new(None));
        let r = res.clone();
        let s = Stream::unix_connect(lp, missing.as_os_str().as_encoded_bytes(), move |_, _, e| {
            *r.borrow_mut() = Some(e)
        })
        .unwrap();
        run_until(lp, LIMIT, |_| res.borrow().is_some());
        assert_eq!(res.borrow_mut().take().unwrap(), Err(Error::ENOENT));
        s.close(lp, None).unwrap();
        lp.run(RunMode::Default).unwrap();
    });
}

fn udp_echo(addr: &str) {
    each_backend(|lp| {
        let server = Udp::bind(lp, addr.parse().unwrap(), UdpBindOptions::default()).unwrap();
        let server_addr = server.local_addr(lp).unwrap();
        server
            .recv_start(lp, |lp, u, r| {
                let (data, from) = r.unwrap();
                u.send_to(lp, data, from, None).unwrap();
            })
            .unwrap();
        let client = Udp::bind(lp, addr.parse().unwrap(), UdpBindOptions::default()).unwrap();
        let client_addr = client.local_addr(lp).unwrap();
        let got = Rc::new(RefCell::new(Vec::new()));
        let g = got.clone();
        client
            .recv_start(lp, move |_, _, r| {
                let (data, from) = r.unwrap();
                assert_eq!(from, server_addr);
                g.borrow_mut().push(data.to_vec());
            })
            .unwrap();
        let sent = Rc::new(RefCell::new(0));
        for i in 0..10u8 {
            let s = sent.clone();
            client
                .send_to(
                    lp,
                    &[i; 100],
                    server_addr,
                    Some(Box::new(move |_, _, r| {
                        r.unwrap();
                        *s.borrow_mut() += 1;
                    })),
                )
                .unwrap();
        }
        run_until(lp, LIMIT, |_| got.borrow().len() == 10);
        assert_eq!(*sent.borrow(), 10);
        let mut got = got.borrow().clone();
        got.sort();
        assert_eq!(got, (0..10u8).map(|i| vec![i; 100]).collect::<Vec<_>>());
        assert_ne!(client_addr, server_addr);
        client.set_broadcast(lp, true).unwrap();
        client.set_ttl(lp, 10).unwrap();
        client.set_multicast_loop(lp, true).unwrap();
        client.set_multicast_ttl(lp, 2).unwrap();
        client.recv_stop(lp).unwrap();
        for h in [client, server] {
            h.close(lp, None).unwrap();
        }
        assert_eq!(client.send_to(lp, b"x", server_addr, None), Err(Error::EBADF));
        lp.run(RunMode::Default).unwrap();
        assert!(!lp.alive());
    });
}

#[test]
fn udp_echo_ipv4() {
    udp_echo("127.0.0.1:0");
}

#[test]
fn udp_echo_ipv6() {
    udp_echo("[::1]:0");
}

#[test]
fn udp_multicast_membership_on_loopback() {
    each_backend(|lp| {
        let opts = UdpBindOptions {
            reuse_addr: true,
            ..Default::default()
        };
        let u = Udp::bind(lp, "0.0.0.0:0".parse().unwrap(), opts).unwrap();
        let group = "239.255.42.99".parse().unwrap();
        match u.set_membership(lp, group, "127.0.0.1".parse().unwrap(), 0, true) {
            // Some sandboxes have no multicast-capable loopback; the call must still fail cleanly.
            Err(e) => assert!(e == Error::ENODEV || e == Error::EADDRNOTAVAIL, "{e}"),
            Ok(()) => u
                .set_membership(lp, group, "127.0.0.1".parse().unwrap(), 0, false)
                .unwrap(),
        }
        u.close(lp, None).unwrap();
        lp.run(RunMode::Default).unwrap();
    });
}

/// A socket made elsewhere (as Python's asyncio makes them) joins the loop with `adopt`: here a
/// connected one, whose sends go to its peer, and whose refused sends (ICMP port unreachable)
/// reach `on_sent` for datagrams sent without a callback of their own.
#[test]
fn udp_adopt_connected_socket_and_on_sent_hears_every_outcome() {
    use std::os::fd::IntoRawFd;
    each_backend(|lp| {
        let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let peer_addr = peer.local_addr().unwrap();
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.connect(peer_addr).unwrap();
        let local = sock.local_addr().unwrap();
        let u = Udp::adopt(lp, sock.into_raw_fd()).unwrap();
        assert_eq!(u.local_addr(lp).unwrap(), local);
        let outcomes = Rc::new(RefCell::new(Vec::new()));
        let o = outcomes.clone();
        u.on_sent(lp, move |_, _, r| o.borrow_mut().push(r)).unwrap();
        let got = Rc::new(RefCell::new(Vec::new()));
        let g = got.clone();
        u.recv_start(lp, move |_, _, r| {
            g.borrow_mut().push(r.map(|(d, from)| (d.to_vec(), from)))
        })
        .unwrap();
        for i in 0..5u8 {
            u.send_to(lp, &[i; 32], peer_addr, None).unwrap();
        }
        run_until(lp, LIMIT, |_| outcomes.borrow().len() == 5);
        assert!(
            outcomes.borrow().iter().all(|r| r.is_ok()),
            "{:?}",
            outcomes.borrow()
        );
        assert_eq!(u.send_queue_size(lp), 0);
        let mut buf = [0u8; 64];
        peer.set_read_timeout(Some(LIMIT)).unwrap();
        for i in 0..5u8 {
            let (n, from) = peer.recv_from(&mut buf).unwrap();
            assert_eq!((&buf[..n], from), (&[i; 32][..], local));
        }
        peer.send_to(b"back", local).unwrap();
        run_until(lp, LIMIT, |_| !got.borrow().is_empty());
        assert_eq!(got.borrow()[0], Ok((b"back".to_vec(), peer_addr)));

        // The peer goes away: a send draws an ICMP error, which the socket reports on a later
        // operation, a receive or a send; each send still hears exactly once how it ended.
        drop(peer);
        outcomes.borrow_mut().clear();
        let mut sent = 0;
        type Got = Rc<RefCell<Vec<evloop::Result<(Vec<u8>, std::net::SocketAddr)>>>>;
        let refused = |o: &Rc<RefCell<Vec<evloop::Result<()>>>>, g: &Got| {
            o.borrow().contains(&Err(Error::ECONNREFUSED)) || g.borrow().contains(&Err(Error::ECONNREFUSED))
        };
        while !refused(&outcomes, &got) && sent < 50 {
            u.send_to(lp, b"anyone?", peer_addr, None).unwrap();
            sent += 1;
            run_until(lp, LIMIT, |_| outcomes.borrow().len() == sent);
        }
        assert!(refused(&outcomes, &got), "no ECONNREFUSED after {sent} sends");
        assert_eq!(outcomes.borrow().len(), sent);
        u.close(lp, None).unwrap();
        lp.run(RunMode::Default).unwrap();
        assert!(!lp.alive());
    });
}

#[test]
fn udp_adopt_refuses_what_is_not_an_ip_datagram_socket() {
    use std::os::fd::IntoRawFd;
    each_backend(|lp| {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let fd = tcp.into_raw_fd();
        assert_eq!(Udp::adopt(lp, fd).unwrap_err(), Error::ENOTSOCK);
        // SAFETY: the fd was not adopted; it is still ours to close.
        unsafe { libc::close(fd) };
        let (a, _b) = std::os::unix::net::UnixDatagram::pair().unwrap();
        let fd = a.into_raw_fd();
        assert_eq!(Udp::adopt(lp, fd).unwrap_err(), Error::EAFNOSUPPORT);
        // SAFETY: as above.
        unsafe { libc::close(fd) };
    });
}

/// What waits is counted in bytes; a datagram the kernel took at once never waited. On
/// io_uring the sends made after a pass that brought several completions wait for the next
/// submission (a lone pass sends at once, as epoll always does).
#[test]
fn udp_send_queue_size_counts_waiting_bytes() {
    each_backend(|lp| {
        let target = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let u = Udp::bind(lp, "127.0.0.1:0".parse().unwrap(), UdpBindOptions::default()).unwrap();
        let to = target.local_addr().unwrap();
        let done = Rc::new(RefCell::new(0));
        let d = done.clone();
        u.on_sent(lp, move |_, _, r| {
            r.unwrap();
            *d.borrow_mut() += 1
        })
        .unwrap();
        // Three datagrams in before the loop waits: one pass brings them all, and the third's
        // callback sends.
        let received = Rc::new(RefCell::new(0));
        let most_waiting = Rc::new(RefCell::new(0));
        let (r, most) = (received.clone(), most_waiting.clone());
        u.recv_start(lp, move |lp, u, d| {
            d.unwrap();
            *r.borrow_mut() += 1;
            if *r.borrow() != 3 {
                return;
            }
            for _ in 0..100 {
                u.send_to(lp, &[7u8; 1000], to, None).unwrap();
                let waiting = u.send_queue_size(lp);
                assert_eq!(waiting % 1000, 0);
                assert!(waiting <= u.send_queue_count(lp) * 1000);
                let m = (*most.borrow()).max(waiting);
                *most.borrow_mut() = m;
            }
        })
        .unwrap();
        for _ in 0..3 {
            target.send_to(b"busy", u.local_addr(lp).unwrap()).unwrap();
        }
        run_until(lp, LIMIT, |_| *done.borrow() == 100);
        assert_eq!(u.send_queue_size(lp), 0);
        if lp.backend_name() == "uring" {
            assert!(
                *most_waiting.borrow() > 0,
                "io_uring queues a busy pass's sends for the next submission"
            );
        }
        u.close(lp, None).unwrap();
        lp.run(RunMode::Default).unwrap();
    });
}

/// Datagrams up to the IPv4 maximum (65,507 bytes) arrive whole on every backend.
#[test]
fn udp_large_datagrams_arrive_whole() {
    each_backend(|lp| {
        let u = Udp::bind(lp, "127.0.0.1:0".parse().unwrap(), UdpBindOptions::default()).unwrap();
        let to = u.local_addr(lp).unwrap();
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let got = Rc::new(RefCell::new(Vec::new()));
        let g = got.clone();
        u.recv_start(lp, move |_, _, r| g.borrow_mut().push(r.map(|(d, _)| d.to_vec())))
            .unwrap();
        let sizes = [1usize, 16 * 1024 - 100, 16 * 1024 + 100, 40_000, 65_507];
        for (i, &n) in sizes.iter().enumerate() {
            sender.send_to(&vec![i as u8 + 1; n], to).unwrap();
        }
        run_until(lp, LIMIT, |_| got.borrow().len() == sizes.len());
        for (i, r) in got.borrow().iter().enumerate() {
            let d = r.as_ref().unwrap();
            assert_eq!(d.len(), sizes[i], "datagram {i} on {}", lp.backend_name());
            assert!(d.iter().all(|&b| b == i as u8 + 1));
        }
        u.close(lp, None).unwrap();
        lp.run(RunMode::Default).unwrap();
    });
}

/// Receiving stopped and started again (asyncio's pause_reading then resume_reading), with 0
/// or 1 loop pass after the first start and, between, 0, 1 or 2 passes or a 50 ms wait: the
/// datagrams that arrived meanwhile are all delivered, none while stopped. (On io_uring the
/// armed multishot receive may take them off the socket before its cancellation lands: the
/// loop keeps them for the next start.)
#[test]
fn udp_recv_stop_then_start_delivers_what_waited() {
    use std::os::fd::IntoRawFd;
    const WAIT: usize = 3;
    for (passes_before, passes_between) in [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2), (1, WAIT)] {
        each_backend(|lp| {
            let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            let addr = sock.local_addr().unwrap();
            let u = Udp::adopt(lp, sock.into_raw_fd()).unwrap();
            let got = Rc::new(RefCell::new(Vec::new()));
            let receiver = |got: &Rc<RefCell<Vec<Vec<u8>>>>| {
                let g = got.clone();
                move |_: &mut evloop::Loop, _: Udp, r: evloop::Result<(&[u8], std::net::SocketAddr)>| {
                    g.borrow_mut().push(r.unwrap().0.to_vec())
                }
            };
            u.recv_start(lp, receiver(&got)).unwrap();
            for _ in 0..passes_before {
                lp.run(RunMode::NoWait).unwrap();
            }
            u.recv_stop(lp).unwrap();
            let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            for i in 0..3u8 {
                sender.send_to(&[i], addr).unwrap();
            }
            if passes_between == WAIT {
                let waited = Rc::new(std::cell::Cell::new(false));
                let w = waited.clone();
                Timer::new(lp).start(lp, 50, 0, move |_, _| w.set(true)).unwrap();
                run_until(lp, LIMIT, |_| waited.get());
            } else {
                for _ in 0..passes_between {
                    lp.run(RunMode::NoWait).unwrap();
                }
            }
            assert!(got.borrow().is_empty(), "delivered while stopped");
            u.recv_start(lp, receiver(&got)).unwrap();
            run_until(lp, LIMIT, |_| got.borrow().len() == 3);
            assert_eq!(
                *got.borrow(),
                vec![vec![0], vec![1], vec![2]],
                "{passes_before} passes before, {passes_between} between"
            );
            u.close(lp, None).unwrap();
            lp.run(RunMode::NoWait).unwrap();
        });
    }
}
