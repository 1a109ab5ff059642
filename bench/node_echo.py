#!/usr/bin/env python3
"""Node echo benchmark: the same echo server on evloop's addon (both backends) and on Node's own
`net`, driven by the project's C load generator, same run, rounds interleaved.

The server runs on CPU 0, the load on CPU 1. On two cores throughput is client-bound, so
server CPU per message (user and system) ranks the servers; ratios against Node's `net` are
the medians of per-round ratios. System calls are counted in a separate traced round.

usage: bench/node_echo.py [--sizes 64,4096] [--conns 100] [--seconds 4] [--rounds 3] [--markdown FILE]
"""
import argparse
import os
import statistics
import subprocess

import echo
from report import emit, median_ratio, perf_works

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER = os.path.join(HERE, "node", "echo_server.js")


def servers():
    """(name, impl, env) for each server this machine runs."""
    out = [("evloop-epoll", "evloop", {"EVLOOP_BACKEND": "epoll"})]
    probe = subprocess.run(["node", "-p", "require('./bindings/node').backend"], cwd=os.path.dirname(HERE),
                           env={**os.environ, "EVLOOP_BACKEND": "uring"}, capture_output=True, text=True)
    if probe.stdout.strip() == "uring":
        out.insert(0, ("evloop-uring", "evloop", {"EVLOOP_BACKEND": "uring"}))
    out.append(("node net", "net", {}))
    return out


def echo_servers():
    """servers() plus evloop's sockets through the stream.Duplex wrapper (on the first backend:
    what the wrapper costs is JavaScript, the same on both)."""
    out = servers()
    name, _, env = out[0]
    return out[:-1] + [(f"{name} as stream.Duplex", "duplex", env), out[-1]]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="64,4096")
    ap.add_argument("--conns", type=int, default=100)
    ap.add_argument("--seconds", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--port", type=int, default=8600)
    ap.add_argument("--markdown")
    args = ap.parse_args()
    use_perf = perf_works()
    version = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    table = [(f"{name}, {size} B", impl, env, int(size)) for size in args.sizes.split(",")
             for name, impl, env in echo_servers()]
    port = args.port

    def run(entry, traced):
        nonlocal port
        name, impl, env, size = entry
        port += 1
        args.size = size
        return echo.one_run(name, ["node", SERVER, str(port), impl], env, port, args, traced)

    results = echo.interleaved_rounds(table, run, args.rounds, use_perf)

    def med(name, key):
        vals = [x[key] for x in results[name] if x[key] is not None]
        return statistics.median(vals) if vals else None

    def paired(name, key):
        ref = f"node net, {name.split(', ')[1]}"
        if name == ref:
            return "–"
        return median_ratio(results[name], results[ref], key)

    lines = [f"Echo ping-pong, {args.conns} connections, {args.seconds} s per run, median of {args.rounds} rounds; "
             f"Node {version}; server on CPU 0, C load generator on CPU 1.", "",
             "| server, message | msg/s | CPU µs/msg | user µs/msg | syscalls/msg | p99 µs | CPU/msg vs net "
             "| user/msg vs net |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, _, _, _ in table:
        sc = med(name, "sys_per_msg")
        lines.append(f"| {name} | {med(name, 'rate'):.0f} | {med(name, 'cpu_us'):.2f} | {med(name, 'user_us'):.3f} | "
                     f"{'n/a' if sc is None else f'{sc:.2f}'} | {med(name, 'p99'):.0f} | {paired(name, 'cpu_us')} | "
                     f"{paired(name, 'user_us')} |")
    emit(lines, args.markdown)


if __name__ == "__main__":
    main()
