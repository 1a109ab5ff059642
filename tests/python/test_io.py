"""Readiness callbacks, socket methods, datagrams, pipes, processes and TLS, on asyncio's loop
(the oracle) and evloop's, both backends."""

import asyncio
import datetime
import os
import socket
import ssl
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


@pytest.fixture(scope="module")
def tls_contexts():
    """A self-signed certificate made here, and server and client contexts trusting it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    with tempfile.TemporaryDirectory() as d:
        cert_path = os.path.join(d, "cert.pem")
        key_path = os.path.join(d, "key.pem")
        with open(cert_path, "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
        with open(key_path, "wb") as f:
            f.write(
                key.private_bytes(
                    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
                )
            )
        server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server.load_cert_chain(cert_path, key_path)
        client = ssl.create_default_context(cafile=cert_path)
        yield server, client


def test_tls_streams_and_start_tls(loop, tls_contexts):
    server_ctx, client_ctx = tls_contexts

    async def handle(reader, writer):
        data = await reader.read(1 << 20)
        while data:
            writer.write(data)
            await writer.drain()
            data = await reader.read(1 << 20)
        writer.close()

    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_ctx, ssl_handshake_timeout=30)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client_ctx, server_hostname="localhost", ssl_handshake_timeout=30
        )
        assert writer.get_extra_info("ssl_object").version().startswith("TLS")
        payload = os.urandom(2 * 1024 * 1024)
        writer.write(payload)
        await writer.drain()
        got = await reader.readexactly(len(payload))
        assert got == payload
        writer.close()
        await writer.wait_closed()
        # Plain TCP upgraded with start_tls.
        plain = await asyncio.start_server(handle, "127.0.0.1", 0)
        pport = plain.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()

        async def upgrade_server(reader, writer):
            await writer.start_tls(server_ctx) if hasattr(writer, "start_tls") else None
            await handle(reader, writer)

        if sys.version_info >= (3, 11):
            up = await asyncio.start_server(upgrade_server, "127.0.0.1", 0)
            uport = up.sockets[0].getsockname()[1]
            r2, w2 = await asyncio.open_connection("127.0.0.1", uport)
            await w2.start_tls(client_ctx, server_hostname="localhost")
            w2.write(b"upgraded")
            await w2.drain()
            assert await r2.readexactly(8) == b"upgraded"
            w2.close()
            up.close()
            await up.wait_closed()
        plain.close()
        await plain.wait_closed()

    loop.run_until_complete(main())


def test_tls_refuses_a_certificate_it_does_not_trust(loop, tls_contexts):
    server_ctx, _ = tls_contexts
    untrusting = ssl.create_default_context()

    async def main():
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0, ssl=server_ctx)
        port = server.sockets[0].getsockname()[1]
        with pytest.raises(ssl.SSLCertVerificationError):
            await asyncio.open_connection("127.0.0.1", port, ssl=untrusting, server_hostname="localhost")
        server.close()
        await server.wait_closed()

    loop.run_until_complete(main())
