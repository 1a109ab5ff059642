"""What an installed evloop (a wheel, an sdist build or a source install) promises wherever it
lands: its version is the release's, and on a kernel that refuses io_uring it runs on epoll."""

import importlib.metadata
import pathlib
import re
import subprocess
import sys
import textwrap

import evloop


def test_version_is_the_workspaces():
    cargo = (pathlib.Path(__file__).parents[2] / "Cargo.toml").read_text()
    workspace = re.search(r'^version = "(.*)"$', cargo, re.M).group(1)
    assert evloop.__version__ == workspace
    assert importlib.metadata.version("evloop") == workspace


# A child process refuses io_uring_setup with ENOSYS, as a kernel without io_uring (or a
# container's seccomp profile) does, before it makes its first loop.
REFUSE_IO_URING = textwrap.dedent(
    """
    import ctypes, struct
    libc = ctypes.CDLL(None, use_errno=True)
    AUDIT_ARCH_X86_64, NR_IO_URING_SETUP, ENOSYS = 0xC000003E, 425, 38
    LD_W_ABS, JEQ_K, RET_K = 0x20, 0x15, 0x06
    ALLOW, ERRNO = 0x7FFF0000, 0x00050000
    program = [
        (LD_W_ABS, 0, 0, 4), (JEQ_K, 1, 0, AUDIT_ARCH_X86_64), (RET_K, 0, 0, ALLOW),
        (LD_W_ABS, 0, 0, 0), (JEQ_K, 0, 1, NR_IO_URING_SETUP),
        (RET_K, 0, 0, ERRNO | ENOSYS), (RET_K, 0, 0, ALLOW),
    ]
    filters = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *f) for f in program))
    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
    prog = SockFprog(len(program), ctypes.addressof(filters))
    PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2
    assert libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0
    assert libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) == 0, ctypes.get_errno()
    """
)

ON_THE_REFUSING_KERNEL = textwrap.dedent(
    """
    import asyncio, os
    os.environ.pop("EVLOOP_BACKEND", None)
    import evloop

    async def echo_once():
        loop = asyncio.get_running_loop()
        server = await asyncio.start_server(
            lambda r, w: (w.write(b"pong"), w.close()), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        data = await reader.read()
        writer.close()
        server.close()
        return loop.backend, data

    loop = evloop.EventLoop()
    print(loop.run_until_complete(echo_once()))
    loop.close()
    try:
        evloop.EventLoop(backend="uring")
    except OSError as e:
        print("uring refused:", e.errno)
    """
)


def test_falls_back_to_epoll_where_io_uring_is_refused():
    out = subprocess.run(
        [sys.executable, "-c", REFUSE_IO_URING + ON_THE_REFUSING_KERNEL],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "('epoll', b'pong')"
    assert lines[1] == "uring refused: 38"

