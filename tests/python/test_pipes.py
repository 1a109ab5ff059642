"""Pipe transports (`connect_read_pipe`, `connect_write_pipe`), each test on asyncio's own loop (the
oracle) and on evloop's native pipe transport, both backends."""

import asyncio
import errno
import os
import socket

import pytest


class Recorder(asyncio.Protocol):
    """Records everything a pipe transport tells its protocol, in order."""

    def __init__(self, loop):
        self.events = []
        self.data = bytearray()
        self.paused = 0
        self.resumed = 0
        self.lost = loop.create_future()

    def connection_made(self, transport):
        self.transport = transport
        self.events.append("made")

    def data_received(self, data):
        if not self.events or self.events[-1] != "data":
            self.events.append("data")
        self.data += data

    def eof_received(self):
        self.events.append("eof")

    def pause_writing(self):
        self.paused += 1

    def resume_writing(self):
        self.resumed += 1

    def connection_lost(self, exc):
        self.events.append("lost")
        self.lost.set_result(exc)


def run(loop, coro):
    return loop.run_until_complete(asyncio.wait_for(coro, 30))


def pipe_files():
    r, w = os.pipe()
    return os.fdopen(r, "rb", 0), os.fdopen(w, "wb", 0)


def test_read_pipe_delivers_data_then_eof_then_closes(loop):
    async def main():
        rfile, wfile = pipe_files()
        tr, proto = await loop.connect_read_pipe(lambda: Recorder(loop), rfile)
        assert isinstance(tr, asyncio.ReadTransport)
        assert tr.get_extra_info("pipe") is rfile
        assert tr.is_reading() and not tr.is_closing()
        os.write(wfile.fileno(), b"first ")
        os.write(wfile.fileno(), b"second")
        wfile.close()
        assert await proto.lost is None
        assert bytes(proto.data) == b"first second"
        assert proto.events == ["made", "data", "eof", "lost"]
        assert tr.is_closing()
        assert rfile.closed, "the transport closes the pipe object after connection_lost"

    run(loop, main())


def test_write_pipe_sends_everything_with_flow_control(loop):
    async def main():
        rfile, wfile = pipe_files()
        reader, reader_proto = await loop.connect_read_pipe(lambda: Recorder(loop), rfile)
        reader.pause_reading()
        assert not reader.is_reading()
        tr, proto = await loop.connect_write_pipe(lambda: Recorder(loop), wfile)
        assert isinstance(tr, asyncio.WriteTransport)
        assert tr.can_write_eof()
        tr.set_write_buffer_limits(high=64 * 1024)
        assert tr.get_write_buffer_limits() == (16 * 1024, 64 * 1024)
        payload = bytes(range(256)) * 4096  # 1 MiB: far more than a pipe holds
        tr.write(payload[:300_000])
        tr.writelines([payload[300_000:700_000], memoryview(payload)[700_000:]])
        assert tr.get_write_buffer_size() > 0
        assert proto.paused == 1, "above the high-water mark the protocol pauses"
        await asyncio.sleep(0.05)
        reader.resume_reading()
        tr.close()
        assert tr.is_closing()
        assert await proto.lost is None
        assert proto.resumed == 1
        assert await reader_proto.lost is None
        assert bytes(reader_proto.data) == payload
        assert wfile.closed

    run(loop, main())


def test_write_pipe_closes_when_its_reader_goes_away(loop):
    async def main():
        rfile, wfile = pipe_files()
        tr, proto = await loop.connect_write_pipe(lambda: Recorder(loop), wfile)
        await asyncio.sleep(0.01)
        rfile.close()
        assert await proto.lost is None, "nothing was queued: a plain close"
        assert tr.is_closing()

    run(loop, main())


def test_write_pipe_with_queued_data_loses_it_with_broken_pipe(loop):
    async def main():
        rfile, wfile = pipe_files()
        tr, proto = await loop.connect_write_pipe(lambda: Recorder(loop), wfile)
        tr.write(b"x" * 1_000_000)
        assert tr.get_write_buffer_size() > 0
        rfile.close()
        exc = await proto.lost
        assert isinstance(exc, BrokenPipeError)
        # Writes after the loss are dropped, not raised.
        tr.write(b"more")
        assert tr.get_write_buffer_size() == 0

    run(loop, main())


def test_abort_empties_a_write_pipes_buffer_at_once(loop):
    async def main():
        rfile, wfile = pipe_files()
        tr, proto = await loop.connect_write_pipe(lambda: Recorder(loop), wfile)
        tr.write(b"x" * 1_000_000)
        assert tr.get_write_buffer_size() > 0
        tr.abort()
        assert tr.get_write_buffer_size() == 0
        assert await proto.lost is None
        rfile.close()

    run(loop, main())


