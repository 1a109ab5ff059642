"""Stream transports and protocols (TCP and Unix), servers, flow control and misuse, on
asyncio's loop (the oracle) and evloop's, both backends."""

import asyncio
import os
import socket
import tempfile

import pytest


class Collect(asyncio.Protocol):
    """Records what a connection receives."""

    def __init__(self, loop):
        self.data = bytearray()
        self.transport = None
        self.eof = False
        self.lost = loop.create_future()
        self.paused = 0
        self.resumed = 0

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        assert isinstance(data, bytes)
        self.data += data

    def eof_received(self):
        self.eof = True

    def connection_lost(self, exc):
        if not self.lost.done():
            self.lost.set_result(exc)

    def pause_writing(self):
        self.paused += 1

    def resume_writing(self):
        self.resumed += 1


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)

    def eof_received(self):
        self.transport.close()  # after the echoed bytes are sent: the peer reads them, then EOF


class BufferedEcho(asyncio.BufferedProtocol):
    def __init__(self):
        self.buf = bytearray(1000)  # smaller than most reads: several get_buffer calls
        self.sizes = []

    def connection_made(self, transport):
        self.transport = transport

    def get_buffer(self, sizehint):
        return self.buf

    def buffer_updated(self, nbytes):
        self.sizes.append(nbytes)
        self.transport.write(bytes(self.buf[:nbytes]))

    def eof_received(self):
        self.transport.close()


async def _serve(loop, factory, **kw):
    server = await loop.create_server(factory, "127.0.0.1", 0, **kw)
    return server, server.sockets[0].getsockname()[1]


async def _round_trip(loop, port, payload):
    proto = Collect(loop)
    tr, _ = await loop.create_connection(lambda: proto, "127.0.0.1", port)
    tr.write(payload)
    tr.write_eof()
    await asyncio.wait_for(proto.lost, 30)
    return proto


@pytest.mark.parametrize("size", [1, 64 * 1024, 3 * 1024 * 1024 + 7])
def test_echo_with_protocol_and_buffered_protocol(loop, size):
    payload = os.urandom(size)

    async def main():
        for factory in (Echo, BufferedEcho):
            server, port = await _serve(loop, factory)
            proto = await _round_trip(loop, port, payload)
            assert bytes(proto.data) == payload
            assert proto.eof
            server.close()
            await server.wait_closed()

    loop.run_until_complete(main())


def test_streams_api_unchanged(loop):
    async def handle(reader, writer):
        while line := await reader.readline():
            writer.write(line.upper())
            await writer.drain()
        writer.close()
        await writer.wait_closed()

    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for i in range(100):
            writer.write(b"line %d\n" % i)
            await writer.drain()
            assert await reader.readline() == b"LINE %d\n" % i
        writer.write_eof()
        assert await reader.read() == b""
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()

    loop.run_until_complete(main())


def test_unix_sockets(loop):
    async def main():
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "sock")
            server = await loop.create_unix_server(Echo, path)
            proto = Collect(loop)
            tr, _ = await loop.create_unix_connection(lambda: proto, path)
            assert tr.get_extra_info("peername") == path
            tr.write(b"over unix")
            tr.write_eof()
            await asyncio.wait_for(proto.lost, 30)
            assert bytes(proto.data) == b"over unix"
            server.close()
            await server.wait_closed()

    loop.run_until_complete(main())


def test_extra_info_and_limits(loop):
    async def main():
        server, port = await _serve(loop, Echo)
        proto = Collect(loop)
        tr, _ = await loop.create_connection(lambda: proto, "127.0.0.1", port)
        assert isinstance(tr, asyncio.Transport)
        assert tr.get_extra_info("peername") == ("127.0.0.1", port)
        assert tr.get_extra_info("sockname")[0] == "127.0.0.1"
        sock = tr.get_extra_info("socket")
        assert sock.family == socket.AF_INET
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        assert tr.get_extra_info("nothing", "default") == "default"
        assert tr.get_protocol() is proto
        assert tr.can_write_eof()
        assert tr.get_write_buffer_limits() == (16 * 1024, 64 * 1024)
        tr.set_write_buffer_limits(high=100)
        assert tr.get_write_buffer_limits() == (25, 100)
        tr.set_write_buffer_limits(high=100, low=10)
        assert tr.get_write_buffer_limits() == (10, 100)
        with pytest.raises(ValueError):
            tr.set_write_buffer_limits(high=1, low=10)
        with pytest.raises(TypeError):
            tr.write("text is not bytes")
        tr.write(bytearray(b"ba") + memoryview(b"mv"))
        tr.writelines([b"a", bytearray(b"b"), memoryview(b"c")])
        assert tr.get_write_buffer_size() >= 0
        tr.close()
        assert tr.is_closing()
        assert await proto.lost is None
        # Still answered after the connection is gone, as asyncio records them.
        assert tr.get_extra_info("peername") == ("127.0.0.1", port)
        assert tr.get_extra_info("sockname")[0] == "127.0.0.1"
        assert tr.get_extra_info("socket") is not None
        server.close()
        await server.wait_closed()

    loop.run_until_complete(main())


