"""evloop.fs: async files on the core's file operations, both backends (asyncio has no
counterpart, so these run on evloop only)."""

import asyncio
import os

import pytest

import evloop


def run(loop, coro):
    return loop.run_until_complete(asyncio.wait_for(coro, 60))


def test_read_and_write_whole_files(evloop_loop, tmp_path):
    path = tmp_path / "data.bin"
    payload = os.urandom(3 * 1024 * 1024 + 5)
    assert run(evloop_loop, evloop.fs.write_file(path, payload)) is None
    assert run(evloop_loop, evloop.fs.read_file(path)) == payload
    assert run(evloop_loop, evloop.fs.read_file(str(path).encode())) == payload
    run(evloop_loop, evloop.fs.write_file(path, bytearray(b"short")))  # truncates
    assert run(evloop_loop, evloop.fs.read_file(path)) == b"short"
    empty = tmp_path / "empty"
    empty.touch()
    assert run(evloop_loop, evloop.fs.read_file(empty)) == b""


def test_errors_are_the_oserror_subclasses_python_raises(evloop_loop, tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        run(evloop_loop, evloop.fs.read_file(tmp_path / "missing"))
    assert e.value.filename == str(tmp_path / "missing")
    with pytest.raises(IsADirectoryError):
        run(evloop_loop, evloop.fs.read_file(tmp_path))
    with pytest.raises(FileNotFoundError):
        run(evloop_loop, evloop.fs.write_file(tmp_path / "no" / "such" / "dir", b"x"))
    with pytest.raises(FileNotFoundError):
        run(evloop_loop, evloop.fs.stat(tmp_path / "missing"))
    with pytest.raises(TypeError):
        run(evloop_loop, evloop.fs.write_file(tmp_path / "x", "text"))
    with pytest.raises(ValueError):
        run(evloop_loop, evloop.fs.open(tmp_path / "x", "rt"))


def test_stat_matches_os_stat(evloop_loop, tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"12345")
    st = run(evloop_loop, evloop.fs.stat(path))
    ref = os.stat(path)
    assert isinstance(st, os.stat_result)
    for field in ("st_mode", "st_ino", "st_dev", "st_nlink", "st_uid", "st_gid", "st_size", "st_mtime_ns"):
        assert getattr(st, field) == getattr(ref, field), field
    assert st.st_size == 5
    assert abs(st.st_mtime - ref.st_mtime) < 1e-6


def test_read_files_in_order_and_the_first_error(evloop_loop, tmp_path):
    paths = []
    for i in range(1000):
        p = tmp_path / f"f{i}"
        p.write_bytes(b"%d" % i * (i % 50 + 1))
        paths.append(p)
    got = run(evloop_loop, evloop.fs.read_files(paths))
    assert got == [b"%d" % i * (i % 50 + 1) for i in range(1000)]
    assert run(evloop_loop, evloop.fs.read_files([])) == []
    with pytest.raises(FileNotFoundError):
        run(evloop_loop, evloop.fs.read_files(paths[:10] + [tmp_path / "missing"] + paths[10:20]))


def test_open_read_write_seek_and_async_with(evloop_loop, tmp_path):
    path = tmp_path / "file"

    async def main():
        async with await evloop.fs.open(path, "wb") as f:
            assert await f.write(b"hello ") == 6
            assert await f.write(memoryview(b"world")) == 5
            assert f.tell() == 11
        assert f.closed
        with pytest.raises(ValueError):
            await f.read()
        async with await evloop.fs.open(path, "ab") as f:
            await f.write(b"!")
        f = await evloop.fs.open(path, "r+b")
        assert await f.read(5) == b"hello"
        assert await f.read() == b" world!"
        f.seek(0)
        await f.write(b"J")
        f.seek(-1, os.SEEK_END)
        assert await f.read() == b"!"
        f.seek(0)
        assert await f.read() == b"Jello world!"
        await f.close()
        await f.close()  # twice is fine
        with pytest.raises(FileExistsError):
            await evloop.fs.open(path, "xb")
        with pytest.raises(FileNotFoundError):
            await evloop.fs.open(tmp_path / "missing", "rb")

    run(evloop_loop, main())


def test_fs_needs_an_evloop_loop():
    async def main():
        await evloop.fs.read_file("/dev/null")

    with pytest.raises(RuntimeError):
        asyncio.run(main())
