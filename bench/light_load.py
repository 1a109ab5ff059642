#!/usr/bin/env python3
"""Light load: a few connections doing request/response, every face against its peer.

Where most services spend their lives, and where per-iteration costs and latency tails show:
each message is a whole loop iteration, so nothing amortises them. For 1, 4 and 50 connections:

- C: examples/c/echo_server.c through libevloop.so (both backends) against libuv (`uv_write`),
  with the bare epoll and bare liburing loops beside them (what the kernel's path costs);
- Python: a Protocol echo server and an aiohttp hello-world app on evloop (both backends)
  against uvloop;
- Node: the echo server on the addon (both backends) and Node's own `http` server fed by the
  addon's sockets through `toDuplex()`, against Node's `net`.

Echo servers are driven by the C ping-pong load generator (64 B messages), HTTP servers by
`wrk -t1` with a Lua script that reports p99.9 (bench/wrk_latency.lua). The server runs on CPU 0,
the client on CPU 1; rounds are interleaved, and every ratio is the median of per-round ratios
against the peer of the same round (this machine's speed drifts). Latency is the client's:
p50, p99 and p99.9.

usage: bench/light_load.py [--conns 1,4,50] [--seconds 3] [--rounds 3] [--only c,python,node]
                           [--markdown FILE]
"""
import argparse
import os
import re
import statistics
import subprocess
import sys

import echo
from report import emit

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BIN = os.path.join(HERE, "bin")


def groups():
    """[(group, driver, peer name, [(name, argv maker(port), env)])] for what this machine runs."""
    backends = echo.available_backends()
    c_echo = os.path.join(ROOT, "build", "examples", "echo_server")
    c = [(f"evloop ({b}, C API)", lambda p: [c_echo, str(p)], {"EVLOOP_BACKEND": b}) for b in backends]
    c.append(("libuv, uv_write", lambda p: [os.path.join(BIN, "uv_echo"), str(p), "write"], {}))
    c.append(("bare epoll", lambda p: [os.path.join(BIN, "bare_echo"), str(p), "epoll"], {}))
    if os.path.exists(os.path.join(BIN, "uring_echo")):
        c.append(("bare liburing (multishot)", lambda p: [os.path.join(BIN, "uring_echo"), str(p)], {}))
    py_echo = os.path.join(HERE, "python", "echo_server.py")
    py_http = os.path.join(HERE, "python", "http_server.py")
    py_loops = [f"evloop-{b}" for b in backends] + ["uvloop"]
    node_echo = os.path.join(HERE, "node", "echo_server.js")
    node_http = os.path.join(HERE, "node", "http_server.js")
    node_impls = [(f"evloop ({b})", "evloop", {"EVLOOP_BACKEND": b}) for b in backends] + [("net", "net", {})]
    return [
        ("c", "C echo, 64 B", "loadgen", "libuv, uv_write", c),
        ("python", "Python Protocol echo, 64 B", "loadgen", "uvloop",
         [(lp, lambda p, lp=lp: [sys.executable, py_echo, str(p), lp, "protocol"], {}) for lp in py_loops]),
        ("python", "aiohttp hello world (wrk)", "wrk", "uvloop",
         [(lp, lambda p, lp=lp: [sys.executable, py_http, str(p), lp], {}) for lp in py_loops]),
        ("node", "Node echo, 64 B", "loadgen", "net",
         [(n, lambda p, i=i: ["node", node_echo, str(p), i], env) for n, i, env in node_impls]),
        ("node", "Node `http` (evloop: over `toDuplex()`) (wrk)", "wrk", "net",
         [(n, lambda p, i=i: ["node", node_http, str(p), i], env) for n, i, env in node_impls]),
    ]


def run_loadgen(port, conns, seconds):
    load = subprocess.run(["taskset", "-c", "1", os.path.join(BIN, "loadgen"), str(port), "-c", str(conns),
                           "-s", "64", "-d", str(seconds)], capture_output=True, text=True, timeout=seconds + 60)
    if load.returncode != 0 or not load.stdout.startswith("RESULT"):
        raise RuntimeError(f"load generator failed: {load.stdout} {load.stderr}")
    f = dict(kv.split("=") for kv in load.stdout.split()[1:])
    return int(f["msgs"]), float(f["rate"]), int(f["p50_us"]), int(f["p99_us"]), int(f["p999_us"])


