#!/usr/bin/env python3
"""Python idle-connection memory: server RSS growth from 1,000 to 10,000 idle, reading
connections (asyncio Protocol servers: evloop on both backends, uvloop, rloop, asyncio), each server in
its own process, the idle clients in the load generator's processes.

usage: bench/python_idle.py [--rounds 3] [--markdown FILE]
"""
import argparse
import os
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
    lines = idle.table(res, "uvloop", f"Server RSS growth per idle, reading Protocol connection, from 1,000 to "
                       f"10,000 connections; median of {args.rounds} rounds (min–max), Python {sys.version.split()[0]}.")
    emit(lines, args.markdown)


if __name__ == "__main__":
    main()
