'use strict';
const { test } = require('node:test');
const assert = require('node:assert');
const net = require('node:net');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { evloop, listen, readAll, within, once } = require('./helpers');

function echoServer(options) {
  return evloop.createServer(options, (s) => s.pipe(s));
}

test('echo: server and client on evloop, data and addresses', async () => {
  const server = echoServer();
  const port = await listen(server);
  assert.deepStrictEqual(server.address(), { address: '127.0.0.1', family: 'IPv4', port });
  const client = evloop.connect({ port, host: '127.0.0.1' });
  await once(client, 'connect');
  assert.strictEqual(client.remoteAddress, '127.0.0.1');
  assert.strictEqual(client.remotePort, port);
  assert.strictEqual(client.remoteFamily, 'IPv4');
  assert.strictEqual(client.localAddress, '127.0.0.1');
  assert.ok(client.localPort > 0);
  const got = readAll(client);
  for (let i = 0; i < 100; i++) assert.strictEqual(client.write(`message ${i};`), true);
  client.end();
  const all = (await within(got)).toString();
  assert.strictEqual(all, Array.from({ length: 100 }, (_, i) => `message ${i};`).join(''));
  assert.strictEqual(client.bytesRead, all.length);
  assert.strictEqual(client.bytesWritten, all.length);
  const [hadError] = await once(client, 'close');
  assert.strictEqual(hadError, false);
  await new Promise((resolve) => server.close(resolve));
});

test('write callbacks run in order, strings take an encoding, setEncoding gives strings', async () => {
  const server = echoServer();
  const port = await listen(server);
  const client = evloop.createConnection(port, '127.0.0.1');
  client.setEncoding('utf8');
  const order = [];
  client.write(Buffer.from('ab'), () => order.push(1));
  client.write('6364', 'hex', () => order.push(2));
  client.write('é', 'utf8', () => order.push(3));
  let text = '';
  client.on('data', (s) => {
    assert.strictEqual(typeof s, 'string');
    text += s;
    if (text.length === 5) client.end();
  });
  await within(once(client, 'close'));
  assert.deepStrictEqual(order, [1, 2, 3]);
  assert.strictEqual(text, 'abcdé');
  server.close();
});

test('large transfer with backpressure: write returns false, then drain', async () => {
  const total = 16 * 1024 * 1024;
  const chunk = crypto.randomBytes(256 * 1024);
  const expected = crypto.createHash('sha256');
  let received = 0;
  const hash = crypto.createHash('sha256');
  const server = evloop.createServer((s) => {
    // Read slowly at first so the client's queue fills up.
    s.pause();
    setTimeout(() => s.resume(), 200);
    s.on('data', (d) => {
      received += d.length;
      hash.update(d);
    });
    s.on('end', () => s.end());
  });
  const port = await listen(server);
  const client = evloop.connect(port, '127.0.0.1');
  await once(client, 'connect');
  let sent = 0;
  let sawFalse = 0;
  let drains = 0;
  client.on('drain', () => drains++);
  while (sent < total) {
    expected.update(chunk);
    sent += chunk.length;
    if (!client.write(chunk)) {
      sawFalse++;
      assert.ok(client.writableLength >= 16 * 1024, 'false only above the high-water mark');
      await within(once(client, 'drain'));
    }
  }
  client.end();
  await within(once(client, 'close'), 30000, 'transfer');
  assert.ok(sawFalse > 0, 'the queue went above the high-water mark at least once');
  assert.strictEqual(drains, sawFalse);
  assert.strictEqual(received, total);
  assert.strictEqual(hash.digest('hex'), expected.digest('hex'));
  server.close();
});

test('half-close: allowHalfOpen keeps the write side open after the peer ends', async () => {
  const server = evloop.createServer({ allowHalfOpen: true }, (s) => {
    const chunks = [];
    s.on('data', (d) => chunks.push(d));
    s.on('end', () => {
      assert.strictEqual(s.writable, true, 'still writable after the peer ended');
      s.end(`got ${Buffer.concat(chunks).length} bytes`);
    });
  });
  const port = await listen(server);
  const client = evloop.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  const reply = readAll(client);
  client.end('0123456789');
  assert.strictEqual((await within(reply)).toString(), 'got 10 bytes');
  await within(once(client, 'close'));
  server.close();
});

test('without allowHalfOpen, the peer ending ends our side: close follows', async () => {
  const server = evloop.createServer((s) => {
    s.resume();
  });
  const port = await listen(server);
  const serverClosed = once(server, 'connection').then(([s]) => once(s, 'close'));
  const client = evloop.connect(port, '127.0.0.1');
  client.resume();
  await once(client, 'connect');
  client.end();
  await within(Promise.all([once(client, 'close'), serverClosed]));
  server.close();
});

