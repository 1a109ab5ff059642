#!/usr/bin/env bash
# Sets up, builds, and runs the demo: evloop's echo server under the C load generator
# (100 connections × 64 B ping-pong for 5 s), printing the figures and the backend it ran on.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
bench/build.sh
port=${PORT:-7070}
target/release/examples/echo_server "$port" &
server=$!
trap 'kill -TERM $server 2>/dev/null || true' EXIT
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
result=$(bench/bin/loadgen "$port" -c 100 -s 64 -d "${SECONDS_TO_RUN:-5}")
kill -TERM $server; wait $server || true
trap - EXIT
echo "$result" | awk '{
  for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
  printf "echoed %s messages in %s s: %s msg/s, p50 %s µs, p99 %s µs\n", v["msgs"], v["secs"], v["rate"], v["p50_us"], v["p99_us"]
}'
