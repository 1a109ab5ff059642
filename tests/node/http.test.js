'use strict';
// Node's own http server and client, which take any Duplex as their connection, running over
// evloop sockets through Socket#toDuplex().
const { test } = require('node:test');
const assert = require('node:assert');
const http = require('node:http');
const crypto = require('node:crypto');
const { pipeline } = require('node:stream/promises');
const { evloop, listen, within } = require('./helpers');

function httpOverEvloop(handler) {
  const httpServer = http.createServer(handler);
  const server = evloop.createServer((socket) => httpServer.emit('connection', socket.toDuplex()));
  return { httpServer, server };
}

function request(port, options, body) {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        ...options,
        host: '127.0.0.1',
        port,
        agent: false,
        createConnection: () => evloop.connect(port, '127.0.0.1').toDuplex(),
      },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({ res, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

test("Node's http server and client over evloop sockets: requests, a 4 MB streamed upload, keep-alive", async () => {
  const { httpServer, server } = httpOverEvloop(async (req, res) => {
    const hash = crypto.createHash('sha256');
    let n = 0;
    for await (const chunk of req) {
      n += chunk.length;
      hash.update(chunk);
    }
    res.setHeader('content-type', 'text/plain');
    res.end(`${req.method} ${req.url} ${n} ${hash.digest('hex')}`);
  });
  const port = await listen(server);
  const small = await within(request(port, { method: 'GET', path: '/hello' }));
  assert.strictEqual(small.res.statusCode, 200);
  assert.strictEqual(small.body.toString(), `GET /hello 0 ${crypto.createHash('sha256').digest('hex')}`);
  const upload = crypto.randomBytes(4 << 20);
  const big = await within(request(port, { method: 'POST', path: '/up' }, upload));
  assert.strictEqual(big.body.toString(), `POST /up ${upload.length} ${crypto.createHash('sha256').update(upload).digest('hex')}`);
  const many = await within(Promise.all(Array.from({ length: 50 }, (_, i) => request(port, { method: 'GET', path: `/r${i}` }))));
  many.forEach((r, i) => assert.match(r.body.toString(), new RegExp(`^GET /r${i} 0 `)));
  server.close();
  httpServer.close();
});

test('pipeline() over a duplex: a 2 MB echo through stream machinery with backpressure', async () => {
  const server = evloop.createServer((socket) => {
    const d = socket.toDuplex();
    pipeline(d, d).catch(() => {});
  });
  const port = await listen(server);
  const client = evloop.connect(port, '127.0.0.1').toDuplex();
  const data = crypto.randomBytes(2 << 20);
  const chunks = [];
  client.on('data', (c) => chunks.push(c));
  const ended = new Promise((resolve, reject) => {
    client.on('end', resolve);
    client.on('error', reject);
  });
  client.end(data);
  await within(ended);
  assert.ok(Buffer.concat(chunks).equals(data));
  server.close();
});
