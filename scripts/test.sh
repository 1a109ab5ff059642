#!/usr/bin/env bash
# Runs every test suite. Each Rust test that touches the loop runs once per backend this machine
# supports (EVLOOP_BACKEND=epoll|uring narrows it to one).
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== format and lints"
cargo fmt --check
cargo clippy --quiet --all-targets -- -D warnings
echo "== C sources build with -Wall -Wextra -Werror"
bench/build.sh
echo "== Rust tests (core)"
cargo test --quiet --workspace 2>&1 | tee /tmp/evloop-cargo-test.log
grep -q "test result: ok" /tmp/evloop-cargo-test.log
