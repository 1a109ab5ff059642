#!/usr/bin/env python3
"""Idle connections: growth of the server's resident memory per idle connection.

The server accepts FIRST connections, then SECOND - FIRST more; the RSS difference divided by the
extra connections is what each idle, reading connection costs in user space (the kernel's socket
buffers are not in RSS). 19,000 is about the most the 20,000-descriptor limit allows.

usage: bench/idle.py [--first 10000] [--second 19000] [--markdown FILE]
"""
import argparse, os, socket, subprocess, sys, time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BIN = os.path.join(HERE, "bin")
sys.path.insert(0, HERE)
from echo import available_backends, open_idle, wait_port  # noqa: E402
from report import emit  # noqa: E402


def rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def settle(pid):
    last = -1
    for _ in range(50):
        time.sleep(0.2)
        now = rss(pid)
        if now == last:
            return now
        last = now
    return last


def measure(name, cmd, env, port, first, second):
    proc = subprocess.Popen(cmd, env={**os.environ, **env}, stdout=subprocess.DEVNULL)
    clients = []
    try:
        wait_port(port, proc)
        clients.extend(open_idle(port, first))
        r1 = settle(proc.pid)
        clients.extend(open_idle(port, second - first))
        r2 = settle(proc.pid)
        return (r2 - r1) / (second - first)
    finally:
        for c in clients:
            c.stdin.close()
            c.wait(timeout=30)
        proc.send_signal(15)
        proc.wait(timeout=10)


def table(res, ref, what):
    """The bytes-per-connection table of `res` ({server: [bytes per connection per round]}): the
    median, min–max and the ratio against server `ref`; `what` describes the measurement."""
    import statistics

    med = {k: statistics.median(v) for k, v in res.items()}
    lines = [what, "", f"| server | bytes per idle connection | min–max | vs {ref} |", "|---|---:|---:|---:|"]
    for k, m in med.items():
        ratio = f"{m / med[ref]:.2f}×" if ref in med and k != ref else "–"
        lines.append(f"| {k} | {m:,.0f} | {min(res[k]):,.0f}–{max(res[k]):,.0f} | {ratio} |")
    return lines


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--first", type=int, default=10000)
    ap.add_argument("--second", type=int, default=19000)
    ap.add_argument("--port", type=int, default=7500)
    ap.add_argument("--markdown")
    args = ap.parse_args()
    echo = os.path.join(ROOT, "target", "release", "examples", "echo_server")
    c_echo = os.path.join(ROOT, "build", "examples", "echo_server")
    table = [(f"evloop ({b})", [echo, str(args.port)], {"EVLOOP_BACKEND": b}) for b in available_backends()]
    table += [(f"evloop ({b}, C API)", [c_echo, str(args.port)], {"EVLOOP_BACKEND": b}) for b in available_backends()]
    if os.path.exists(os.path.join(BIN, "uv_echo")):
        table.append(("libuv", [os.path.join(BIN, "uv_echo"), str(args.port)], {}))
    lines = [f"Idle connections: server RSS growth from {args.first} to {args.second} idle, reading connections; "
             "the last column projects it to a million connections (user-space memory only: the kernel's socket "
             "buffers come on top, for every loop alike).", "",
             "| server | bytes per idle connection | vs libuv | at 1,000,000 connections |", "|---|---:|---:|---:|"]
    measured = []
    for i, (name, cmd, env) in enumerate(table):
        port = args.port + i
        cmd = [c if c != str(args.port) else str(port) for c in cmd]
        b = measure(name, cmd, env, port, args.first, args.second)
        print(f"{name}: {b:.0f} bytes per idle connection", flush=True)
        measured.append((name, b))
    ref = dict(measured).get("libuv")
    for name, b in measured:
        ratio = f"{b / ref:.2f}×" if ref and name != "libuv" else "–"
        lines.append(f"| {name} | {b:.0f} | {ratio} | {b * 1e6 / 2**20:,.0f} MiB |")
    emit(lines, args.markdown)


if __name__ == "__main__":
    main()
