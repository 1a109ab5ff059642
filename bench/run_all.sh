#!/usr/bin/env bash
# Runs every benchmark and rewrites BENCHMARKS.md and the plots in bench/results/ from the results (about 40
# minutes). `--quick` runs each scenario once and briefly (a few minutes, for development) and
# writes bench/results/QUICK.md instead, leaving BENCHMARKS.md alone. Installs the peers the
# scenarios use where missing: libuv1-dev (scripts/setup.sh), wrk, nginx and liburing-dev (Debian), uvloop,
# rloop, aiohttp, aiofiles, aiofastnet and matplotlib from PyPI, Node with npm (the addon is built by npm
# install).
set -euo pipefail
cd "$(dirname "$0")/.."
quick=0
[ "${1:-}" = "--quick" ] && quick=1
scripts/setup.sh >/dev/null
export PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1
python3 -c "import uvloop, rloop, aiohttp, aiofiles, matplotlib, aiofastnet" 2>/dev/null ||
    python3 -m pip install --quiet uvloop rloop aiohttp aiofiles matplotlib aiofastnet 2>/dev/null ||
    python3 -m pip install --quiet --break-system-packages uvloop rloop aiohttp aiofiles matplotlib aiofastnet
if ! command -v wrk >/dev/null || ! { command -v nginx >/dev/null || [ -x /usr/sbin/nginx ]; } ||
    [ ! -f /usr/include/liburing.h ] || [ ! -f /usr/include/openssl/ssl.h ]; then
    sudo=$([ "$(id -u)" = 0 ] || echo sudo)
    $sudo apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq wrk nginx-light liburing-dev libssl-dev >/dev/null
fi
out=BENCHMARKS.md
idle_busy_args=(--plot bench/results/idle_busy.png)
if [ $quick = 1 ]; then
    export ECHO_ROUNDS=1 SECONDS_PER_RUN=1 ROUNDS=1 ADAPTER_ROUNDS=1 FILES_ROUNDS=1 POLL_ROUNDS=1 PY_ROUNDS=1 NODE_ROUNDS=1 HTTP_ROUNDS=1 LIGHT_ROUNDS=1
    out=bench/results/QUICK.md
    idle_busy_args=(--quick --plot bench/results/idle_busy-quick.png)
fi
py_seconds=$([ $quick = 1 ] && echo 1 || echo 3)
http_conns=$([ $quick = 1 ] && echo 50 || echo 1,50,500)
bench/build.sh
make --quiet examples
tmp=$(mktemp -d)
python3 bench/echo.py --rounds "${ECHO_ROUNDS:-5}" --seconds "${SECONDS_PER_RUN:-4}" $([ $quick = 1 ] || echo --matrix --matrix-seconds 2) --markdown "$tmp/echo.md"
bench/instructions.sh 20 4 > "$tmp/instructions.md"
python3 bench/receive_buffers.py --rounds "${ROUNDS:-3}" --seconds "$([ $quick = 1 ] && echo 1 || echo 2)" --markdown "$tmp/receive_buffers.md"
python3 bench/timers.py --rounds "${ROUNDS:-3}" --markdown "$tmp/timers.md"
if [ $quick = 1 ]; then
    python3 bench/idle.py --first 1000 --second 3000 --markdown "$tmp/idle.md"
else
    python3 bench/idle.py --markdown "$tmp/idle.md"
fi
python3 bench/files.py --rounds "${FILES_ROUNDS:-7}" --passes $([ $quick = 1 ] && echo 2 || echo 10) --markdown "$tmp/files.md"
python3 bench/poll.py --rounds "${POLL_ROUNDS:-5}" --markdown "$tmp/poll.md"
python3 bench/idle_busy.py --rounds "${IDLE_ROUNDS:-3}" --markdown "$tmp/idle_busy.md" "${idle_busy_args[@]}"
python3 bench/wakeup.py --rounds "${ROUNDS:-3}" --seconds "$([ $quick = 1 ] && echo 1 || echo 2)" --markdown "$tmp/wakeup.md"
python3 bench/http.py --suite c --rounds "${HTTP_ROUNDS:-3}" --seconds "$py_seconds" --conns "$http_conns" --markdown "$tmp/http_c.md"
python3 bench/adapters.py --rounds "${ADAPTER_ROUNDS:-5}" --markdown "$tmp/adapters.md"
# Python: the package as users install it.
PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet --no-build-isolation ./bindings/python
python3 bench/python_scheduling.py --rounds "${PY_ROUNDS:-3}" --markdown "$tmp/python_scheduling.md"
python3 bench/python_files.py --rounds "${PY_ROUNDS:-5}" --markdown "$tmp/python_files.md"
python3 bench/python_echo.py --rounds "${PY_ROUNDS:-3}" --seconds "$py_seconds" $([ $quick = 1 ] || echo --matrix --matrix-seconds 1) --markdown "$tmp/python_echo.md"
python3 bench/python_profile.py --seconds "$py_seconds" --markdown "$tmp/python_profile.md"
python3 bench/python_idle.py --rounds "${PY_ROUNDS:-3}" --markdown "$tmp/python_idle.md"
if [ $quick = 0 ]; then
    python3 bench/python_abi3.py --rounds 5 --seconds 3 --markdown "$tmp/python_abi3.md"
