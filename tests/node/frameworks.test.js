'use strict';
// Real apps on evloop sockets, moved over with serveHttp(): an Express app and a Fastify app
// (its serverFactory), each with routing, a JSON body, keep-alive and a streamed response; and an
// Express app in a worker thread, on that worker's own loop, asked from the main thread's.
const { test } = require('node:test');
const assert = require('node:assert');
const http = require('node:http');
const path = require('node:path');
const { Readable } = require('node:stream');
const { Worker } = require('node:worker_threads');
const { evloop, addonPath, listen, within, once } = require('./helpers');

const modules = path.join(__dirname, '..', '..', 'bindings', 'node', 'node_modules');
const express = require(path.join(modules, 'express'));
const fastify = require(path.join(modules, 'fastify'));

const STREAM_CHUNKS = 64;
const CHUNK = Buffer.alloc(16 * 1024, 'x');

/**
 * One request; `via` makes the client connection ('node' = Node's own net, 'evloop' = ours).
 * Without an agent the connection closes after the response (`agent: false`), so no idle
 * keep-alive connection outlives the test (see serveHttp in the README).
 */
function request(port, { method = 'GET', path: p = '/', body, agent = false, via = 'node', headers = {} }) {
  return new Promise((resolve, reject) => {
    const options = { method, path: p, host: '127.0.0.1', port, agent, headers: { ...headers } };
    if (body !== undefined) {
      options.headers['content-type'] = 'application/json';
      options.headers['content-length'] = Buffer.byteLength(body);
    }
    if (via === 'evloop') {
      options.agent = false;
      options.createConnection = () => evloop.connect(port, '127.0.0.1').toDuplex();
    }
    const req = http.request(options, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** The checks both apps must pass: the same routes, asked the same way. */
async function exerciseApp(port, server) {
  let accepted = 0;
  const noDelay = [];
  server.on('connection', (socket) => {
    accepted++;
    noDelay.push(socket._noDelay);
  });

  // Routing and a route parameter.
  const user = await within(request(port, { path: '/users/42' }));
  assert.strictEqual(user.status, 200);
  assert.deepStrictEqual(JSON.parse(user.body), { id: 42, name: 'user-42' });
  const missing = await within(request(port, { path: '/nowhere' }));
  assert.strictEqual(missing.status, 404);

  // A JSON body in, a JSON answer out; a malformed one is the framework's 400.
  const sum = await within(request(port, { method: 'POST', path: '/sum', body: JSON.stringify({ values: [1, 2, 3.5] }) }));
  assert.strictEqual(sum.status, 200);
  assert.deepStrictEqual(JSON.parse(sum.body), { sum: 6.5, count: 3 });
  const bad = await within(request(port, { method: 'POST', path: '/sum', body: '{"values": [1, 2' }));
  assert.strictEqual(bad.status, 400);

  // Keep-alive: 50 requests in turn on one agent socket are one connection.
  const before = accepted;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  for (let i = 0; i < 50; i++) {
    const r = await within(request(port, { path: `/users/${i}`, agent }));
    assert.strictEqual(JSON.parse(r.body).id, i);
  }
  assert.strictEqual(accepted - before, 1, 'keep-alive requests came on more than one connection');
  agent.destroy();

  // A streamed (chunked) response of 1 MiB.
  const streamed = await within(request(port, { path: '/stream' }));
  assert.strictEqual(streamed.status, 200);
  assert.strictEqual(streamed.headers['transfer-encoding'], 'chunked');
  assert.ok(streamed.body.equals(Buffer.concat(Array(STREAM_CHUNKS).fill(CHUNK))), 'streamed body differs');

  // evloop on both ends: 100 concurrent requests through evloop client connections.
  const many = await within(Promise.all(Array.from({ length: 100 }, (_, i) => request(port, { path: `/users/${i}`, via: 'evloop' }))));
  many.forEach((r, i) => assert.deepStrictEqual(JSON.parse(r.body), { id: i, name: `user-${i}` }));

  // Every accepted socket got TCP_NODELAY, as an http.Server's own would (noDelay defaults to
  // true): without it Express's two writes per response waited ~40 ms for a delayed ACK.
  assert.ok(noDelay.length === accepted && noDelay.every((d) => d === true), `noDelay: ${noDelay}`);
}

function streamOfChunks() {
  let sent = 0;
  return new Readable({
    read() {
      // One chunk per turn of the loop, so the response really is streamed.
      setImmediate(() => this.push(sent++ < STREAM_CHUNKS ? CHUNK : null));
    },
  });
}

function expressApp() {
  const app = express();
  app.set('env', 'test'); // its error handler then answers the malformed body without logging it
  app.use(express.json());
  app.get('/users/:id', (req, res) => res.json({ id: Number(req.params.id), name: `user-${req.params.id}` }));
  app.post('/sum', (req, res) => res.json({ sum: req.body.values.reduce((a, b) => a + b, 0), count: req.body.values.length }));
  app.get('/stream', (req, res) => {
    res.type('application/octet-stream');
    streamOfChunks().pipe(res);
  });
  return app;
}

test('Express over evloop sockets: routing, JSON bodies, keep-alive, a streamed response', async () => {
  const httpServer = http.createServer(expressApp());
  const server = evloop.serveHttp(httpServer);
  const port = await listen(server);
  await exerciseApp(port, server);
  server.close();
  httpServer.close();
});

test("Fastify over evloop sockets through its serverFactory: the same app", async () => {
  let httpServer;
  const app = fastify({
    serverFactory: (handler) => {
      httpServer = http.createServer(handler);
      return httpServer;
    },
  });
  app.get('/users/:id', async (req) => ({ id: Number(req.params.id), name: `user-${req.params.id}` }));
  app.post('/sum', async (req) => ({ sum: req.body.values.reduce((a, b) => a + b, 0), count: req.body.values.length }));
  app.get('/stream', (req, reply) => {
    reply.type('application/octet-stream').send(streamOfChunks());
  });
  await app.ready();
  const server = evloop.serveHttp(httpServer);
  const port = await listen(server);
  await exerciseApp(port, server);
  server.close();
  await app.close();
});

test('serveHttp takes the http server\'s socket options, and refuses what is not a server', async () => {
  const httpServer = http.createServer({ noDelay: false, keepAlive: true, keepAliveInitialDelay: 3000 }, (req, res) => res.end('ok'));
  const server = evloop.serveHttp(httpServer);
  const seen = [];
  server.on('connection', (socket) => seen.push([socket._noDelay, socket._keepAlive]));
  const port = await listen(server);
  const r = await within(request(port, { path: '/' }));
  assert.strictEqual(r.body.toString(), 'ok');
  assert.deepStrictEqual(seen, [[undefined, [true, 3]]]);
  server.close();
  httpServer.close();

  for (const bad of [undefined, null, 42, 'http']) {
    assert.throws(() => evloop.serveHttp(bad), { code: 'ERR_INVALID_ARG_TYPE' });
  }
});

test('worker_threads: an Express app on a worker\'s own loop, asked from the main thread\'s', async () => {
  const worker = new Worker(`
    const { parentPort, workerData } = require('node:worker_threads');
    const http = require('node:http');
    const evloop = require(workerData.addon);
    const express = require(workerData.express);
    const app = express();
    app.get('/where', (req, res) => res.json({ thread: 'worker', backend: evloop.backend }));
    const httpServer = http.createServer(app);
    const server = evloop.serveHttp(httpServer);
    server.listen(0, '127.0.0.1', () => parentPort.postMessage(server.address().port));
    parentPort.on('message', () => {
      server.close(() => parentPort.close());
      httpServer.close();
    });`, { eval: true, workerData: { addon: addonPath, express: path.join(modules, 'express') } });
  const exited = once(worker, 'exit');
  const [port] = await within(once(worker, 'message'));
  const answers = await within(Promise.all(Array.from({ length: 200 }, () => request(port, { path: '/where', via: 'evloop' }))));
  for (const a of answers) assert.deepStrictEqual(JSON.parse(a.body), { thread: 'worker', backend: evloop.backend });
  worker.postMessage('stop');
  const [code] = await within(exited);
  assert.strictEqual(code, 0);
});
