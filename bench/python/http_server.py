"""aiohttp hello-world server for bench/http.py: one loop.

usage: http_server.py PORT LOOP [CERTFILE KEYFILE]   (LOOP as in loops.py; SIGTERM stops it)

With a certificate and key it serves HTTPS.
"""
import asyncio
import signal
import ssl
import sys

from aiohttp import web

import loops


async def hello(request):
    return web.Response(text="Hello, world!")


async def main(port, tls_files):
    app = web.Application()
    app.router.add_get("/", hello)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    context = None
    if tls_files:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(*tls_files)
    site = web.TCPSite(runner, "127.0.0.1", port, backlog=1024, ssl_context=context)
    await site.start()
    stop = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set_result, None)
    await stop
    await runner.cleanup()


if __name__ == "__main__":
    loops.run(sys.argv[2], main(int(sys.argv[1]), sys.argv[3:5]))
