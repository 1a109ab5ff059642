#!/usr/bin/env python3
"""Python fd-watcher benchmark: the price of `loop.add_reader` readiness and dispatch, which
code with its own transports (aio-libs' aiofastnet, database drivers) runs on.

100 socket pairs, a reader callback on each end (`add_reader`), one byte bouncing in each pair
(each callback reads it with `sock.recv` and sends it back with `sock.send`), for --seconds, on
evloop (each backend), uvloop (libuv's uv_poll) and asyncio's loop, each in a fresh process,
rounds interleaved. Reports callbacks per second and CPU per callback (user and system), and the
median of per-round ratios against uvloop.

usage: bench/python_poll.py [--rounds 5] [--seconds 2] [--pairs 100] [--markdown FILE]
"""
import argparse
import os
import statistics
import subprocess
import sys

from report import emit, median_ratio, python_loops

HERE = os.path.dirname(os.path.abspath(__file__))

CHILD = r"""
import asyncio, os, socket, sys, time
sys.path.insert(0, os.path.join(sys.argv[1], "python"))
import loops

async def main(seconds, pairs):
    loop = asyncio.get_running_loop()
    count = 0
    socks = []
    def bounce(sock):
        nonlocal count
        if sock.recv(16):
            count += 1
            sock.send(b"x")
    for _ in range(pairs):
        a, b = socket.socketpair()
        for s in (a, b):
            s.setblocking(False)
            loop.add_reader(s.fileno(), bounce, s)
            socks.append(s)
        a.send(b"x")
    t0, c0 = time.monotonic(), os.times()
    await asyncio.sleep(seconds)
    t1, c1 = time.monotonic(), os.times()
    n = count
    for s in socks:
        loop.remove_reader(s.fileno())
        s.close()
    print(n / (t1 - t0), (c1.user - c0.user) * 1e6 / n, (c1.system - c0.system) * 1e6 / n)

loops.run(sys.argv[2], main(float(sys.argv[3]), int(sys.argv[4])))
"""


def run(kind, seconds, pairs):
    out = subprocess.run(["taskset", "-c", "0", sys.executable, "-c", CHILD, HERE, kind, str(seconds), str(pairs)],
                         capture_output=True, text=True, check=True, timeout=seconds + 60).stdout.split()
    rate, user, system = map(float, out)
    return {"rate": rate, "user_us": user, "sys_us": system, "cpu_us": user + system}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=2)
    ap.add_argument("--pairs", type=int, default=100)
    ap.add_argument("--markdown")
    args = ap.parse_args()
    kinds = [k for k in python_loops() if k != "rloop"]
    results = {}
    for r in range(args.rounds):
        for kind in kinds:
            res = run(kind, args.seconds, args.pairs)
            results.setdefault(kind, []).append(res)
            print(f"round {r + 1} {kind}: {res['rate']:.0f} callbacks/s, {res['cpu_us']:.2f} µs CPU each "
                  f"({res['user_us']:.2f} user)", flush=True)
    lines = [f"`loop.add_reader` ping-pong: {args.pairs} socket pairs, one byte bouncing in each, a reader callback "
             f"per end (recv, then send back); {args.seconds:g} s per run, one process per run on CPU 0, median of "
             f"{args.rounds} rounds, rounds interleaved; Python {sys.version.split()[0]}. Ratios: medians of per-round "
             "ratios against uvloop (libuv's uv_poll).", "",
             "| loop | callbacks/s | CPU µs each | user µs | system µs | CPU vs uvloop | user vs uvloop |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    ref = results.get("uvloop")
    for kind in kinds:
        runs = results[kind]
        med = {k: statistics.median(x[k] for x in runs) for k in ("rate", "cpu_us", "user_us", "sys_us")}
        vs = median_ratio(runs, ref, "cpu_us") if ref and kind != "uvloop" else "–"
        vs_user = median_ratio(runs, ref, "user_us") if ref and kind != "uvloop" else "–"
        lines.append(f"| {kind} | {med['rate']:.0f} | {med['cpu_us']:.2f} | {med['user_us']:.2f} | "
                     f"{med['sys_us']:.2f} | {vs} | {vs_user} |")
    emit(lines, args.markdown)


if __name__ == "__main__":
    main()
