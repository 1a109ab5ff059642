#!/usr/bin/env bash
# The full soak (issue 13): 200,000 connect/echo/close cycles per backend, a third ended by the
# client's reset; prints the server's descriptor count and resident memory after the warm-up and
# at the end, and fails if either grew beyond a small constant. The test suite runs the same test
# with 20,000 cycles.
set -euo pipefail
cd "$(dirname "$0")/.."
EVLOOP_SOAK_CYCLES=${EVLOOP_SOAK_CYCLES:-200000} cargo test --release -q -p evloop-core --test soak -- --nocapture 2>&1 |
    grep -E "backend|cycles;|test result"
