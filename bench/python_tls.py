#!/usr/bin/env python3
"""Python TLS benchmark: asyncio TLS echo servers on evloop (both backends), uvloop and asyncio's
own loop, driven by the project's C TLS load generator (bench/c/tls_loadgen.c, OpenSSL), same
run, rounds interleaved. The server runs on CPU 0, the load on CPU 1; server CPU per message
(user and system, from /proc) ranks the servers, as ratios against uvloop's (medians of
per-round ratios).

Three parts:
- echo: --conns connections × --size bytes ping-pong over established TLS connections, for the
  Protocol and BufferedProtocol servers;
- handshakes: a new connection per request (full TLS 1.3 handshake, no resumption, one echo,
  close), --hs-conns at a time: handshakes per second and server CPU per handshake;
- idle memory: the server's resident memory per idle TLS connection (--idle of them, after
  their handshakes), against uvloop's;
- with aiofastnet installed, the echo also on each loop patched by aio-libs' aiofastnet (its
  own transports and OpenSSL driving, on the loop's add_reader/add_writer): what it costs on
  evloop against on uvloop measures the loops' fd-watcher paths;
- with bench/build.sh's tls_echo, the floor: the same echo, handshakes and idle connections
  served by C with no Python and no loop library (epoll, OpenSSL on the socket), against which
  any Python loop's figures can be read; and, beside the idle connections, what the ssl module's
  SSLObject with its two MemoryBIOs keeps per connection with no loop at all
  (bench/python/sslobject_memory.py), which every MemoryBIO-based loop holds.

The aiohttp-over-HTTPS figures come from `bench/http.py --suite python --tls`.

usage: bench/python_tls.py [--loops L1,L2] [--conns 100] [--size 1024] [--seconds 4]
                           [--rounds 3] [--hs-conns 10] [--idle 2000] [--markdown FILE]
Needs bench/build.sh's tls_loadgen (libssl-dev) and openssl(1).
"""
import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time

import echo
from report import emit, median_ratio, python_loops

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER = os.path.join(HERE, "python", "echo_server.py")
LOADGEN = os.path.join(HERE, "bin", "tls_loadgen")
BARE_SERVER = os.path.join(HERE, "bin", "tls_echo")
BARE = "C + OpenSSL, no Python"
SSLOBJECT = "ssl.SSLObject + 2 MemoryBIOs alone, no loop (allocated bytes)"
REF = "uvloop"


def certificate(scratch):
    cert, key = os.path.join(scratch, "cert.pem"), os.path.join(scratch, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-days", "2", "-subj", "/CN=localhost", "-keyout", key, "-out", cert], check=True,
                   capture_output=True)
    return [cert, key]


def parse(name, load):
    fields = dict(kv.split("=") for kv in load.stdout.split()[1:]) if load.stdout.startswith("RESULT") else None
    if load.returncode != 0 or not fields or int(fields["msgs"]) == 0:
        raise RuntimeError(f"{name}: TLS load generator failed: {load.stdout} {load.stderr}")
    return fields


