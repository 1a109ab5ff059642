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
    # Where the instructions go: inclusive counts of the functions each stage runs in.
    local incl callback write settled alloc
    incl=$(callgrind_annotate --inclusive=yes --threshold=100 --auto=no "$out.1" 2>/dev/null)
    callback=$(stage "$incl" 'echo_server::serve::{{closure}}::{{closure}}' on_read)
    write=$(stage "$incl" evl_write evloop::stream::Stream::write_owned uv_write)
    settled=$(stage "$incl" 'evloop::stream::<impl evloop::event_loop::Loop>::stream_send_finished' on_written)
    alloc=$(( $(stage "$incl" malloc) + $(stage "$incl" free) ))
    rm -f "$out" "$out".*
    rows+=("$name|$msgs|$total|$(echo "$total / $msgs" | bc -l)")
    stages+=("$name|$(per "$callback" "$msgs")|$(per "$write" "$msgs")|$(per "$settled" "$msgs")|$(per "$alloc" "$msgs")|$(per $((total - callback - settled)) "$msgs")")
}
# The inclusive count of the first of the functions named $2... (exact names) that appears in
# callgrind_annotate's listing $1, whose lines read "COUNT (PCT%)  FILE:FUNCTION [OBJECT]"; one
# function is listed once per source file its code came from, the largest being the whole of it.
stage() {
    local listing=$1; shift
    local name n
    for name in "$@"; do
        n=$(awk -v want="$name" '
            $2 ~ /^\(/ {
                line = $0
                sub(/^ *[0-9,]+ +\([^)]*\) +/, "", line)
                sub(/ \[[^]]*\]$/, "", line)
                fn = substr(line, index(line, ":") + 1)
                if (fn == want) { c = $1; gsub(",", "", c); if (c + 0 > best) best = c + 0 }
            }
            END { if (best) print best }' <<<"$listing")
        if [ -n "$n" ]; then echo "$n"; return; fi
    done
    echo 0
}
per() { printf '%.0f' "$(echo "$1 / $2" | bc -l)"; }
stages=()
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
echo
echo "Where they go, per message (inclusive counts of the functions each part runs in): the read"
echo "callback with the write it makes; the write call alone (evloop's \`Stream::write_owned\` or"
echo "\`evl_write\`, libuv's \`uv_write\`); the send's settling (the core's \`stream_send_finished\`, the"
echo "libuv program's write callback); malloc and free (the libuv program allocates a request and a"
echo "buffer per write); the rest (waiting, reaping completions or readiness, reading, dispatching)."
echo
echo "| server | read callback, write included | the write call | send settled | malloc + free | rest |"
echo "|---|---:|---:|---:|---:|---:|"
for row in "${stages[@]}"; do
    IFS='|' read -r name cb wr st al rest <<<"$row"
    echo "| $name | $cb | $wr | $st | $al | $rest |"
done
