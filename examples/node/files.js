'use strict';
// Reads a batch of files with evloop.fs.readFiles (one call, up to 256 in flight on the loop's
// own ring, no thread per file on io_uring) and with Promise.all over fs.promises.readFile, and
// prints both rates.
//
//   node examples/node/files.js [--files 2000] [--size 4096]
//   node examples/node/files.js --self-test      fewer files, checks every byte, exits 1 on error

const fs = require('fs');
const os = require('os');
const path = require('path');
const evloop = require(path.join(__dirname, '..', '..', 'bindings', 'node'));

const args = process.argv.slice(2);
const selfTest = args.includes('--self-test');
const opt = (name, dflt) => (args.includes(name) ? Number(args[args.indexOf(name) + 1]) : dflt);
const count = opt('--files', selfTest ? 300 : 2000);
const size = opt('--size', 4096);

async function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'evloop-files-'));
  try {
    const paths = Array.from({ length: count }, (_, i) => path.join(dir, `f${i}`));
    const data = paths.map((_, i) => Buffer.alloc(size, i % 251));
    await evloop.fs.writeFiles(paths, data);

    let t = process.hrtime.bigint();
    const ours = await evloop.fs.readFiles(paths);
    const evloopSeconds = Number(process.hrtime.bigint() - t) / 1e9;

    t = process.hrtime.bigint();
    const theirs = await Promise.all(paths.map((p) => fs.promises.readFile(p)));
    const nodeSeconds = Number(process.hrtime.bigint() - t) / 1e9;

    for (let i = 0; i < count; i++) {
      if (!ours[i].equals(data[i]) || !theirs[i].equals(data[i])) throw new Error(`file ${i} differs`);
    }
    console.log(`backend ${evloop.backend}: ${count} files of ${size} B`);
    console.log(`  evloop.fs.readFiles        ${(count / evloopSeconds).toFixed(0)} files/s`);
    console.log(`  fs.promises.readFile x N   ${(count / nodeSeconds).toFixed(0)} files/s`);
    const missing = path.join(dir, 'missing');
    await evloop.fs.readFile(missing).then(
      () => {
        throw new Error('reading a missing file succeeded');
      },
      (e) => console.log(`  a missing file: ${e.code} (${e.message})`),
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
