#!/usr/bin/env python3
"""Other projects' own test suites, run on asyncio's loop and on evloop's (both backends) in the
same run, and compared test by test (issue 30):

- aiohttp 3.14.5: its client and server functional tests (HTTP, websockets, sendfile);
- uvicorn 0.54.0: everything that runs a server or a protocol (protocols/, the server, main,
  lifespan, TLS, middleware; not the CLI, config, importer and process supervisors);
- AnyIO 4.16.0: its suite on its asyncio backend (trio, uvloop and IPv6 cases left out, and the
  two files that test its pytest plugin and lazy imports in subprocesses);
- websockets 15.0.1: its asyncio implementation (tests/asyncio).

The tests come from each project's released source: the PyPI sdist (aiohttp, uvicorn, AnyIO) or,
for websockets, whose sdist has no tests, the upstream release tarball Debian ships as
python-websockets' orig tarball; each is checked against its sha256. The projects themselves are
installed from their released wheels (tests/python/frameworks/requirements.txt, pinned), and each
source tree's own copy of the package is moved aside so the tests import the installed one.

evloop is selected the way a program selects it: `evloop.install()`, through the pytest plugin
evloop_install.py, before any test runs. A test that passes on asyncio and fails on evloop fails
this run, unless KNOWN lists it with the reason; a KNOWN entry that passes again is reported.
Tests that fail on asyncio's loop too are counted and listed, not compared.

usage: run.py --wheel EVLOOP_WHEEL [--work DIR] [--suites aiohttp,uvicorn,...] [--markdown FILE]
"""
import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import time
import urllib.request
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
LOOPS = ["asyncio", "evloop-uring", "evloop-epoll"]

SUITES = {
    "aiohttp": {
        "source": ("pypi", "aiohttp", "3.14.5", "5558a7f5a05af9ecf744af91e5baefc436f93c9333e656c27ec253f9a6bbe178"),
        "package": "aiohttp",
        # Its pytest.ini's addopts want coverage and as many workers as CPUs; the markers are its own
        # default selection (no dev_mode, autobahn or internal tests).
        "args": ["-o", "addopts=", "-m", "not dev_mode and not autobahn and not internal", "--timeout=120",
                 "tests/test_client_functional.py", "tests/test_web_functional.py",
                 "tests/test_client_ws_functional.py", "tests/test_web_websocket_functional.py",
                 "tests/test_web_sendfile_functional.py"],
    },
    "uvicorn": {
        "source": ("pypi", "uvicorn", "0.54.0", "a2e33cbfaa0306f8e6b0c13e0cb89d7d7a2da3e62b90c66e18c33d9807b28620"),
        "package": "uvicorn",
        "args": ["-o", "addopts=", "--strict-markers", "tests/protocols", "tests/middleware", "tests/test_server.py",
                 "tests/test_main.py", "tests/test_lifespan.py", "tests/test_ssl.py", "tests/test_default_headers.py"],
    },
    "anyio": {
        "source": ("pypi", "anyio", "4.16.0", "59bb03251907983d1603d27c3087ddb1e93299ea2163adcdba37899a4fb12ffb"),
        "package": "src/anyio",
        # IPv6 cases left out: they connect to "localhost" as AF_INET6, which this machine's
        # /etc/hosts does not map to ::1; they fail on every loop, and the sockets they leak
        # then fail whichever test the garbage collector happens to close them in.
        # test_pytest_plugin.py and test_lazyimport.py run pytest or Python in subprocesses, on
        # asyncio's own loop whatever this run selects, under 3-second limits this machine
        # sometimes misses.
        "args": ["-k", "not trio and not uvloop and not ipv6", "--ignore=tests/test_pytest_plugin.py",
                 "--ignore=tests/test_lazyimport.py", "tests"],
    },
    "websockets": {
        "source": ("url", "websockets", "15.0.1",
                   "8451495265af3e368f794c4dc15c99ce90c771d95560f542bff8c64b5455af3b",
                   "http://deb.debian.org/debian/pool/main/p/python-websockets/python-websockets_15.0.1.orig.tar.gz"),
        "package": "src/websockets",
        "args": ["tests/asyncio"],
        "pythonpath": ".",  # its tests import `tests.utils`
    },
}

