#!/usr/bin/env python3
"""Python scheduling benchmark: evloop's loop against uvloop, rloop and asyncio, same run.

Each measurement runs in a fresh interpreter per loop, rounds interleaved, medians reported:
- call_soon: 1,000,000 callbacks queued, then run (ns per callback, queue + run);
- call_later + cancel: 1,000,000 timers (1-100 s) started, then all cancelled in random order
  (ns per timer, start + cancel);
- the random-order floor: the same random walk over the handles calling `cancelled()`, which
  every loop's handle answers from a flag: what the walk costs before any loop does any work;
- bytes per pending timer: RSS growth with 1,000,000 pending timers, and what is left after
  they are cancelled and one iteration runs (a cancelled timer's memory should go at once).

usage: bench/python_scheduling.py [--rounds 3] [--markdown FILE]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

from report import emit, python_loops

N = 1_000_000

CHILD = r"""
import asyncio, gc, json, random, sys, time
kind = sys.argv[1]
if kind == "asyncio":
    loop = asyncio.new_event_loop()
elif kind == "uvloop":
    import uvloop
    loop = uvloop.new_event_loop()
elif kind == "rloop":
    import rloop
    loop = rloop.new_event_loop()
else:
    import evloop
    loop = evloop.EventLoop(backend=kind.split("-")[1])
N = int(sys.argv[2])

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096

def cb():
    pass

def run_once():
    loop.call_soon(loop.stop)
    loop.run_forever()

run_once()
gc.collect()
gc.disable()
t = time.perf_counter()
for _ in range(N):
    loop.call_soon(cb)
run_once()
soon_ns = (time.perf_counter() - t) / N * 1e9

rng = random.Random(1)
delays = [rng.uniform(1, 100) for _ in range(N)]
order = list(range(N))
rng.shuffle(order)
run_once()
base = rss()
t = time.perf_counter()
handles = [loop.call_later(d, cb) for d in delays]
start_ns = (time.perf_counter() - t) / N * 1e9
pending = rss()
# What reaching each handle in random order costs by itself (cache misses, the Python loop and
# a method call), whatever the loop: the floor under the cancel figure.
t = time.perf_counter()
for i in order:
    handles[i].cancelled()
floor_ns = (time.perf_counter() - t) / N * 1e9
t = time.perf_counter()
for i in order:
    handles[i].cancel()
cancel_ns = (time.perf_counter() - t) / N * 1e9
del handles
run_once()
after = rss()
print(json.dumps({"soon_ns": soon_ns, "start_ns": start_ns, "cancel_ns": cancel_ns, "floor_ns": floor_ns,
                  "bytes_per_timer": (pending - base) / N, "bytes_left_per_timer": (after - base) / N}))
loop.close()
"""


def measure(kind):
    out = subprocess.run([sys.executable, "-c", CHILD, kind, str(N)], capture_output=True, text=True,
                         check=True, timeout=600).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--markdown")
    args = ap.parse_args()
    kinds = python_loops()
    res = {}
    for _ in range(args.rounds):
        for k in kinds:
            res.setdefault(k, []).append(measure(k))
    keys = ["soon_ns", "start_ns", "cancel_ns", "floor_ns", "bytes_per_timer", "bytes_left_per_timer"]
    med = {k: {key: statistics.median(r[key] for r in rs) for key in keys} for k, rs in res.items()}
    uv = med.get("uvloop")
    lines = [f"1,000,000 callbacks / timers, Python {sys.version.split()[0]}; median of {args.rounds} runs, "
             "each loop in a fresh interpreter, rounds interleaved.", "",
             "| loop | call_soon + run, ns | vs uvloop | call_later ns | cancel ns (random order) | "
             "call_later + cancel vs uvloop | random-order floor ns | cancel above the floor ns | "
             "bytes per pending timer | bytes left after cancelling |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for k, m in med.items():
        soon_ratio = later_ratio = "–"
        if uv and k != "uvloop":
            soon_ratio = f"{uv['soon_ns'] / m['soon_ns']:.1f}× faster"
            later_ratio = f"{(uv['start_ns'] + uv['cancel_ns']) / (m['start_ns'] + m['cancel_ns']):.1f}× faster"
        lines.append(f"| {k} | {m['soon_ns']:.0f} | {soon_ratio} | {m['start_ns']:.0f} | {m['cancel_ns']:.0f} | "
                     f"{later_ratio} | {m['floor_ns']:.0f} | {m['cancel_ns'] - m['floor_ns']:.0f} | {m['bytes_per_timer']:.0f} | {m['bytes_left_per_timer']:.0f} |")
    emit(lines, args.markdown)


if __name__ == "__main__":
    main()