def test_write_eof_closes_after_queued_writes(loop):
    async def main():
        rfile, wfile = pipe_files()
        reader, reader_proto = await loop.connect_read_pipe(lambda: Recorder(loop), rfile)
        tr, proto = await loop.connect_write_pipe(lambda: Recorder(loop), wfile)
        tr.write(b"y" * 200_000)
        tr.write_eof()
        assert tr.is_closing()
        tr.write_eof()  # a second one is harmless
        assert await proto.lost is None
        assert await reader_proto.lost is None
        assert bytes(reader_proto.data) == b"y" * 200_000

    run(loop, main())


def test_abort_drops_queued_writes(loop):
    async def main():
        rfile, wfile = pipe_files()
        tr, proto = await loop.connect_write_pipe(lambda: Recorder(loop), wfile)
        tr.write(b"z" * 500_000)
        tr.abort()
        assert await proto.lost is None
        assert tr.get_write_buffer_size() == 0
        got = b""
        while chunk := os.read(rfile.fileno(), 1 << 20):
            got += chunk
        assert 0 < len(got) < 500_000, "what the pipe took arrived, the rest was dropped"
        rfile.close()

    run(loop, main())


def test_read_pipe_pause_and_resume_keep_order(loop):
    async def main():
        rfile, wfile = pipe_files()
        tr, proto = await loop.connect_read_pipe(lambda: Recorder(loop), rfile)
        os.write(wfile.fileno(), b"a")
        while not proto.data:
            await asyncio.sleep(0.005)
        tr.pause_reading()
        tr.pause_reading()
        os.write(wfile.fileno(), b"b")
        await asyncio.sleep(0.05)
        assert bytes(proto.data) == b"a", "nothing delivered while paused"
        tr.resume_reading()
        os.write(wfile.fileno(), b"c")
        while len(proto.data) < 3:
            await asyncio.sleep(0.005)
        assert bytes(proto.data) == b"abc"
        tr.close()
        assert await proto.lost is None
        wfile.close()

    run(loop, main())


def test_protocol_errors_go_to_the_exception_handler(loop):
    seen = []
    loop.set_exception_handler(lambda lp, ctx: seen.append(ctx))

    class Failing(Recorder):
        def data_received(self, data):
            super().data_received(data)
            raise ZeroDivisionError("from data_received")

    async def main():
        rfile, wfile = pipe_files()
        tr, proto = await loop.connect_read_pipe(lambda: Failing(loop), rfile)
        os.write(wfile.fileno(), b"1")
        while not seen:
            await asyncio.sleep(0.005)
        assert isinstance(seen[0]["exception"], ZeroDivisionError)
        # The transport goes on reading.
        os.write(wfile.fileno(), b"2")
        wfile.close()
        assert await proto.lost is None
        assert bytes(proto.data) == b"12"

    run(loop, main())


def test_what_is_not_a_pipe_is_refused(loop, tmp_path):
    async def main():
        path = tmp_path / "regular"
        path.write_bytes(b"data")
        with open(path, "rb") as f:
            with pytest.raises(ValueError):
                await loop.connect_read_pipe(asyncio.Protocol, f)
        with open(path, "wb") as f:
            with pytest.raises(ValueError):
                await loop.connect_write_pipe(asyncio.Protocol, f)

    run(loop, main())


def test_a_socket_can_serve_as_a_pipe(loop):
    async def main():
        a, b = socket.socketpair()
        tr, proto = await loop.connect_read_pipe(lambda: Recorder(loop), a)
        b.sendall(b"over a socket")
        b.close()
        assert await proto.lost is None
        assert bytes(proto.data) == b"over a socket"
        assert proto.events == ["made", "data", "eof", "lost"]

    run(loop, main())


def test_writing_to_a_pipe_whose_reader_left_never_raises(loop):
    async def main():
        rfile, wfile = pipe_files()
        rfile.close()
        tr, proto = await loop.connect_write_pipe(lambda: Recorder(loop), wfile)
        for _ in range(10):
            tr.write(b"nobody listens")  # EPIPE: no SIGPIPE, no exception from write
        exc = await proto.lost
        assert exc is None or (isinstance(exc, OSError) and exc.errno == errno.EPIPE)

    run(loop, main())


def test_subprocess_pipes_carry_a_megabyte_both_ways(loop):
    async def main():
        proc = await asyncio.create_subprocess_exec(
            "cat", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
        )
        payload = os.urandom(1 << 20)
        out, _ = await proc.communicate(payload)
        assert out == payload
        assert proc.returncode == 0

    run(loop, main())
