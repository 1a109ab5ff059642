#!/usr/bin/env bash
# Builds the Python release into DIST: one manylinux_2_28 x86_64 wheel per CPython 3.9-3.13 found
# here (packaging/python/interpreter.sh), and the sdist.
#
# Why per version and not abi3: the stable ABI measured slower on the loop's hot paths
# (BENCHMARKS.md, "Python: the stable-ABI build"). Why manylinux_2_28: core calls statx(2)
# through glibc (2.28); zig (PyPI's ziglang) links against that glibc's symbol versions, so the
# wheel installs on glibc 2.28 and newer whatever this machine's glibc is. auditwheel then
# checks the wheel against that policy (repair fails on anything outside it).
set -euo pipefail
cd "$(dirname "$0")/../.."
dist=$(mkdir -p "$1" && cd "$1" && pwd)
policy=manylinux_2_28_x86_64
export PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1
# The release build has a target directory of its own: zig's linker flags would otherwise
# invalidate the development build's artifacts each time.
export CARGO_TARGET_DIR=$PWD/target/dist

interpreters=()
for minor in 9 10 11 12 13; do
    if found=$(packaging/python/interpreter.sh "3.$minor"); then
        interpreters+=("$found")
    else
        echo "dist-python: no CPython 3.$minor here: no wheel for it" >&2
    fi
done

wheels=$(mktemp -d)
trap 'rm -rf "$wheels"' EXIT
# maturin's progress goes to a log, shown if it fails.
quietly() { "$@" > "$wheels/log" 2>&1 || { cat "$wheels/log" >&2; return 1; }; }
(cd bindings/python && quietly python3 -m maturin build --release --strip --zig --compatibility "${policy%_x86_64}" \
    -i "${interpreters[@]}" --out "$wheels")
rm -f "$dist"/evloop-*.whl "$dist"/evloop-*.tar.gz.sdist
for wheel in "$wheels"/*.whl; do
    # Fails if the wheel needs anything outside the policy (a newer glibc symbol, a library
    # that is not on every manylinux system).
    quietly python3 -m auditwheel repair --plat "$policy" --only-plat -w "$dist" "$wheel"
    members=$(unzip -Z1 "$wheel")
    for member in evloop/py.typed evloop/__init__.pyi evloop/_evloop.pyi evloop/fs.pyi; do
        grep -qx "$member" <<< "$members" || { echo "dist-python: $wheel lacks $member" >&2; exit 1; }
    done
done
(cd bindings/python && quietly python3 -m maturin sdist --out "$dist")
ls "$dist"/evloop-*.whl "$dist"/evloop-*.tar.gz | grep -v linux-x86_64 | sed 's/^/dist: /'
