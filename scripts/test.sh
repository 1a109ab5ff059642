#!/usr/bin/env bash
# Runs every test suite: Rust, C, Python, Node. Each test that touches the loop runs once per backend
# this machine supports (EVLOOP_BACKEND=epoll|uring narrows the Rust suites to one); each Python
# test also runs on asyncio's own loop, the oracle.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== format and lints"
cargo fmt --check
cargo clippy --quiet --all-targets -- -D warnings
echo "== C sources build with -Wall -Wextra -Werror"
bench/build.sh
make --quiet all
echo "== Rust tests (core, ffi header freshness)"
cargo test --quiet --workspace 2>&1 | tee /tmp/evloop-cargo-test.log
grep -q "test result: ok" /tmp/evloop-cargo-test.log
echo "== pipes on io_uring's single-shot read (kernels before 6.7)"
EVLOOP_NO_MULTISHOT_READ=1 cargo test --quiet -p evloop-core --test pipes
echo "== C ABI: header, symbols, C tests on both backends, valgrind"
make --quiet test-c
scripts/model_checks.sh
echo "== differential tests against libuv (fd watchers, timers)"
make --quiet test-diff
scripts/test_python.sh
scripts/test_node.sh
echo "== C ABI: install, then build an example outside the tree with pkg-config"
prefix=$(mktemp -d)
make --quiet install PREFIX="$prefix"
gcc -std=c11 -Wall -Wextra -Werror -o "$prefix/timers" examples/c/timers.c \
    $(PKG_CONFIG_PATH="$prefix/lib/pkgconfig" pkg-config --cflags --libs evloop) -Wl,-rpath,"$prefix/lib"
"$prefix/timers" > "$prefix/timers.out"
grep -q "slow ticker" "$prefix/timers.out"
test -L "$prefix/lib/libevloop.so.0" && test -L "$prefix/lib/libevloop.so"
rm -rf "$prefix"
echo "install check: ok"
