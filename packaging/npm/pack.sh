#!/usr/bin/env bash
# Builds the npm package into DIST/evloop-VERSION.tgz (npm pack):
#   index.js, index.mjs, index.d.ts, lib/       the JavaScript API, as in bindings/node
#   evloop.linux-x64-gnu.node                   the addon, prebuilt (N-API 8: Node 18 and newer;
#                                               glibc 2.28 and newer)
#   scripts/install.js                          checks the platform; builds from rust/ only when
#                                               the prebuilt does not load (or when asked)
#   rust/                                       core/ and bindings/node/ sources, with a lock file
# package.json is bindings/node's with the workspace's version, no devDependencies and the
# install script above: installing the tarball downloads nothing and compiles nothing.
set -euo pipefail
cd "$(dirname "$0")/../.."
dist=$(mkdir -p "$1" && cd "$1" && pwd)
version=$(packaging/version.sh)
stage=build/dist-npm/package
rm -rf "$stage"
mkdir -p "$stage/scripts" "$stage/rust/bindings"

# Linked for glibc 2.28 and newer (packaging/zig-cc), in the release builds' own target directory.
CARGO_TARGET_DIR=target/dist CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER=$PWD/packaging/zig-cc \
    cargo build --release --quiet -p evloop-node
cp target/dist/release/libevloop_node.so "$stage/evloop.linux-x64-gnu.node"
strip --strip-debug "$stage/evloop.linux-x64-gnu.node"
cp -r bindings/node/index.js bindings/node/index.mjs bindings/node/index.d.ts bindings/node/lib "$stage/"
cp packaging/npm/install.js "$stage/scripts/install.js"
cp packaging/npm/README.md "$stage/README.md"

# The sources a fallback build needs, as a workspace of their own.
mkdir -p "$stage/rust/core" "$stage/rust/bindings/node"
cp -r core/Cargo.toml core/src "$stage/rust/core/"
cp -r bindings/node/Cargo.toml bindings/node/build.rs bindings/node/src "$stage/rust/bindings/node/"
awk '/^members = /{ print "members = [\"core\", \"bindings/node\"]"; next } { print }' Cargo.toml > "$stage/rust/Cargo.toml"
cp Cargo.lock "$stage/rust/Cargo.lock"
# Drops the lock entries of the packages left out (pyo3...), keeping every version as it is.
(cd "$stage/rust" && cargo metadata --format-version 1 --offline >/dev/null)

node - "$stage" "$version" <<'JS'
const fs = require('fs');
const path = require('path');
const [stage, version] = process.argv.slice(2);
const pkg = JSON.parse(fs.readFileSync('bindings/node/package.json', 'utf8'));
pkg.version = version;
pkg.cpu = ['x64'];
pkg.files = ['index.js', 'index.mjs', 'index.d.ts', 'lib/', 'scripts/install.js', 'evloop.linux-x64-gnu.node',
  'rust/Cargo.toml', 'rust/Cargo.lock', 'rust/core/', 'rust/bindings/'];
pkg.scripts = { install: 'node scripts/install.js' };
delete pkg.devDependencies;
fs.writeFileSync(path.join(stage, 'package.json'), JSON.stringify(pkg, null, 2) + '\n');
JS
rm -f "$dist/evloop-$version.tgz"
(cd "$stage" && npm pack --silent --pack-destination "$dist" >/dev/null)
echo "dist: $dist/evloop-$version.tgz"
