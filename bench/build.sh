#!/usr/bin/env bash
# Builds everything the benchmarks run: evloop's release binaries, the C load generator and the
# libuv peers (needs libuv1-dev; scripts/setup.sh installs it).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet -p evloop-core --example echo_server
cargo build --release --quiet -p evloop-bench
mkdir -p bench/bin
CFLAGS="-O2 -Wall -Wextra -Werror"
gcc $CFLAGS -o bench/bin/loadgen bench/c/loadgen.c
gcc $CFLAGS -o bench/bin/bare_echo bench/c/bare_echo.c
if [ -f /usr/include/openssl/ssl.h ]; then
    gcc $CFLAGS -o bench/bin/tls_loadgen bench/c/tls_loadgen.c -lssl -lcrypto
    gcc $CFLAGS -o bench/bin/tls_echo bench/c/tls_echo.c -lssl -lcrypto
else
    echo "libssl-dev not found: the TLS load generator and bare TLS server (bench/python_tls.py) are skipped" >&2
fi
if [ -f /usr/include/liburing.h ]; then
    gcc $CFLAGS -o bench/bin/uring_echo bench/c/uring_echo.c -luring
    gcc $CFLAGS -o bench/bin/wake_paths bench/c/wake_paths.c -luring -lpthread
else
    echo "liburing-dev not found: the bare liburing echo server is skipped" >&2
fi
if pkg-config --exists libuv; then
    gcc $CFLAGS -o bench/bin/uv_echo bench/c/uv_echo.c $(pkg-config --cflags --libs libuv)
    gcc $CFLAGS -o bench/bin/uv_timers bench/c/timers.c $(pkg-config --cflags --libs libuv)
    gcc $CFLAGS -o bench/bin/uv_files bench/c/uv_files.c $(pkg-config --cflags --libs libuv)
    gcc $CFLAGS -o bench/bin/uv_http bench/c/uv_http.c $(pkg-config --cflags --libs libuv)
    # Through libevloop.so, beside libuv in the same binary.
    make --quiet lib
    gcc $CFLAGS -Iinclude -o bench/bin/poll_pingpong bench/c/poll_pingpong.c -Ltarget/release -levloop \
        -Wl,-rpath,"$PWD/target/release" $(pkg-config --cflags --libs libuv)
    gcc $CFLAGS -DEVLOOP -Iinclude -o bench/bin/evl_timers bench/c/timers.c -Ltarget/release -levloop \
        -Wl,-rpath,"$PWD/target/release"
    gcc $CFLAGS -DEVLOOP -DCALLER_MEMORY -Iinclude -o bench/bin/evl_timers_in bench/c/timers.c -Ltarget/release \
        -levloop -Wl,-rpath,"$PWD/target/release"
    gcc $CFLAGS -o bench/bin/uv_wakeup bench/c/wakeup.c -lpthread $(pkg-config --cflags --libs libuv)
    gcc $CFLAGS -DEVLOOP -Iinclude -o bench/bin/evl_wakeup bench/c/wakeup.c -Ltarget/release -levloop -lpthread \
        -Wl,-rpath,"$PWD/target/release"
    # The C adapters' client (bench/adapters.py), on libuv and through libevloop.so.
    if pkg-config --exists hiredis libcurl libcares; then
        adapter_libs=$(pkg-config --cflags --libs hiredis libcurl libcares)
        gcc $CFLAGS -o bench/bin/uv_adapters bench/c/adapters.c $adapter_libs $(pkg-config --cflags --libs libuv)
        gcc $CFLAGS -DEVLOOP -Iinclude -o bench/bin/evl_adapters bench/c/adapters.c -Ltarget/release -levloop \
            -Wl,-rpath,"$PWD/target/release" $adapter_libs
    else
        echo "hiredis, libcurl or c-ares headers not found: the adapter benchmark is skipped" >&2
    fi
else
    echo "libuv not found: the libuv peers are skipped" >&2
fi
