#!/usr/bin/env bash
# The Node addon: the repository build (npm install in bindings/node, which builds evloop.node
# with cargo) for the type check and the examples; then the npm release tarball
# (make dist-npm), installed where no Rust toolchain is on PATH (packaging/npm/test_install.sh),
# and the node:test suites run on that installed package once per backend
# (tests/node/helpers.js checks that each run got the backend it asked for).
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== Node addon: npm install (builds bindings/node/evloop.node)"
(cd bindings/node && npm install --no-audit --no-fund --loglevel=error)
echo "== Node addon: index.d.ts type-checks against tests/node/types.check.ts (tsc --strict)"
(cd bindings/node && npm run --silent typecheck)
echo "== npm package: make dist-npm, then its installs"
make --quiet dist-npm
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
package=$(packaging/npm/test_install.sh dist "$work")
norust=$(packaging/no_rust_path.sh)
backends=(epoll)
if [ "$(EVLOOP_BACKEND=uring node -p 'try { require("./bindings/node").backend } catch (e) { "none" }' 2>/dev/null)" = "uring" ]; then
    backends+=(uring)
else
    echo "io_uring unavailable here: the Node suites run on epoll only"
fi
for backend in "${backends[@]}"; do
    echo "== Node example (repository build) and suites (the installed npm package), EVLOOP_BACKEND=$backend"
    EVLOOP_BACKEND=$backend timeout 60 node examples/node/echo.js --self-test
    EVLOOP_BACKEND=$backend timeout 60 node examples/node/files.js --self-test
    EVLOOP_BACKEND=$backend timeout 60 node examples/node/express_app.js --self-test
    EVLOOP_BACKEND=$backend EVLOOP_NODE_PACKAGE=$package PATH=$norust timeout 600 node --test tests/node/
done
