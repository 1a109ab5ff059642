#!/usr/bin/env python3
"""io_uring's receive buffers, A/B: the echo matrix (1, 100, 1,000 connections × 64 B, 4 KiB,
64 KiB) on evloop's Rust echo server with epoll, with io_uring and incrementally filled
buffers (the default where the kernel has them, 6.12+), with io_uring and whole 16 KiB buffers
(`EVLOOP_NO_INCREMENTAL_BUFFERS=1`, what older kernels get), and the bare liburing server
(whole 16 KiB buffers) where bench/build.sh built it. Same load and measures as bench/echo.py
(server CPU per message from /proc, system calls per message from perf); servers interleaved
within each round, ratios are medians of per-round ratios against epoll.

usage: bench/receive_buffers.py [--rounds 3] [--seconds 2] [--markdown FILE]
"""
import argparse, os

import echo
from report import emit, median_ratio

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER = os.path.join(os.path.dirname(HERE), "target", "release", "examples", "echo_server")


def variants():
    out = [("evloop (epoll)", {"EVLOOP_BACKEND": "epoll"}, None)]
    if "uring" in echo.available_backends():
        out += [("evloop (uring, incremental buffers)", {"EVLOOP_BACKEND": "uring"}, None),
                ("evloop (uring, whole 16 KiB buffers)",
                 {"EVLOOP_BACKEND": "uring", "EVLOOP_NO_INCREMENTAL_BUFFERS": "1"}, None)]
        ring = os.path.join(HERE, "bin", "uring_echo")
        if os.path.exists(ring):
            out.append(("bare liburing (whole 16 KiB buffers)", {}, ring))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=2)
    ap.add_argument("--port", type=int, default=23100)
    ap.add_argument("--markdown")
    args = ap.parse_args()
    cells = [(c, s) for c in echo.MATRIX_CONNS for s in echo.MATRIX_SIZES]
    table = variants()
    results = {}
    port = args.port
    count_calls = echo.perf_works()
    for _ in range(args.rounds):
        for conns, size in cells:
            cell = argparse.Namespace(conns=conns, size=size, seconds=args.seconds)
            for name, env, binary in table:
                port += 1
                r = echo.one_run(name, [binary or SERVER, str(port)], env, port, cell, count_calls)
                results.setdefault((conns, size, name), []).append(r)
                print(f"{conns} × {echo.size_label(size)} {name}: {r['cpu_us']:.2f} µs CPU/msg, "
                      f"{r['rate']:.0f} msg/s, {r['sys_per_msg']} syscalls/msg", flush=True)
    ref = table[0][0]
    lines = [f"Echo matrix, {args.seconds:g} s per server and cell, {args.rounds} rounds, servers interleaved; "
             "ratios against evloop on epoll, medians of per-round ratios (the same load as the echo "
             "section, the Rust echo server).", "",
             "| server, cell | CPU/msg vs epoll | msg/s vs epoll | p99 vs epoll | syscalls/msg |",
             "|---|---:|---:|---:|---:|"]
    for conns, size in cells:
        base = results[(conns, size, ref)]
        for name, _, _ in table:
            runs = results[(conns, size, name)]
            calls = sorted(r["sys_per_msg"] for r in runs if r["sys_per_msg"] is not None)
            calls_text = f"{calls[len(calls) // 2]:.3f}" if calls else "–"
            label = f"{name}, {conns} × {echo.size_label(size)}"
            if name == ref:
                lines.append(f"| {label} | – | – | – | {calls_text} |")
                continue
            lines.append(f"| {label} | {median_ratio(runs, base, 'cpu_us')} | {median_ratio(runs, base, 'rate')} | "
                         f"{median_ratio(runs, base, 'p99')} | {calls_text} |")
    emit(lines, args.markdown)


if __name__ == "__main__":
    main()
