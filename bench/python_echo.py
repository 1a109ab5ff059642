#!/usr/bin/env python3
"""Python echo benchmark: asyncio echo servers on evloop (both backends), uvloop and stock
asyncio, driven by the project's C load generator, same run, rounds interleaved.

The server runs on CPU 0, the load on CPU 1. On two cores throughput is client-bound, so
server CPU per message (user and system) ranks the servers; ratios against uvloop are the
medians of per-round ratios. System calls are counted in a separate traced round.

usage: bench/python_echo.py [--modes protocol,buffered,streams] [--conns 100] [--size 64]
                            [--seconds 4] [--rounds 3] [--markdown FILE]
"""
import argparse
import os
import statistics
import sys

import echo
from report import emit, median_ratio, perf_works, python_loops

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER = os.path.join(HERE, "python", "echo_server.py")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--modes", default="protocol,buffered,streams")
    ap.add_argument("--conns", type=int, default=100)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--seconds", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--port", type=int, default=7600)
    ap.add_argument("--markdown")
    args = ap.parse_args()
    loops = python_loops()
    use_perf = perf_works()
    table = [(f"{lp}, {mode}", lp, mode) for mode in args.modes.split(",") for lp in loops]
    port = args.port

    def run(entry, traced):
        nonlocal port
        name, lp, mode = entry
        port += 1
        return echo.one_run(name, [sys.executable, SERVER, str(port), lp, mode], {}, port, args, traced)

    results = echo.interleaved_rounds(table, run, args.rounds, use_perf)

    def med(name, key):
        vals = [x[key] for x in results[name] if x[key] is not None]
        return statistics.median(vals) if vals else None

    def paired(name, key):
        lp_mode = name.split(", ")[1]
        ref = f"uvloop, {lp_mode}"
        if ref not in results or name == ref:
            return "–"
        return median_ratio(results[name], results[ref], key)

    lines = [f"Echo ping-pong, {args.conns} connections × {args.size} B, {args.seconds} s per run, median of "
             f"{args.rounds} rounds; Python {sys.version.split()[0]}; server on CPU 0, C load generator on CPU 1.", "",
             "| server | msg/s | CPU µs/msg | user µs/msg | syscalls/msg | p99 µs | CPU/msg vs uvloop "
             "| user/msg vs uvloop |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, _, _ in table:
        sc = med(name, "sys_per_msg")
        lines.append(f"| {name} | {med(name, 'rate'):.0f} | {med(name, 'cpu_us'):.2f} | {med(name, 'user_us'):.3f} | "
                     f"{'n/a' if sc is None else f'{sc:.2f}'} | {med(name, 'p99'):.0f} | {paired(name, 'cpu_us')} | "
                     f"{paired(name, 'user_us')} |")
    emit(lines, args.markdown)


if __name__ == "__main__":
    main()
