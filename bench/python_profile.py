#!/usr/bin/env python3
"""Where a Python echo server's CPU time goes: `perf record` of the server (protocol mode, 100
connections × 64 B by default) under the C load generator, its samples split into the kernel,
the Python interpreter, the loop's own native code and everything else, each as µs per message.

For evloop the native code splits further into the core (`evloop::` symbols: the loop, backends,
streams) and the binding's glue (`_evloop::` and `pyo3::` symbols, and the rest of the extension
module); for uvloop into libuv and the Cython loop, which share one extension module.

usage: bench/python_profile.py [--loops evloop-uring,evloop-epoll,uvloop] [--mode protocol|buffered|streams|http]
                               [--conns 100] [--size 64] [--seconds 4] [--markdown FILE]
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

import echo
from report import emit

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER = os.path.join(HERE, "python", "echo_server.py")
LINE = re.compile(r"^\s+([\d.]+)%\s+(\S+)\s+\[(.)\]\s+(.*)$")


def category(dso, symbol):
    if dso.startswith("[kernel") or dso == "[unknown]" and symbol.startswith("0xffff"):
        return "kernel"
    if "libpython" in dso or dso.startswith(("python3", "_asyncio.")):
        return "Python interpreter"
    if dso.startswith(("_http_parser", "_http_writer", "_websocket", "_multidict", "_quoting", "_frozenlist",
                       "_helpers", "_propcache")) or "aiohttp" in dso or "multidict" in dso or "yarl" in dso:
        return "aiohttp's C parts"
    if dso.startswith("_evloop"):
        return "evloop core" if symbol.startswith(("evloop::", "io_uring::", "<evloop::")) else "evloop binding (pyo3 glue)"
    if "uvloop" in dso or dso.startswith("loop.cpython"):
        return "uvloop (libuv + Cython)"
    if dso.startswith("libc.") or dso.startswith("libc-") or dso.startswith("ld-linux"):
        return "libc"
    return "other"


HTTP_SERVER = os.path.join(HERE, "python", "http_server.py")


def profile(kind, args, port):
    http = args.mode == "http"
    with tempfile.TemporaryDirectory() as d:
        data = os.path.join(d, "perf.data")
        server = [HTTP_SERVER, str(port), kind] if http else [SERVER, str(port), kind, args.mode]
        proc = subprocess.Popen(["taskset", "-c", "0", sys.executable] + server,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            echo.wait_port(port, proc)
            if http:
                cmd = ["wrk", "-t1", f"-c{args.conns}", f"-d{args.seconds + 2}s", f"http://127.0.0.1:{port}/"]
            else:
                cmd = [os.path.join(HERE, "bin", "loadgen"), str(port), "-c", str(args.conns), "-s", str(args.size),
                       "-d", str(args.seconds + 2)]
            load = subprocess.Popen(["taskset", "-c", "1"] + cmd, stdout=subprocess.PIPE, text=True)
            time.sleep(1)
            u0, s0 = echo.cpu_ticks(proc.pid)
            t0 = time.time()
            subprocess.run(["perf", "record", "-q", "-e", "cpu-clock", "-o", data, "-p", str(proc.pid), "--",
                            "sleep", str(args.seconds)], check=True, capture_output=True)
            u1, s1 = echo.cpu_ticks(proc.pid)
            elapsed = time.time() - t0
            out = load.communicate(timeout=60)[0]
        finally:
            proc.send_signal(15)
            proc.wait(timeout=10)
        if http:
            msgs = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)) * elapsed
        else:
            msgs = float(dict(kv.split("=") for kv in out.split()[1:])["rate"]) * elapsed
        cpu_us = (u1 - u0 + s1 - s0) / echo.HZ * 1e6 / msgs
        report = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children", "--sort", "dso,sym",
                                 "-g", "none", "--percent-limit", "0"], capture_output=True, text=True).stdout
    shares = {}
    for line in report.splitlines():
        m = LINE.match(line)
        if m:
            cat = category(m.group(2), m.group(4).strip())
            shares[cat] = shares.get(cat, 0.0) + float(m.group(1))
    total = sum(shares.values()) or 1.0
    return cpu_us, {c: v / total for c, v in shares.items()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--loops", default="evloop-uring,evloop-epoll,uvloop")
    ap.add_argument("--mode", default="protocol")
    ap.add_argument("--conns", type=int, default=100)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--seconds", type=int, default=4)
    ap.add_argument("--port", type=int, default=7900)
    ap.add_argument("--markdown")
    args = ap.parse_args()
    cats = ["kernel", "Python interpreter", "aiohttp's C parts", "evloop core", "evloop binding (pyo3 glue)", "uvloop (libuv + Cython)",
            "libc", "other"]
    rows = {}
    for i, kind in enumerate(args.loops.split(",")):
        rows[kind] = profile(kind, args, args.port + i)
        print(kind, rows[kind], flush=True)
    used = [c for c in cats if any(r[1].get(c, 0) > 0.0005 for r in rows.values())]
    what = (f"aiohttp hello-world server under `wrk -t1 -c{args.conns}`" if args.mode == "http" else
            f"{args.mode} echo server under {args.conns} connections × {args.size} B")
    lines = [f"`perf record -e cpu-clock` of each {what}, {args.seconds} s; each cell is µs of server CPU per "
             "message or request (share of the samples × CPU per message from /proc).", "",
             "| server | CPU µs/msg | " + " | ".join(used) + " | user space |",
             "|---|---:|" + "---:|" * (len(used) + 1)]
    for kind, (cpu, shares) in rows.items():
        cells = [f"{cpu * shares.get(c, 0):.3f}" for c in used]
        user = cpu * (1 - shares.get("kernel", 0))
        lines.append(f"| {kind} | {cpu:.2f} | " + " | ".join(cells) + f" | {user:.3f} |")
    emit(lines, args.markdown)


if __name__ == "__main__":
    main()
