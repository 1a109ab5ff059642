#!/usr/bin/env python3
"""Cross-thread wake-ups through the C interface (bench/c/wakeup.c): evloop's evl_async_send on
each backend against libuv's uv_async_send, same run, rounds interleaved.

- round trip: two loops on two threads (CPU 0 and CPU 1) bounce one wake-up back and forth;
  p50/p99 of the round trip and round trips per second;
- four senders: four threads call async_send without pause on one loop's handle (the loop on
  CPU 0, the senders spread over both CPUs); sends per second (the cost of a send that finds a
  wake-up already pending), callbacks per second, and the loop thread's CPU per callback.

Beside them, with no loop at all (bench/c/wake_paths.c, where liburing is installed), the kernel's
ways to wake a thread asleep in io_uring_enter: an eventfd read armed in its ring (evloop's
path), IORING_OP_MSG_RING from the waker's own ring, IORING_OP_FUTEX_WAIT armed in its ring
woken by futex(FUTEX_WAKE), and epoll_wait on an eventfd (libuv's path); same round trip.

usage: bench/wakeup.py [--seconds 2] [--rounds 3] [--markdown FILE]
"""
import argparse
import os
import statistics
import subprocess

import echo
from report import emit

HERE = os.path.dirname(os.path.abspath(__file__))


def impls():
    out = [(f"evloop ({b}, C API)", [os.path.join(HERE, "bin", "evl_wakeup")], {"EVLOOP_BACKEND": b})
           for b in echo.available_backends()]
    uv = os.path.join(HERE, "bin", "uv_wakeup")
    if os.path.exists(uv):
        out.append(("libuv", [uv], {}))
    return out


WAKE_PATHS = ("eventfd", "msg_ring", "futex", "epoll")


def run(cmd, env, mode, seconds):
    out = subprocess.run(cmd + [mode, str(seconds)], env={**os.environ, **env}, capture_output=True, text=True,
                         timeout=seconds + 60, check=True).stdout
    return {k: float(v) for k, v in (kv.split("=") for kv in out.split() if "=" in kv) if k not in ("impl", "mode")}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--markdown")
    args = ap.parse_args()
    res = {}
    for r in range(args.rounds):
        for name, cmd, env in impls():
            for mode in ("rtt", "senders"):
                res.setdefault((name, mode), []).append(run(cmd, env, mode, args.seconds))
            print(f"round {r + 1} {name}: {res[(name, 'rtt')][-1]} {res[(name, 'senders')][-1]}", flush=True)
        bare = os.path.join(HERE, "bin", "wake_paths")
        if os.path.exists(bare):
            for path in WAKE_PATHS:
                res.setdefault((path, "bare"), []).append(run([bare], {}, path, args.seconds))
                print(f"round {r + 1} bare {path}: {res[(path, 'bare')][-1]}", flush=True)

    def med(name, mode, key):
        return statistics.median(x[key] for x in res[(name, mode)])

    def ratio(name, mode, key, ref="libuv"):
        if (ref, mode) not in res or name == ref:
            return "–"
        pairs = [a[key] / b[key] for a, b in zip(res[(name, mode)], res[(ref, mode)]) if b[key]]
        return f"{statistics.median(pairs):.2f}×" if pairs else "–"

    lines = [f"{args.seconds:g} s per run, median of {args.rounds} rounds, rounds interleaved; ratios are medians of "
             "per-round ratios against libuv.", "",
             "| loop | round trips/s | p50 µs | p99 µs | p50 vs libuv | p99 vs libuv | sends/s, 4 threads | "
             "callbacks/s | loop CPU ns per callback |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, _, _ in impls():
        lines.append(f"| {name} | {med(name, 'rtt', 'per_s'):.0f} | {med(name, 'rtt', 'p50_us'):.1f} | "
                     f"{med(name, 'rtt', 'p99_us'):.1f} | {ratio(name, 'rtt', 'p50_us')} | "
                     f"{ratio(name, 'rtt', 'p99_us')} | {med(name, 'senders', 'sends_per_s') / 1e6:.1f} M | "
                     f"{med(name, 'senders', 'callbacks_per_s'):.0f} | "
                     f"{med(name, 'senders', 'loop_cpu_ns_per_callback'):.0f} |")
    if ("epoll", "bare") in res:
        lines += ["", "The kernel's wake-up paths with no loop (`bench/c/wake_paths.c`), same round trip; ratios "
                  "against epoll_wait on an eventfd (libuv's path):", "",
                  "| path | p50 µs | p99 µs | p99.9 µs | p50 vs epoll | p99 vs epoll | sleeper syscalls per wake-up |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for path in WAKE_PATHS:
            lines.append(f"| {path} | {med(path, 'bare', 'p50_us'):.1f} | {med(path, 'bare', 'p99_us'):.1f} | "
                         f"{med(path, 'bare', 'p999_us'):.1f} | {ratio(path, 'bare', 'p50_us', 'epoll')} | "
                         f"{ratio(path, 'bare', 'p99_us', 'epoll')} | "
                         f"{med(path, 'bare', 'sleeper_calls_per_wake'):.2f} |")
    emit(lines, args.markdown)


if __name__ == "__main__":
    main()
