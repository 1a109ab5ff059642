#!/usr/bin/env bash
# The Node addon: build it as `npm install` does, run the example, then the node:test suites
# once per backend (tests/node/helpers.js checks that each run got the backend it asked for).
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== Node addon: npm install (builds bindings/node/evloop.node)"
(cd bindings/node && npm install --no-audit --no-fund --loglevel=error)
echo "== Node addon: index.d.ts type-checks against tests/node/types.check.ts (tsc --strict)"
(cd bindings/node && npm run --silent typecheck)
backends=(epoll)
if [ "$(EVLOOP_BACKEND=uring node -p 'try { require("./bindings/node").backend } catch (e) { "none" }' 2>/dev/null)" = "uring" ]; then
    backends+=(uring)
else
    echo "io_uring unavailable here: the Node suites run on epoll only"
fi
for backend in "${backends[@]}"; do
    echo "== Node example and suites, EVLOOP_BACKEND=$backend"
    EVLOOP_BACKEND=$backend timeout 60 node examples/node/echo.js --self-test
    EVLOOP_BACKEND=$backend timeout 60 node examples/node/files.js --self-test
    EVLOOP_BACKEND=$backend timeout 600 node --test tests/node/
done
