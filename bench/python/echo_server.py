"""Echo server for bench/python_echo.py: one loop, one mode.

usage: echo_server.py PORT LOOP MODE [CERTFILE KEYFILE]
  LOOP: evloop-uring | evloop-epoll | uvloop | rloop | asyncio
  MODE: protocol | buffered | streams
With a certificate and key the server speaks TLS. With EVLOOP_BENCH_AIOFASTNET=1 the loop is
patched by aio-libs' aiofastnet (its own transports and TLS on the loop's add_reader/add_writer).
"""
import asyncio
import os
import signal
import ssl
import sys

import loops


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


class BufferedEcho(asyncio.BufferedProtocol):
    def __init__(self):
        self.buf = bytearray(256 * 1024)
        self.view = memoryview(self.buf)

    def connection_made(self, transport):
        self.transport = transport

    def get_buffer(self, sizehint):
        return self.view

    def buffer_updated(self, nbytes):
        self.transport.write(self.view[:nbytes])


async def stream_echo(reader, writer):
    while data := await reader.read(256 * 1024):
        writer.write(data)
        await writer.drain()
    writer.close()


async def main(port, mode, tls_files):
    loop = asyncio.get_running_loop()
    if os.environ.get("EVLOOP_BENCH_AIOFASTNET") == "1":
        import aiofastnet

        aiofastnet.patch_loop(loop)
    context = None
    if tls_files:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(*tls_files)
    if mode == "streams":
        server = await asyncio.start_server(stream_echo, "127.0.0.1", port, backlog=1024, ssl=context)
    else:
        protocol = Echo if mode == "protocol" else BufferedEcho
        server = await loop.create_server(protocol, "127.0.0.1", port, backlog=1024, ssl=context)
    stop = loop.create_future()
    loop.add_signal_handler(signal.SIGTERM, stop.set_result, None)
    await stop
    server.close()


if __name__ == "__main__":
    port, kind, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    loops.run(kind, main(port, mode, sys.argv[4:6]))
