"""UDP endpoints (`create_datagram_endpoint`), each test on asyncio's own loop (the oracle) and on
evloop's native datagram transport, both backends."""

import asyncio
import socket

import pytest


class Collector(asyncio.DatagramProtocol):
    """Records everything the transport tells its protocol."""

    def __init__(self, loop, want=1):
        self.loop = loop
        self.want = want
        self.datagrams = []
        self.errors = []
        self.lost = []
        self.paused = 0
        self.resumed = 0
        self.enough = loop.create_future()
        self.closed = loop.create_future()
        self.errored = loop.create_future()

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.datagrams.append((data, addr))
        if len(self.datagrams) >= self.want and not self.enough.done():
            self.enough.set_result(None)

    def error_received(self, exc):
        self.errors.append(exc)
        if not self.errored.done():
            self.errored.set_result(exc)

    def connection_lost(self, exc):
        self.lost.append(exc)
        self.closed.set_result(exc)

    def pause_writing(self):
        self.paused += 1

    def resume_writing(self):
        self.resumed += 1


class Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.transport.sendto(data, addr)


def run(loop, coro):
    return loop.run_until_complete(asyncio.wait_for(coro, 30))


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_many_datagrams_and_every_size_arrive_whole(loop, host):
    async def main():
        server, _ = await loop.create_datagram_endpoint(Echo, local_addr=(host, 0))
        addr = server.get_extra_info("sockname")
        sizes = [1, 64, 1500, 16 * 1024 + 100, 40_000, 65_000]
        count = 300
        tr, client = await loop.create_datagram_endpoint(
            lambda: Collector(loop, want=count + len(sizes)), local_addr=(host, 0)
        )
        # (asyncio's own transport is a DatagramTransport only from 3.12 on.)
        assert isinstance(tr, asyncio.BaseTransport)
        assert tr.get_extra_info("peername") is None
        assert tr.get_extra_info("sockname")[1] != 0
        assert tr.get_extra_info("socket").family == (socket.AF_INET6 if ":" in host else socket.AF_INET)
        # In windows, so that no socket buffer overflows (UDP would drop, on any loop).
        async def arrived(n):
            while len(client.datagrams) < n:
                await asyncio.sleep(0.005)

        for start in range(0, count, 20):
            for i in range(start, start + 20):
                tr.sendto(i.to_bytes(4, "big"), addr)
            await arrived(start + 20)
        for i, n in enumerate(sizes):
            tr.sendto(bytes([i + 1]) * n, addr)
            await arrived(count + i + 1)
        await client.enough
        small = sorted(int.from_bytes(d, "big") for d, _ in client.datagrams if len(d) == 4)
        assert small == list(range(count))
        big = sorted((len(d), d[0]) for d, _ in client.datagrams if len(d) != 4)
        assert big == sorted((n, i + 1) for i, n in enumerate(sizes))
        assert all(d == bytes([d[0]]) * len(d) for d, _ in client.datagrams if len(d) != 4)
        src = client.datagrams[0][1]
        assert src[:2] == addr[:2]
        assert tr.get_write_buffer_size() == 0
        tr.close()
        assert tr.is_closing()
        assert await client.closed is None
        server.close()

    run(loop, main())


def test_connected_endpoint_checks_addresses_and_hears_refusals(loop):
    async def main():
        server, _ = await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0))
        addr = server.get_extra_info("sockname")
        tr, client = await loop.create_datagram_endpoint(lambda: Collector(loop), remote_addr=addr)
        assert tr.get_extra_info("peername") == addr
        tr.sendto(b"to the peer")
        tr.sendto(b"and again", addr)
        with pytest.raises(ValueError):
            tr.sendto(b"elsewhere", ("127.0.0.1", addr[1] + 1))
        with pytest.raises(TypeError):
            tr.sendto("text")
        tr.sendto(b"")  # nothing is sent
        await client.enough
        assert client.datagrams[0] == (b"to the peer", addr)
        # The peer goes: the ICMP error comes back as ConnectionRefusedError to error_received.
        server.close()
        await asyncio.sleep(0.05)
        for _ in range(100):
            tr.sendto(b"anyone?")
            await asyncio.sleep(0.01)
            if client.errors:
                break
        assert isinstance(await client.errored, ConnectionRefusedError)
        assert not tr.is_closing()
        tr.close()
        assert await client.closed is None
        # Sends after close on a connected transport are dropped, as in asyncio.
        tr.sendto(b"late")
        assert client.lost == [None]

    run(loop, main())


def test_pause_and_resume_reading(loop):
    async def main():
        tr, server = await loop.create_datagram_endpoint(lambda: Collector(loop, want=3), local_addr=("127.0.0.1", 0))
        addr = tr.get_extra_info("sockname")
        assert tr.is_reading()
        tr.pause_reading()
        assert not tr.is_reading()
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for i in range(3):
            sender.sendto(b"%d" % i, addr)
        await asyncio.sleep(0.2)
        assert server.datagrams == []
        tr.resume_reading()
        assert tr.is_reading()
        await server.enough
        assert sorted(d for d, _ in server.datagrams) == [b"0", b"1", b"2"]
        sender.close()
        tr.abort()
        assert await server.closed is None

    run(loop, main())