def run_wrk(port, conns, seconds):
    load = subprocess.run(["taskset", "-c", "1", "wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "-s",
                           os.path.join(HERE, "wrk_latency.lua"), f"http://127.0.0.1:{port}/"],
                          capture_output=True, text=True, timeout=seconds + 60)
    out = load.stdout
    total = re.search(r"(\d+) requests in", out)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    lat = re.search(r"LATENCY p50=(\d+) p99=(\d+) p999=(\d+)", out)
    if load.returncode != 0 or not total or not rate or not lat or int(total.group(1)) == 0:
        raise RuntimeError(f"wrk failed: {out} {load.stderr}")
    if re.search(r"Non-2xx or 3xx responses", out):
        raise RuntimeError(f"wrk saw wrong answers: {out}")
    return int(total.group(1)), float(rate.group(1)), int(lat.group(1)), int(lat.group(2)), int(lat.group(3))


def one_run(cmd, env, port, driver, conns, seconds):
    drive = run_loadgen if driver == "loadgen" else run_wrk
    (msgs, rate, p50, p99, p999), user, system = echo.measure_server(cmd, env, port,
                                                                    lambda: drive(port, conns, seconds))
    return {"rate": rate, "p50": p50, "p99": p99, "p999": p999,
            "cpu_us": (user + system) / echo.HZ * 1e6 / msgs, "user_us": user / echo.HZ * 1e6 / msgs}


def ratio(runs, refs, key):
    vals = [a[key] / b[key] for a, b in zip(runs, refs) if b[key]]
    return statistics.median(vals) if vals else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--conns", default="1,4,50")
    ap.add_argument("--seconds", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", default="c,python,node")
    ap.add_argument("--port", type=int, default=9400)
    ap.add_argument("--markdown")
    args = ap.parse_args()
    conns_list = [int(c) for c in args.conns.split(",")]
    chosen = [g for g in groups() if g[0] in args.only.split(",")]
    results = {}
    port = args.port
    for r in range(args.rounds):
        for _, title, driver, _, servers in chosen:
            for conns in conns_list:
                for name, make, env in servers:
                    port += 1
                    res = one_run(make(port), env, port, driver, conns, args.seconds)
                    results.setdefault((title, conns, name), []).append(res)
                    print(f"round {r + 1}, {title}, {conns} conns, {name}: {res['rate']:.0f}/s, "
                          f"{res['cpu_us']:.2f} µs CPU ({res['user_us']:.2f} user), p50/p99/p999 "
                          f"{res['p50']}/{res['p99']}/{res['p999']} µs", flush=True)
    lines = [f"Request/response at 1, 4 and 50 connections: {args.seconds} s per run, {args.rounds} rounds, "
             "servers interleaved within each round; server on CPU 0, client on CPU 1. Figures are medians of "
             "the rounds; the ratio columns are medians of per-round ratios against the peer named in the "
             "heading (CPU per message or request: user + system from /proc; latency: the client's).", ""]
    for _, title, _, peer, servers in chosen:
        lines += [f"{title}, against {peer}:", "",
                  "| server, connections | per s | CPU µs | user µs | p50 µs | p99 µs | p99.9 µs | CPU vs peer "
                  "| per s vs peer | p99 vs peer | p99.9 vs peer |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for conns in conns_list:
            refs = results[(title, conns, peer)]
            for name, _, _ in servers:
                runs = results[(title, conns, name)]
                med = {k: statistics.median(x[k] for x in runs) for k in runs[0]}
                if name == peer:
                    vs = "| – | – | – | – |"
                else:
                    vs = "| " + " | ".join(f"{ratio(runs, refs, k):.2f}×" for k in ("cpu_us", "rate", "p99", "p999")) + " |"
                lines.append(f"| {name}, {conns} | {med['rate']:.0f} | {med['cpu_us']:.2f} | {med['user_us']:.2f} | "
                             f"{med['p50']:.0f} | {med['p99']:.0f} | {med['p999']:.0f} {vs}")
        lines.append("")
    emit(lines[:-1], args.markdown)


if __name__ == "__main__":
    main()
