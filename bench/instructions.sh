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
    kill -INT "$vg"; wait "$vg" || true
    msgs=$(sed -n 's/.*msgs=\([0-9]*\).*/\1/p' <<<"$result")
    local total
    total=$(callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
    rm -f "$out"
    printf '| %s | %s | %s | %.0f |\n' "$name" "$msgs" "$total" "$(echo "$total / $msgs" | bc -l)"
}
echo "| server | messages | user-space instructions | instructions/msg |"
echo "|---|---:|---:|---:|"
for backend in epoll uring; do
    if EVLOOP_BACKEND=$backend target/release/examples/echo_server --probe >/dev/null 2>&1; then
        EVLOOP_BACKEND=$backend measure "evloop ($backend)" target/release/examples/echo_server
    fi
done
if [ -x bench/bin/uv_echo ]; then
    EXTRA=write measure "libuv, uv_write" bench/bin/uv_echo
    EXTRA=trywrite measure "libuv, uv_try_write first" bench/bin/uv_echo
fi
