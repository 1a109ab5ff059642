"""Shared fixtures: every test that touches a loop runs on asyncio's own loop (the oracle) and
on evloop's, each backend."""

import asyncio
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import evloop  # noqa: E402

BACKENDS = ("uring", "epoll")


def _loop_factories():
    yield "asyncio", asyncio.new_event_loop
    for b in BACKENDS:
        yield f"evloop-{b}", (lambda b=b: evloop.EventLoop(backend=b))


LOOP_KINDS = list(_loop_factories())


@pytest.fixture(params=[f for _, f in LOOP_KINDS], ids=[n for n, _ in LOOP_KINDS])
def loop(request):
    lp = request.param()
    asyncio.set_event_loop(lp)
    yield lp
    if not lp.is_closed():
        lp.run_until_complete(lp.shutdown_asyncgens())
        lp.close()
    asyncio.set_event_loop(None)


@pytest.fixture(params=BACKENDS)
def evloop_loop(request):
    """evloop only (for evloop's own API: backend, fs)."""
    lp = evloop.EventLoop(backend=request.param)
    asyncio.set_event_loop(lp)
    yield lp
    if not lp.is_closed():
        lp.close()
    asyncio.set_event_loop(None)
