#!/usr/bin/env bash
# Prints PATH without the directories that hold cargo or rustc: the install tests run with it,
# so an artifact that needs a Rust toolchain fails them.
set -euo pipefail
kept=()
IFS=: read -ra dirs <<< "$PATH"
for dir in "${dirs[@]}"; do
    [ -n "$dir" ] || continue
    if [ -e "$dir/cargo" ] || [ -e "$dir/rustc" ] || [ -e "$dir/rustup" ]; then continue; fi
    kept+=("$dir")
done
(IFS=:; echo "${kept[*]}")
