#!/usr/bin/env python3
"""The C adapters (include/evloop/adapters/) against the same client on libuv (bench/c/adapters.c),
same servers (tests/c/adapters/servers.sh: redis-server, nginx, dnsmasq), same run, rounds
interleaved: the client process's CPU per operation and its wall time.

usage: bench/adapters.py [--rounds 5] [--markdown FILE]
"""
import argparse
import os
import statistics
import subprocess
import tempfile
import time

import echo
from report import emit

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
WORK = {  # what, how many operations, the server it needs, what one operation is
    "redis": (200_000, "redis_port", "INCR (hiredis, 4 connections × 64 in flight)"),
    "curl": (20_000, "http_port", "GET of 17 bytes (libcurl multi, 32 transfers at a time, kept alive)"),
    "ares": (50_000, "dns_port", "A look-up (c-ares, 64 in flight, one UDP socket)"),
}


def impls():
    out = [(f"evloop ({b})", os.path.join(HERE, "bin", "evl_adapters"), {"EVLOOP_BACKEND": b})
           for b in echo.available_backends()]
    return out + [("libuv", os.path.join(HERE, "bin", "uv_adapters"), {})]


def start_servers(work):
    proc = subprocess.Popen([os.path.join(ROOT, "tests", "c", "adapters", "servers.sh"), work])
    deadline = time.time() + 30
    while not os.path.exists(os.path.join(work, "ports")):
        if proc.poll() is not None or time.time() > deadline:
            raise SystemExit("adapters bench: the servers did not start")
        time.sleep(0.1)
    with open(os.path.join(work, "ports")) as f:
        ports = dict(line.strip().split("=") for line in f if "=" in line)
    return proc, ports


def run(binary, env, what, port, count):
    out = subprocess.run([binary, what, port, str(count)], env={**os.environ, **env}, capture_output=True,
                         text=True, timeout=300, check=True).stdout
    return {k: float(v) for k, v in (kv.split("=") for kv in out.split())}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--markdown")
    args = ap.parse_args()
    res = {}
    with tempfile.TemporaryDirectory() as work:
        proc, ports = start_servers(work)
        try:
            for r in range(args.rounds):
                for what, (count, port_key, _) in WORK.items():
                    for name, binary, env in impls():
                        res.setdefault((what, name), []).append(run(binary, env, what, ports[port_key], count))
                print(f"round {r + 1}: " + ", ".join(f"{w} {n} {res[(w, n)][-1]['cpu_us_per_op']:.2f} µs"
                                                     for w in WORK for n, _, _ in impls()), flush=True)
        finally:
            proc.terminate()
            proc.wait()

    def med(what, name, key):
        return statistics.median(x[key] for x in res[(what, name)])

    def ratio(what, name, key):
        if name == "libuv":
            return "–"
        pairs = [a[key] / b[key] for a, b in zip(res[(what, name)], res[(what, "libuv")]) if b[key]]
        return f"{statistics.median(pairs):.2f}×"

    lines = [f"Median of {args.rounds} rounds, rounds interleaved; ratios are medians of per-round ratios "
             "against libuv running the same client (hiredis' own `adapters/libuv.h`; for libcurl and c-ares "
             "the glue their documentation describes, on `uv_poll_t` + `uv_timer_t`). CPU is the client "
             "process's user + system time; the servers run in their own processes.", "",
             "| work | loop | operations | CPU µs per operation | CPU vs libuv | wall s | wall vs libuv |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for what, (count, _, label) in WORK.items():
        for name, _, _ in impls():
            lines.append(f"| {label} | {name} | {count:,} | {med(what, name, 'cpu_us_per_op'):.2f} | "
                         f"{ratio(what, name, 'cpu_us_per_op')} | {med(what, name, 'seconds'):.2f} | "
                         f"{ratio(what, name, 'seconds')} |")
    emit(lines, args.markdown)


if __name__ == "__main__":
    main()
