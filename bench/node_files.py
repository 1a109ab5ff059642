#!/usr/bin/env python3
"""Node file batch: 10,000 files of 4 KiB read with evloop.fs.readFiles (256 in flight, one
call) against Promise.all over fs.promises.readFile with the same 256 in flight, same process,
page cache warm, on both backends; rounds interleaved.

usage: bench/node_files.py [--files 10000] [--size 4096] [--window 256] [--rounds 5] [--markdown FILE]
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile

from node_echo import servers
from report import emit

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "node", "files.js")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=10000)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--window", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--markdown")
    args = ap.parse_args()
    d = tempfile.mkdtemp(prefix="evloop-node-files-")
    try:
        blob = os.urandom(args.size)
        for i in range(args.files):
            with open(os.path.join(d, f"f{i}"), "wb") as f:
                f.write(blob)
        backends = [env["EVLOOP_BACKEND"] for _, impl, env in servers() if impl == "evloop"]
        res = {b: [] for b in backends}
        for _ in range(args.rounds):
            for b in backends:
                out = subprocess.run(["node", SCRIPT, d, str(args.files), str(args.window)], capture_output=True,
                                     text=True, env={**os.environ, "EVLOOP_BACKEND": b}, timeout=300, check=True)
                r = json.loads(out.stdout)
                res[b].append(r)
                print(f"{b}: evloop {r['evloop']:.0f} files/s, fs.promises {r['node']:.0f} files/s", flush=True)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    version = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    lines = [f"{args.files:,} files × {args.size} B, {args.window} reads in flight for both, page cache warm; "
             f"median of {args.rounds} rounds (min–max), Node {version}.", "",
             "| backend | evloop.fs.readFiles files/s | fs.promises.readFile files/s | ratio (median of per-round) |",
             "|---|---:|---:|---:|"]
    for b, rounds in res.items():
        ev = [r["evloop"] for r in rounds]
        nd = [r["node"] for r in rounds]
        ratio = statistics.median(r["evloop"] / r["node"] for r in rounds)
        lines.append(f"| {b} | {statistics.median(ev):,.0f} ({min(ev):,.0f}–{max(ev):,.0f}) | "
                     f"{statistics.median(nd):,.0f} ({min(nd):,.0f}–{max(nd):,.0f}) | {ratio:.1f}× |")
    emit(lines, args.markdown)


if __name__ == "__main__":
    main()
