'use strict';
const { test } = require('node:test');
const assert = require('node:assert');
const nodeDgram = require('node:dgram');
const { evloop, within, once } = require('./helpers');

test('udp4: bind, send with a callback, message with rinfo, address, close', async () => {
  const a = evloop.createSocket('udp4');
  const b = evloop.createSocket('udp4');
  a.bind(0, '127.0.0.1');
  b.bind({ port: 0, address: '127.0.0.1' });
  await Promise.all([once(a, 'listening'), once(b, 'listening')]);
  const aAddr = a.address();
  assert.strictEqual(aAddr.address, '127.0.0.1');
  assert.strictEqual(aAddr.family, 'IPv4');
  const got = once(a, 'message');
  const sent = await new Promise((resolve, reject) =>
    b.send('hello udp', aAddr.port, '127.0.0.1', (err, n) => (err ? reject(err) : resolve(n))),
  );
  assert.strictEqual(sent, 9);
  const [msg, rinfo] = await within(got);
  assert.strictEqual(msg.toString(), 'hello udp');
  assert.deepStrictEqual(rinfo, { address: '127.0.0.1', family: 'IPv4', port: b.address().port, size: 9 });
  await Promise.all([new Promise((r) => a.close(r)), new Promise((r) => b.close(r))]);
});

test('udp6 on ::1, many datagrams in order of arrival, offset and length', async () => {
  const a = evloop.createSocket('udp6');
  a.bind(0, '::1');
  await once(a, 'listening');
  const b = evloop.createSocket({ type: 'udp6' });
  const n = 200;
  const seen = new Set();
  const all = new Promise((resolve) => {
    a.on('message', (m, rinfo) => {
      assert.strictEqual(rinfo.family, 'IPv6');
      seen.add(m.toString());
      if (seen.size === n) resolve();
    });
  });
  // The first send binds b implicitly, as in Node.
  for (let i = 0; i < n; i++) {
    const buf = Buffer.from(`xx${i}yy`);
    b.send(buf, 2, buf.length - 4, a.address().port, '::1');
  }
  await within(all);
  for (let i = 0; i < n; i++) assert.ok(seen.has(String(i)));
  a.close();
  b.close();
});

test("interplay with Node's dgram, both ways", async () => {
  const ours = evloop.createSocket('udp4');
  const theirs = nodeDgram.createSocket('udp4');
  ours.bind(0, '127.0.0.1');
  theirs.bind(0, '127.0.0.1');
  await Promise.all([once(ours, 'listening'), once(theirs, 'listening')]);
  const toUs = once(ours, 'message');
  theirs.send('from node', ours.address().port, '127.0.0.1');
  assert.strictEqual((await within(toUs))[0].toString(), 'from node');
  const toThem = once(theirs, 'message');
  ours.send(Buffer.from('from evloop'), theirs.address().port, '127.0.0.1');
  assert.strictEqual((await within(toThem))[0].toString(), 'from evloop');
  ours.close();
  theirs.close();
});

test('misuse: bad type, bad port, binding twice, using a closed socket, EADDRINUSE', async () => {
  assert.throws(() => evloop.createSocket('udp5'), { code: 'ERR_SOCKET_BAD_TYPE' });
  const s = evloop.createSocket('udp4');
  assert.throws(() => s.send('x', 0, '127.0.0.1'), { code: 'ERR_SOCKET_BAD_PORT' });
  s.bind(0, '127.0.0.1');
  assert.throws(() => s.bind(0), { code: 'ERR_SOCKET_ALREADY_BOUND' });
  await once(s, 'listening');
  const other = evloop.createSocket('udp4');
  other.bind(s.address().port, '127.0.0.1');
  const [err] = await within(once(other, 'error'));
  assert.strictEqual(err.code, 'EADDRINUSE');
  assert.strictEqual(err.syscall, 'bind');
  other.close();
  s.close();
  assert.throws(() => s.send('x', 1, '127.0.0.1'), { code: 'ERR_SOCKET_DGRAM_NOT_RUNNING' });
  assert.throws(() => s.close(), { code: 'ERR_SOCKET_DGRAM_NOT_RUNNING' });
});

test('datagrams of every size up to 65,507 bytes arrive whole, both ways with Node dgram', async () => {
  const ours = evloop.createSocket('udp4');
  const theirs = nodeDgram.createSocket('udp4');
  ours.bind(0, '127.0.0.1');
  theirs.bind(0, '127.0.0.1');
  await Promise.all([once(ours, 'listening'), once(theirs, 'listening')]);
  for (const size of [1, 16 * 1024 - 100, 16 * 1024 + 100, 40000, 65507]) {
    const payload = Buffer.alloc(size, size % 251);
    const toUs = once(ours, 'message');
    theirs.send(payload, ours.address().port, '127.0.0.1');
    const [got] = await within(toUs);
    assert.strictEqual(got.length, size);
    assert.ok(got.equals(payload), `datagram of ${size} bytes changed`);
    const toThem = once(theirs, 'message');
    ours.send(payload, theirs.address().port, '127.0.0.1');
    const [back] = await within(toThem);
    assert.ok(back.equals(payload), `datagram of ${size} bytes changed on the way out`);
  }
  ours.close();
  theirs.close();
});
