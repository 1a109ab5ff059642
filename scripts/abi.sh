#!/usr/bin/env bash
# The ABI of libevloop.so against the baseline of the current release, in abi/.
#
#   scripts/abi.sh dump        writes the baseline from target/release (at a release)
#   scripts/abi.sh check       compares a fresh build with the baseline; fails on an incompatible change
#   scripts/abi.sh selftest    deliberately broken builds must fail `check`, the real one pass
#
# The baseline has three parts, each compared its own way:
#   abi/symbols.txt    every exported symbol with its version node: a symbol of the baseline
#                      must keep its name and node; a new one must be in a node the baseline
#                      does not have (a release's nodes are frozen once it ships).
#   abi/symbols.abi    libabigail's view of the stripped library (symbols, versions, SONAME),
#                      compared with abidiff.
#   abi/types.abi      the C types of the ABI, as a C compiler reads include/evloop.h: a probe
#                      object holds a pointer to every function the header declares, typed by
#                      the header, so its DWARF describes every prototype and every struct
#                      they reach; compared with abidiff. (The library's own DWARF describes
#                      Rust types, which abidiff does not follow through Option<fn>.)
# A removed or changed function, variable or type fails the check, as does an abidiff error; an
# addition alone (a new function in a new node) is reported and passes.
set -euo pipefail
cd "$(dirname "$0")/.."
LIB=target/release/libevloop.so
HEADERS=include
BASE=abi
ABIDW=(abidw --no-corpus-path --no-show-locs --no-comp-dir-path --type-id-style hash)

command -v abidiff >/dev/null || { echo "abi: abidiff not found (Debian: abigail-tools)" >&2; exit 2; }

# symbols LIB: "name version" per exported symbol, sorted.
symbols() {
    readelf -W --dyn-syms "$1" | awk '$7 != "UND" && $8 ~ /^evl_/ { split($8, p, "@"); print p[1], p[length(p)] }' |
        sort
}

# corpora LIB HEADERS OUT: the three parts of an ABI description of LIB built with HEADERS.
corpora() {
    local lib=$1 headers=$2 out=$3 libdir
    mkdir -p "$out"
    symbols "$lib" > "$out/symbols.txt"
    objcopy --strip-debug "$lib" "$out/libevloop.stripped.so"
    "${ABIDW[@]}" --out-file "$out/symbols.abi" "$out/libevloop.stripped.so"
    rm -f "$out/libevloop.stripped.so"
    {
        echo '#include <evloop.h>'
        grep -oE '\bevl_[a-z0-9_]+\(' "$headers/evloop.h" | tr -d '(' | sort -u |
            awk '{ printf "__typeof__(&%s) abi_probe_%s = &%s;\n", $1, $1, $1 }'
    } > "$out/probe.c"
    libdir=$(cd "$(dirname "$lib")" && pwd)
    # Linking the probe also proves that the library exports every function the header declares.
    ${CC:-cc} -g -O0 -shared -fPIC -I"$headers" -o "$out/probe.so" "$out/probe.c" -L"$libdir" -levloop
    "${ABIDW[@]}" --no-elf-needed --out-file "$out/types.abi" "$out/probe.so"
    rm -f "$out/probe.so" "$out/probe.c"
}

# check LIB HEADERS BASE: 0 when LIB + HEADERS keep BASE's ABI; prints why not.
check() {
    local lib=$1 headers=$2 base=$3 fresh status=0 rc
    fresh=$(mktemp -d)
    corpora "$lib" "$headers" "$fresh"
    local gone frozen_new
    gone=$(comm -23 "$base/symbols.txt" "$fresh/symbols.txt")
    if [ -n "$gone" ]; then
        echo "abi: symbols of the baseline missing or moved to another version node:"
        echo "$gone" | sed 's/^/  /'
        status=1
    fi
    frozen_new=$(comm -13 <(cut -d' ' -f1 "$base/symbols.txt" | sort -u) <(cut -d' ' -f1 "$fresh/symbols.txt" | sort -u) |
        while read -r name; do
            grep "^$name " "$fresh/symbols.txt"
        done | while read -r name node; do
            if cut -d' ' -f2 "$base/symbols.txt" | grep -qx "$node"; then echo "$name $node"; fi
        done)
    if [ -n "$frozen_new" ]; then
        echo "abi: new symbols in a version node the baseline release froze (give them a new node in ffi/evloop.map):"
        echo "$frozen_new" | sed 's/^/  /'
        status=1
    fi
    for part in symbols types; do
        rc=0
        abidiff --no-show-locs "$base/$part.abi" "$fresh/$part.abi" > "$fresh/$part.diff" || rc=$?
        # abidiff sets bit 8 for removed symbols only; a changed prototype or struct layout comes
        # as bit 4 with "N Changed" in its summary. Both break callers built against the baseline.
        if (( rc & 11 )) || grep -qE 'summary: ([1-9][0-9]* Removed|[0-9]+ Removed, [1-9][0-9]* Changed)' "$fresh/$part.diff"; then
            echo "abi: incompatible change ($part, abidiff status $rc):"
            sed 's/^/  /' "$fresh/$part.diff"
            status=1
        elif (( rc & 4 )); then
            echo "abi: compatible change ($part):"
            sed 's/^/  /' "$fresh/$part.diff"
        fi
    done
    rm -rf "$fresh"
    return $status
}

