#!/usr/bin/env node
'use strict';
// Builds the addon with cargo (release unless --debug) and puts it where lib/native.js
// loads it: bindings/node/evloop.node.

const { execFileSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const debug = process.argv.includes('--debug');
const root = path.resolve(__dirname, '..', '..', '..');
const args = ['build', '-p', 'evloop-node'];
if (!debug) args.push('--release');
execFileSync('cargo', args, { cwd: root, stdio: 'inherit' });
const targetDir = process.env.CARGO_TARGET_DIR ? path.resolve(root, process.env.CARGO_TARGET_DIR) : path.join(root, 'target');
const built = path.join(targetDir, debug ? 'debug' : 'release', 'libevloop_node.so');
const dest = path.join(__dirname, '..', 'evloop.node');
// Copy to a new file and rename over the old one: a running process keeps its mapping.
fs.copyFileSync(built, dest + '.tmp');
fs.renameSync(dest + '.tmp', dest);
console.log(`evloop: built ${path.relative(process.cwd(), dest)}`);