@pytest.mark.parametrize("between", ["nothing", "one step", "a pause of 50 ms"])
def test_datagrams_sent_while_paused_arrive_after_resume(loop, between):
    # On io_uring the armed receive may take them off the socket before its cancellation
    # lands; they must still arrive, in order, once reading resumes, and none before.
    async def main():
        tr, server = await loop.create_datagram_endpoint(lambda: Collector(loop, want=3), local_addr=("127.0.0.1", 0))
        tr.pause_reading()
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for i in range(3):
            sender.sendto(b"%d" % i, tr.get_extra_info("sockname"))
        if between == "one step":
            await asyncio.sleep(0)
        elif between != "nothing":
            await asyncio.sleep(0.05)
        assert server.datagrams == []
        tr.resume_reading()
        await asyncio.wait_for(server.enough, 10)
        assert [d for d, _ in server.datagrams] == [b"0", b"1", b"2"]
        sender.close()
        tr.abort()
        assert await server.closed is None

    # Not through run(): the steps of this coroutine must be the task's own, as in a program
    # (an extra wait_for task shifts them against the loop's passes and hid the loss).
    loop.run_until_complete(main())


def test_write_buffer_limits(loop):
    async def main():
        tr, proto = await loop.create_datagram_endpoint(lambda: Collector(loop), local_addr=("127.0.0.1", 0))
        assert tr.get_write_buffer_limits() == (16 * 1024, 64 * 1024)
        tr.set_write_buffer_limits(high=1000)
        assert tr.get_write_buffer_limits() == (250, 1000)
        with pytest.raises(ValueError):
            tr.set_write_buffer_limits(high=1, low=2)
        target = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        target.bind(("127.0.0.1", 0))
        for _ in range(50):
            tr.sendto(b"x" * 1000, target.getsockname())
        # Whatever waited has gone out, and a pause was matched by a resume.
        for _ in range(200):
            if tr.get_write_buffer_size() == 0 and proto.paused == proto.resumed:
                break
            await asyncio.sleep(0.01)
        assert tr.get_write_buffer_size() == 0
        assert proto.paused == proto.resumed
        target.close()
        tr.close()
        await proto.closed

    run(loop, main())


def test_protocol_that_raises_goes_to_the_exception_handler(loop):
    errors = []
    loop.set_exception_handler(lambda lp, ctx: errors.append(ctx))

    class Faulty(Collector):
        def datagram_received(self, data, addr):
            super().datagram_received(data, addr)
            if data == b"boom":
                raise RuntimeError("boom")

    async def main():
        tr, proto = await loop.create_datagram_endpoint(lambda: Faulty(loop, want=2), local_addr=("127.0.0.1", 0))
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sender.sendto(b"boom", tr.get_extra_info("sockname"))
        sender.sendto(b"after", tr.get_extra_info("sockname"))
        await proto.enough
        assert [d for d, _ in proto.datagrams] == [b"boom", b"after"]
        assert len(errors) == 1 and isinstance(errors[0]["exception"], RuntimeError)
        assert not tr.is_closing()
        sender.close()
        tr.close()
        await proto.closed

    run(loop, main())


def test_sock_argument_and_closing_twice(loop):
    async def main():
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        tr, proto = await loop.create_datagram_endpoint(lambda: Collector(loop), sock=sock)
        assert tr.get_extra_info("sockname") == sock.getsockname()
        tr.close()
        tr.close()
        assert await proto.closed is None
        await asyncio.sleep(0)
        assert proto.lost == [None]
        assert sock.fileno() == -1  # the transport closed the socket

    run(loop, main())


def test_sendto_alternating_destinations_reach_each(loop):
    async def main():
        a_tr, a = await loop.create_datagram_endpoint(lambda: Collector(loop, want=6), local_addr=("127.0.0.1", 0))
        b_tr, b = await loop.create_datagram_endpoint(lambda: Collector(loop, want=6), local_addr=("127.0.0.1", 0))
        tr, _ = await loop.create_datagram_endpoint(lambda: Collector(loop), local_addr=("127.0.0.1", 0))
        to_a, to_b = a_tr.get_extra_info("sockname"), b_tr.get_extra_info("sockname")
        for i in range(3):
            tr.sendto(b"a%d" % i, to_a)  # the same tuple object each time
            tr.sendto(b"b%d" % i, to_b)
            tr.sendto(b"a-fresh%d" % i, ("127.0.0.1", to_a[1]))  # an equal tuple, not the same one
            tr.sendto(b"b-fresh%d" % i, ("127.0.0.1", to_b[1]))
        await asyncio.wait_for(asyncio.gather(a.enough, b.enough), 10)
        assert sorted(d for d, _ in a.datagrams) == sorted([b"a%d" % i for i in range(3)] + [b"a-fresh%d" % i for i in range(3)])
        assert sorted(d for d, _ in b.datagrams) == sorted([b"b%d" % i for i in range(3)] + [b"b-fresh%d" % i for i in range(3)])
        for t in (tr, a_tr, b_tr):
            t.close()
        await asyncio.sleep(0)

    run(loop, main())


def test_a_socket_that_came_connected_sends_to_its_peer(loop):
    # `sock=` an already connected UDP socket, no remote_addr: asyncio's transport sends every
    # datagram to the peer with sock.send(), with or without an address (uvloop too, for None).
    async def main():
        peer_tr, peer = await loop.create_datagram_endpoint(lambda: Collector(loop, want=3),
                                                            local_addr=("127.0.0.1", 0))
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.connect(peer_tr.get_extra_info("sockname"))
        sock.setblocking(False)
        tr, proto = await loop.create_datagram_endpoint(lambda: Collector(loop), sock=sock)
        assert tr.get_extra_info("peername") == peer_tr.get_extra_info("sockname")
        tr.sendto(b"no address")
        tr.sendto(b"its own address", peer_tr.get_extra_info("sockname"))
        tr.sendto(b"another address", ("127.0.0.1", 9))
        await asyncio.wait_for(peer.enough, 10)
        assert [d for d, _ in peer.datagrams] == [b"no address", b"its own address", b"another address"]
        assert proto.errors == [] and proto.lost == []
        tr.close()
        peer_tr.close()
        assert await proto.closed is None

    run(loop, main())
