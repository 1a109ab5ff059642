#!/usr/bin/env bash
# The checks that need another build of core: loom models of the cross-thread hand-offs, and the
# timer wheel and slab unit tests under Miri (which needs the nightly toolchain's miri component;
# scripts/setup.sh adds it where rustup can fetch it, and this says plainly when it cannot run).
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== loom: wake-up coalescing and the thread pool's finished-work hand-off"
RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -q -p evloop-core --lib --release wake_flag
echo "== Miri: timer wheel and slab"
if cargo +nightly miri --version >/dev/null 2>&1; then
    cargo +nightly miri test -q -p evloop-core --lib -- timer::wheel timer::store slab
else
    echo "Miri skipped: the nightly toolchain's miri component is not installed here"
fi
