'use strict';
// One round of bench/node_files.py: reads the same files with evloop.fs.readFiles and with
// fs.promises.readFile, both with WINDOW reads in flight, and prints files/s as JSON.
//
//   node bench/node/files.js DIR COUNT WINDOW      (EVLOOP_BACKEND picks evloop's backend)

const fs = require('fs');
const path = require('path');
const evloop = require(path.join(__dirname, '..', '..', 'bindings', 'node'));

const [dir, countArg, windowArg] = process.argv.slice(2);
const count = Number(countArg);
const window = Number(windowArg);
const paths = Array.from({ length: count }, (_, i) => path.join(dir, `f${i}`));

/** Promise.all over fs.promises.readFile with at most `window` in flight. */
async function nodeWindowed() {
  const out = new Array(count);
  let next = 0;
  async function worker() {
    while (next < count) {
      const i = next++;
      out[i] = await fs.promises.readFile(paths[i]);
    }
  }
  await Promise.all(Array.from({ length: window }, worker));
  return out;
}

async function timed(f) {
  const t = process.hrtime.bigint();
  const bufs = await f();
  const s = Number(process.hrtime.bigint() - t) / 1e9;
  if (bufs.length !== count || bufs.some((b) => b.length === 0)) throw new Error('short read');
  return count / s;
}

(async () => {
  // Order alternates between rounds (by pid parity) so neither side always reads a warmer cache.
  const first = process.pid % 2 === 0;
  const evloopFirst = first ? await timed(() => evloop.fs.readFiles(paths, { concurrency: window })) : null;
  const node = await timed(nodeWindowed);
  const evloopRate = first ? evloopFirst : await timed(() => evloop.fs.readFiles(paths, { concurrency: window }));
  console.log(JSON.stringify({ backend: evloop.backend, evloop: evloopRate, node }));
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
