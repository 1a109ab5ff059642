"""Protocol callbacks run in the context the transport was made in, as in asyncio: a context
variable set before create_connection, create_server, create_datagram_endpoint or
subprocess_exec is what the protocol sees, whatever context the loop itself runs in;
connection_lost runs where the close came from. Each test on asyncio's own loop (the oracle) and
on evloop's, both backends."""

import asyncio
import contextvars
import socket
import sys

request = contextvars.ContextVar("request", default="loop's own")


class Recorder(asyncio.Protocol):
    """Records the value of `request` in every callback it gets."""

    def __init__(self, loop):
        self.seen = []
        self.lost = loop.create_future()
        self.buffer = bytearray(64 * 1024)

    def note(self, callback):
        self.seen.append((callback, request.get()))

    def connection_made(self, transport):
        self.transport = transport
        self.note("connection_made")

    def data_received(self, data):
        self.note("data_received")

    def eof_received(self):
        self.note("eof_received")

    def connection_lost(self, exc):
        self.note("connection_lost")
        self.lost.set_result(exc)


class BufferedRecorder(Recorder, asyncio.BufferedProtocol):
    def get_buffer(self, sizehint):
        self.note("get_buffer")
        return self.buffer

    def buffer_updated(self, nbytes):
        self.note("buffer_updated")


def values(protocol):
    return {value for _, value in protocol.seen}


def callbacks(protocol):
    return {name for name, _ in protocol.seen}


async def connect_in_context(loop, value, factory):
    """A client connection made by a task that set `request` to `value` first, to a plain
    socket listener: (transport, protocol, the accepted peer socket, the listener)."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    async def connect():
        request.set(value)
        return await loop.create_connection(factory, "127.0.0.1", port)

    transport, protocol = await asyncio.create_task(connect())
    peer, _ = listener.accept()
    return transport, protocol, peer, listener


def test_a_client_connections_callbacks_see_the_context_it_was_made_in(loop):
    for kind in (Recorder, BufferedRecorder):

        async def main():
            transport, protocol, peer, listener = await connect_in_context(
                loop, "client request", lambda: kind(loop)
            )
            peer.sendall(b"hello")
            peer.shutdown(socket.SHUT_WR)
            while "eof_received" not in callbacks(protocol):
                await asyncio.sleep(0.01)
            transport.close()
            await protocol.lost
            peer.close()
            listener.close()
            assert request.get() == "loop's own"
            return protocol

        protocol = loop.run_until_complete(main())
        assert values(protocol) == {"client request"}, protocol.seen
        expected = {"connection_made", "eof_received", "connection_lost"}
        expected |= {"get_buffer", "buffer_updated"} if kind is BufferedRecorder else {"data_received"}
        assert callbacks(protocol) == expected


def test_accepted_connections_see_the_context_of_create_server(loop):
    async def main():
        protocols = []

        def factory():
            protocols.append(Recorder(loop))
            return protocols[-1]

        async def serve():
            request.set("server setup")
            return await loop.create_server(factory, "127.0.0.1", 0)

        server = await asyncio.create_task(serve())
        port = server.sockets[0].getsockname()[1]
        for _ in range(2):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"ping")
            writer.write_eof()
            await reader.read()
            writer.close()
        while len(protocols) < 2 or not all(p.lost.done() for p in protocols):
            for p in protocols:
                if not p.lost.done() and "eof_received" in callbacks(p):
                    p.transport.close()
            await asyncio.sleep(0.01)
        server.close()
        await server.wait_closed()
        return protocols

    protocols = loop.run_until_complete(main())
    for protocol in protocols:
        assert values(protocol) == {"server setup"}, protocol.seen
        assert {"connection_made", "data_received", "connection_lost"} <= callbacks(protocol)


def test_a_datagram_endpoints_callbacks_see_the_context_it_was_made_in(loop):
    class DatagramRecorder(asyncio.DatagramProtocol):
        def __init__(self):
            self.seen = []
            self.got = loop.create_future()

        def connection_made(self, transport):
            self.seen.append(request.get())

        def datagram_received(self, data, addr):
            self.seen.append(request.get())
            self.got.set_result(data)

    async def main():
        async def endpoint():
            request.set("datagram setup")
            return await loop.create_datagram_endpoint(DatagramRecorder, local_addr=("127.0.0.1", 0))

        transport, protocol = await asyncio.create_task(endpoint())
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sender.sendto(b"x", transport.get_extra_info("sockname"))
        await asyncio.wait_for(protocol.got, 10)
        sender.close()
        transport.close()
        return protocol

    protocol = loop.run_until_complete(main())
    assert protocol.seen == ["datagram setup", "datagram setup"]


def test_a_subprocess_protocols_pipe_callbacks_see_the_context_it_was_made_in(loop):
    class ProcessRecorder(asyncio.SubprocessProtocol):
        def __init__(self):
            self.seen = []
            self.exited = loop.create_future()

        def pipe_data_received(self, fd, data):
            self.seen.append(request.get())

        def process_exited(self):
            self.exited.set_result(None)

    async def main():
        async def spawn():
            request.set("spawned")
            return await loop.subprocess_exec(
                ProcessRecorder, sys.executable, "-c", "print('out')", stdin=None, stderr=None
            )

        transport, protocol = await asyncio.create_task(spawn())
        await asyncio.wait_for(protocol.exited, 30)
        while not transport.get_pipe_transport(1).is_closing():
            await asyncio.sleep(0.01)
        transport.close()
        return protocol

    protocol = loop.run_until_complete(main())
    assert protocol.seen and set(protocol.seen) == {"spawned"}, protocol.seen


def test_flow_control_callbacks_caused_by_a_protocol_callback_run_in_its_context(loop):
    # A write inside data_received that goes over the high-water mark pauses the protocol from
    # within the same callback: no second entry into the same context.
    class Writer(Recorder):
        def data_received(self, data):
            self.note("data_received")
            self.transport.write(b"x" * 32_000_000)  # the peer reads none of it

        def pause_writing(self):
            self.note("pause_writing")

    async def main():
        transport, protocol, peer, listener = await connect_in_context(loop, "writer", lambda: Writer(loop))
        transport.set_write_buffer_limits(high=64 * 1024)
        peer.sendall(b"go")
        for _ in range(1000):
            if "pause_writing" in callbacks(protocol):
                break
            await asyncio.sleep(0.01)
        transport.abort()
        await protocol.lost
        peer.close()
        listener.close()
        return protocol

    protocol = loop.run_until_complete(main())
    # connection_lost runs where the close came from, as in asyncio: here main()'s abort().
    assert protocol.seen[-1] == ("connection_lost", "loop's own"), protocol.seen
    assert {value for _, value in protocol.seen[:-1]} == {"writer"}, protocol.seen
    assert {"data_received", "pause_writing"} <= callbacks(protocol)