def loaded_run(name, cmd, port, load_args, seconds, env=None):
    """CPU per message of the server `cmd` under `tls_loadgen load_args`."""
    load, user, system = echo.measure_server(
        cmd, env or {}, port,
        lambda: subprocess.run(["taskset", "-c", "1", LOADGEN, str(port)] + load_args + ["-d", str(seconds)],
                               capture_output=True, text=True, timeout=seconds + 120))
    fields = parse(name, load)
    msgs = int(fields["msgs"])
    return {
        "rate": float(fields["rate"]),
        "p50": int(fields["p50_us"]),
        "p99": int(fields["p99_us"]),
        "cpu_us": (user + system) / echo.HZ * 1e6 / msgs,
        "user_us": user / echo.HZ * 1e6 / msgs,
    }


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def idle_memory(cmd, port, n):
    """Bytes of server memory per idle TLS connection: RSS with `n` handshaken idle connections
    minus RSS after a warm-up connection set was opened and closed."""
    with echo.running_server(cmd, {}, port) as proc:

        def hold(count):
            p = subprocess.Popen(["taskset", "-c", "1", LOADGEN, str(port), "-m", "idle", "-c", str(count), "-d", "300"],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            line = p.stdout.readline()
            if not line.startswith("READY"):
                raise RuntimeError(f"idle TLS client failed: {line!r}")
            time.sleep(0.5)
            return p

        warm = hold(50)
        warm.stdin.close()
        warm.wait(timeout=30)
        time.sleep(0.5)
        before = rss_kib(proc.pid)
        idle = hold(n)
        after = rss_kib(proc.pid)
        idle.stdin.close()
        idle.wait(timeout=30)
    return (after - before) * 1024 / n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--loops", help="comma-separated subset of the Python loops (default: all but rloop)")
    ap.add_argument("--conns", type=int, default=100)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--seconds", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--hs-conns", type=int, default=10)
    ap.add_argument("--idle", type=int, default=2000)
    ap.add_argument("--port", type=int, default=7900)
    ap.add_argument("--markdown")
    args = ap.parse_args()
    if not os.path.exists(LOADGEN):
        sys.exit("bench/bin/tls_loadgen is missing: run bench/build.sh (needs libssl-dev)")
    # rloop has no TLS.
    loops = [lp for lp in python_loops() if lp != "rloop" and (not args.loops or lp in args.loops.split(","))]
    port = args.port
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        tls = certificate(scratch)

        def server(lp, mode, port):
            if lp == BARE:
                return [BARE_SERVER, str(port)] + tls
            return [sys.executable, SERVER, str(port), lp, mode] + tls

        echo_table = [(f"{lp}, {mode}", lp, mode) for mode in ("protocol", "buffered") for lp in loops]
        afn = importlib.util.find_spec("aiofastnet") is not None
        if afn:
            echo_table += [(f"{lp} + aiofastnet, protocol", lp, "protocol") for lp in loops if lp != "asyncio"]
        hs_table = [(lp, lp) for lp in loops]
        memory_rows = list(loops)
        has_bare = os.path.exists(BARE_SERVER)
        if has_bare:
            echo_table.append((BARE, BARE, None))
            hs_table.append((BARE, BARE))
            memory_rows.append(BARE)
        for r in range(args.rounds):
            for name, lp, mode in echo_table:
                port += 1
                res = loaded_run(name, server(lp, mode, port), port,
                                 ["-c", str(args.conns), "-s", str(args.size)], args.seconds,
                                 {"EVLOOP_BENCH_AIOFASTNET": "1"} if "aiofastnet" in name else {})
                results.setdefault(("echo", name), []).append(res)
                print(f"round {r + 1} echo {name}: {res['rate']:.0f} msg/s, {res['cpu_us']:.2f} µs CPU/msg "
                      f"({res['user_us']:.2f} user), p99 {res['p99']} µs", flush=True)
            for name, lp in hs_table:
                port += 1
                res = loaded_run(name, server(lp, "protocol", port), port,
                                 ["-m", "handshake", "-c", str(args.hs_conns), "-s", "64"], args.seconds)
                results.setdefault(("hs", name), []).append(res)
                print(f"round {r + 1} handshakes {name}: {res['rate']:.0f}/s, {res['cpu_us']:.0f} µs CPU each "
                      f"({res['user_us']:.0f} user), p99 {res['p99']} µs", flush=True)
        memory = {}
        for lp in memory_rows:
            port += 1
            memory[lp] = idle_memory(server(lp, "protocol", port), port, args.idle)
            print(f"idle memory {lp}: {memory[lp]:.0f} bytes per TLS connection", flush=True)
        alone = subprocess.run([sys.executable, os.path.join(HERE, "python", "sslobject_memory.py")] + tls +
                               [str(args.idle)], capture_output=True, text=True, timeout=300)
        if alone.returncode != 0 or not alone.stdout.startswith("RESULT bytes="):
            raise RuntimeError(f"sslobject_memory.py failed: {alone.stdout} {alone.stderr}")
        memory[SSLOBJECT] = float(alone.stdout.split("=")[1])
        memory_rows.append(SSLOBJECT)
        print(f"idle memory {SSLOBJECT}: {memory[SSLOBJECT]:.0f} bytes per connection", flush=True)

    def med(runs, key):
        return statistics.median(x[key] for x in runs)

    def echo_rows(names, ref_of, vs):
        out = ["| server | msg/s | CPU µs/msg | user µs/msg | p99 µs | CPU/msg vs " + vs + " | user/msg vs " + vs + " |",
               "|---|---:|---:|---:|---:|---:|---:|"]
        for name in names:
            runs, ref = results[("echo", name)], results.get(("echo", ref_of(name)))
            own = name == ref_of(name) or not ref
            out.append(f"| {name} | {med(runs, 'rate'):.0f} | {med(runs, 'cpu_us'):.2f} | {med(runs, 'user_us'):.2f} | "
                       f"{med(runs, 'p99'):.0f} | {'–' if own else median_ratio(runs, ref, 'cpu_us')} | "
                       f"{'–' if own else median_ratio(runs, ref, 'user_us')} |")
        return out

    native = [name for name, _, _ in echo_table if "aiofastnet" not in name]
    patched = [name for name, _, _ in echo_table if "aiofastnet" in name]
    lines = [f"TLS 1.3 servers (bench/python/echo_server.py) against bench/c/tls_loadgen.c; Python "
             f"{sys.version.split()[0]}; {args.seconds} s per run, median of {args.rounds} rounds, rounds interleaved; "
             "server on CPU 0, load on CPU 1. Ratios: medians of per-round ratios against uvloop.", ""]
    if has_bare:
        lines += [f"{BARE}: bench/c/tls_echo.c, the floor under any Python server here (no Python, no loop "
                  "library: one thread, epoll, OpenSSL reading and writing the socket), compared with uvloop's "
                  "Protocol server.", ""]
    lines += [f"Echo, {args.conns} connections × {args.size} B:", ""]
    lines += echo_rows(native, lambda n: f"{REF}, {n.split(', ')[1] if n != BARE else 'protocol'}", "uvloop")
    if patched:
        lines += ["", "The same echo with aiofastnet's transports on each loop (its TLS, on the loop's add_reader):", "",
                  "Echo with aiofastnet, vs uvloop + aiofastnet:", ""]
        lines += echo_rows(patched, lambda n: f"{REF} + aiofastnet, protocol", "uvloop + aiofastnet")
    lines += ["", f"A new connection per 64-byte echo (full handshake, no resumption), {args.hs_conns} at a time.", "",
              "Handshakes:", "",
              "| server | handshakes/s | CPU µs each | rate vs uvloop | CPU/handshake vs uvloop |",
              "|---|---:|---:|---:|---:|"]
    for name, lp in hs_table:
        runs = results[("hs", name)]
        ref = results.get(("hs", REF))
        own = lp == REF
        lines.append(f"| {name} | {med(runs, 'rate'):.0f} | {med(runs, 'cpu_us'):.0f} | "
                     f"{'–' if own or not ref else median_ratio(runs, ref, 'rate')} | "
                     f"{'–' if own or not ref else median_ratio(runs, ref, 'cpu_us')} |")
    lines += ["", f"Resident memory of the server per idle TLS connection ({args.idle} connections, handshakes done).", "",
              "Idle TLS connections:", "",
              "| server | bytes per connection | memory vs uvloop |", "|---|---:|---:|"]
    for lp in memory_rows:
        vs = f"{memory[lp] / memory[REF]:.2f}×" if REF in memory and lp != REF else "–"
        lines.append(f"| {lp} | {memory[lp]:.0f} | {vs} |")
    emit(lines, args.markdown)


if __name__ == "__main__":
    main()
