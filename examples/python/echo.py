"""An asyncio echo server and its clients on evloop: the program is plain asyncio; only the
loop differs.

    python3 examples/python/echo.py [--backend uring|epoll] [--clients 10] [--messages 10000]

It serves on a loopback port, runs the clients against it in the same loop, and prints the
backend, the messages echoed per second and the server's round trips.
"""

import argparse
import asyncio
import time

import evloop


class EchoServer(asyncio.Protocol):
    served = 0

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        EchoServer.served += 1
        self.transport.write(data)


async def client(port, messages, payload):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for _ in range(messages):
        writer.write(payload)
        await reader.readexactly(len(payload))
    writer.close()
    await writer.wait_closed()


async def main(args):
    loop = asyncio.get_running_loop()
    server = await loop.create_server(EchoServer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    payload = b"x" * args.size
    started = time.perf_counter()
    await asyncio.gather(*(client(port, args.messages, payload) for _ in range(args.clients)))
    elapsed = time.perf_counter() - started
    server.close()
    await server.wait_closed()
    total = args.clients * args.messages
    print(f"evloop {evloop.__version__} on {loop.backend}: {args.clients} clients x {args.messages} messages of {args.size} B")
    print(f"{total / elapsed:,.0f} round trips/s; the server echoed {EchoServer.served:,} reads")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("uring", "epoll", "auto"), default=None)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--size", type=int, default=64)
    args = parser.parse_args()
    evloop.run(main(args), backend=args.backend)
