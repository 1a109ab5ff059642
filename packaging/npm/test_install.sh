#!/usr/bin/env bash
# The npm tarball (DIST/evloop-VERSION.tgz) as users install it:
#   1. into a new folder, offline (npm may download nothing), with no cargo or rustc on PATH:
#      the prebuilt addon loads; prints the installed package's path for the suites to run on;
#   2. on another platform the install script and the module refuse with a clear message;
#   3. with EVLOOP_BUILD_FROM_SOURCE=1 and no cargo, the install fails and says what it needs;
#   4. with EVLOOP_BUILD_FROM_SOURCE=1 and cargo, it builds the addon from the package's own
#      sources, which then serves an echo round trip.
#   packaging/npm/test_install.sh DIST WORKDIR     (progress on stderr, the package path on stdout)
set -euo pipefail
cd "$(dirname "$0")/../.."
dist=$(cd "$1" && pwd)
work=$2
version=$(packaging/version.sh)
tarball=$dist/evloop-$version.tgz
norust=$(packaging/no_rust_path.sh)
say() { echo "npm install: $*" >&2; }

install_into() { # DIR [ENV...]: npm install of the tarball into a new folder DIR
    local dir=$1
    shift
    mkdir -p "$dir"
    echo '{ "name": "app", "version": "1.0.0", "private": true }' > "$dir/package.json"
    (cd "$dir" && env "$@" npm install --offline --no-audit --no-fund --loglevel=error --foreground-scripts "$tarball")
}

# 1. Prebuilt, offline, no Rust.
install_into "$work/prebuilt" PATH="$norust" >&2
pkg=$work/prebuilt/node_modules/evloop
[ ! -e "$pkg/evloop.node" ] || { say "the install built an addon instead of using the prebuilt one"; exit 1; }
[ "$(cd "$work" && node -p "require('$pkg').version")" = "$version" ]
say "1. installed offline with no Rust on PATH: the prebuilt addon loads"

# 2. Another platform.
for platform in darwin:x64 linux:arm64; do
    os=${platform%:*} arch=${platform#*:}
    fake="Object.defineProperty(process, 'platform', { value: '$os' }); Object.defineProperty(process, 'arch', { value: '$arch' });"
    if out=$(node -e "$fake require('$pkg/scripts/install.js')" 2>&1); then
        say "the install script accepted $os-$arch"; exit 1
    fi
    grep -q "runs on Linux x86_64 only.*this is $os-$arch" <<< "$out" || { say "unclear refusal: $out"; exit 1; }
    out=$(node -e "$fake try { require('$pkg'); console.log('loaded') } catch (e) { console.log(e.code) }")
    [ "$out" = ERR_EVLOOP_UNSUPPORTED_PLATFORM ] || { say "the module on $os-$arch: $out"; exit 1; }
done
say "2. other platforms are refused, by the install script and by the module, with a clear message"

# 3. A source build asked for where there is no cargo.
if out=$(install_into "$work/no-cargo" PATH="$norust" EVLOOP_BUILD_FROM_SOURCE=1 2>&1); then
    say "a source build without cargo succeeded"; exit 1
fi
grep -q "needs a Rust toolchain" <<< "$out" || { say "unclear failure without cargo: $out"; exit 1; }
say "3. a source build without cargo fails with: $(grep -o 'building from source needs a Rust toolchain[^.]*' <<< "$out" | head -n 1)"

# 4. A source build with cargo, from the package's own sources.
install_into "$work/source" EVLOOP_BUILD_FROM_SOURCE=1 2> "$work/source.log" >&2 ||
    { cat "$work/source.log" >&2; exit 1; }
grep -q "built evloop.node from source" "$work/source.log"
src=$work/source/node_modules/evloop
[ -e "$src/evloop.node" ] && [ ! -e "$src/rust/target" ]
(cd "$work" && timeout 60 node - "$src" <<'JS') >&2
const evloop = require(process.argv[2]);
const server = evloop.createServer((c) => c.pipe(c));
server.listen(0, '127.0.0.1', () => {
  const c = evloop.connect(server.address().port, '127.0.0.1');
  const want = Buffer.alloc(100000, 'x');
  const got = [];
  c.on('data', (d) => { got.push(d); if (Buffer.concat(got).length === want.length) c.end(); });
  c.on('close', () => {
    if (!Buffer.concat(got).equals(want)) throw new Error('echo differs');
    server.close();
    console.log(`npm install: 4. the addon built from the package's sources echoes 100,000 bytes (${evloop.backend})`);
  });
  c.write(want);
});
JS
echo "$pkg"
