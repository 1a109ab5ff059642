#!/usr/bin/env python3
"""Echo benchmark: evloop against libuv, same load generator, same run.

Each server runs single-threaded on CPU 0, the C ping-pong load generator on CPU 1. On two
cores loopback throughput is bound by the client, so the figures that rank servers are the
server's CPU time per echoed message (user and system, from /proc/PID/stat) and its system calls
per message (perf's raw_syscalls:sys_enter tracepoint). Servers are interleaved within each round
so machine drift hits all of them alike; the median of the rounds is reported.

System calls are counted in a round of their own, since tracing slows each call of the server
it traces.

usage: bench/echo.py [--conns 100] [--size 64] [--seconds 5] [--rounds 3] [--matrix]
                     [--matrix-seconds 2] [--markdown FILE]
Servers: evloop's Rust echo server and its C example through libevloop.so (each backend), libuv
(uv_write, and uv_try_write first), a bare epoll loop and a bare liburing multishot loop.
Needs the binaries built by bench/build.sh.
"""
import argparse
import contextlib, os, socket, statistics, subprocess, sys, time
from report import emit, median_ratio, perf_works

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BIN = os.path.join(HERE, "bin")
HZ = os.sysconf("SC_CLK_TCK")


def servers(port):
    echo = os.path.join(ROOT, "target", "release", "examples", "echo_server")
    out = []
    for backend in available_backends():
        out.append((f"evloop ({backend})", [echo, str(port)], {"EVLOOP_BACKEND": backend}))
    c_echo = os.path.join(ROOT, "build", "examples", "echo_server")
    if os.path.exists(c_echo):
        for backend in available_backends():
            out.append((f"evloop ({backend}, C API)", [c_echo, str(port)], {"EVLOOP_BACKEND": backend}))
    uv = os.path.join(BIN, "uv_echo")
    if os.path.exists(uv):
        out.append(("libuv, uv_write", [uv, str(port), "write"], {}))
        out.append(("libuv, uv_try_write first", [uv, str(port), "trywrite"], {}))
    bare = os.path.join(BIN, "bare_echo")
    if os.path.exists(bare):
        out.append(("bare epoll", [bare, str(port), "epoll"], {}))
    ring = os.path.join(BIN, "uring_echo")
    if os.path.exists(ring):
        out.append(("bare liburing (multishot)", [ring, str(port)], {}))
    return out


MATRIX_CONNS = (1, 100, 1000)
MATRIX_SIZES = (64, 4096, 65536)


def size_label(size):
    return f"{size // 1024} KiB" if size >= 1024 else f"{size} B"


def matrix(args, table):
    """Every cell of 1, 100, 1,000 connections × 64 B, 4 KiB, 64 KiB but the main one: one
    round of --matrix-seconds each, servers interleaved; no traced round (syscalls n/a)."""
    cells = [(c, s) for c in MATRIX_CONNS for s in MATRIX_SIZES if (c, s) != (args.conns, args.size)]
    results = {}
    port = args.port + 7000
    for conns, size in cells:
        cell_args = argparse.Namespace(conns=conns, size=size, seconds=args.matrix_seconds)
        for name, cmd, env in table:
            port += 1
            cmd = [c if c != str(args.port) else str(port) for c in cmd]
            results[(conns, size, name)] = one_run(name, cmd, env, port, cell_args, False)
            r = results[(conns, size, name)]
            print(f"{conns} × {size_label(size)} {name}: {r['rate']:.0f} msg/s, {r['cpu_us']:.2f} µs CPU/msg "
                  f"({r['user_us']:.3f} user)", flush=True)
    names = [n for n, _, _ in table]
    ref = next((n for n in names if n.startswith("libuv, uv_write")), None)
    lines = ["", f"Every size: 1, 100 and 1,000 connections × 64 B, 4 KiB and 64 KiB, {args.matrix_seconds} s per "
             "server and cell, one round, servers interleaved (the main cell is the table above). Server CPU per "
             "message against libuv's (`uv_write`), and its user-space part against libuv's:", "",
             "| server | " + " | ".join(f"{c} × {size_label(s)}" for c, s in cells) + " |",
             "|---|" + "---:|" * len(cells)]
    for n in names:
        if n == ref:
            continue
        row = []
        for c, s in cells:
            mine, theirs = results[(c, s, n)], results[(c, s, ref)] if ref else None
            if not theirs:
                row.append("–")
                continue
            user = f"{mine['user_us'] / theirs['user_us']:.2f}×" if theirs["user_us"] else "–"
            row.append(f"{mine['cpu_us'] / theirs['cpu_us']:.2f}× ({user})")
        lines.append(f"| {n} | " + " | ".join(row) + " |")
    lines += ["", "The same cells, raw:", "",
              "| cell | server | msg/s | CPU µs/msg | user µs/msg | system µs/msg | p50 µs | p99 µs | reply spread |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for c, s in cells:
        for n in names:
            r = results[(c, s, n)]
            lines.append(f"| {c} × {size_label(s)} | {n} | {r['rate']:.0f} | {r['cpu_us']:.2f} | {r['user_us']:.3f} | "
                         f"{r['cpu_us'] - r['user_us']:.2f} | {r['p50']} | {r['p99']} | {r['spread']:.2f} |")
    return lines


def available_backends():
    found = []
    for b in ("epoll", "uring"):
        probe = subprocess.run([os.path.join(ROOT, "target", "release", "examples", "echo_server"), "--probe"],
                               env={**os.environ, "EVLOOP_BACKEND": b}, capture_output=True, text=True)
        if probe.returncode == 0:
            found.append(b)
    return found


def wait_port(port, proc, limit=10.0):
    end = time.time() + limit
    while time.time() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server did not listen")


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]), int(fields[12])  # utime, stime


