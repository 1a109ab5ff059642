#!/usr/bin/env python3
"""fd-watcher benchmark: the price of level-triggered readiness, through the C interface.

Runs bench/c/poll_pingpong.c (100 socket pairs, a watcher on each end, one byte bouncing in
each pair) on evloop's two backends and on libuv's uv_poll_t, interleaved, ROUNDS times; reports
medians of events/s and CPU per event, and the median of per-round ratios against libuv. On
io_uring each readiness report is a one-shot poll re-armed in the next submission batch (no
extra system call): what the level-triggered contract costs there shows as user-space CPU.

usage: bench/poll.py [--rounds 5] [--seconds 2] [--markdown FILE]
"""
import argparse, os, statistics, subprocess
from report import emit

HERE = os.path.dirname(os.path.abspath(__file__))


def run(impl, seconds):
    out = subprocess.run([os.path.join(HERE, "bin", "poll_pingpong"), impl, str(seconds), "100"],
                         capture_output=True, text=True, check=True, timeout=120).stdout.split()
    vals = dict(zip(out[1::2], out[2::2]))
    return {"rate": float(vals["events/s"]), "user": float(vals["user_us/event"]), "sys": float(vals["sys_us/event"])}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=2)
    ap.add_argument("--markdown")
    args = ap.parse_args()
    impls = ["evloop-epoll", "evloop-uring", "libuv"]
    res = {i: [] for i in impls}
    for _ in range(args.rounds):
        for i in impls:
            res[i].append(run(i, args.seconds))
    labels = {"evloop-epoll": "evloop (epoll)", "evloop-uring": "evloop (uring)", "libuv": "libuv uv_poll"}
    lines = [f"fd-watcher ping-pong through the C interface: 100 socket pairs, a readable watcher on each end, one "
             f"byte in flight per pair (each event is a read and a write); {args.seconds:g} s per run, median of "
             f"{args.rounds} interleaved rounds.", "",
             "| loop | events/s | user µs/event | system µs/event | events/s vs libuv, median of per-round ratios | "
             "CPU/event vs libuv, median of per-round ratios |",
             "|---|---:|---:|---:|---:|---:|"]
    for i in impls:
        rs = res[i]
        rate = statistics.median(r["rate"] for r in rs)
        user = statistics.median(r["user"] for r in rs)
        sys_ = statistics.median(r["sys"] for r in rs)
        rr = statistics.median(r["rate"] / u["rate"] for r, u in zip(rs, res["libuv"]))
        cr = statistics.median((r["user"] + r["sys"]) / (u["user"] + u["sys"]) for r, u in zip(rs, res["libuv"]))
        lines.append(f"| {labels[i]} | {rate:.0f} | {user:.3f} | {sys_:.3f} | {rr:.2f}× | {cr:.2f}× |")
    emit(lines, args.markdown)


if __name__ == "__main__":
    main()
