"""aiohttp hello-world server for bench/http.py: one loop.

usage: http_server.py PORT LOOP      (LOOP as in loops.py; SIGTERM stops it)
"""
import asyncio
import signal
import sys

from aiohttp import web

import loops


async def hello(request):
    return web.Response(text="Hello, world!")


async def main(port):
    app = web.Application()
    app.router.add_get("/", hello)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, backlog=1024)
    await site.start()
    stop = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set_result, None)
    await stop
    await runner.cleanup()


if __name__ == "__main__":
    loops.run(sys.argv[2], main(int(sys.argv[1])))
