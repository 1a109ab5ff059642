#!/usr/bin/env python3
"""The report's opening table: every ratio of evloop to a peer that the sections below measured,
one line per scenario and measure, taken from the sections' own tables (so it can say nothing
they do not).

    python3 bench/summary.py REPORT.md   # prints the summary table of REPORT.md's sections

Every table column whose header compares ("… vs …", "ratio") gives, for each evloop row, that
column's value."""

import re
import sys


def tables(lines):
    """The markdown tables in `lines`, each with the short line introducing it ("1 connection:")
    if there is one: (context, rows), rows as lists of cell texts."""
    out, cur, context = [], [], ""
    for line in lines + [""]:
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not all(re.fullmatch(r":?-+:?", c) for c in cells):
                cur.append(cells)
            continue
        if cur:
            out.append((context, cur))
            cur, context = [], ""
        if line.strip().endswith(":") and len(line) < 60:
            context = line.strip().rstrip(":")
    return out


def is_ratio(cell):
    return bool(re.fullmatch(r"[0-9.]+×( faster)?( \(.*\))?", cell))


def is_evloop(label):
    return "evloop" in label.lower() or label in ("uring", "epoll")


def summarize(section, lines):
    """(scenario, measure, evloop variant, ratio) rows from one section."""
    rows = []
    for context, table in tables(lines):
        header, body = table[0], table[1:]
        compare = [i for i, h in enumerate(header) if re.search(r"\bvs\b|\bratio\b", h)]
        for row in body:
            if not is_evloop(row[0]):
                continue
            for i in compare:
                if i < len(row) and is_ratio(row[i]):
                    measure = f"{header[i]} ({context})" if context else header[i]
                    rows.append((section, measure, row[0], row[i]))
    return rows


def sections(path):
    """The report's `## ` sections, in order: (title, lines)."""
    out, name, cur = [], None, []
    for line in open(path).read().splitlines():
        if line.startswith("## "):
            if name:
                out.append((name, cur))
            name, cur = line[3:].strip(), []
        elif name:
            cur.append(line)
    if name:
        out.append((name, cur))
    return out


def main(path):
    rows = [r for name, lines in sections(path) for r in summarize(name, lines)]
    print("| scenario | measure (evloop ÷ peer; below 1 is better unless the measure is a rate) | evloop | ratio |")
    print("|---|---|---|---:|")
    last = None
    for section, measure, variant, ratio in rows:
        shown = re.sub(r" \(`bench/[^)]*`\)", "", section) if section != last else ""
        last = section
        print(f"| {shown} | {measure} | {variant} | {ratio} |")


if __name__ == "__main__":
    main(sys.argv[1])