@contextlib.contextmanager
def running_server(cmd, env, port):
    """The server `cmd` on CPU 0, listening on `port`; stopped (SIGTERM, then SIGKILL) on exit."""
    proc = subprocess.Popen(["taskset", "-c", "0"] + cmd, env={**os.environ, **env},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_port(port, proc)
        yield proc
    finally:
        proc.send_signal(15)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def measure_server(cmd, env, port, load):
    """Runs `load()` against the server `cmd` (see `running_server`). Returns what `load`
    returned and the server's user and system CPU ticks during it."""
    with running_server(cmd, env, port) as proc:
        u0, s0 = cpu_ticks(proc.pid)
        result = load()
        u1, s1 = cpu_ticks(proc.pid)
    return result, u1 - u0, s1 - s0


def open_idle(port, n, seconds=600):
    """Idle client processes holding `n` connections to `port` (5,000 a process, under the
    descriptor limit); close their stdin to let them go."""
    procs = []
    while n > 0:
        k = min(n, 5000)
        p = subprocess.Popen([os.path.join(BIN, "loadgen"), str(port), "-i", str(k), "-d", str(seconds)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = p.stdout.readline()
        if not line.startswith("READY"):
            raise RuntimeError(f"idle client failed: {line!r}")
        procs.append(p)
        n -= k
    return procs


def interleaved_rounds(table, run, rounds, use_perf):
    """Runs each entry of `table` (tuples whose first item is the name) `rounds` times, rounds
    interleaved, through `run(entry, traced)`; with `use_perf`, first one traced run per entry
    counts its system calls. Returns {name: [result, ...]}, each result's `sys_per_msg` taken
    from the traced run."""
    syscalls, results = {}, {}
    if use_perf:
        for entry in table:
            syscalls[entry[0]] = run(entry, True)["sys_per_msg"]
    for r in range(rounds):
        for entry in table:
            name = entry[0]
            res = run(entry, False)
            res["sys_per_msg"] = syscalls.get(name)
            results.setdefault(name, []).append(res)
            print(f"round {r + 1} {name}: {res['rate']:.0f} msg/s, {res['cpu_us']:.2f} µs CPU/msg "
                  f"({res['user_us']:.3f} user), p99 {res['p99']} µs", flush=True)
    return results


def one_run(name, cmd, env, port, args, use_perf, idle=0):
    """One server under the ping-pong load, with `idle` idle connections open beside it."""
    proc = subprocess.Popen(["taskset", "-c", "0"] + cmd, env={**os.environ, **env},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    idlers = []
    try:
        wait_port(port, proc)
        if idle:
            idlers = open_idle(port, idle)
            time.sleep(0.5)  # let the server accept them all before measuring
        u0, s0 = cpu_ticks(proc.pid)
        perf = None
        if use_perf:
            perf = subprocess.Popen(["perf", "stat", "-e", "raw_syscalls:sys_enter", "-x,", "-p", str(proc.pid)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            time.sleep(0.2)
        load = subprocess.run(["taskset", "-c", "1", os.path.join(BIN, "loadgen"), str(port), "-c", str(args.conns),
                               "-s", str(args.size), "-d", str(args.seconds)], capture_output=True, text=True,
                              timeout=args.seconds + 60)
        syscalls = None
        if perf:
            perf.send_signal(2)
            err = perf.communicate(timeout=30)[1]
            for line in err.splitlines():
                parts = line.split(",")
                if len(parts) > 2 and "raw_syscalls:sys_enter" in parts[2] and parts[0].strip().isdigit():
                    syscalls = int(parts[0])
        u1, s1 = cpu_ticks(proc.pid)
    finally:
        for p in idlers:
            p.stdin.close()
            p.wait(timeout=30)
        proc.send_signal(15)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
    fields = dict(kv.split("=") for kv in load.stdout.split()[1:]) if load.stdout.startswith("RESULT") else None
    if load.returncode != 0 or not fields:
        raise RuntimeError(f"{name}: load generator failed: {load.stdout} {load.stderr}")
    msgs = int(fields["msgs"])
    return {
        "rate": float(fields["rate"]),
        "p50": int(fields["p50_us"]),
        "p99": int(fields["p99_us"]),
        # How evenly the server shared itself out: replies on the luckiest connection over
        # replies on the unluckiest (1.00 is perfectly even).
        "spread": int(fields["conn_max"]) / max(1, int(fields["conn_min"])),
        "cpu_us": (u1 - u0 + s1 - s0) / HZ * 1e6 / msgs,
        "user_us": (u1 - u0) / HZ * 1e6 / msgs,
        "sys_per_msg": (syscalls / msgs) if syscalls is not None else None,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--conns", type=int, default=100)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--port", type=int, default=7100)
    ap.add_argument("--matrix", action="store_true", help="also every size and connection count, briefly")
    ap.add_argument("--matrix-seconds", type=int, default=2)
    ap.add_argument("--markdown", help="write the table to this file")
    args = ap.parse_args()
    use_perf = perf_works()
    if not use_perf:
        print("perf tracepoints unavailable: syscall counts omitted", file=sys.stderr)
    results = {}
    table = servers(args.port)
    # perf's tracepoint costs the traced server time on every system call, which would tax the
    # syscall-heavy servers' CPU figures: system calls are counted in a separate round of their
    # own, and the CPU and latency rounds run untraced.
    syscalls = {}
    if use_perf:
        for i, (name, cmd, env) in enumerate(table):
            port = args.port + 5000 + i
            cmd = [c if c != str(args.port) else str(port) for c in cmd]
            syscalls[name] = one_run(name, cmd, env, port, args, True)["sys_per_msg"]
            print(f"syscall round {name}: {syscalls[name]:.2f} syscalls/msg", flush=True)
    for r in range(args.rounds):
        for i, (name, cmd, env) in enumerate(table):
            port = args.port + r * 10 + i
            cmd = [c if c != str(args.port) else str(port) for c in cmd]
            res = one_run(name, cmd, env, port, args, False)
            res["sys_per_msg"] = syscalls.get(name)
            results.setdefault(name, []).append(res)
            print(f"round {r + 1} {name}: {res['rate']:.0f} msg/s, {res['cpu_us']:.2f} µs CPU/msg "
                  f"({res['user_us']:.3f} user), p99 {res['p99']} µs, reply spread {res['spread']:.2f}", flush=True)
    med = {n: {k: statistics.median([x[k] for x in v if x[k] is not None]) if any(x[k] is not None for x in v) else None
               for k in v[0]} for n, v in results.items()}
    ref = next((n for n in med if n.startswith("libuv, uv_write")), None)
    # Identical runs land in a fast or a slow mode here (ANCHORS.md), and CPU per message follows
    # the mode; servers of the same round share the machine's state, so each round's ratio
    # against libuv pairs like with like. The median of those ratios is the steadier figure.
    def paired(name, key):
        return median_ratio(results[name], results[ref], key) if ref else "–"
    lines = [f"Echo ping-pong, {args.conns} connections × {args.size} B, {args.seconds} s per run, median of "
             f"{args.rounds} rounds; server on CPU 0, load generator on CPU 1; system calls counted in a "
             f"separate traced round.", "",
             "| server | msg/s | server CPU µs/msg | user-space µs/msg | syscalls/msg | p50 µs | p99 µs "
             "| CPU/msg vs libuv uv_write | same, median of per-round ratios | user-space, median of per-round ratios "
             "| p99, median of per-round ratios | reply spread |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for n, m in med.items():
        ratio = f"{m['cpu_us'] / med[ref]['cpu_us']:.2f}×" if ref else "–"
        sc = f"{m['sys_per_msg']:.2f}" if m["sys_per_msg"] is not None else "n/a"
        lines.append(f"| {n} | {m['rate']:.0f} | {m['cpu_us']:.2f} | {m['user_us']:.3f} | {sc} | {m['p50']:.0f} | "
                     f"{m['p99']:.0f} | {ratio} | {paired(n, 'cpu_us')} | {paired(n, 'user_us')} | "
                     f"{paired(n, 'p99')} | {m['spread']:.2f} |")
    if args.matrix:
        lines += matrix(args, table)
    emit(lines, args.markdown)


if __name__ == "__main__":
    main()
