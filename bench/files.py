#!/usr/bin/env python3
"""File-read benchmark: read 10,000 files of 4 KiB (page cache warm) with at most 256 in flight,
whole-file reads (open, read to end of file, close): evloop on io_uring (ring operations), evloop
on epoll (thread pool) and libuv's uv_fs_* (thread pool), interleaved in the same run.

Reports medians of files/s and CPU per file (user + system, all threads, from getrusage), with
ratios against libuv (of the medians, and the median of each round's own ratio, which the
machine's drift between rounds does not move), and system calls per file from one more run of each under perf
(raw_syscalls:sys_enter over the whole process, threads included; tracing slows the
syscall-heavy runs, which is why it has runs of its own).

usage: bench/files.py [--rounds 7] [--passes 10] [--markdown FILE]
"""
import argparse, os, shutil, statistics, subprocess, tempfile
from report import emit, perf_works

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
FILES, SIZE, INFLIGHT = 10_000, 4096, 256


def run(cmd, env, use_perf):
    full = (["perf", "stat", "-e", "raw_syscalls:sys_enter", "-x,"] if use_perf else []) + cmd
    p = subprocess.run(full, capture_output=True, text=True, check=True, timeout=300, env={**os.environ, **env})
    line = next(l for l in p.stdout.splitlines() if l.startswith("RESULT"))
    r = dict(kv.split("=", 1) for kv in line.split()[1:])
    if use_perf:
        count = next(l for l in p.stderr.splitlines() if "raw_syscalls:sys_enter" in l).split(",")[0]
        r["syscalls_per_file"] = float(count) / float(r["files"])
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--passes", type=int, default=10)
    ap.add_argument("--markdown")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="evloop-files-")
    try:
        for i in range(FILES):
            with open(os.path.join(tmp, f"{i:05d}"), "wb") as f:
                f.write(os.urandom(SIZE))
        for name in os.listdir(tmp):  # warm the page cache
            with open(os.path.join(tmp, name), "rb") as f:
                f.read()
        ev = [os.path.join(ROOT, "target", "release", "files"), tmp, str(args.passes), str(INFLIGHT)]
        impls = [("evloop (uring)", ev, {"EVLOOP_BACKEND": "uring"}),
                 ("evloop (uring, no offload ring)", ev, {"EVLOOP_BACKEND": "uring", "EVLOOP_FILE_OFFLOAD": "0"}),
                 ("evloop (epoll, thread pool)", ev, {"EVLOOP_BACKEND": "epoll"})]
        uv = os.path.join(HERE, "bin", "uv_files")
        if os.path.exists(uv):
            impls.append(("libuv uv_fs_* (thread pool)", [uv, tmp, str(args.passes), str(INFLIGHT)], {}))
        use_perf = perf_works()
        res = {}
        for _ in range(args.rounds):
            for name, cmd, env in impls:
                res.setdefault(name, []).append(run(cmd, env, False))
        syscalls = {name: run(cmd, env, True)["syscalls_per_file"] for name, cmd, env in impls} if use_perf else {}
    finally:
        shutil.rmtree(tmp)
    keys = ["files_per_s", "cpu_us_per_file"]
    med = {n: {k: statistics.median(float(r[k]) for r in rs) for k in keys} for n, rs in res.items()}
    uv_name = "libuv uv_fs_* (thread pool)"
    uvm = med.get(uv_name)

    def paired(n, k):  # median over rounds of (this loop / libuv in the same round)
        return statistics.median(float(a[k]) / float(b[k]) for a, b in zip(res[n], res[uv_name]))

    lines = [f"{FILES:,} files of {SIZE} B, page cache warm, at most {INFLIGHT} in flight, whole-file reads; "
             f"{args.passes} passes per run, median of {args.rounds} runs.", "",
             "| loop | files/s | CPU µs/file | syscalls/file | files/s vs libuv | per-round files/s vs libuv | CPU/file vs libuv |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for n, m in med.items():
        sc = f"{syscalls[n]:.2f}" if n in syscalls else "n/a"
        tput = f"{m['files_per_s'] / uvm['files_per_s']:.2f}×" if uvm else "–"
        tput_paired = f"{paired(n, 'files_per_s'):.2f}×" if uvm else "–"
        cpu = f"{m['cpu_us_per_file'] / uvm['cpu_us_per_file']:.2f}×" if uvm else "–"
        lines.append(f"| {n} | {m['files_per_s']:.0f} | {m['cpu_us_per_file']:.2f} | {sc} | {tput} | {tput_paired} | {cpu} |")
    emit(lines, args.markdown)


if __name__ == "__main__":
    main()