def test_flow_control_pauses_and_resumes_the_writer(loop):
    async def main():
        # A server that does not read until told to.
        reading = asyncio.Event()
        received = bytearray()
        done = loop.create_future()

        class Slow(asyncio.Protocol):
            def connection_made(self, tr):
                self.tr = tr
                tr.pause_reading()
                assert not tr.is_reading()
                loop.create_task(self.later())

            async def later(self):
                await reading.wait()
                self.tr.resume_reading()
                assert self.tr.is_reading()

            def data_received(self, data):
                received.extend(data)
                if len(received) == total:
                    done.set_result(None)

        total = 8 * 1024 * 1024
        server, port = await _serve(loop, Slow)
        proto = Collect(loop)
        tr, _ = await loop.create_connection(lambda: proto, "127.0.0.1", port)
        tr.set_write_buffer_limits(high=64 * 1024)
        chunk = b"x" * (256 * 1024)
        for _ in range(total // len(chunk)):
            tr.write(chunk)
        assert proto.paused == 1
        assert tr.get_write_buffer_size() > 64 * 1024
        reading.set()
        await asyncio.wait_for(done, 60)
        for _ in range(100):
            if proto.resumed:
                break
            await asyncio.sleep(0.01)
        assert proto.resumed == 1
        assert tr.get_write_buffer_size() == 0
        tr.close()
        await proto.lost
        server.close()
        await server.wait_closed()

    loop.run_until_complete(main())


def test_writing_after_close_or_abort_loses_nothing_and_raises_nothing(loop):
    async def main():
        server, port = await _serve(loop, Echo)
        proto = Collect(loop)
        tr, _ = await loop.create_connection(lambda: proto, "127.0.0.1", port)
        tr.write(b"before")
        tr.close()
        tr.close()  # twice is fine
        tr.write(b"after close")  # ignored, as in asyncio
        assert await proto.lost is None
        proto2 = Collect(loop)
        tr2, _ = await loop.create_connection(lambda: proto2, "127.0.0.1", port)
        tr2.abort()
        tr2.abort()
        assert await proto2.lost is None
        tr2.write(b"after abort")
        proto3 = Collect(loop)
        tr3, _ = await loop.create_connection(lambda: proto3, "127.0.0.1", port)
        tr3.write_eof()
        with pytest.raises(RuntimeError):
            tr3.write(b"after eof")
        tr3.close()
        await proto3.lost
        server.close()
        await server.wait_closed()

    loop.run_until_complete(main())


def test_abort_empties_the_write_buffer_at_once(loop):
    # asyncio clears its buffer when it closes the socket, before connection_lost: what was
    # queued is gone, whatever the kernel still holds of a send in flight.
    async def main():
        a, b = socket.socketpair()
        proto = Collect(loop)
        tr, _ = await loop.create_connection(lambda: proto, sock=a)
        tr.write(b"x" * 4_000_000)  # the peer reads nothing: most of it stays queued
        await asyncio.sleep(0.05)
        assert tr.get_write_buffer_size() > 0
        tr.abort()
        assert tr.get_write_buffer_size() == 0
        assert await proto.lost is None
        assert tr.get_write_buffer_size() == 0
        b.close()

    loop.run_until_complete(main())


def test_a_protocol_that_raises_is_reported_and_disconnected(loop):
    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))

    class Raises(Collect):
        def data_received(self, data):
            raise ZeroDivisionError

    async def main():
        server, port = await _serve(loop, Echo)
        proto = Raises(loop)
        tr, _ = await loop.create_connection(lambda: proto, "127.0.0.1", port)
        tr.write(b"x")
        exc = await asyncio.wait_for(proto.lost, 30)
        assert isinstance(exc, ZeroDivisionError)
        server.close()
        await server.wait_closed()

    loop.run_until_complete(main())
    assert len(contexts) == 1
    assert isinstance(contexts[0]["exception"], ZeroDivisionError)
    assert "data_received" in contexts[0]["message"]


def test_a_reset_peer_ends_the_connection_with_an_error(loop):
    async def main():
        accepted = loop.create_future()

        class Hold(asyncio.Protocol):
            def connection_made(self, tr):
                accepted.set_result(tr)

        server, port = await _serve(loop, Hold)
        proto = Collect(loop)
        tr, _ = await loop.create_connection(lambda: proto, "127.0.0.1", port)
        peer = await accepted
        sock = peer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        peer.abort()  # close with linger 0: a reset
        exc = await asyncio.wait_for(proto.lost, 30)
        assert exc is None or isinstance(exc, ConnectionResetError)
        server.close()
        await server.wait_closed()

    loop.run_until_complete(main())


