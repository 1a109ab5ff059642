'use strict';
// The process exits by itself once evloop's handles are closed or unreferenced, as with
// Node's own handles; each case runs in a child process with its own loop.
const { test } = require('node:test');
const assert = require('node:assert');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { evloop, addonPath } = require('./helpers');

const addon = JSON.stringify(addonPath);

function run(body) {
  const r = spawnSync(process.execPath, ['-e', `const evloop = require(${addon});\n${body}`], {
    encoding: 'utf8',
    timeout: 20000,
    env: process.env,
  });
  assert.strictEqual(r.error, undefined, `the child did not exit by itself: ${r.error}`);
  return r;
}

test("version: the package's, which is the workspace's (Cargo.toml)", () => {
  const cargo = fs.readFileSync(path.join(__dirname, '..', '..', 'Cargo.toml'), 'utf8');
  const workspace = /^version = "(.*)"$/m.exec(cargo)[1];
  assert.strictEqual(evloop.version, workspace);
  assert.strictEqual(require(path.join(addonPath, 'package.json')).version, workspace);
});

test('exits once a server and its connections are closed', () => {
  const r = run(`
    const s = evloop.createServer((c) => c.pipe(c));
    s.listen(0, '127.0.0.1', () => {
      const c = evloop.connect(s.address().port, '127.0.0.1');
      c.on('data', (d) => { console.log('echo ' + d); c.end(); });
      c.on('close', () => s.close(() => console.log('closed')));
      c.write('x');
    });`);
  assert.strictEqual(r.status, 0, r.stderr);
  assert.strictEqual(r.stdout, 'echo x\nclosed\n');
});

test('an unref()d server does not keep the process alive; ref() does again', () => {
  const r = run(`
    const s = evloop.createServer();
    s.listen(0, '127.0.0.1', () => console.log('listening'));
    s.unref();
    process.on('exit', () => console.log('exit'));`);
  assert.strictEqual(r.status, 0, r.stderr);
  assert.strictEqual(r.stdout, 'listening\nexit\n');
  const kept = run(`
    const s = evloop.createServer();
    s.listen(0, '127.0.0.1');
    s.unref();
    s.ref();
    setTimeout(() => { console.log('still alive'); s.close(); }, 300).unref();`);
  assert.strictEqual(kept.status, 0, kept.stderr);
  assert.strictEqual(kept.stdout, 'still alive\n');
});

test('open but unref()d sockets, server and udp socket let the process exit', () => {
  const r = run(`
    const server = evloop.createServer((accepted) => { accepted.unref(); accepted.resume(); });
    server.listen(0, '127.0.0.1', () => {
      server.unref();
      const c = evloop.connect(server.address().port, '127.0.0.1', () => { c.unref(); console.log('connected'); });
      c.resume();
      const u = evloop.createSocket('udp4');
      u.bind(0, '127.0.0.1', () => u.unref());
    });`);
  assert.strictEqual(r.status, 0, r.stderr);
  assert.strictEqual(r.stdout, 'connected\n');
});

test('an unref()d socket still gets its events while something else keeps Node alive', () => {
  const r = run(`
    const server = evloop.createServer((s) => s.end('hello'));
    server.listen(0, '127.0.0.1', () => {
      server.unref();
      const c = evloop.connect(server.address().port, '127.0.0.1');
      c.unref();
      c.on('data', (d) => console.log('got ' + d));
      // Only this timer keeps the process alive; the evloop handles must still run.
      const t = setTimeout(() => console.log('timeout'), 10000);
      c.on('close', () => { console.log('closed'); clearTimeout(t); });
    });`);
  assert.strictEqual(r.status, 0, r.stderr);
  assert.strictEqual(r.stdout, 'got hello\nclosed\n');
});

test('an exception thrown by an event handler reaches uncaughtException; the loop goes on', () => {
  const r = run(`
    process.on('uncaughtException', (e) => console.log('caught ' + e.message));
    const s = evloop.createServer((c) => { c.on('data', () => { throw new Error('boom'); }); c.on('end', () => { c.end(); }); });
    s.listen(0, '127.0.0.1', () => {
      const c = evloop.connect(s.address().port, '127.0.0.1', () => c.end('x'));
      c.resume();
      c.on('close', () => { console.log('closed'); s.close(); });
    });`);
  assert.strictEqual(r.status, 0, r.stderr);
  assert.strictEqual(r.stdout, 'caught boom\nclosed\n');
});

test('an unhandled error event ends the process as in Node, with the error printed', () => {
  const r = run(`evloop.connect(1, '127.0.0.1');`);
  assert.notStrictEqual(r.status, 0);
  assert.match(r.stderr, /ECONNREFUSED/);
});

test('ESM import gives the same module', () => {
  const url = JSON.stringify('file://' + path.join(addonPath, 'index.mjs'));
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', `import evloop, { createServer, fs, backend } from ${url};\nconsole.log(typeof createServer, typeof fs.readFiles, backend === evloop.backend);`], { encoding: 'utf8', timeout: 20000 });
  assert.strictEqual(r.status, 0, r.stderr);
  assert.strictEqual(r.stdout, 'function function true\n');
});

test('a worker thread gets a loop of its own', () => {
  const r = run(`
    const { Worker } = require('worker_threads');
    const w = new Worker(\`
      const evloop = require(\${JSON.stringify(${addon})});
      const s = evloop.createServer((c) => c.pipe(c));
      s.listen(0, '127.0.0.1', () => {
        const c = evloop.connect(s.address().port, '127.0.0.1');
        c.on('data', (d) => { require('worker_threads').parentPort.postMessage(String(d)); c.end(); });
        c.on('close', () => s.close());
        c.write('from worker');
      });\`, { eval: true });
    w.on('message', (m) => console.log(m));
    w.on('exit', (code) => console.log('worker exit ' + code));`);
  assert.strictEqual(r.status, 0, r.stderr);
  assert.strictEqual(r.stdout, 'from worker\nworker exit 0\n');
});
