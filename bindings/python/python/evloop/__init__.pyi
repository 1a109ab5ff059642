import asyncio
from collections.abc import Coroutine
from typing import Any, Literal, Optional, TypeVar

from . import fs as fs
from ._evloop import __version__ as __version__

_T = TypeVar("_T")

class EventLoop(asyncio.AbstractEventLoop):
    def __init__(self, *, backend: Optional[Literal["uring", "epoll", "auto"]] = ...) -> None: ...
    @property
    def backend(self) -> Literal["uring", "epoll"]: ...

Loop = EventLoop

class EventLoopPolicy(asyncio.AbstractEventLoopPolicy):
    def new_event_loop(self) -> EventLoop: ...

def new_event_loop(*, backend: Optional[Literal["uring", "epoll", "auto"]] = ...) -> EventLoop: ...
def install() -> None: ...
def run(
    main: Coroutine[Any, Any, _T],
    *,
    debug: Optional[bool] = ...,
    backend: Optional[Literal["uring", "epoll", "auto"]] = ...,
) -> _T: ...
