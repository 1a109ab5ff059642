'use strict';
const { test } = require('node:test');
const assert = require('node:assert');
const nodeFs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { evloop } = require('./helpers');

const dir = nodeFs.mkdtempSync(path.join(os.tmpdir(), 'evloop-node-fs-'));
process.on('exit', () => nodeFs.rmSync(dir, { recursive: true, force: true }));

test('writeFile then readFile, as Buffer and as string', async () => {
  const file = path.join(dir, 'a.txt');
  await evloop.fs.writeFile(file, 'héllo');
  assert.deepStrictEqual(await evloop.fs.readFile(file), Buffer.from('héllo'));
  assert.strictEqual(await evloop.fs.readFile(file, 'utf8'), 'héllo');
  assert.strictEqual(await evloop.fs.readFile(file, { encoding: 'utf8' }), 'héllo');
  await evloop.fs.writeFile(new URL(`file://${file}`), Buffer.alloc(100000, 3));
  const big = await evloop.fs.readFile(file);
  assert.strictEqual(big.length, 100000);
  assert.ok(big.every((b) => b === 3));
  await evloop.fs.writeFile(file, '');
  assert.strictEqual((await evloop.fs.readFile(file)).length, 0);
});

test('stat agrees with fs.statSync', async () => {
  const file = path.join(dir, 'stat.bin');
  nodeFs.writeFileSync(file, Buffer.alloc(12345));
  const ours = await evloop.fs.stat(file);
  const theirs = nodeFs.statSync(file);
  for (const k of ['size', 'mode', 'ino', 'nlink', 'uid', 'gid', 'dev']) assert.strictEqual(ours[k], theirs[k], k);
  assert.ok(Math.abs(ours.mtimeMs - theirs.mtimeMs) < 1);
  assert.ok(ours.mtime instanceof Date);
  assert.strictEqual(ours.isFile(), true);
  assert.strictEqual(ours.isDirectory(), false);
  assert.strictEqual((await evloop.fs.stat(dir)).isDirectory(), true);
});

test('readFiles and writeFiles: many files, in order, with a window', async () => {
  const paths = Array.from({ length: 300 }, (_, i) => path.join(dir, `f${i}`));
  const data = paths.map((_, i) => Buffer.from(`file number ${i}`));
  await evloop.fs.writeFiles(paths, data, { concurrency: 32 });
  for (let i = 0; i < paths.length; i += 37) assert.strictEqual(nodeFs.readFileSync(paths[i], 'utf8'), `file number ${i}`);
  const got = await evloop.fs.readFiles(paths);
  assert.strictEqual(got.length, paths.length);
  got.forEach((b, i) => assert.deepStrictEqual(b, data[i]));
  const strings = await evloop.fs.readFiles(paths.slice(0, 3), { encoding: 'utf8', concurrency: 1 });
  assert.deepStrictEqual(strings, ['file number 0', 'file number 1', 'file number 2']);
  assert.deepStrictEqual(await evloop.fs.readFiles([]), []);
});

test('errors are Node errors: code, errno, syscall, path, message', async () => {
  const missing = path.join(dir, 'nope', 'missing.txt');
  await assert.rejects(evloop.fs.readFile(missing), (e) => {
    assert.strictEqual(e.code, 'ENOENT');
    assert.strictEqual(e.errno, -2);
    assert.strictEqual(e.syscall, 'open');
    assert.strictEqual(e.path, missing);
    assert.strictEqual(e.message, `ENOENT: no such file or directory, open '${missing}'`);
    return true;
  });
  await assert.rejects(evloop.fs.writeFile(missing, 'x'), { code: 'ENOENT' });
  await assert.rejects(evloop.fs.stat(missing), { code: 'ENOENT', syscall: 'stat' });
  await assert.rejects(evloop.fs.readFile(dir), { code: 'EISDIR' });
  const some = [path.join(dir, 'ok'), missing];
  nodeFs.writeFileSync(some[0], 'ok');
  await assert.rejects(evloop.fs.readFiles(some), { code: 'ENOENT', path: missing });
  await assert.rejects(evloop.fs.readFile(42), { code: 'ERR_INVALID_ARG_TYPE' });
  await assert.rejects(evloop.fs.readFile('bad\0path'), { code: 'EINVAL' });
  await assert.rejects(evloop.fs.writeFiles(['a'], []), /same length/);
});

test('many concurrent readFile calls keep the process alive until they settle', async () => {
  const file = path.join(dir, 'shared');
  nodeFs.writeFileSync(file, 'x'.repeat(4096));
  const all = await Promise.all(Array.from({ length: 1000 }, () => evloop.fs.readFile(file)));
  assert.ok(all.every((b) => b.length === 4096));
});
