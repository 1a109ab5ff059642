#!/usr/bin/env bash
# Prints the Python interpreters the full Python suites run on: python3, and CPython 3.12 and
# 3.13 (PATH or pyenv) where they are found and differ from python3.
set -euo pipefail
cd "$(dirname "$0")/.."
echo python3
main=$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
for want in 3.12 3.13; do
    [ "$main" = "$want" ] && continue
    packaging/python/interpreter.sh "$want" || true
done
