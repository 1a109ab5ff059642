#!/usr/bin/env bash
# Prints the Python interpreters the Python suites run on: python3, and Python 3.12 (pyenv or
# PATH) when it is a different interpreter.
set -euo pipefail
echo python3
main=$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
[ "$main" = "3.12" ] && exit 0
for cand in python3.12 "$(pyenv root 2>/dev/null)"/versions/3.12*/bin/python3.12; do
    if [ -n "$cand" ] && "$cand" -c "" >/dev/null 2>&1; then
        command -v "$cand" || echo "$cand"
        exit 0
    fi
done
