#!/usr/bin/env python3
"""The report's plots, drawn from the tables of its own sections (as bench/summary.py reads them),
so a plot can show nothing the tables do not:

    python3 bench/plot.py REPORT.md OUTDIR [--suffix -quick]

writes OUTDIR/echo_matrix.png (echo CPU per message against libuv's in every cell), OUTDIR/http.png
(CPU per HTTP request by connection count) and OUTDIR/timers.png (start and stop costs), each
only if its section is in REPORT.md, and prints a markdown image line for each plot written.
bench/idle_busy.py draws the idle-connection plot itself."""

import argparse
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import summary  # noqa: E402
from summary import tables  # noqa: E402


def titled_sections(path):
    """The report's sections by title, without the script named in it."""
    return {re.sub(r" \(`bench/[^)]*`\)", "", name): lines for name, lines in summary.sections(path)}


def number(cell):
    m = re.match(r"[0-9][0-9,]*(\.[0-9]+)?", cell)
    return float(m.group(0).replace(",", "")) if m else None


def column(header, *words):
    for i, h in enumerate(header):
        if all(w in h for w in words):
            return i
    return None


def bars(ax, groups, series, values, ylabel, title, baseline=None):
    """Grouped bars: one group per `groups` entry, one bar per `series` entry; `values[(g, s)]`."""
    width = 0.8 / max(len(series), 1)
    for k, s in enumerate(series):
        xs = [i + (k - (len(series) - 1) / 2) * width for i in range(len(groups))]
        ys = [values.get((g, s), 0) for g in groups]
        ax.bar(xs, ys, width, label=s)
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(groups, rotation=20, ha="right")
    if baseline is not None:
        ax.axhline(baseline, color="black", linewidth=0.8, linestyle="--")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)


def echo_matrix(lines, plt, path):
    """CPU and user CPU per message ÷ libuv's (uv_write), per cell of the echo matrix."""
    for _, table in tables(lines):
        header, body = table[0], table[1:]
        cell, server = column(header, "cell"), column(header, "server")
        cpu, user = column(header, "CPU µs/msg"), column(header, "user µs/msg")
        if None in (cell, server, cpu, user):
            continue
        raw = {(r[cell], r[server]): (number(r[cpu]), number(r[user])) for r in body}
        cells = list(dict.fromkeys(r[cell] for r in body))
        servers = [s for s in dict.fromkeys(r[server] for r in body) if s != "libuv, uv_write"]
        fig, axes = plt.subplots(2, 1, figsize=(12, 8), sharex=True)
        for ax, which, what in ((axes[0], 0, "server CPU"), (axes[1], 1, "user-space CPU")):
            ratios = {}
            for c in cells:
                base = raw.get((c, "libuv, uv_write"), (None, None))[which]
                for s in servers:
                    v = raw.get((c, s), (None, None))[which]
                    if base and v is not None:
                        ratios[(c, s)] = v / base
            bars(ax, cells, servers, ratios, f"{what} per message ÷ libuv's", "", baseline=1.0)
        axes[0].set_title("Echo at every size: connections × message size (below the dashed line: cheaper than libuv)")
        axes[0].legend(fontsize=8, ncol=3)
        fig.savefig(path, dpi=100, bbox_inches="tight")
        return True
    return False


def http(lines, plt, path):
    """CPU per request by connection count, one bar per server."""
    values, groups, servers = {}, [], []
    for context, table in tables(lines):
        header, body = table[0], table[1:]
        cpu = column(header, "CPU µs/req")
        if cpu is None or not context:
            continue
        groups.append(context)
        for r in body:
            servers.append(r[0])
            values[(context, r[0])] = number(r[cpu])
    if not groups:
        return False
    fig, ax = plt.subplots(figsize=(9, 5))
    bars(ax, groups, list(dict.fromkeys(servers)), values, "server CPU µs per request",
         "HTTP hello world under wrk: CPU per request (lower is better)")
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    return True


def timers(lines, plt, path):
    """Start and stop (random order) costs per loop."""
    for _, table in tables(lines):
        header, body = table[0], table[1:]
        start, stop = column(header, "start ns"), column(header, "stop ns", "random")
        if None in (start, stop):
            continue
        loops = [r[0] for r in body]
        values = {}
        for r in body:
            values[("start", r[0])] = number(r[start])
            values[("stop, random order", r[0])] = number(r[stop])
        fig, ax = plt.subplots(figsize=(9, 5))
        bars(ax, ["start", "stop, random order"], loops, values, "ns per timer",
             "1,000,000 pending timers: start and stop (lower is better)")
        ax.legend(fontsize=8)
        fig.savefig(path, dpi=100, bbox_inches="tight")
        return True
    return False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("report")
    ap.add_argument("outdir")
    ap.add_argument("--suffix", default="")
    ap.add_argument("--link-prefix", default="", help="prefix of the image paths printed")
    args = ap.parse_args()
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plots", file=sys.stderr)
        return
    found = titled_sections(args.report)
    os.makedirs(args.outdir, exist_ok=True)
    for section, draw, name, alt in (
        ("Echo server", echo_matrix, "echo_matrix", "echo CPU per message against libuv, every size"),
        ("HTTP", http, "http", "CPU per HTTP request"),
        ("Timers", timers, "timers", "timer start and stop"),
    ):
        if section not in found:
            continue
        file = f"{name}{args.suffix}.png"
        if draw(found[section], plt, os.path.join(args.outdir, file)):
            plt.close("all")
            print(f"![{alt}]({args.link_prefix}{file})")


if __name__ == "__main__":
    main()
