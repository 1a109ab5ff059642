#!/usr/bin/env bash
# Prints the path of a CPython X.Y found here (PATH, then pyenv), or fails.
set -euo pipefail
want=$1
for cand in "python$want" "$(pyenv root 2>/dev/null)"/versions/"$want".*/bin/python"$want" python3; do
    [ -n "$cand" ] || continue
    if path=$(command -v "$cand" 2>/dev/null) &&
        [ "$("$path" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" = "$want" ]; then
        echo "$path"
        exit 0
    fi
done
exit 1