# Tests that pass on asyncio's loop and not on evloop's, each with why.
KNOWN = {
    "aiohttp": {
        "tests/test_web_functional.py::test_keepalive_expires_on_time[pyloop]":
            "patches loop.time() and expects timers to come due by it; evloop's timers are the "
            "core's (as uvloop's are libuv's) and keep their own clock (fails on uvloop 0.22 too)",
    },
    "anyio": {
        "tests/test_sockets.py::TestTCPStream::test_connect_tcp_with_tls_cert_check_fail[asyncio-ipv4]":
            "aborts the client's transport, lets the loop run one step, then blocks the loop's thread "
            "in thread.join() until the server thread sees the socket close; asyncio closes the "
            "socket in that step, evloop's core closes it in its next poll, which never comes",
    },
    "websockets": {
        f"tests/asyncio/test_connection.py::{cls}::{test}":
            "patches asyncio.BaseTransport.get_extra_info on the class; evloop's transports are "
            "native types that present asyncio's classes but do not inherit that method (fails on "
            "uvloop 0.22 too)"
        for cls in ("ClientConnectionTests", "ServerConnectionTests")
        for test in ("test_local_address", "test_remote_address")
    },
}


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fetch_source(name, spec, work, python):
    """The project's source tree, extracted once into WORK/src."""
    kind, project, version, digest = spec[:4]
    tree = os.path.join(work, "src", f"{project}-{version}")
    if os.path.isdir(tree):
        return tree
    downloads = os.path.join(work, "downloads")
    os.makedirs(downloads, exist_ok=True)
    if kind == "pypi":
        subprocess.run([python, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                        f"{project}=={version}", "-d", downloads], check=True)
        archive = os.path.join(downloads, f"{project}-{version}.tar.gz")
    else:
        archive = os.path.join(downloads, os.path.basename(spec[4]))
        if not os.path.exists(archive):
            urllib.request.urlretrieve(spec[4], archive)
    got = sha256(archive)
    if got != digest:
        raise SystemExit(f"frameworks: {archive}: sha256 {got}, expected {digest}")
    with tarfile.open(archive) as t:
        t.extractall(os.path.join(work, "src"), filter="data")
    # The installed wheel is what is tested, not the source tree's copy of the package.
    package = os.path.join(tree, SUITES[name]["package"])
    shutil.move(package, package + ".source")
    return tree


def make_venv(work, wheel):
    venv = os.path.join(work, "venv")
    python = os.path.join(venv, "bin", "python")
    if not os.path.exists(python):
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
        subprocess.run([python, "-m", "pip", "install", "--quiet", "--prefer-binary",
                        "-r", os.path.join(HERE, "requirements.txt")], check=True)
    subprocess.run([python, "-m", "pip", "install", "--quiet", "--force-reinstall", "--no-deps", wheel], check=True)
    return python


def outcomes(junit, tree):
    """{test id: 'passed' | 'failed' | 'skipped'} from pytest's junit XML of a run in `tree`."""
    result = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        module = case.get("classname", "")
        # pytest writes classname as dotted module[.Class]; rebuild the node id's file part.
        parts = module.split(".")
        node = None
        for i in range(len(parts), 0, -1):
            candidate = "/".join(parts[:i]) + ".py"
            if os.path.exists(os.path.join(tree, candidate)):
                node = "::".join([candidate] + parts[i:] + [case.get("name")])
                break
        node = node or f"{module}::{case.get('name')}"
        if case.find("failure") is not None or case.find("error") is not None:
            result[node] = "failed"
        elif case.find("skipped") is not None:
            result[node] = "skipped"
        else:
            result[node] = "passed"
    return result


