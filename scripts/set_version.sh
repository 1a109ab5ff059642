#!/usr/bin/env bash
# Sets the release version everywhere it is written: the workspace's Cargo.toml (the one
# source: the crates, the wheel through maturin, evl_version_string(), evloop.__version__ and
# require('evloop').version all come from it), ffi/src/error.rs's EVL_VERSION_* literals (the
# build fails if they differ), include/evloop.h, bindings/node/package.json and its lock file
# (the suites fail if they differ).
#   scripts/set_version.sh 0.2.0
set -euo pipefail
cd "$(dirname "$0")/.."
new=$1
[[ $new =~ ^([0-9]+)\.([0-9]+)\.([0-9]+)$ ]] || { echo "usage: scripts/set_version.sh MAJOR.MINOR.PATCH" >&2; exit 2; }
major=${BASH_REMATCH[1]} minor=${BASH_REMATCH[2]} patch=${BASH_REMATCH[3]}
sed -i "0,/^version = \".*\"/s//version = \"$new\"/" Cargo.toml
sed -i -e "s/^pub const EVL_VERSION_MAJOR: c_uint = .*;/pub const EVL_VERSION_MAJOR: c_uint = $major;/" \
    -e "s/^pub const EVL_VERSION_MINOR: c_uint = .*;/pub const EVL_VERSION_MINOR: c_uint = $minor;/" \
    -e "s/^pub const EVL_VERSION_PATCH: c_uint = .*;/pub const EVL_VERSION_PATCH: c_uint = $patch;/" ffi/src/error.rs
(cd bindings/node && npm version --no-git-tag-version --allow-same-version "$new" >/dev/null)
cargo update --workspace --quiet
EVLOOP_BLESS=1 cargo test --quiet -p evloop-ffi --test header >/dev/null
echo "version: $new (a release that adds C functions also gives them a new node in ffi/evloop.map)"
