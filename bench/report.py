"""What the benchmark scripts share: whether perf can count system calls here, and how a result
table is shown and saved."""
import shutil, subprocess


def perf_works():
    """perf is installed and its raw_syscalls tracepoint can be counted on this machine."""
    if not shutil.which("perf"):
        return False
    r = subprocess.run(["perf", "stat", "-e", "raw_syscalls:sys_enter", "-x,", "true"], capture_output=True, text=True)
    return r.returncode == 0 and "raw_syscalls" in r.stderr


def emit(lines, markdown=None):
    """Prints the table made of `lines` and, if `markdown` names a file, writes it there too."""
    text = "\n".join(lines) + "\n"
    print()
    print(text)
    if markdown:
        with open(markdown, "w") as f:
            f.write(text)


def python_loops():
    """The asyncio loops the Python benchmarks compare: evloop on each backend, then uvloop and
    rloop when they are installed, and asyncio's own."""
    import importlib.util

    loops = ["evloop-uring", "evloop-epoll"]
    loops += [peer for peer in ("uvloop", "rloop") if importlib.util.find_spec(peer)]
    return loops + ["asyncio"]


def median_ratio(runs, ref_runs, key):
    """The median of per-round ratios `runs[i][key] / ref_runs[i][key]`, as text ("–" if none):
    servers of one round share the machine's state, so pairing them is steadier than a ratio of
    medians on a noisy shared machine."""
    import statistics

    ratios = [a[key] / b[key] for a, b in zip(runs, ref_runs) if a[key] is not None and b[key]]
    return f"{statistics.median(ratios):.2f}×" if ratios else "–"