def test_a_write_to_a_closed_peer_ends_the_connection_with_its_error(loop):
    # A Unix stream whose peer is gone before the write: the write's EPIPE is what
    # connection_lost gets, though the peer's EOF waits to be read (issue 30, item 2; evloop
    # reported None). Over TCP the first write after the peer's FIN succeeds, so the EOF is
    # the end there on every loop.
    class Lost(asyncio.Protocol):
        def __init__(self):
            self.lost = loop.create_future()

        def connection_lost(self, exc):
            if not self.lost.done():
                self.lost.set_result(exc)

    async def main():
        mine, peer = socket.socketpair()
        tr, proto = await loop.create_unix_connection(Lost, sock=mine)
        peer.close()
        tr.write(b"after the peer left")
        exc = await asyncio.wait_for(proto.lost, 10)
        assert isinstance(exc, (BrokenPipeError, ConnectionResetError)), repr(exc)

    loop.run_until_complete(main())


def test_connection_refused_and_bad_addresses(loop):
    async def main():
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        with pytest.raises(ConnectionRefusedError):
            await loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
        with pytest.raises(OSError):
            await loop.create_server(asyncio.Protocol, "256.0.0.1", 0)
        server, port = await _serve(loop, Echo)
        with pytest.raises(OSError):  # EADDRINUSE
            await loop.create_server(asyncio.Protocol, "127.0.0.1", port)
        server.close()
        await server.wait_closed()

    loop.run_until_complete(main())


def test_server_api(loop):
    async def main():
        server = await loop.create_server(Echo, ["127.0.0.1", "::1"], 0, reuse_port=True, start_serving=False)
        assert not server.is_serving()
        assert len(server.sockets) == 2
        await server.start_serving()
        assert server.is_serving()
        for sock in server.sockets:
            host, port = sock.getsockname()[:2]
            proto = Collect(loop)
            tr, _ = await loop.create_connection(lambda: proto, host, port)
            tr.write(b"hi")
            tr.write_eof()
            await proto.lost
            assert bytes(proto.data) == b"hi"
        task = loop.create_task(server.serve_forever())
        await asyncio.sleep(0.01)
        server.close()
        await server.wait_closed()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not server.is_serving()

    loop.run_until_complete(main())


def test_many_concurrent_connections(loop):
    async def main():
        server, port = await _serve(loop, Echo, backlog=1000)

        async def one(i):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"%d" % i)
            writer.write_eof()
            data = await reader.read()
            writer.close()
            await writer.wait_closed()
            return data

        results = await asyncio.gather(*(one(i) for i in range(500)))
        assert results == [b"%d" % i for i in range(500)]
        server.close()
        await server.wait_closed()

    loop.run_until_complete(main())


def test_connect_accepted_socket_and_sock_argument(loop):
    async def main():
        a, b = socket.socketpair()
        a.setblocking(False)
        b.setblocking(False)
        proto = Collect(loop)
        tr, _ = await loop.connect_accepted_socket(lambda: proto, a)
        await loop.sock_sendall(b, b"from b")
        b.shutdown(socket.SHUT_WR)
        for _ in range(200):
            if proto.eof:
                break
            await asyncio.sleep(0.005)
        assert bytes(proto.data) == b"from b"
        tr.close()
        await proto.lost
        b.close()

    loop.run_until_complete(main())


def test_sendfile(loop):
    data = os.urandom(300 * 1024)

    async def main():
        received = loop.create_future()
        got = bytearray()

        class Sink(asyncio.Protocol):
            def data_received(self, d):
                got.extend(d)

            def eof_received(self):
                received.set_result(bytes(got))

        server, port = await _serve(loop, Sink)
        proto = Collect(loop)
        tr, _ = await loop.create_connection(lambda: proto, "127.0.0.1", port)
        with tempfile.TemporaryFile() as f:
            f.write(data)
            f.seek(0)
            tr.write(b"head")
            sent = await loop.sendfile(tr, f)
            tr.write(b"tail")
            tr.write_eof()
            assert sent == len(data)
            assert await asyncio.wait_for(received, 30) == b"head" + data + b"tail"
        tr.close()
        server.close()
        await server.wait_closed()

    loop.run_until_complete(main())


