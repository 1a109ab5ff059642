"""A pytest plugin for running other projects' suites on evloop (tests/python/frameworks/run.py
loads it with `-p evloop_install`): with EVLOOP_FRAMEWORK_LOOP=evloop-uring or evloop-epoll it
calls `evloop.install()` before any test runs, which is how a program selects evloop (as
`uvloop.install()` selects uvloop): every loop asyncio makes from then on (`asyncio.run`,
`asyncio.new_event_loop`, `IsolatedAsyncioTestCase`, pytest plugins) is evloop's. With
EVLOOP_FRAMEWORK_LOOP=asyncio it does nothing, and the same suite runs on asyncio's own loop.

At the end each process (pytest-xdist workers too) appends how many loops of each kind it made
to the file EVLOOP_FRAMEWORK_COUNTS names, which run.py sums, so a suite that made its loops
some other way cannot pass for evloop's."""

import asyncio
import os

_made = {"evloop": 0, "other": 0}
_kind = os.environ.get("EVLOOP_FRAMEWORK_LOOP", "asyncio")


def pytest_configure(config):
    if _kind != "asyncio":
        backend = _kind.removeprefix("evloop-")
        os.environ["EVLOOP_BACKEND"] = backend
        import evloop

        evloop.install()
        probe = asyncio.new_event_loop()
        assert isinstance(probe, evloop.EventLoop) and probe.backend == backend, (type(probe), backend)
        probe.close()
    _count_loops()


def _count_loops():
    # Every loop asyncio's machinery makes starts with BaseEventLoop.__init__ (evloop's
    # EventLoop is one too); count which kind each is.
    original = asyncio.BaseEventLoop.__init__

    def counting_init(self, *args, **kwargs):
        _made["evloop" if type(self).__module__.startswith("evloop") else "other"] += 1
        original(self, *args, **kwargs)

    asyncio.BaseEventLoop.__init__ = counting_init


def pytest_unconfigure(config):
    path = os.environ.get("EVLOOP_FRAMEWORK_COUNTS")
    if path:
        with open(path, "a") as f:
            f.write(f"{_made['evloop']} {_made['other']}\n")
