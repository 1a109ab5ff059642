"""CPython's own asyncio tests (Lib/test/test_asyncio) on evloop's loop, on each backend.

CPython builds its per-loop suites from mixins over a loop-making method
(`create_event_loop`, or `new_loop` for the functional ones); here that method makes an evloop
loop. Skips are listed in SKIPS with the reason for each.
"""

import asyncio
import sys
import unittest

import evloop
from test.test_asyncio import test_events, test_sendfile, test_server, test_sock_lowlevel
from test.test_asyncio import test_ssl, test_sslproto, test_subprocess
from test.test_asyncio import utils as test_utils

from conftest import BACKENDS

# Tests that look at selector internals rather than behaviour: "Class.test" -> reason.
SKIPS = {
    "Sendfile.test_sendfile_prevents_bare_write": (
        "checks that a write fails while sendfile(2) runs; evloop's stream transports send files "
        "through asyncio's read-and-write fallback, during which asyncio allows writes"
    ),
}


class _Subprocess(test_subprocess.SubprocessMixin):
    # asyncio's SubprocessWatcherMixin without the watcher: evloop watches a pidfd per child.
    def setUp(self):
        super().setUp()
        self.loop = self.create_event_loop()
        self.set_event_loop(self.loop)


MIXINS = {
    "Events": (test_events.EventLoopTestsMixin, test_events.SubprocessTestsMixin, test_utils.TestCase),
    "SockLowlevel": (test_sock_lowlevel.BaseSockTestsMixin, test_utils.TestCase),
    "Sendfile": (test_sendfile.SendfileTestsBase, test_utils.TestCase),
    "Subprocess": (_Subprocess, test_utils.TestCase),
    "StartTLS": (test_sslproto.BaseStartTLS, unittest.TestCase),
    "StartServer": (test_server.BaseStartServer, unittest.TestCase),
    "SSL": (test_ssl.TestSSL,),
}


def _make_case(prefix, bases, backend):
    def make_loop(self):
        return evloop.EventLoop(backend=backend)

    name = f"CPython{prefix}_{backend}"
    case = type(name, bases, {"create_event_loop": make_loop, "new_loop": make_loop, "__qualname__": name})
    for key, reason in SKIPS.items():
        cls_name, test = key.split(".")
        if cls_name == prefix and hasattr(case, test):
            setattr(case, test, unittest.skip(reason)(getattr(case, test)))
    return case


for _prefix, _bases in MIXINS.items():
    for _backend in BACKENDS:
        _case = _make_case(_prefix, _bases, _backend)
        globals()[_case.__name__] = _case
del _prefix, _bases, _backend, _case
