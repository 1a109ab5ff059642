#!/usr/bin/env python3
"""Python echo benchmark: asyncio echo servers on evloop (both backends), uvloop, rloop and stock
asyncio, driven by the project's C load generator, same run, rounds interleaved.

The server runs on CPU 0, the load on CPU 1. On two cores throughput is client-bound, so
server CPU per message (user and system) ranks the servers; ratios against uvloop are the
medians of per-round ratios. System calls are counted in a separate traced round.

Two parts:
- the goal cell (--conns × --size, default 100 × 64 B) with --rounds rounds of --seconds;
- with --matrix, every other cell of 1 and 100 connections × 64 B, 1 KiB, 10 KiB, 100 KiB,
  shorter (--matrix-rounds of --matrix-seconds), in a table of ratios and one of raw figures.

usage: bench/python_echo.py [--modes protocol,buffered,streams] [--conns 100] [--size 64]
                            [--seconds 4] [--rounds 3] [--matrix] [--matrix-seconds 2]
                            [--matrix-rounds 1] [--markdown FILE]
"""
import argparse
import os
import statistics
import sys

import echo
from report import emit, median_ratio, perf_works, python_loops

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER = os.path.join(HERE, "python", "echo_server.py")
MATRIX_CONNS = (1, 100)
MATRIX_SIZES = (64, 1024, 10 * 1024, 100 * 1024)


def size_label(size):
    return f"{size // 1024} KiB" if size >= 1024 else f"{size} B"


class Cells:
    """Runs echo cells and keeps their results: {(conns, size): {server name: [result...]}}."""

    def __init__(self, modes, port):
        self.loops = python_loops()
        self.modes = modes
        self.port = port
        self.use_perf = perf_works()
        self.results = {}

    def names(self):
        return [f"{lp}, {mode}" for mode in self.modes for lp in self.loops]

    def run_cell(self, conns, size, rounds, seconds, count_syscalls=True):
        table = [(f"{lp}, {mode}", lp, mode) for mode in self.modes for lp in self.loops]
        args = argparse.Namespace(conns=conns, size=size, seconds=seconds)
        print(f"== {conns} connections × {size_label(size)}", flush=True)

        def run(entry, traced):
            name, lp, mode = entry
            self.port += 1
            cmd = [sys.executable, SERVER, str(self.port), lp, mode]
            return echo.one_run(name, cmd, {}, self.port, args, traced)

        self.results[(conns, size)] = echo.interleaved_rounds(table, run, rounds, self.use_perf and count_syscalls)

    def med(self, cell, name, key):
        vals = [x[key] for x in self.results[cell][name] if x[key] is not None]
        return statistics.median(vals) if vals else None

    def vs_uvloop(self, cell, name, key):
        ref = f"uvloop, {name.split(', ')[1]}"
        runs = self.results[cell]
        if ref not in runs or name == ref:
            return "–"
        return median_ratio(runs[name], runs[ref], key)

    def row(self, cell, name, with_cell=False):
        sc = self.med(cell, name, "sys_per_msg")
        cpu, user = self.med(cell, name, "cpu_us"), self.med(cell, name, "user_us")
        first = f"| {cell[0]} × {size_label(cell[1])} | {name} |" if with_cell else f"| {name} |"
        return (f"{first} {self.med(cell, name, 'rate'):.0f} | {cpu:.2f} | {user:.3f} | {cpu - user:.2f} | "
                f"{'n/a' if sc is None else f'{sc:.2f}'} | {self.med(cell, name, 'p99'):.0f} | "
                f"{self.vs_uvloop(cell, name, 'cpu_us')} | {self.vs_uvloop(cell, name, 'user_us')} |")


HEADER = ("server | msg/s | CPU µs/msg | user µs/msg | system µs/msg | syscalls/msg | p99 µs | CPU/msg vs uvloop "
          "| user/msg vs uvloop |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--modes", default="protocol,buffered,streams")
    ap.add_argument("--conns", type=int, default=100)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--seconds", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--matrix", action="store_true")
    ap.add_argument("--matrix-seconds", type=int, default=2)
    ap.add_argument("--matrix-rounds", type=int, default=1)
    ap.add_argument("--port", type=int, default=7600)
    ap.add_argument("--markdown")
    args = ap.parse_args()
    cells = Cells(args.modes.split(","), args.port)
    goal = (args.conns, args.size)
    cells.run_cell(*goal, args.rounds, args.seconds)
    lines = [f"Echo ping-pong, {args.conns} connections × {size_label(args.size)}, {args.seconds} s per run, median "
             f"of {args.rounds} rounds; Python {sys.version.split()[0]}; server on CPU 0, C load generator on CPU 1.",
             "", "| " + HEADER, "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [cells.row(goal, name) for name in cells.names()]
    if args.matrix:
        others = [(c, s) for c in MATRIX_CONNS for s in MATRIX_SIZES if (c, s) != goal]
        for cell in others:
            # No traced round here: it would double the matrix's time (syscalls/msg: n/a).
            cells.run_cell(*cell, args.matrix_rounds, args.matrix_seconds, count_syscalls=False)
        order = sorted(cells.results)
        lines += ["", f"Every size, {args.matrix_seconds} s per run, {args.matrix_rounds} round(s) per cell except "
                  f"{args.conns} × {size_label(args.size)} (above): server CPU per message against uvloop's, same "
                  "run.", "",
                  "| server | " + " | ".join(f"{c} × {size_label(s)}" for c, s in order) + " |",
                  "|---|" + "---:|" * len(order)]
        for name in cells.names():
            if name.startswith("uvloop"):
                continue
            lines.append(f"| {name} | " + " | ".join(cells.vs_uvloop(cell, name, "cpu_us") for cell in order) + " |")
        lines += ["", "The same cells, raw medians:", "", "| cell | " + HEADER,
                  "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for cell in order:
            lines += [cells.row(cell, name, with_cell=True) for name in cells.names()]
    emit(lines, args.markdown)


if __name__ == "__main__":
    main()
