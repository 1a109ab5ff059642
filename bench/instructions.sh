#!/usr/bin/env bash
# User-space instructions per echoed message, counted by callgrind: deterministic where timing on
# a shared 2-core machine is not. Each server runs under callgrind while the load generator
# (outside valgrind) drives CONNS connections × 64 B for SECONDS; the count includes start-up,
# which is small next to the messages.
#   bench/instructions.sh [CONNS] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
conns=${1:-20}
seconds=${2:-4}
port=7300
measure() {
    local name=$1; shift
    port=$((port + 1))
    local out
    out=$(mktemp)
    ECHO_SERVER_SECONDS=$((seconds + 3)) taskset -c 0 valgrind --tool=callgrind --callgrind-out-file="$out" "$@" "$port" ${EXTRA:-} >/dev/null 2>&1 &

    local vg=$!
    for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
    local result msgs
    result=$(taskset -c 1 bench/bin/loadgen "$port" -c "$conns" -s 64 -d "$seconds")
    # Dumped through valgrind's gdb server, then killed: a server whose signal handling
    # valgrind does not emulate (the C example's SIGINT arrives through io_uring) never stops
    # by itself under it.
    callgrind_control -d "$vg" >/dev/null 2>&1 || true
    kill -KILL "$vg" 2>/dev/null; wait "$vg" 2>/dev/null || true
    msgs=$(sed -n 's/.*msgs=\([0-9]*\).*/\1/p' <<<"$result")
    local total
    total=$(callgrind_annotate "$out.1" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
    rm -f "$out" "$out".*
    rows+=("$name|$msgs|$total|$(echo "$total / $msgs" | bc -l)")
}
rows=()
for backend in epoll uring; do
    if EVLOOP_BACKEND=$backend target/release/examples/echo_server --probe >/dev/null 2>&1; then
        EVLOOP_BACKEND=$backend measure "evloop ($backend)" target/release/examples/echo_server
        if [ -x build/examples/echo_server ]; then
            EVLOOP_BACKEND=$backend measure "evloop ($backend, C API)" build/examples/echo_server
        fi
    fi
done
if [ -x bench/bin/uv_echo ]; then
    EXTRA=write measure "libuv, uv_write" bench/bin/uv_echo
    EXTRA=trywrite measure "libuv, uv_try_write first" bench/bin/uv_echo
fi
# Ratios against libuv's uv_write, the peer C programs use.
base=$(printf '%s\n' "${rows[@]}" | awk -F'|' '$1 == "libuv, uv_write" {print $4}')
echo "| server | messages | user-space instructions | instructions/msg | instructions/msg vs libuv uv_write |"
echo "|---|---:|---:|---:|---:|"
for row in "${rows[@]}"; do
    IFS='|' read -r name msgs total per <<<"$row"
    if [ -n "$base" ] && [ "$name" != "libuv, uv_write" ]; then
        ratio=$(printf '%.2f×' "$(echo "$per / $base" | bc -l)")
    else
        ratio="–"
    fi
    printf '| %s | %s | %s | %.0f | %s |\n' "$name" "$msgs" "$total" "$per" "$ratio"
done
