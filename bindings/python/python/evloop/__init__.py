"""evloop: an asyncio event loop on io_uring (or epoll), with its core in Rust.

    import asyncio, evloop
    evloop.run(main())                                        # like asyncio.run
    asyncio.run(main(), loop_factory=evloop.new_event_loop)   # Python 3.12+
    evloop.install()                                          # asyncio's policy makes evloop loops
"""

from ._evloop import __version__
from ._loop import EventLoop, EventLoopPolicy, install, new_event_loop, run
from . import fs

Loop = EventLoop

__all__ = ("EventLoop", "EventLoopPolicy", "Loop", "fs", "install", "new_event_loop", "run", "__version__")
