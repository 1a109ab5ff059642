"""Async file I/O on the running evloop loop, with no thread per call.

On io_uring these are native kernel operations (`read_file` of a small file is one linked
round trip: open, read, close); on epoll they run on the core's thread pool. Errors are the
`OSError` subclasses Python raises for the same errno (`FileNotFoundError`, `IsADirectoryError`,
`PermissionError`…).

    data = await evloop.fs.read_file("config.toml")
    await evloop.fs.write_file("out.bin", data)
    contents = await evloop.fs.read_files(paths)        # many files, one batch, in order
    async with await evloop.fs.open("log.txt", "a") as f:
        await f.write(b"line\\n")

Every function needs a running evloop loop (`RuntimeError` otherwise).
"""

import asyncio
import os

from . import _evloop
from ._loop import EventLoop

__all__ = ("read_file", "write_file", "stat", "read_files", "open", "AsyncFile")


def _loop():
    loop = asyncio.get_running_loop()
    if not isinstance(loop, EventLoop):
        raise RuntimeError("evloop.fs needs a running evloop loop (evloop.run, evloop.install)")
    return loop


def _bytes_like(data):
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data) if not isinstance(data, bytes) else data
    raise TypeError(f"a bytes-like object is required, not {type(data).__name__!r}")


async def read_file(path):
    """The whole contents of `path`, as bytes."""
    loop = _loop()
    fut = loop.create_future()
    _evloop.fs_read_file(loop, os.fsencode(path), fut)
    return await fut


async def write_file(path, data):
    """Creates or truncates `path` and writes all of `data` to it."""
    loop = _loop()
    fut = loop.create_future()
    _evloop.fs_write_file(loop, os.fsencode(path), _bytes_like(data), fut)
    return await fut


async def stat(path):
    """`os.stat_result` of `path` (following symbolic links)."""
    loop = _loop()
    fut = loop.create_future()
    _evloop.fs_stat(loop, os.fsencode(path), fut)
    f = await fut
    seq = (f["mode"], f["ino"], f["dev"], f["nlink"], f["uid"], f["gid"], f["size"],
           f["atime_ns"] // 10**9, f["mtime_ns"] // 10**9, f["ctime_ns"] // 10**9)
    extra = {
        "st_atime": f["atime_ns"] / 1e9, "st_mtime": f["mtime_ns"] / 1e9, "st_ctime": f["ctime_ns"] / 1e9,
        "st_atime_ns": f["atime_ns"], "st_mtime_ns": f["mtime_ns"], "st_ctime_ns": f["ctime_ns"],
        "st_blksize": f["blksize"], "st_blocks": f["blocks"], "st_rdev": f["rdev"],
    }
    return os.stat_result(seq, extra)


async def read_files(paths):
    """The contents of every file of `paths`, in order (up to 256 read at a time, submitted
    together). The first error is raised."""
    loop = _loop()
    fut = loop.create_future()
    _evloop.fs_read_files(loop, [os.fsencode(p) for p in paths], fut)
    return await fut


_MODES = {
    "r": os.O_RDONLY,
    "w": os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
    "a": os.O_WRONLY | os.O_CREAT | os.O_APPEND,
    "x": os.O_WRONLY | os.O_CREAT | os.O_EXCL,
}


async def open(path, mode="rb", perms=0o666):
    """Opens `path` (modes as the built-in `open`, binary only: r, w, a, x, with +); returns an
    `AsyncFile`, usable with `async with`."""
    m = mode.replace("b", "")
    if not m or m[0] not in _MODES or set(m[1:]) - {"+"} or "t" in mode:
        raise ValueError(f"invalid mode: {mode!r} (binary modes r, w, a, x, with +)")
    flags = _MODES[m[0]]
    if "+" in m:
        flags = (flags & ~(os.O_RDONLY | os.O_WRONLY)) | os.O_RDWR
    loop = _loop()
    fut = loop.create_future()
    _evloop.fs_open(loop, os.fsencode(path), flags, perms, fut)
    fd = await fut
    return AsyncFile(loop, fd, path, mode, append=m[0] == "a")


class AsyncFile:
    """An open file whose reads and writes are loop operations. Reads and writes go at the
    object's own position (`seek`, `tell`), as a buffered file's would; in append mode writes go
    to the end."""

    def __init__(self, loop, fd, name, mode, append=False):
        self._loop = loop
        self._fd = fd
        self._pos = 0
        self._append = append
        self.name = name
        self.mode = mode

    @property
    def closed(self):
        return self._fd < 0

    def fileno(self):
        self._check_open()
        return self._fd

    def _check_open(self):
        if self._fd < 0:
            raise ValueError("I/O operation on closed file")

    async def read(self, size=-1):
        """Up to `size` bytes from the position (all that is left if `size` < 0)."""
        self._check_open()
        if size is None or size < 0:
            chunks = []
            while True:
                chunk = await self.read(1 << 20)
                if not chunk:
                    return b"".join(chunks)
                chunks.append(chunk)
        fut = self._loop.create_future()
        _evloop.fs_read(self._loop, self._fd, size, self._pos, fut)
        data = await fut
        self._pos += len(data)
        return data

    async def write(self, data):
        """Writes all of `data` at the position (at the end in append mode); returns its length."""
        self._check_open()
        data = _bytes_like(data)
        view = memoryview(data)
        done = 0
        while done < len(data):
            fut = self._loop.create_future()
            offset = None if self._append else self._pos
            _evloop.fs_write(self._loop, self._fd, view[done:].tobytes() if done else data, offset, fut)
            n = await fut
            done += n
            self._pos += n
        return done

    def seek(self, offset, whence=os.SEEK_SET):
        """Moves the position (SEEK_SET, SEEK_CUR, or SEEK_END, which asks the size with
        fstat(2)); returns it."""
        self._check_open()
        if whence == os.SEEK_SET:
            pos = offset
        elif whence == os.SEEK_CUR:
            pos = self._pos + offset
        elif whence == os.SEEK_END:
            pos = os.fstat(self._fd).st_size + offset
        else:
            raise ValueError(f"invalid whence ({whence})")
        if pos < 0:
            raise OSError(22, "Invalid argument")
        self._pos = pos
        return pos

    def tell(self):
        self._check_open()
        return self._pos

    async def close(self):
        if self._fd < 0:
            return
        fd, self._fd = self._fd, -1
        fut = self._loop.create_future()
        _evloop.fs_close(self._loop, fd, fut)
        await fut

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.close()

    def __repr__(self):
        state = "closed" if self._fd < 0 else f"fd={self._fd}"
        return f"<evloop.fs.AsyncFile {self.name!r} mode={self.mode!r} {state}>"
