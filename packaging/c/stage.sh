#!/usr/bin/env bash
# Stages the C release: STAGE/libevloop-VERSION/ (the tree a user unpacks) and
# DIST/libevloop-VERSION-linux-x86_64.tar.gz. Needs `make lib` first (the Makefile's dist-c does it).
#
#   include/evloop.h, include/evloop/adapters/*.h (header-only: hiredis, libcurl, c-ares)
#   lib/libevloop.so.VERSION (linked for glibc 2.28 and newer by packaging/zig-cc), lib/libevloop.a
#   (debug info stripped from both; symbols kept)
#   evloop.pc.in, cmake/ (find_package(evloop) -> evloop::evloop, evloop::evloop_static)
#   examples/ (the C examples, with a pkg-config Makefile and a CMakeLists.txt; the adapters'
#   examples in examples/adapters/ with their own pkg-config Makefile)
#   Makefile: `make install PREFIX=...` needs only install(1), ln and sed.
set -euo pipefail
cd "$(dirname "$0")/../.."
stage_root=$1
dist=$2
version=$(packaging/version.sh)
name=libevloop-$version
stage=$stage_root/$name
rm -rf "$stage"
mkdir -p "$stage/include/evloop/adapters" "$stage/lib" "$stage/cmake" "$stage/examples/adapters" "$dist"
cp include/evloop.h "$stage/include/"
cp include/evloop/adapters/*.h "$stage/include/evloop/adapters/"
LINK_CC=packaging/zig-cc ffi/link.sh "$stage/lib/libevloop.so.$version" target/release/libevloop.a "${version%%.*}"
strip --strip-debug "$stage/lib/libevloop.so.$version"
strip --strip-debug -o "$stage/lib/libevloop.a" target/release/libevloop.a
cp ffi/evloop.pc.in "$stage/"
cp packaging/c/evloopConfig.cmake.in packaging/c/evloopConfigVersion.cmake.in "$stage/cmake/"
cp examples/c/*.c packaging/c/examples/CMakeLists.txt packaging/c/examples/Makefile "$stage/examples/"
cp examples/c/adapters/*.c packaging/c/examples/adapters/Makefile "$stage/examples/adapters/"
sed "s/^VERSION := @VERSION@$/VERSION := $version/" packaging/c/Makefile.release > "$stage/Makefile"
cp packaging/c/README.release "$stage/README"
tar -C "$stage_root" --owner=0 --group=0 --sort=name -czf "$dist/$name-linux-x86_64.tar.gz" "$name"
echo "dist: $dist/$name-linux-x86_64.tar.gz"
