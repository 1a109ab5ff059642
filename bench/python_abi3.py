#!/usr/bin/env python3
"""The stable-ABI (abi3) build of the Python extension against the per-version build, same run:
the scheduling micro-benchmark (call_soon, call_later + cancel) in fresh interpreters and the
protocol echo server (100 connections × 64 B, the C load generator), rounds interleaved.

Both builds are installed into scratch directories and chosen with PYTHONPATH, so the
installed package is left alone.

usage: bench/python_abi3.py [--rounds 3] [--seconds 3] [--markdown FILE]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

import echo
import python_scheduling
from report import emit, median_ratio

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SERVER = os.path.join(HERE, "python", "echo_server.py")


def install(features, into):
    env = {**os.environ, "MATURIN_PEP517_ARGS": f"--features {features}" if features else ""}
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-build-isolation", "--no-deps",
                    "--target", into, os.path.join(ROOT, "bindings", "python")], env=env, check=True)
    so = [f for f in os.listdir(os.path.join(into, "evloop")) if f.startswith("_evloop")]
    return so[0]


def scheduling(path):
    env = {**os.environ, "PYTHONPATH": path}
    out = subprocess.run([sys.executable, "-c", python_scheduling.CHILD, "evloop-uring", str(python_scheduling.N)],
                         capture_output=True, text=True, check=True, timeout=600, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=3)
    ap.add_argument("--markdown")
    args = ap.parse_args()
    scratch = tempfile.mkdtemp()
    builds = {}
    for name, features in (("per-version", ""), ("abi3", "abi3")):
        path = os.path.join(scratch, name)
        so = install(features, path)
        builds[name] = path
        print(f"{name}: {so}", flush=True)

    sched = {name: [] for name in builds}
    for _ in range(args.rounds):
        for name, path in builds.items():
            sched[name].append(scheduling(path))

    port = [7900]
    table = [(name, path) for name, path in builds.items()]
    load = argparse.Namespace(conns=100, size=64, seconds=args.seconds)

    def run(entry, traced):
        name, path = entry
        port[0] += 1
        cmd = [sys.executable, SERVER, str(port[0]), "evloop-uring", "protocol"]
        return echo.one_run(name, cmd, {"PYTHONPATH": path}, port[0], load, traced)

    echoes = echo.interleaved_rounds(table, run, args.rounds, False)

    def med(runs, key):
        return statistics.median(r[key] for r in runs)

    lines = [f"The extension built for the stable ABI (abi3, pyo3's `abi3-py39`) against the build for "
             f"Python {sys.version.split()[0]} itself, evloop on io_uring, same run, {args.rounds} interleaved "
             "rounds (medians; ratios are medians of per-round ratios, abi3 ÷ per-version).", "",
             "| build | call_soon + run ns | call_later ns | cancel ns | echo CPU µs/msg | echo user µs/msg | "
             "echo CPU vs per-version | echo user vs per-version |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    ref = echoes["per-version"]
    for name in builds:
        s = sched[name]
        cpu_ratio = median_ratio(echoes[name], ref, "cpu_us") if name != "per-version" else "–"
        user_ratio = median_ratio(echoes[name], ref, "user_us") if name != "per-version" else "–"
        lines.append(f"| {name} | {med(s, 'soon_ns'):.0f} | {med(s, 'start_ns'):.0f} | {med(s, 'cancel_ns'):.0f} | "
                     f"{med(echoes[name], 'cpu_us'):.2f} | {med(echoes[name], 'user_us'):.3f} | {cpu_ratio} | {user_ratio} |")
    emit(lines, args.markdown)


if __name__ == "__main__":
    main()
