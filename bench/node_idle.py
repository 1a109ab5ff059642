#!/usr/bin/env python3
"""Node idle-connection memory: server RSS growth from 1,000 to 10,000 idle, reading
connections, for the echo server on evloop's addon (both backends) and on Node's `net`, each
server in its own process, the idle clients in the load generator's processes.

usage: bench/node_idle.py [--rounds 3] [--markdown FILE]
"""
import argparse
import subprocess

import idle
from node_echo import SERVER, servers
from report import emit


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--port", type=int, default=8900)
    ap.add_argument("--markdown")
    args = ap.parse_args()
    res = {}
    port = args.port
    for _ in range(args.rounds):
        for name, impl, env in servers():
            port += 1
            cmd = ["node", SERVER, str(port), impl]
            res.setdefault(name, []).append(idle.measure(name, cmd, env, port, 1000, 10000))
    version = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    lines = idle.table(res, "node net", f"Server RSS growth per idle, reading connection, from 1,000 to 10,000 "
                       f"connections; median of {args.rounds} rounds (min–max), Node {version}.")
    emit(lines, args.markdown)


if __name__ == "__main__":
    main()
