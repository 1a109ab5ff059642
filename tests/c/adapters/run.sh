#!/usr/bin/env bash
# The C adapters (include/evloop/adapters/) against real servers from Debian packages
# (tests/c/adapters/servers.sh), on every backend this machine has, plain and under valgrind:
#   hiredis -> redis-server      libcurl -> nginx      c-ares -> dnsmasq
# Then the adapters' examples (examples/c/adapters/) against the same servers.
#   tests/c/adapters/run.sh BUILD_DIR EXAMPLES_DIR
set -euo pipefail
cd "$(dirname "$0")/../../.."
build=$1
examples=$2
work=$(mktemp -d)
tests/c/adapters/servers.sh "$work" &
servers=$!
trap 'kill "$servers" 2>/dev/null; wait "$servers" 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 300); do
    [ -f "$work/ports" ] && break
    kill -0 "$servers" 2>/dev/null || { echo "adapters: the servers did not start" >&2; exit 1; }
    sleep 0.1
done
# shellcheck disable=SC1091
. "$work/ports"

backends=(epoll)
"$build/test_hiredis" --probe uring && backends+=(uring)
valgrind=(valgrind --suppressions=tests/c/valgrind.supp --error-exitcode=9 --leak-check=full
    --errors-for-leak-kinds=definite -q)
for backend in "${backends[@]}"; do
    for run in plain valgrind; do
        prefix=()
        [ "$run" = plain ] || prefix=("${valgrind[@]}")
        timeout 300 "${prefix[@]}" "$build/test_hiredis" "$backend" "$redis_port" "$closed_port"
        timeout 300 "${prefix[@]}" "$build/test_curl" "$backend" "$http_port" "$closed_port"
        timeout 300 "${prefix[@]}" "$build/test_ares" "$backend" "$dns_port"
    done
done

for backend in "${backends[@]}"; do
    export EVLOOP_BACKEND=$backend
    out=$(timeout 30 "$examples/redis_counter" 127.0.0.1 "$redis_port")
    grep -Eq '^evloop:example:counter = [0-9]+000$' <<<"$out" || { echo "redis_counter: $out" >&2; exit 1; }
    out=$(timeout 30 "$examples/http_get" "http://127.0.0.1:$http_port/small.txt" \
        "http://127.0.0.1:$http_port/blob.bin")
    grep -q "small.txt: 200, 17 bytes" <<<"$out" && grep -q "blob.bin: 200, 1048576 bytes" <<<"$out" ||
        { echo "http_get: $out" >&2; exit 1; }
    out=$(timeout 30 "$examples/resolve" --server "127.0.0.1:$dns_port" host7.evloop.test host600.evloop.test)
    grep -q "host7.evloop.test: 10.0.0.8" <<<"$out" && grep -q "host600.evloop.test: 10.0.2.101" <<<"$out" ||
        { echo "resolve: $out" >&2; exit 1; }
    echo "adapter examples on $backend: redis_counter, http_get, resolve: ok"
done