def run_suite(name, tree, python, loop, work):
    junit = os.path.join(work, "results", f"{name}-{loop}.xml")
    counts = os.path.join(work, "results", f"{name}-{loop}.loops")
    os.makedirs(os.path.dirname(junit), exist_ok=True)
    for stale in (junit, counts):
        if os.path.exists(stale):
            os.remove(stale)
    suite = SUITES[name]
    env = dict(os.environ, EVLOOP_FRAMEWORK_LOOP=loop, EVLOOP_FRAMEWORK_COUNTS=counts,
               PYTHONPATH=os.pathsep.join([HERE] + ([os.path.join(tree, suite["pythonpath"])]
                                                     if "pythonpath" in suite else [])),
               PYTHONDONTWRITEBYTECODE="1")
    env.pop("EVLOOP_BACKEND", None)
    cmd = [python, "-m", "pytest", "-p", "evloop_install", "-p", "no:cacheprovider", "-q", "-n", "2",
           "--junitxml", junit, *suite["args"]]
    started = time.monotonic()
    proc = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True, timeout=1800)
    took = time.monotonic() - started
    if not os.path.exists(junit):
        sys.stdout.write(proc.stdout[-5000:] + proc.stderr[-5000:])
        raise SystemExit(f"frameworks: {name} on {loop}: pytest wrote no results (exit {proc.returncode})")
    made = [0, 0]
    if os.path.exists(counts):
        with open(counts) as f:
            for line in f:
                a, b = line.split()
                made[0] += int(a)
                made[1] += int(b)
    return outcomes(junit, tree), made, took


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--wheel", required=True)
    ap.add_argument("--work", default=os.path.join(HERE, "..", "..", "..", "build", "frameworks"))
    ap.add_argument("--suites", default=",".join(SUITES))
    ap.add_argument("--markdown")
    args = ap.parse_args()
    work = os.path.abspath(args.work)
    os.makedirs(work, exist_ok=True)
    python = make_venv(work, os.path.abspath(args.wheel))
    rows, problems = [], []
    for name in args.suites.split(","):
        tree = fetch_source(name, SUITES[name]["source"], work, python)
        by_loop = {}
        for loop in LOOPS:
            result, made, took = run_suite(name, tree, python, loop, work)
            by_loop[loop] = result
            n = {k: sum(1 for v in result.values() if v == k) for k in ("passed", "failed", "skipped")}
            print(f"{name} on {loop}: {n['passed']} passed, {n['failed']} failed, {n['skipped']} skipped "
                  f"in {took:.0f} s (loops made: {made[0]} evloop, {made[1]} other)", flush=True)
            if loop != "asyncio" and made[0] == 0:
                problems.append(f"{name} on {loop}: no evloop loop was made; the suite did not run on evloop")
            rows.append((name, loop, n, made))
        base = by_loop["asyncio"]
        known = KNOWN.get(name, {})
        for loop in LOOPS[1:]:
            lost = sorted(t for t, v in base.items() if v == "passed" and by_loop[loop].get(t) != "passed")
            for t in lost:
                if t in known:
                    print(f"  known difference on {loop}: {t}")
                else:
                    problems.append(f"{name}: passes on asyncio, not on {loop}: {t}")
            for t in sorted(known):
                if by_loop[loop].get(t) == "passed":
                    print(f"  note: {t} now passes on {loop}; take it out of KNOWN")
            gained = sorted(t for t, v in by_loop[loop].items() if v == "passed" and base.get(t) == "failed")
            for t in gained:
                print(f"  passes on {loop}, fails on asyncio: {t}")
        both = sorted(t for t, v in base.items() if v == "failed")
        if both:
            print(f"  {len(both)} fail on asyncio's loop too (not compared): " + ", ".join(both[:8])
                  + (" ..." if len(both) > 8 else ""))
    lines = ["| project | loop | passed | failed | skipped | loops made (evloop / other) |",
             "|---|---|---:|---:|---:|---:|"]
    for name, loop, n, made in rows:
        lines.append(f"| {name} | {loop} | {n['passed']} | {n['failed']} | {n['skipped']} | {made[0]} / {made[1]} |")
    print("\n".join(lines))
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write("\n".join(lines) + "\n")
    if problems:
        print("\n".join(problems), file=sys.stderr)
        raise SystemExit(f"frameworks: {len(problems)} difference(s) from asyncio's loop")


if __name__ == "__main__":
    main()
