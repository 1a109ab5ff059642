#!/usr/bin/env python3
"""HTTP benchmark: `wrk` against hello-world servers, same run, rounds interleaved.

Suites:
- c: examples/c/http_hello.c through libevloop.so on each backend, the same server on libuv
  (bench/c/uv_http.c) and nginx with one worker answering a fixed 200 from its config;
- python: an aiohttp hello-world app (bench/python/http_server.py) on evloop (each backend),
  uvloop, rloop and asyncio.

The server runs on CPU 0, wrk (one thread) on CPU 1. On two cores the request rate is bound by
the client, so the server's CPU time per request (user and system, from /proc/PID/stat) ranks the
servers; ratios are medians of per-round ratios against the reference (libuv for C, uvloop for
Python), which share each round's machine state.

With --tls (Python suite) the app serves HTTPS with a fresh self-signed certificate; wrk keeps
its connections, so this measures TLS records rather than handshakes.

usage: bench/http.py [--suite c|python] [--tls] [--loops L1,L2] [--conns 1,50,500] [--seconds 4] [--rounds 3]
                     [--markdown FILE]
Needs wrk and nginx (Debian: wrk, nginx-light), aiohttp for the Python suite, and the binaries of
bench/build.sh and `make`.
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import echo
from report import emit, median_ratio, python_loops

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

NGINX_CONF = """
daemon off;
master_process off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log crit;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 100000000;
    keepalive_timeout 600s;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{port} backlog=1024;
        location / {{
            default_type text/plain;
            return 200 "Hello, world!";
        }}
    }}
}}
"""


def c_servers():
    """(name, command maker (port, scratch dir) -> argv, env)."""
    hello = os.path.join(ROOT, "build", "examples", "http_hello")
    out = []
    for backend in echo.available_backends():
        out.append((f"evloop ({backend}, C API)", lambda port, _d: [hello, str(port)], {"EVLOOP_BACKEND": backend}))
    uv = os.path.join(HERE, "bin", "uv_http")
    if os.path.exists(uv):
        out.append(("libuv", lambda port, _d: [uv, str(port)], {}))
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if nginx:
        def nginx_cmd(port, scratch):
            conf = os.path.join(scratch, f"nginx-{port}.conf")
            with open(conf, "w") as f:
                f.write(NGINX_CONF.format(dir=scratch, port=port))
            return [nginx, "-p", scratch, "-c", conf]
        out.append(("nginx (1 worker)", nginx_cmd, {}))
    return out


def python_servers(tls, only=None):
    server = os.path.join(HERE, "python", "http_server.py")
    kinds = [k for k in python_loops() if not only or k in only]

    def command(port, scratch, kind):
        return [sys.executable, server, str(port), kind] + (self_signed(scratch) if tls else [])
    return [(f"aiohttp on {k}", lambda port, d, k=k: command(port, d, k), {}) for k in kinds]


def self_signed(scratch):
    """[certificate file, key file] of a self-signed certificate for localhost, made once."""
    cert, key = os.path.join(scratch, "cert.pem"), os.path.join(scratch, "key.pem")
    if not os.path.exists(cert):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                        "/CN=localhost", "-keyout", key, "-out", cert], check=True, capture_output=True)
    return [cert, key]


def to_us(text):
    m = re.match(r"([\d.]+)(us|ms|s)$", text)
    if not m:
        return None
    return float(m.group(1)) * {"us": 1, "ms": 1e3, "s": 1e6}[m.group(2)]


def one_run(name, cmd, env, port, conns, seconds, scheme="http"):
    load, user, system = echo.measure_server(
        cmd, env, port,
        lambda: subprocess.run(["taskset", "-c", "1", "wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--latency",
                                f"{scheme}://127.0.0.1:{port}/"], capture_output=True, text=True, timeout=seconds + 60))
    out = load.stdout
    total = re.search(r"(\d+) requests in", out)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    errors = re.search(r"Socket errors: (.*)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if load.returncode != 0 or not total or not rate or int(total.group(1)) == 0:
        raise RuntimeError(f"{name}: wrk failed: {out} {load.stderr}")
    if non2xx:
        raise RuntimeError(f"{name}: wrk saw wrong answers: {non2xx.group(0)}")
    # Socket errors (a request unanswered within wrk's 2 s timeout, a reset) are counted and
    # reported, not fatal: under 500 connections a slow server can let a few time out.
    err_count = sum(int(n) for n in re.findall(r"\d+", errors.group(1))) if errors else 0
    reqs = int(total.group(1))
    return {
        "rate": float(rate.group(1)),
        "cpu_us": (user + system) / echo.HZ * 1e6 / reqs,
        "user_us": user / echo.HZ * 1e6 / reqs,
        "p99": to_us(p99.group(1)) if p99 else None,
        "errors": err_count,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--suite", choices=["c", "python"], default="c")
    ap.add_argument("--tls", action="store_true", help="HTTPS (Python suite)")
    ap.add_argument("--loops", help="comma-separated subset of the Python loops (default: all)")
    ap.add_argument("--conns", default="1,50,500")
    ap.add_argument("--seconds", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--port", type=int, default=8300)
    ap.add_argument("--markdown")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed (Debian: apt-get install wrk)")
    if args.tls and args.suite != "python":
        sys.exit("--tls is for the Python suite")
    servers = c_servers() if args.suite == "c" else python_servers(args.tls, args.loops and args.loops.split(","))
    ref = "libuv" if args.suite == "c" else "aiohttp on uvloop"
    conns_list = [int(c) for c in args.conns.split(",")]
    port = args.port
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        for r in range(args.rounds):
            for conns in conns_list:
                for name, make_cmd, env in servers:
                    port += 1
                    res = one_run(name, make_cmd(port, scratch), env, port, conns, args.seconds,
                                  "https" if args.tls else "http")
                    results.setdefault((conns, name), []).append(res)
                    print(f"round {r + 1}, {conns} conns, {name}: {res['rate']:.0f} req/s, {res['cpu_us']:.2f} µs "
                          f"CPU/req ({res['user_us']:.2f} user), p99 {res['p99']} µs", flush=True)
                    time.sleep(0.2)
    what = ("examples/c/http_hello.c through libevloop.so, the same server on libuv, nginx with one worker"
            if args.suite == "c" else f"an aiohttp hello-world app {'over HTTPS ' if args.tls else ''}on each loop")
    lines = [f"`wrk -t1` against {what}; {args.seconds} s per run, median of {args.rounds} rounds, rounds "
             f"interleaved; server on CPU 0, wrk on CPU 1. Ratios: medians of per-round ratios against {ref}.", ""]
    extra_ref = "nginx (1 worker)" if args.suite == "c" and any(n.startswith("nginx") for n, _, _ in servers) else None
    header = (f"| server | req/s | CPU µs/req | user µs/req | p99 µs | socket errors (all rounds) | CPU/req vs {ref} | "
              f"user/req vs {ref} |")
    rule = "|---|---:|---:|---:|---:|---:|---:|---:|"
    if extra_ref:
        header += " CPU/req vs nginx |"
        rule += "---:|"
    for conns in conns_list:
        lines += [f"{conns} connection{'s' if conns != 1 else ''}:", "", header, rule]
        for name, _, _ in servers:
            runs = results[(conns, name)]
            med = {k: statistics.median(x[k] for x in runs if x[k] is not None) for k in ("rate", "cpu_us", "user_us")}
            p99s = [x["p99"] for x in runs if x["p99"] is not None]
            refs = results.get((conns, ref))
            vs = median_ratio(runs, refs, "cpu_us") if refs and name != ref else "–"
            vs_user = median_ratio(runs, refs, "user_us") if refs and name != ref else "–"
            row = (f"| {name} | {med['rate']:.0f} | {med['cpu_us']:.2f} | {med['user_us']:.2f} | "
                   f"{statistics.median(p99s):.0f} | {sum(x['errors'] for x in runs)} | {vs} | {vs_user} |")
            if extra_ref:
                nginx_runs = results[(conns, extra_ref)]
                row += f" {median_ratio(runs, nginx_runs, 'cpu_us') if name != extra_ref else '–'} |"
            lines.append(row)
        lines.append("")
    emit(lines[:-1], args.markdown)


if __name__ == "__main__":
    main()
