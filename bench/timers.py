#!/usr/bin/env python3
"""Timer benchmark: evloop's timing wheel against libuv's binary heap, same workload, same run.

Runs bench/src/bin/timers.rs and bench/c/timers.c (built on libuv, and on libevloop.so for the C
API's row) ROUNDS times each (interleaved) and
reports medians: 1,000,000 pending one-shot timers (random 1–100 s) started, then stopped in
start order and in random order; CPU per timer for 1,000,000 timers firing within 1 s; RSS per
pending timer.

usage: bench/timers.py [--rounds 3] [--markdown FILE]
"""
import argparse, os, statistics, subprocess
from report import emit

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def run(cmd, env=None):
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env={**os.environ, **(env or {})},
                         timeout=600).stdout
    line = next(l for l in out.splitlines() if l.startswith("RESULT"))
    return dict(kv.split("=", 1) for kv in line.split()[1:])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--markdown")
    args = ap.parse_args()
    ev = [os.path.join(ROOT, "target", "release", "timers")]
    # The wheel is the same on both backends; the backend decides how the loop waits.
    impls = [("evloop-epoll", ev, {"EVLOOP_BACKEND": "epoll"}), ("evloop-uring", ev, {"EVLOOP_BACKEND": "uring"})]
    # The same workload as a C program runs it through libevloop.so (a record per handle).
    evc = os.path.join(HERE, "bin", "evl_timers")
    if os.path.exists(evc):
        impls += [("evloop-C-epoll", [evc], {"EVLOOP_BACKEND": "epoll"}),
                  ("evloop-C-uring", [evc], {"EVLOOP_BACKEND": "uring"})]
    # The same through evl_timer_init_in: the records in the program's own array.
    evc_in = os.path.join(HERE, "bin", "evl_timers_in")
    if os.path.exists(evc_in):
        impls += [("evloop-C-in-epoll", [evc_in], {"EVLOOP_BACKEND": "epoll"}),
                  ("evloop-C-in-uring", [evc_in], {"EVLOOP_BACKEND": "uring"})]
    uv = os.path.join(HERE, "bin", "uv_timers")
    if os.path.exists(uv):
        impls.append(("libuv", [uv], {}))
    res = {}
    for _ in range(args.rounds):
        for name, cmd, env in impls:
            r = run(cmd, env)
            res.setdefault(name, []).append(r)
    keys = ["init_ns", "start_ns", "stop_in_order_ns", "stop_random_ns", "fire_cpu_ns", "bytes_per_timer"]
    med = {n: {k: statistics.median(float(r[k]) for r in rs) for k in keys} for n, rs in res.items()}
    labels = {n: rs[0]["impl"] for n, rs in res.items()}
    lines = [f"1,000,000 pending one-shot timers, random timeouts 1–100 s; median of {args.rounds} runs.", "",
             "| loop | init ns | start ns | stop ns (start order) | stop ns (random order) | "
             "start+stop vs libuv (random order) | init vs libuv | CPU ns per timer fired (1M within 1 s) | "
             "bytes per pending timer |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    uvm = med.get("libuv")
    for n, m in med.items():
        ratio = init_ratio = "–"
        if uvm and n != "libuv":
            ratio = f"{(uvm['start_ns'] + uvm['stop_random_ns']) / (m['start_ns'] + m['stop_random_ns']):.1f}× faster"
            init_ratio = f"{m['init_ns'] / uvm['init_ns']:.2f}×"
        lines.append(f"| {labels[n]} | {m['init_ns']:.0f} | {m['start_ns']:.0f} | {m['stop_in_order_ns']:.0f} | "
                     f"{m['stop_random_ns']:.0f} | {ratio} | {init_ratio} | {m['fire_cpu_ns']:.0f} | "
                     f"{m['bytes_per_timer']:.0f} |")
    emit(lines, args.markdown)


if __name__ == "__main__":
    main()