test('connection refused: error with code, errno, syscall, address and port, then close', async () => {
  const probe = net.createServer();
  await new Promise((r) => probe.listen(0, '127.0.0.1', r));
  const port = probe.address().port;
  await new Promise((r) => probe.close(r));
  const client = evloop.connect(port, '127.0.0.1');
  const [err] = await within(once(client, 'error'));
  assert.strictEqual(err.code, 'ECONNREFUSED');
  assert.strictEqual(err.errno, -111);
  assert.strictEqual(err.syscall, 'connect');
  assert.strictEqual(err.address, '127.0.0.1');
  assert.strictEqual(err.port, port);
  assert.strictEqual(err.message, `connect ECONNREFUSED 127.0.0.1:${port}`);
  const [hadError] = await within(once(client, 'close'));
  assert.strictEqual(hadError, true);
});

test('destroy mid-transfer: the writer gets an error or a close, never a crash or SIGPIPE', async () => {
  const server = evloop.createServer((s) => {
    s.once('data', () => s.destroy());
  });
  const port = await listen(server);
  const client = evloop.connect(port, '127.0.0.1');
  const errors = [];
  client.on('error', (e) => errors.push(e.code));
  await once(client, 'connect');
  const chunk = Buffer.alloc(64 * 1024, 1);
  const pump = () => {
    while (!client.destroyed && client.write(chunk));
  };
  client.on('drain', pump);
  pump();
  // events.once would reject on the 'error' this may emit; errors are checked below.
  await within(new Promise((resolve) => client.on('close', resolve)));
  for (const code of errors) assert.ok(['ECONNRESET', 'EPIPE'].includes(code), code);
  // Writing after destroy: the callback gets ERR_STREAM_DESTROYED, nothing throws.
  const [err] = await new Promise((r) => client.write('x', (...a) => r(a)));
  assert.strictEqual(err.code, 'ERR_STREAM_DESTROYED');
  server.close();
});

test('1,000 concurrent connections each get their echo', async () => {
  const server = echoServer();
  const port = await listen(server);
  const n = 1000;
  let connections = 0;
  server.on('connection', () => connections++);
  const clients = Array.from({ length: n }, (_, i) => {
    const c = evloop.connect(port, '127.0.0.1');
    const got = readAll(c);
    c.end(`client ${i}`);
    return got.then((b) => assert.strictEqual(b.toString(), `client ${i}`));
  });
  await within(Promise.all(clients), 60000, '1000 echoes');
  assert.strictEqual(connections, n);
  await within(new Promise((r) => server.close(r)));
});

test("Node's net client against an evloop server", async () => {
  const server = echoServer();
  const port = await listen(server);
  const client = net.connect(port, '127.0.0.1');
  const chunks = [];
  client.on('data', (d) => chunks.push(d));
  client.end(Buffer.alloc(1 << 20, 7));
  await within(once(client, 'close'));
  const all = Buffer.concat(chunks);
  assert.strictEqual(all.length, 1 << 20);
  assert.ok(all.every((b) => b === 7));
  server.close();
});

// Found on io_uring (the default): a lone connection's messages reached JavaScript late
// (p99 16 ms) or, with the peer in this same thread, not until some timer woke Node's loop. Each
// message here waits for the one before it, and no timer but within()'s guard is armed: the
// exchanges finish only if every completion wakes Node's poll.
for (const [name, connect] of [
  ["Node's net client", (port) => net.connect(port, '127.0.0.1')],
  ['an evloop client', (port) => evloop.connect(port, '127.0.0.1')],
]) {
  test(`one connection, 2,000 request/response exchanges in turn (${name})`, async () => {
    const server = evloop.createServer((s) => s.on('data', (d) => s.write(d)));
    const port = await listen(server);
    const client = connect(port);
    client.setNoDelay(true);
    await once(client, 'connect');
    const exchanges = new Promise((resolve, reject) => {
      let i = 0;
      let pending = Buffer.alloc(0);
      const send = () => client.write(Buffer.alloc(64, i % 251));
      client.on('error', reject);
      client.on('data', (d) => {
        pending = Buffer.concat([pending, d]);
        if (pending.length < 64) return;
        if (pending.length > 64 || !pending.equals(Buffer.alloc(64, i % 251))) {
          reject(new Error(`reply ${i} is wrong`));
          return;
        }
        pending = Buffer.alloc(0);
        if (++i === 2000) resolve();
        else send();
      });
      send();
    });
    await within(exchanges, 20000, '2,000 exchanges');
    client.destroy();
    await new Promise((resolve) => server.close(resolve));
  });
}

