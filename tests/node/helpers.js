'use strict';
// Shared by the Node suites: the addon under test, and small promise helpers. Every suite runs
// once per backend (scripts/test_node.sh sets EVLOOP_BACKEND); `backend` asserts it got it.

const assert = require('node:assert');
const path = require('node:path');
const { once } = require('node:events');

// The package under test: the repository's build (bindings/node), or an installed npm package
// (EVLOOP_NODE_PACKAGE, as scripts/test_node.sh sets it for the release tarball).
const addonPath = process.env.EVLOOP_NODE_PACKAGE || path.join(__dirname, '..', '..', 'bindings', 'node');
const evloop = require(addonPath);

if (process.env.EVLOOP_BACKEND) assert.strictEqual(evloop.backend, process.env.EVLOOP_BACKEND);

/** Listens on an ephemeral loopback port; resolves to the port. */
async function listen(server, host = '127.0.0.1') {
  server.listen(0, host);
  await once(server, 'listening');
  return server.address().port;
}

/** Collects everything a socket delivers until 'end'. */
function readAll(socket) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    socket.on('data', (c) => chunks.push(c));
    socket.on('end', () => resolve(Buffer.concat(chunks)));
    socket.on('error', reject);
  });
}

/** Rejects if `p` takes longer than `ms` (generous: a guard against hangs, not a timing test). */
function within(p, ms = 20000, what = 'operation') {
  let t;
  const timeout = new Promise((_, reject) => {
    t = setTimeout(() => reject(new Error(`${what} did not finish in ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(t));
}

module.exports = { evloop, addonPath, listen, readAll, within, once };
