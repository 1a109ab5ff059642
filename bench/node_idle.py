#!/usr/bin/env python3
"""Node idle-connection memory: server RSS growth from 1,000 to 10,000 idle, reading
connections, for the echo server on evloop's addon (both backends) and on Node's `net`, each
server in its own process, the idle clients in the load generator's processes.

usage: bench/node_idle.py [--rounds 3] [--markdown FILE]
"""
import argparse
import os
import statistics
import subprocess

import echo
from idle import settle
from node_echo import SERVER, servers
from report import emit


def measure(impl, env, port):
    proc = subprocess.Popen(["node", SERVER, str(port), impl], env={**os.environ, **env}, stdout=subprocess.DEVNULL)
    idlers = []
    try:
        echo.wait_port(port, proc)
        idlers += echo.open_idle(port, 1000)
        low = settle(proc.pid)
        idlers += echo.open_idle(port, 9000)
        high = settle(proc.pid)
    finally:
        for p in idlers:
            p.stdin.close()
            p.wait(timeout=30)
        proc.terminate()
        proc.wait(timeout=30)
    return (high - low) / 9000


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--port", type=int, default=8900)
    ap.add_argument("--markdown")
    args = ap.parse_args()
    res = {}
    port = args.port
    for _ in range(args.rounds):
        for name, impl, env in servers():
            port += 1
            res.setdefault(name, []).append(measure(impl, env, port))
    med = {k: statistics.median(v) for k, v in res.items()}
    ref = med.get("node net")
    version = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    lines = [f"Server RSS growth per idle, reading connection, from 1,000 to 10,000 connections; "
             f"median of {args.rounds} rounds (min–max), Node {version}.", "",
             "| server | bytes per idle connection | min–max | vs net |", "|---|---:|---:|---:|"]
    for k, m in med.items():
        ratio = f"{m / ref:.2f}×" if ref and k != "node net" else "–"
        lines.append(f"| {k} | {m:,.0f} | {min(res[k]):,.0f}–{max(res[k]):,.0f} | {ratio} |")
    emit(lines, args.markdown)


if __name__ == "__main__":
    main()
