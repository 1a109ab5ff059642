"""A real framework: an aiohttp server answering an aiohttp client (many requests, streamed
bodies, websockets), over HTTP and HTTPS, on asyncio's loop and evloop's, both backends."""

import asyncio
import hashlib
import os

import pytest

aiohttp = pytest.importorskip("aiohttp")
from aiohttp import web  # noqa: E402


def _app():
    async def hello(request):
        return web.Response(text="Hello, " + request.match_info.get("name", "world"))

    async def upload(request):
        digest = hashlib.sha256()
        size = 0
        async for chunk in request.content.iter_chunked(64 * 1024):
            digest.update(chunk)
            size += len(chunk)
        return web.json_response({"size": size, "sha256": digest.hexdigest()})

    async def stream(request):
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for i in range(100):
            await resp.write(b"chunk %03d\n" % i)
        await resp.write_eof()
        return resp

    async def ws(request):
        sock = web.WebSocketResponse()
        await sock.prepare(request)
        async for msg in sock:
            if msg.type == aiohttp.WSMsgType.TEXT:
                await sock.send_str(msg.data[::-1])
            elif msg.type == aiohttp.WSMsgType.BINARY:
                await sock.send_bytes(msg.data)
        return sock

    app = web.Application()
    app.router.add_get("/", hello)
    app.router.add_get("/hello/{name}", hello)
    app.router.add_post("/upload", upload)
    app.router.add_get("/stream", stream)
    app.router.add_get("/ws", ws)
    return app


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_aiohttp_server_and_client(loop, scheme, tls_contexts):
    server_ctx, client_ctx = tls_contexts if scheme == "https" else (None, None)

    async def main():
        runner = web.AppRunner(_app())
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ctx)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        base = f"{scheme}://localhost:{port}"
        connector = aiohttp.TCPConnector(ssl=client_ctx) if client_ctx else None
        async with aiohttp.ClientSession(connector=connector) as session:

            async def get(i):
                async with session.get(f"{base}/hello/n{i}") as r:
                    assert r.status == 200
                    return await r.text()

            texts = await asyncio.gather(*(get(i) for i in range(300)))
            assert texts == [f"Hello, n{i}" for i in range(300)]

            body = os.urandom(5 * 1024 * 1024)

            async def produce():
                for i in range(0, len(body), 100_000):
                    yield body[i : i + 100_000]

            async with session.post(f"{base}/upload", data=produce()) as r:
                assert await r.json() == {"size": len(body), "sha256": hashlib.sha256(body).hexdigest()}

            async with session.get(f"{base}/stream") as r:
                lines = [line async for line in r.content]
                assert lines == [b"chunk %03d\n" % i for i in range(100)]

            async with session.ws_connect(f"{base}/ws") as ws:
                for i in range(50):
                    await ws.send_str(f"message {i}")
                    assert (await ws.receive_str()) == f"message {i}"[::-1]
                blob = os.urandom(1 << 20)
                await ws.send_bytes(blob)
                assert await ws.receive_bytes() == blob
        await runner.cleanup()

    loop.run_until_complete(asyncio.wait_for(main(), 120))
