#!/usr/bin/env bash
# Builds and installs the Python package (`pip install ./bindings/python`) for each interpreter
# of scripts/pythons.sh, runs the example, then the pytest suites: every test on asyncio's own
# loop (the oracle) and on evloop's, both backends, plus CPython's own asyncio suites.
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1
for py in $(scripts/pythons.sh); do
    echo "== Python $($py -c 'import sys; print(sys.version.split()[0])'): build, install, example, suites"
    $py -m pip install --quiet --no-build-isolation --force-reinstall --no-deps ./bindings/python
    (cd /tmp && $py "$OLDPWD/examples/python/echo.py" --messages 2000 | tail -n 2)
    # From a scratch directory: CPython's suites write their temporary files (support.TESTFN)
    # into the working directory, and one killed mid-run would leave them in the tree.
    scratch=$(mktemp -d)
    (cd "$scratch" && $py -m pytest -q -p no:cacheprovider -o faulthandler_timeout=120 "$OLDPWD/tests/python")
    rm -rf "$scratch"
done
