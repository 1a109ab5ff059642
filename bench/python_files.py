#!/usr/bin/env python3
"""Python file benchmark: evloop.fs.read_files against asyncio.to_thread(Path.read_bytes) and
aiofiles, 10,000 files of 4 KiB, at most 256 in flight, same run, rounds interleaved, each in a
fresh interpreter (page cache warm: every round reads the same files).

usage: bench/python_files.py [--rounds 5] [--markdown FILE]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

from report import emit

FILES = 10_000
SIZE = 4096

CHILD = r"""
import asyncio, json, pathlib, sys, time
kind, listing = sys.argv[1], sys.argv[2]
paths = open(listing).read().split("\n")

async def with_evloop():
    import evloop
    return await evloop.fs.read_files(paths)

async def with_threads():
    sem = asyncio.Semaphore(256)
    async def one(p):
        async with sem:
            return await asyncio.to_thread(pathlib.Path(p).read_bytes)
    return await asyncio.gather(*(one(p) for p in paths))

async def with_aiofiles():
    import aiofiles
    sem = asyncio.Semaphore(256)
    async def one(p):
        async with sem:
            async with aiofiles.open(p, "rb") as f:
                return await f.read()
    return await asyncio.gather(*(one(p) for p in paths))

if kind.startswith("evloop"):
    import evloop
    loop, fn = evloop.EventLoop(backend=kind.split("-")[1]), with_evloop
else:
    loop, fn = asyncio.new_event_loop(), {"to_thread": with_threads, "aiofiles": with_aiofiles}[kind]
t = time.perf_counter()
out = loop.run_until_complete(fn())
dt = time.perf_counter() - t
assert len(out) == len(paths) and all(len(x) == %d for x in out)
loop.close()
print(json.dumps({"files_per_s": len(paths) / dt}))
""" % SIZE


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--markdown")
    args = ap.parse_args()
    kinds = ["evloop-uring", "evloop-epoll", "to_thread"]
    try:
        import aiofiles  # noqa: F401
        kinds.append("aiofiles")
    except ImportError:
        pass
    with tempfile.TemporaryDirectory() as d:
        paths = []
        for i in range(FILES):
            p = os.path.join(d, f"f{i}")
            with open(p, "wb") as f:
                f.write(os.urandom(SIZE))
            paths.append(p)
        listing = os.path.join(d, "list")
        with open(listing, "w") as f:
            f.write("\n".join(paths))
        res = {}
        for _ in range(args.rounds):
            for k in kinds:
                out = subprocess.run([sys.executable, "-c", CHILD, k, listing], capture_output=True, text=True,
                                     check=True, timeout=600).stdout
                res.setdefault(k, []).append(json.loads(out.strip().splitlines()[-1])["files_per_s"])
    med = {k: statistics.median(v) for k, v in res.items()}
    base = med["to_thread"]
    lines = [f"{FILES:,} files of {SIZE} B, at most 256 in flight, page cache warm; median of {args.rounds} "
             "rounds (min–max), each in a fresh interpreter.", "",
             "| reader | files/s | min–max | vs asyncio.to_thread |", "|---|---:|---:|---:|"]
    for k, m in med.items():
        lines.append(f"| {k} | {m:,.0f} | {min(res[k]):,.0f}–{max(res[k]):,.0f} | {m / base:.1f}× |")
    emit(lines, args.markdown)


if __name__ == "__main__":
    main()
