#!/usr/bin/env node
'use strict';
// The npm package's install step. The package carries a prebuilt addon for Linux x86_64
// (glibc), built against N-API 8: one binary for every Node from 18 on. When it loads, there is
// nothing to do, and nothing is downloaded. When it does not (another libc, say), or when
// EVLOOP_BUILD_FROM_SOURCE=1 asks for it, the addon is built from the Rust sources in rust/
// with cargo. Any other platform fails here with a clear message.

const { execFileSync, spawnSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const root = path.join(__dirname, '..');
const prebuilt = path.join(root, `evloop.${process.platform}-${process.arch}-gnu.node`);

function fail(message) {
  console.error(`evloop: ${message}`);
  process.exit(1);
}

if (process.platform !== 'linux' || process.arch !== 'x64') {
  fail(
    `runs on Linux x86_64 only (it is built on io_uring and epoll); this is ` +
      `${process.platform}-${process.arch}, so it cannot be installed here.`,
  );
}

function prebuiltProblem() {
  if (!fs.existsSync(prebuilt)) return `no prebuilt binary in the package (${path.basename(prebuilt)})`;
  // Loaded in a child process: a binary that cannot load must not take this one down.
  const probe = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(prebuilt)})`], { encoding: 'utf8' });
  if (probe.status === 0) return null;
  return `the prebuilt binary does not load here: ${(probe.stderr || '').trim().split('\n').pop()}`;
}

const forced = process.env.EVLOOP_BUILD_FROM_SOURCE === '1';
const problem = forced ? 'EVLOOP_BUILD_FROM_SOURCE=1' : prebuiltProblem();
if (!problem) process.exit(0);

console.error(`evloop: ${problem}: building the addon from source with cargo.`);
const cargo = process.env.CARGO || 'cargo';
if (spawnSync(cargo, ['--version'], { stdio: 'ignore' }).status !== 0) {
  fail(
    `building from source needs a Rust toolchain (cargo 1.77 or newer, https://rustup.rs), and ` +
      `'${cargo}' was not found. Install one, then run npm install again.`,
  );
}
const rust = path.join(root, 'rust');
const target = path.join(rust, 'target');
execFileSync(cargo, ['build', '--release', '--locked', '-p', 'evloop-node'], {
  cwd: rust,
  stdio: 'inherit',
  env: { ...process.env, CARGO_TARGET_DIR: target },
});
fs.copyFileSync(path.join(target, 'release', 'libevloop_node.so'), path.join(root, 'evloop.node'));
fs.rmSync(target, { recursive: true, force: true });
console.error('evloop: built evloop.node from source.');
