"""Runs a coroutine on one of the loops the Python benchmarks compare, by name:
evloop-uring | evloop-epoll | uvloop | rloop | asyncio."""
import asyncio


def run(kind, coro):
    if kind.startswith("evloop"):
        import evloop

        return evloop.run(coro, backend=kind.split("-")[1])
    if kind == "uvloop":
        import uvloop

        return uvloop.run(coro)
    if kind == "rloop":
        import rloop

        with asyncio.Runner(loop_factory=rloop.new_event_loop) as runner:
            return runner.run(coro)
    return asyncio.run(coro)
