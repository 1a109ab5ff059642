'use strict';
// A third-party package on evloop sockets: the `ws` WebSocket server and client (npm, a
// devDependency of bindings/node), over Node's http on Socket#toDuplex().
const { test } = require('node:test');
const assert = require('node:assert');
const http = require('node:http');
const path = require('node:path');
const crypto = require('node:crypto');
const { evloop, listen, within } = require('./helpers');

const { WebSocketServer, WebSocket } = require(path.join(__dirname, '..', '..', 'bindings', 'node', 'node_modules', 'ws'));

test('ws: a WebSocket echo over evloop sockets, text and a 1 MB binary message', async () => {
  const httpServer = http.createServer();
  const wss = new WebSocketServer({ server: httpServer });
  wss.on('connection', (ws) => ws.on('message', (m, isBinary) => ws.send(m, { binary: isBinary })));
  const server = evloop.createServer((socket) => httpServer.emit('connection', socket.toDuplex()));
  const port = await listen(server);
  const ws = new WebSocket(`ws://127.0.0.1:${port}/`, {
    createConnection: () => evloop.connect(port, '127.0.0.1').toDuplex(),
  });
  const big = crypto.randomBytes(1 << 20);
  const replies = [];
  const done = new Promise((resolve, reject) => {
    ws.on('open', () => {
      for (let i = 0; i < 100; i++) ws.send(`message ${i}`);
      ws.send(big);
    });
    ws.on('message', (m, isBinary) => {
      replies.push(isBinary ? Buffer.from(m) : String(m));
      if (replies.length === 101) ws.close();
    });
    ws.on('close', resolve);
    ws.on('error', reject);
  });
  await within(done);
  assert.deepStrictEqual(replies.slice(0, 100), Array.from({ length: 100 }, (_, i) => `message ${i}`));
  assert.ok(replies[100].equals(big));
  wss.close();
  httpServer.close();
  server.close();
});
