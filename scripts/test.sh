#!/usr/bin/env bash
# Runs every test suite: Rust, C, Python, Node, and the release artifacts (make dist) installed
# where no Rust toolchain is on PATH. Each test that touches the loop runs once per backend
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
echo "== streams on io_uring's whole receive buffers (kernels before 6.12)"
EVLOOP_NO_INCREMENTAL_BUFFERS=1 cargo test --quiet -p evloop-core --test tcp --test pipes --test unix_udp --test no_alloc
echo "== C ABI: header, symbols, C tests on both backends, valgrind"
make --quiet test-c
echo "== C adapters (hiredis, libcurl, c-ares) against redis-server, nginx and dnsmasq, both backends"
make --quiet test-adapters
echo "== C ABI: against the release baseline in abi/ (libabigail), and the check's own test"
make --quiet abi-check
make --quiet abi-selftest
scripts/model_checks.sh
echo "== differential tests against libuv (fd watchers, timers)"
make --quiet test-diff
scripts/test_python.sh
scripts/test_node.sh
echo "== C release: make dist-c, installed with no Rust on PATH, examples built via pkg-config and CMake"
make --quiet dist-c
packaging/c/test_install.sh dist