test("an evloop client against Node's net server", async () => {
  const server = net.createServer((s) => s.pipe(s));
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const client = evloop.connect(server.address().port, '127.0.0.1');
  // Random bytes, every chunk kept until the end: a chunk's memory is never reused under it.
  const sent = crypto.randomBytes(1 << 20);
  const got = readAll(client);
  client.end(sent);
  const all = await within(got);
  assert.strictEqual(all.length, 1 << 20);
  assert.ok(all.equals(sent));
  server.close();
});

test('Unix socket paths: listen, connect, address', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'evloop-node-'));
  const sock = path.join(dir, 'echo.sock');
  const server = echoServer();
  server.listen(sock);
  await once(server, 'listening');
  assert.strictEqual(server.address(), sock);
  const client = evloop.connect(sock);
  const got = readAll(client);
  client.end('over unix');
  assert.strictEqual((await within(got)).toString(), 'over unix');
  await new Promise((r) => server.close(r));
  fs.rmSync(dir, { recursive: true, force: true });
});

test('IPv6 loopback and a host name resolved first', async () => {
  const server = echoServer();
  const port = await listen(server, '::1');
  assert.strictEqual(server.address().family, 'IPv6');
  const client = evloop.connect({ port, host: '::1' });
  const got = readAll(client);
  client.end('v6');
  assert.strictEqual((await within(got)).toString(), 'v6');
  server.close();
  const server4 = echoServer();
  const port4 = await listen(server4);
  const named = evloop.connect({ port: port4, host: 'localhost', family: 4 });
  const got4 = readAll(named);
  named.end('by name');
  assert.strictEqual((await within(got4)).toString(), 'by name');
  server4.close();
});

test('misuse gets the errors Node gives', async () => {
  const server = echoServer();
  const port = await listen(server);
  assert.throws(() => server.listen(0), { code: 'ERR_SERVER_ALREADY_LISTEN' });
  assert.throws(() => evloop.createServer().listen(70000), { code: 'ERR_SOCKET_BAD_PORT', name: 'RangeError' });
  assert.throws(() => evloop.connect({ port: -1, host: '127.0.0.1' }), { code: 'ERR_SOCKET_BAD_PORT' });
  const busy = evloop.createServer();
  busy.listen(port, '127.0.0.1');
  const [err] = await within(once(busy, 'error'));
  assert.strictEqual(err.code, 'EADDRINUSE');
  assert.strictEqual(err.syscall, 'listen');
  assert.strictEqual(err.message, `listen EADDRINUSE: address already in use 127.0.0.1:${port}`);
  const client = evloop.connect(port, '127.0.0.1');
  await once(client, 'connect');
  client.end();
  const [afterEnd] = await Promise.all([
    new Promise((r) => client.write('late', (e) => r(e))),
    once(client, 'error').then(([e]) => assert.strictEqual(e.code, 'ERR_STREAM_WRITE_AFTER_END')),
  ]);
  assert.strictEqual(afterEnd.code, 'ERR_STREAM_WRITE_AFTER_END');
  assert.throws(() => client.write(42), { code: 'ERR_INVALID_ARG_TYPE' });
  await within(once(client, 'close'));
  const closed = evloop.createServer();
  const [notRunning] = await new Promise((r) => closed.close((...a) => r(a)));
  assert.strictEqual(notRunning.code, 'ERR_SERVER_NOT_RUNNING');
  server.close();
});

test('pause stops data, resume delivers what waited', async () => {
  const server = evloop.createServer((s) => s.end('0123456789'));
  const port = await listen(server);
  const client = evloop.connect(port, '127.0.0.1');
  client.pause();
  let got = '';
  client.on('data', (d) => (got += d));
  assert.strictEqual(client.isPaused(), true);
  await new Promise((r) => setTimeout(r, 100));
  assert.strictEqual(got, '', 'nothing while paused');
  client.resume();
  await within(once(client, 'end'));
  assert.strictEqual(got, '0123456789');
  server.close();
});

test('server close waits for its connections; getConnections counts them', async () => {
  const server = echoServer();
  const port = await listen(server);
  const client = evloop.connect(port, '127.0.0.1');
  await once(server, 'connection');
  const count = await new Promise((r) => server.getConnections((e, n) => r(n)));
  assert.strictEqual(count, 1);
  let closed = false;
  server.close(() => (closed = true));
  await new Promise((r) => setTimeout(r, 50));
  assert.strictEqual(closed, false, "'close' waits for the open connection");
  client.end();
  await within(once(server, 'close'));
});

test('setTimeout emits timeout after inactivity; setNoDelay and setKeepAlive apply', async () => {
  const server = evloop.createServer((s) => s.resume());
  const port = await listen(server);
  const client = evloop.connect(port, '127.0.0.1');
  await once(client, 'connect');
  client.setNoDelay(true).setKeepAlive(true, 1000);
  client.setTimeout(50);
  await within(once(client, 'timeout'));
  client.destroy();
  server.close();
});
