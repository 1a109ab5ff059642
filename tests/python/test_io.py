"""Readiness callbacks, socket methods, datagrams, pipes and processes, on asyncio's loop
(the oracle) and evloop's, both backends."""

import asyncio
import os
import socket
import sys
import tempfile

import pytest


def test_add_and_remove_reader_and_writer_return_what_asyncio_returns(loop):
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    got = loop.create_future()

    def readable():
        got.set_result(a.recv(100))

    assert loop.add_reader(a, readable) is None
    assert loop.add_writer(b, lambda: None) is None
    assert loop.remove_writer(b) is True
    assert loop.remove_writer(b) is False
    b.send(b"ping")
    assert loop.run_until_complete(asyncio.wait_for(got, 10)) == b"ping"
    assert loop.remove_reader(a) is True
    assert loop.remove_reader(a) is False
    with pytest.raises(ValueError):
        loop.add_reader(-1, lambda: None)
    a.close()
    b.close()


def test_readers_are_level_triggered(loop):
    a, b = socket.socketpair()
    a.setblocking(False)
    calls = []

    def readable():
        calls.append(a.recv(1))  # one byte per call: the rest must be reported again
        if len(calls) == 3:
            loop.remove_reader(a)

    loop.add_reader(a, readable)
    b.send(b"abc")
    loop.run_until_complete(asyncio.sleep(0.1))
    assert calls == [b"a", b"b", b"c"]
    a.close()
    b.close()


def test_a_regular_file_cannot_be_watched(loop):
    with tempfile.TemporaryFile() as f:
        with pytest.raises(PermissionError):
            loop.add_reader(f.fileno(), lambda: None)
        # Nothing was left registered.
        assert loop.remove_reader(f.fileno()) is False


def test_an_fd_closed_behind_the_loops_back(loop):
    a, b = socket.socketpair()
    loop.add_reader(a.fileno(), lambda: None)
    fd = a.fileno()
    a.close()  # behind the loop's back
    loop.run_until_complete(asyncio.sleep(0.02))
    loop.remove_reader(fd)
    # A new socket may reuse the number; watching it works.
    c, d = socket.socketpair()
    c.setblocking(False)
    got = loop.create_future()
    loop.add_reader(c, lambda: got.done() or got.set_result(c.recv(10)))
    d.send(b"new")
    assert loop.run_until_complete(asyncio.wait_for(got, 10)) == b"new"
    loop.remove_reader(c)
    for s in (b, c, d):
        s.close()


def test_socket_methods(loop):
    async def main():
        listener = socket.socket()
        listener.setblocking(False)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        client = socket.socket()
        client.setblocking(False)
        await loop.sock_connect(client, listener.getsockname())
        conn, addr = await loop.sock_accept(listener)
        conn.setblocking(False)
        assert addr == client.getsockname()
        await loop.sock_sendall(client, b"x" * 1_000_000)
        received = bytearray()
        buf = bytearray(65536)
        while len(received) < 1_000_000:
            n = await loop.sock_recv_into(conn, buf)
            received += buf[:n]
        assert received == b"x" * 1_000_000
        await loop.sock_sendall(conn, b"back")
        assert await loop.sock_recv(client, 100) == b"back"
        with tempfile.TemporaryFile() as f:
            f.write(b"file body" * 1000)
            f.seek(0)
            assert await loop.sock_sendfile(client, f) == 9000
        got = bytearray()
        while len(got) < 9000:
            got += await loop.sock_recv(conn, 65536)
        assert got == b"file body" * 1000
        for s in (listener, client, conn):
            s.close()

    loop.run_until_complete(main())


def test_datagram_endpoints(loop):
    class Echo(asyncio.DatagramProtocol):
        def connection_made(self, tr):
            self.tr = tr

        def datagram_received(self, data, addr):
            self.tr.sendto(data.upper(), addr)

    class Client(asyncio.DatagramProtocol):
        def __init__(self):
            self.got = loop.create_future()

        def datagram_received(self, data, addr):
            if not self.got.done():
                self.got.set_result((data, addr))

    async def main():
        server, _ = await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0), reuse_port=True)
        addr = server.get_extra_info("sockname")
        tr, client = await loop.create_datagram_endpoint(Client, remote_addr=addr)
        tr.sendto(b"hello")
        data, src = await asyncio.wait_for(client.got, 10)
        assert (data, src) == (b"HELLO", addr)
        tr.close()
        tr2, client2 = await loop.create_datagram_endpoint(Client, local_addr=("127.0.0.1", 0), allow_broadcast=True)
        assert tr2.get_extra_info("socket").getsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST)
        tr2.close()
        server.close()
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "dgram")
            userver, _ = await loop.create_datagram_endpoint(Echo, local_addr=path, family=socket.AF_UNIX)
            cpath = os.path.join(d, "client")
            utr, uclient = await loop.create_datagram_endpoint(
                Client, local_addr=cpath, remote_addr=path, family=socket.AF_UNIX
            )
            utr.sendto(b"unix")
            data, src = await asyncio.wait_for(uclient.got, 10)
            assert data == b"UNIX"
            utr.close()
            userver.close()
        await asyncio.sleep(0)

    loop.run_until_complete(main())


def test_pipes(loop):
    class Reader(asyncio.Protocol):
        def __init__(self):
            self.data = bytearray()
            self.done = loop.create_future()

        def data_received(self, data):
            self.data += data

        def connection_lost(self, exc):
            self.done.set_result(exc)

    async def main():
        r, w = os.pipe()
        rtr, reader = await loop.connect_read_pipe(Reader, os.fdopen(r, "rb", 0))
        wtr, _ = await loop.connect_write_pipe(asyncio.BaseProtocol, os.fdopen(w, "wb", 0))
        wtr.write(b"through a pipe")
        wtr.close()
        assert await asyncio.wait_for(reader.done, 10) is None
        assert bytes(reader.data) == b"through a pipe"
        rtr.close()

    loop.run_until_complete(main())


def test_subprocesses(loop):
    async def main():
        p = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "import sys; sys.stdout.write(sys.stdin.read().upper()); sys.exit(3)",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await asyncio.wait_for(p.communicate(b"shout"), 60)
        assert out == b"SHOUT"
        assert p.returncode == 3
        sh = await asyncio.create_subprocess_shell("echo $((6*7))", stdout=asyncio.subprocess.PIPE)
        assert (await sh.stdout.read()).strip() == b"42"
        assert await sh.wait() == 0
        sleeper = await asyncio.create_subprocess_exec("sleep", "30")
        sleeper.kill()
        assert await asyncio.wait_for(sleeper.wait(), 30) == -9
        with pytest.raises(FileNotFoundError):
            await asyncio.create_subprocess_exec("/nonexistent/program")
        # Many at once: each exit is seen.
        procs = [await asyncio.create_subprocess_exec("true") for _ in range(20)]
        assert await asyncio.wait_for(asyncio.gather(*(q.wait() for q in procs)), 60) == [0] * 20

    loop.run_until_complete(main())


