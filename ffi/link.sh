#!/bin/sh
# Links libevloop.so from libevloop.a: ffi/evloop.map is its only version script (ffi/Cargo.toml
# says why cargo does not make it), the SONAME carries the major version.
#   ffi/link.sh OUT ARCHIVE MAJOR        (LINK_CC chooses the linker driver; default cc)
set -eu
out=$1 archive=$2 major=$3
here=$(dirname "$0")
${LINK_CC:-cc} -shared -o "$out.tmp" -Wl,-soname,"libevloop.so.$major" \
    -Wl,--version-script="$here/evloop.map" -Wl,--no-undefined -Wl,--gc-sections \
    -Wl,--whole-archive "$archive" -Wl,--no-whole-archive \
    -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc
# A new file renamed over the old: a running program keeps its mapping.
mv -f "$out.tmp" "$out"