# expect_failure WHAT LIB HEADERS BASE
expect_failure() {
    if check "$2" "$3" "$4" > "$work/out" 2>&1; then
        echo "abi selftest: '$1' passed the check; it must fail"
        cat "$work/out"
        exit 1
    fi
    echo "abi selftest: '$1' fails the check: $(grep -m1 '^abi:' "$work/out")"
}

case "${1:-check}" in
dump)
    corpora "$LIB" "$HEADERS" "$BASE"
    echo "abi: baseline written to $BASE/ ($(wc -l < "$BASE/symbols.txt") symbols)"
    ;;
check)
    check "$LIB" "$HEADERS" "$BASE"
    echo "abi: $(wc -l < "$BASE/symbols.txt") symbols of the baseline kept, no incompatible change"
    ;;
selftest)
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    check "$LIB" "$HEADERS" "$BASE" > "$work/out" || { cat "$work/out"; exit 1; }
    echo "abi selftest: the build itself passes"

    # 1. A function dropped from the export list: a relink of the same archive without it.
    mkdir -p "$work/dropped"
    grep -v 'evl_timer_stop;' ffi/evloop.map > "$work/dropped.map"
    ! cmp -s ffi/evloop.map "$work/dropped.map" || { echo "abi selftest: the map edit matched nothing"; exit 1; }
    cp ffi/link.sh "$work/link.sh"
    cp "$work/dropped.map" "$work/evloop.map"
    "$work/link.sh" "$work/dropped/libevloop.so" target/release/libevloop.a 0
    # The probe must still link, so the header drops it too.
    mkdir -p "$work/dropped-h"
    grep -v '^int evl_timer_stop(' include/evloop.h > "$work/dropped-h/evloop.h"
    expect_failure "evl_timer_stop removed" "$work/dropped/libevloop.so" "$work/dropped-h" "$BASE"

    # 2. A struct's layout changed: evl_timespec_t's seconds narrowed to 32 bits.
    mkdir -p "$work/layout"
    sed 's/^  int64_t sec;$/  int32_t sec;/' include/evloop.h > "$work/layout/evloop.h"
    ! cmp -s include/evloop.h "$work/layout/evloop.h" || { echo "abi selftest: the struct edit matched nothing"; exit 1; }
    expect_failure "evl_timespec_t.sec narrowed" "$LIB" "$work/layout" "$BASE"

    # 3. A prototype changed: evl_timer_start's timeout narrowed to 32 bits.
    mkdir -p "$work/proto"
    awk '/^int evl_timer_start\(/ { inside = 1 } inside && /uint64_t timeout,/ { sub(/uint64_t/, "uint32_t") } /\);/ { inside = 0 } { print }' \
        include/evloop.h > "$work/proto/evloop.h"
    ! cmp -s include/evloop.h "$work/proto/evloop.h" || { echo "abi selftest: the prototype edit matched nothing"; exit 1; }
    expect_failure "evl_timer_start's timeout narrowed" "$LIB" "$work/proto" "$BASE"

    # 4. A function added to a frozen node: a baseline that predates evl_loop_flush.
    mkdir -p "$work/older"
    cp "$BASE"/* "$work/older/"
    grep -v '^evl_loop_flush ' "$BASE/symbols.txt" > "$work/older/symbols.txt"
    expect_failure "evl_loop_flush added to EVLOOP_0.1 after its release" "$LIB" "$HEADERS" "$work/older"
    echo "abi selftest: ok"
    ;;
*)
    echo "usage: scripts/abi.sh dump|check|selftest" >&2
    exit 2
    ;;
esac
