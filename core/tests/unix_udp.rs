mod common;

use common::*;
use evloop::{Error, Handle, Read, RunMode, Stream, Udp, UdpBindOptions};
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