def test_writelines_of_bytes_keeps_order_with_large_items(loop):
    async def main():
        server, port = await _serve(loop, Echo)
        proto = Collect(loop)
        tr, _ = await loop.create_connection(lambda: proto, "127.0.0.1", port)
        big = bytes(range(256)) * 12_000
        tr.writelines([b"head:", b"", big, b";"])
        tr.write(b"between")
        tr.writelines([b"tail", b"!"])
        tr.writelines([])
        tr.write_eof()
        await asyncio.wait_for(proto.lost, 30)
        assert bytes(proto.data) == b"head:" + big + b";" + b"between" + b"tail!"
        server.close()
        await server.wait_closed()

    loop.run_until_complete(main())


def test_accepted_connection_answers_extra_info_before_and_after_close(loop):
    async def main():
        seen = loop.create_future()

        class Server(asyncio.Protocol):
            def connection_made(self, tr):
                self.tr = tr
                seen.set_result(self)

            def connection_lost(self, exc):
                self.lost_info = (self.tr.get_extra_info("peername"), self.tr.get_extra_info("sockname"))

        server, port = await _serve(loop, Server)
        proto = Collect(loop)
        tr, _ = await loop.create_connection(lambda: proto, "127.0.0.1", port)
        srv = await asyncio.wait_for(seen, 10)
        assert srv.tr.get_extra_info("peername") == tr.get_extra_info("sockname")
        assert srv.tr.get_extra_info("sockname") == ("127.0.0.1", port)
        assert srv.tr.get_extra_info("socket").fileno() >= 0
        srv.tr.close()
        await asyncio.wait_for(proto.lost, 10)
        await asyncio.sleep(0.05)
        assert srv.lost_info == (tr.get_extra_info("sockname"), ("127.0.0.1", port))
        server.close()
        await server.wait_closed()

    loop.run_until_complete(main())


def test_large_bytes_that_must_wait_are_kept_not_copied(evloop_loop):
    """evloop only (asyncio copies into a bytearray): a large `bytes` (or a memoryview of one) the
    socket cannot take at once stays referenced by the transport until sent, and a bytearray
    (mutable) is copied."""
    import sys

    loop = evloop_loop

    async def main():
        a, b = socket.socketpair()
        b.setblocking(False)
        proto = Collect(loop)
        tr, _ = await loop.create_connection(lambda: proto, sock=a)
        tr.set_write_buffer_limits(high=64 << 20)
        big = os.urandom(8 << 20)  # far more than the socket pair's buffers
        before = sys.getrefcount(big)
        tr.write(big)
        assert tr.get_write_buffer_size() > 0
        assert sys.getrefcount(big) == before + 1, "queued bytes are the caller's object, kept"
        view_of = os.urandom(4 << 20)
        expected_view = bytes(view_of[1:])
        view = memoryview(view_of)[1:]
        before_bytes = sys.getrefcount(view_of)
        tr.write(view)
        assert sys.getrefcount(view_of) == before_bytes + 1, "the bytes behind a view are kept too"
        # Releasing the view and dropping the caller's reference must not free what is queued.
        view.release()
        del view, view_of
        mutable = bytearray(os.urandom(4 << 20))
        expected = big + expected_view + bytes(mutable)
        tr.write(mutable)
        mutable[:] = bytes(len(mutable))  # changing it after write() must not change what is sent
        got = bytearray()
        while len(got) < len(expected):
            try:
                got += b.recv(1 << 20)
            except BlockingIOError:
                await asyncio.sleep(0.001)
        assert got == expected
        while tr.get_write_buffer_size():
            await asyncio.sleep(0.001)
        assert sys.getrefcount(big) == before, "released once sent"
        tr.close()
        b.close()
        await asyncio.wait_for(proto.lost, 30)

    loop.run_until_complete(main())


@pytest.mark.parametrize("reading", [True, False], ids=["reading", "reading-paused"])
def test_a_reset_while_writes_wait_is_the_connections_error(loop, reading):
    # Writes wait in the transport (the peer reads nothing) when the peer resets. asyncio's
    # writer meets ECONNRESET and connection_lost gets it. evloop's failed send took the
    # socket's error, so the receive then saw a plain end (connection_lost(None)), or, with
    # reading paused, nothing reported it at all (AnyIO's test_reset_during_send).
    async def main():
        listener = socket.create_server(("127.0.0.1", 0))
        proto = Collect(loop)
        tr, _ = await loop.create_connection(lambda: proto, *listener.getsockname())
        tr.set_write_buffer_limits(0)
        if not reading:
            tr.pause_reading()
        peer, _ = listener.accept()
        for _ in range(16):
            tr.write(b"\0" * (1 << 20))
        assert proto.paused == 1
        await asyncio.sleep(0.05)
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        peer.close()  # linger 0: a reset
        exc = await asyncio.wait_for(proto.lost, 30)
        assert isinstance(exc, (ConnectionResetError, BrokenPipeError)), repr(exc)
        assert tr.is_closing()
        listener.close()

    loop.run_until_complete(main())
