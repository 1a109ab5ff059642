#!/usr/bin/env bash
# The Python package as users get it: the release wheels (make dist-python), each installed into
# a new venv whose PATH has no cargo or rustc, then the example and the pytest suites run from
# there: every test on asyncio's own loop (the oracle) and on evloop's, both backends, plus
# CPython's own asyncio suites, for each interpreter of scripts/pythons.sh. The other CPythons
# with a wheel (3.9-3.13) install theirs and run the example and the install tests. Then other
# projects' own suites run on python3's wheel (tests/python/frameworks/run.py). Last, the sdist
# builds from source (with cargo) into a venv of its own.
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1
version=$(packaging/version.sh)
echo "== Python: release wheels and sdist (make dist-python)"
make --quiet dist-python
norust=$(packaging/no_rust_path.sh)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
repo=$PWD
full_suites=" $(scripts/pythons.sh | while read -r py; do command -v "$py" || echo "$py"; done | tr '\n' ' ') "

# venv_for PY DIR [PACKAGES]: a new venv of interpreter PY with the test tools (pytest, and
# what the full suites use unless PACKAGES says otherwise); prints its python.
venv_for() {
    local py=$1 dir=$2
    shift 2
    local packages=("$@")
    [ ${#packages[@]} -gt 0 ] || packages=(pytest aiohttp cryptography)
    "$py" -m venv "$dir"
    "$dir/bin/python" -m pip install --quiet "${packages[@]}"
    echo "$dir/bin/python"
}

for wheel in dist/evloop-"$version"-cp3*-manylinux_2_28_x86_64.whl; do
    tag=$(basename "$wheel" | cut -d- -f3)
    minor=${tag#cp3}
    py=""
    for cand in $full_suites; do
        [ "$("$cand" -c 'import sys; print(sys.version_info[1])')" = "$minor" ] && py=$cand
    done
    full=yes
    if [ -z "$py" ]; then
        full=no
        py=$(packaging/python/interpreter.sh "3.$minor")
    fi
    echo "== Python 3.$minor: $(basename "$wheel") into a new venv, no Rust on PATH"
    if [ "$full" = yes ]; then venv=$(venv_for "$py" "$work/$tag"); else venv=$(venv_for "$py" "$work/$tag" pytest); fi
    env PATH="$(dirname "$venv"):$norust" "$venv" -m pip install --quiet --no-index "$repo/$wheel"
    run() { (cd "$work" && env PATH="$(dirname "$venv"):$norust" "$@"); }
    run "$venv" -c 'import evloop, sys; assert evloop.__file__.startswith(sys.prefix), evloop.__file__'
    for backend in uring epoll; do
        run "$venv" "$repo/examples/python/echo.py" --backend "$backend" --messages 2000 | tail -n 1
    done
    # From a scratch directory: CPython's suites write their temporary files (support.TESTFN)
    # into the working directory, and one killed mid-run would leave them in the tree.
    if [ "$full" = yes ]; then
        run "$venv" -m pytest -q -p no:cacheprovider -o faulthandler_timeout=120 "$repo/tests/python"
    else
        run "$venv" -m pytest -q -p no:cacheprovider "$repo/tests/python/test_install.py"
    fi
done

echo "== Python: aiohttp's, uvicorn's, AnyIO's and websockets' own suites, on asyncio's loop and on evloop's"
main_tag=$(python3 -c 'import sys; print("cp%d%d" % sys.version_info[:2])')
python3 tests/python/frameworks/run.py --wheel "dist/evloop-$version-$main_tag-$main_tag-manylinux_2_28_x86_64.whl" \
    --work "$work/frameworks"

echo "== Python: the sdist builds from source (cargo) and installs"
venv=$(venv_for python3 "$work/sdist" pytest)
CARGO_TARGET_DIR=$repo/target/sdist "$venv" -m pip install --quiet "dist/evloop-$version.tar.gz"
(cd "$work" && "$venv" -m pytest -q -p no:cacheprovider "$repo/tests/python/test_install.py")
(cd "$work" && "$venv" "$repo/examples/python/echo.py" --messages 2000 | tail -n 1)