fi
python3 bench/http.py --suite python --rounds "${HTTP_ROUNDS:-3}" --seconds "$py_seconds" --conns "$http_conns" --markdown "$tmp/http_python.md"
python3 bench/python_profile.py --mode http --conns 50 --seconds "$py_seconds" --markdown "$tmp/python_profile_http.md"
python3 bench/http.py --suite python --tls --loops evloop-uring,evloop-epoll,uvloop,asyncio --rounds "${HTTP_ROUNDS:-3}" \
    --seconds "$py_seconds" --conns "$([ $quick = 1 ] && echo 50 || echo 1,50)" --markdown "$tmp/https_python.md"
python3 bench/python_tls.py --rounds "${PY_ROUNDS:-5}" --seconds "$py_seconds" --idle "$([ $quick = 1 ] && echo 200 || echo 2000)" \
    --markdown "$tmp/python_tls.md"
python3 bench/python_poll.py --rounds "${PY_ROUNDS:-5}" --seconds "$([ $quick = 1 ] && echo 1 || echo 2)" --markdown "$tmp/python_poll.md"
# Node: the addon as users build it.
(cd bindings/node && npm install --no-audit --no-fund --loglevel=error)
python3 bench/node_echo.py --rounds "${NODE_ROUNDS:-3}" --seconds "$py_seconds" --markdown "$tmp/node_echo.md"
python3 bench/node_idle.py --rounds "${NODE_ROUNDS:-3}" --markdown "$tmp/node_idle.md"
python3 bench/node_files.py --rounds "${NODE_ROUNDS:-5}" --markdown "$tmp/node_files.md"
# Every face at 1, 4 and 50 connections, with latency tails (needs the module and the addon).
python3 bench/light_load.py --rounds "${LIGHT_ROUNDS:-3}" --seconds "$py_seconds" --markdown "$tmp/light_load.md"
{
    echo "## The machine, the peers, the command"
    echo
    echo "Generated by \`bench/run_all.sh$([ $quick = 1 ] && echo ' --quick')\` (\`make bench$([ $quick = 1 ] && echo '-quick')\`) on $(date -u +%Y-%m-%d), kernel $(uname -r), $(nproc) CPUs"
    echo "($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')). Peers: libuv $(pkg-config --modversion libuv 2>/dev/null || echo n/a),"
    echo "liburing $(pkg-config --modversion liburing 2>/dev/null || echo n/a), $(nginx -v 2>&1 | sed 's|nginx version: ||' || echo 'nginx n/a'), $(wrk --version 2>&1 | head -1 | awk '{print $1, $2}'),"
    echo "$(python3 -c 'import sys, importlib.metadata as m; print(", ".join(f"{p} {m.version(p)}" for p in ("uvloop", "rloop", "aiohttp")) + f", Python {sys.version.split()[0]}")'), Node $(node --version 2>/dev/null || echo n/a)."
    echo "Every peer ran in the same run as evloop; compare ratios, not absolute figures, across runs."
    echo
    echo "## Echo server"
    echo
    cat "$tmp/echo.md"
    echo
    echo "User-space instructions per echoed message (callgrind; 20 connections × 64 B; deterministic,"
    echo "unlike CPU time on a shared machine): \`bench/instructions.sh 20 4\`"
    echo
    cat "$tmp/instructions.md"
    echo
    echo "## io_uring receive buffers: filled a piece at a time, or whole (\`bench/receive_buffers.py\`)"
    echo
    cat "$tmp/receive_buffers.md"
    echo
    echo "## Light load: 1, 4 and 50 connections, request/response (\`bench/light_load.py\`)"
    echo
    cat "$tmp/light_load.md"
    echo
    cat bench/LIGHT_LOAD.md
    echo
    echo "## Timers"
    echo
    cat "$tmp/timers.md"
    echo
    echo "## Idle connections beside busy ones"
    echo
    cat "$tmp/idle_busy.md"
    echo
    echo "![CPU per message as idle connections grow](bench/results/idle_busy.png)"
    echo
    echo "## Idle connections"
    echo
    cat "$tmp/idle.md"
    echo
    echo "## Reading files"
    echo
    cat "$tmp/files.md"
    echo
    echo "## fd watchers"
    echo
    cat "$tmp/poll.md"
    echo
    echo "## Cross-thread wake-ups (\`bench/wakeup.py\`)"
    echo
    cat "$tmp/wakeup.md"
    echo
    echo "## HTTP (\`bench/http.py --suite c\`)"
    echo
    cat "$tmp/http_c.md"
    echo
    echo "## C library adapters: hiredis, libcurl, c-ares (\`bench/adapters.py\`)"
    echo
    cat "$tmp/adapters.md"
    echo
    echo "## Python: echo servers (\`bench/python_echo.py\`)"
    echo
    echo "asyncio echo servers (Protocol, BufferedProtocol, streams) on each loop, the C load generator as the client."
    echo
    cat "$tmp/python_echo.md"
    echo
    echo "Where the protocol servers' time goes (\`bench/python_profile.py\`; samples attributed by symbol, so core"
    echo "code the compiler inlined into the binding's functions counts as glue):"
    echo
    cat "$tmp/python_profile.md"
    echo
    echo "## Python: idle connections (\`bench/python_idle.py\`)"
    echo
    cat "$tmp/python_idle.md"
    echo
    echo "## Python: HTTP, aiohttp (\`bench/http.py --suite python\`)"
    echo
    cat "$tmp/http_python.md"
    echo
    echo "Where the aiohttp servers' time goes (\`bench/python_profile.py --mode http\`):"
    echo
    cat "$tmp/python_profile_http.md"
    echo
    echo "## Python: TLS"
    echo
    echo "aiohttp over HTTPS (\`bench/http.py --suite python --tls\`):"
    echo
    cat "$tmp/https_python.md"
    echo
    echo "TLS echo, handshakes and idle TLS connections (\`bench/python_tls.py\`):"
    echo
    cat "$tmp/python_tls.md"
    echo
    echo "## Python: fd watchers (\`bench/python_poll.py\`)"
    echo
    cat "$tmp/python_poll.md"
    echo
    echo "## Python: scheduling (\`bench/python_scheduling.py\`)"
    echo
    cat "$tmp/python_scheduling.md"
    echo
    echo "## Python: reading files (\`bench/python_files.py\`)"
    echo
    cat "$tmp/python_files.md"
    if [ -f "$tmp/python_abi3.md" ]; then
        echo
        echo "## Python: the stable-ABI build (\`bench/python_abi3.py\`)"
        echo
        cat "$tmp/python_abi3.md"
        echo
        echo "Why the wheel is built per Python version: the stable ABI of 3.9 has no \`PyContext_Enter\`"
        echo "(each task step goes through \`Context.run\`), no buffer protocol (a BufferedProtocol read is a"
        echo "slice assignment through Python, a bytearray write a copy), and no inline reference counting."
    fi
    echo
    echo "## Node: echo servers (\`bench/node_echo.py\`)"
    echo
    echo "The same echo server on the evloop addon and on Node's \`net\`, the C load generator as the client."
    echo
    cat "$tmp/node_echo.md"
    echo
    echo "## Node: idle connections (\`bench/node_idle.py\`)"
    echo
    cat "$tmp/node_idle.md"
    echo
    echo "## Node: reading files (\`bench/node_files.py\`)"
    echo
    cat "$tmp/node_files.md"
    echo
    cat bench/NOTES.md
} > "$tmp/body.md"
plot=$([ $quick = 1 ] && echo idle_busy-quick.png || echo idle_busy.png)
# The other plots, drawn from the sections' own tables.
python3 bench/plot.py "$tmp/body.md" bench/results $([ $quick = 1 ] && echo "--suffix=-quick" || echo "--link-prefix bench/results/") > "$tmp/plots.md"
{
    if [ $quick = 1 ]; then echo "# Benchmarks (quick run: one short round each, for development; BENCHMARKS.md has the real figures)"; else echo "# Benchmarks"; fi
    echo
    echo "## Summary: evloop ÷ peer"
    echo
    echo "Every ratio the sections below measured (\`bench/summary.py\` collects them from their tables), each"
    echo "against a peer measured in the same run; the sections give the raw medians with min–max and how each was measured."
    echo
    python3 bench/summary.py "$tmp/body.md"
    echo
    echo "Idle connections beside 100 busy ones (the seeds' argument): server CPU per busy message as idle"
    echo "connections grow, evloop flat beside poll() and select() (\`bench/idle_busy.py\`):"
    echo
    echo "![idle connections beside busy ones]($([ $quick = 1 ] && echo "$plot" || echo "bench/results/$plot"))"
    echo
    if [ -s "$tmp/plots.md" ]; then
        echo "Echo CPU per message against libuv's in every cell, CPU per HTTP request, and timer costs:"
        echo
        cat "$tmp/plots.md"
        echo
    fi
    cat "$tmp/body.md"
} > "$out"
rm -rf "$tmp"
echo "$out written"
