#!/usr/bin/env bash
# Prints PATH without the directories that hold cargo, rustc or rustup: the install tests run
# with it, so an artifact that needs a Rust toolchain fails them. Fails if a Rust toolchain is
# still reachable through what is left.
set -euo pipefail
kept=()
IFS=: read -ra dirs <<< "$PATH"
for dir in "${dirs[@]}"; do
    [ -n "$dir" ] || continue
    if [ -e "$dir/cargo" ] || [ -e "$dir/rustc" ] || [ -e "$dir/rustup" ]; then continue; fi
    kept+=("$dir")
done
path=$(IFS=:; echo "${kept[*]}")
if env PATH="$path" sh -c 'command -v cargo || command -v rustc' >/dev/null; then
    echo "no_rust_path: cargo or rustc is still on PATH ($path)" >&2
    exit 1
fi
echo "$path"
