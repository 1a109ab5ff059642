#!/usr/bin/env bash
# The C release tarball (DIST/libevloop-VERSION-linux-x86_64.tar.gz), installed with its own
# Makefile into a new prefix where no Rust toolchain is on PATH; then every C example is built
# against the install through pkg-config and through CMake (shared and static), and run: the
# timers example and an echo round trip of 1,000 messages, on each backend. The adapters' examples
# are built from the installed headers (tests/c/adapters/run.sh runs them against real servers).
set -euo pipefail
cd "$(dirname "$0")/../.."
dist=$1
version=$(packaging/version.sh)
work=$(mktemp -d)
echo_pid=""
trap '[ -z "$echo_pid" ] || kill "$echo_pid" 2>/dev/null; rm -rf "$work"' EXIT
norust=$(packaging/no_rust_path.sh)
in_norust() { env PATH="$norust" "$@"; }

tar -xzf "$dist/libevloop-$version-linux-x86_64.tar.gz" -C "$work"
prefix=$work/prefix
in_norust make --quiet -C "$work/libevloop-$version" install PREFIX="$prefix"
test -L "$prefix/lib/libevloop.so.0" && test -L "$prefix/lib/libevloop.so"
readelf -d "$prefix/lib/libevloop.so.$version" | grep -q 'SONAME.*libevloop.so.0'

examples=$(ls "$prefix/share/evloop/examples"/*.c | wc -l)
cp -r "$prefix/share/evloop/examples" "$work/pkgconfig"
in_norust env PKG_CONFIG_PATH="$prefix/lib/pkgconfig" make --quiet -C "$work/pkgconfig" >/dev/null
in_norust cmake -S "$prefix/share/evloop/examples" -B "$work/cmake" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
in_norust cmake --build "$work/cmake" >/dev/null
in_norust cmake -S "$prefix/share/evloop/examples" -B "$work/cmake-static" -DCMAKE_PREFIX_PATH="$prefix" \
    -DEVLOOP_STATIC=ON >/dev/null
in_norust cmake --build "$work/cmake-static" >/dev/null
for tree in pkgconfig cmake cmake-static; do
    built=$(find "$work/$tree" -maxdepth 1 -type f -executable | wc -l)
    [ "$built" -eq "$examples" ] || { echo "c install: $tree built $built of $examples examples" >&2; exit 1; }
done
# The adapters' examples, with the adapters' headers from the install (no -I into this tree).
cp -r "$prefix/share/evloop/examples/adapters" "$work/adapters"
in_norust env PKG_CONFIG_PATH="$prefix/lib/pkgconfig" make --quiet -C "$work/adapters" >/dev/null
for example in redis_counter http_get resolve; do
    test -x "$work/adapters/$example" || { echo "c install: adapter example $example not built" >&2; exit 1; }
done
closed=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
! out=$("$work/adapters/http_get" "http://127.0.0.1:$closed/" 2>&1) && grep -q "Couldn't connect" <<<"$out" ||
    { echo "c install: http_get against a closed port: $out" >&2; exit 1; }
ldd "$work/cmake/timers" | grep -q "$prefix/lib/libevloop.so.0" ||
    { echo "c install: the CMake build does not load the installed library" >&2; exit 1; }
! ldd "$work/cmake-static/timers" | grep -q libevloop ||
    { echo "c install: the static build still loads libevloop.so" >&2; exit 1; }

backends=(epoll)
EVLOOP_BACKEND=uring "$work/cmake/timers" >/dev/null 2>&1 && backends+=(uring)
for backend in "${backends[@]}"; do
    for tree in pkgconfig cmake cmake-static; do
        EVLOOP_BACKEND=$backend timeout 30 "$work/$tree/timers" > "$work/timers.out"
        grep -q "slow ticker" "$work/timers.out"
        port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
        EVLOOP_BACKEND=$backend "$work/$tree/echo_server" "$port" > /dev/null &
        echo_pid=$!
        timeout 30 python3 - "$port" <<'PY'
import socket, sys, time
port = int(sys.argv[1])
deadline = time.monotonic() + 10
while True:
    try:
        conn = socket.create_connection(("127.0.0.1", port))
        break
    except ConnectionRefusedError:
        if time.monotonic() > deadline:
            raise
        time.sleep(0.05)
for i in range(1000):
    message = b"message %d " % i * (1 + i % 40)
    conn.sendall(message)
    got = b""
    while len(got) < len(message):
        chunk = conn.recv(65536)
        assert chunk, "echo server closed early"
        got += chunk
    assert got == message, (got, message)
conn.close()
PY
        kill "$echo_pid"
        wait "$echo_pid" 2>/dev/null || true
        echo_pid=""
    done
    echo "c install: $backend: timers and a 1,000-message echo round trip, built via pkg-config, CMake, CMake static"
done
echo "c install: ok ($examples examples built three ways and 3 adapter examples from $(basename "$dist")/libevloop-$version-linux-x86_64.tar.gz, no Rust on PATH)"
