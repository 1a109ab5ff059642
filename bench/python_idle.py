#!/usr/bin/env python3
"""Python idle-connection memory: server RSS growth from 1,000 to 10,000 idle, reading
connections (asyncio Protocol servers: evloop on both backends, uvloop, rloop, asyncio), each server in
its own process, the idle clients in the load generator's processes.

usage: bench/python_idle.py [--rounds 3] [--markdown FILE]
"""
import argparse
import os
import statistics
import sys

import idle
from report import emit, python_loops

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER = os.path.join(HERE, "python", "echo_server.py")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--port", type=int, default=7900)
    ap.add_argument("--markdown")
    args = ap.parse_args()
    res = {}
    port = args.port
    for _ in range(args.rounds):
        for kind in python_loops():
            port += 1
            cmd = [sys.executable, SERVER, str(port), kind, "protocol"]
            res.setdefault(kind, []).append(idle.measure(kind, cmd, {}, port, 1000, 10000))
    med = {k: statistics.median(v) for k, v in res.items()}
    uv = med.get("uvloop")
    lines = [f"Server RSS growth per idle, reading Protocol connection, from 1,000 to 10,000 connections; "
             f"median of {args.rounds} rounds (min–max), Python {sys.version.split()[0]}.", "",
             "| server | bytes per idle connection | min–max | vs uvloop |", "|---|---:|---:|---:|"]
    for k, m in med.items():
        ratio = f"{m / uv:.2f}×" if uv and k != "uvloop" else "–"
        lines.append(f"| {k} | {m:,.0f} | {min(res[k]):,.0f}–{max(res[k]):,.0f} | {ratio} |")
    emit(lines, args.markdown)


if __name__ == "__main__":
    main()
