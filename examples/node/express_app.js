'use strict';
// An existing Express app moved onto evloop: the app is unchanged; only what listens differs.
//
//   before:  app.listen(3000)
//   after:   evloop.serveHttp(http.createServer(app)).listen(3000)
//
// (Fastify: `fastify({ serverFactory: (handler) => (httpServer = http.createServer(handler)) })`,
// then `await app.ready()` and `evloop.serveHttp(httpServer).listen(3000)`.)
//
//   node examples/node/express_app.js [--port 3000]   serve until Ctrl-C
//   node examples/node/express_app.js --self-test     serve, ask each route, exit
//
// Needs express (`npm install express evloop`); in this repository it comes with the addon's
// dev dependencies (bindings/node). EVLOOP_BACKEND=uring|epoll chooses the backend.

const http = require('http');
const path = require('path');
const addon = path.join(__dirname, '..', '..', 'bindings', 'node');
const evloop = require(addon);
const express = require(require.resolve('express', { paths: [__dirname, addon] }));

// The app, as it was.
const app = express();
app.use(express.json());
app.get('/hello/:name', (req, res) => res.json({ hello: req.params.name }));
app.post('/sum', (req, res) => res.json({ sum: req.body.values.reduce((a, b) => a + b, 0) }));

// What listens.
const args = process.argv.slice(2);
const selfTest = args.includes('--self-test');
const portArg = args.indexOf('--port');
const port = portArg >= 0 ? Number(args[portArg + 1]) : selfTest ? 0 : 3000;
const httpServer = http.createServer(app);
const server = evloop.serveHttp(httpServer);
server.on('error', (err) => {
  console.error(`express_app: ${err.message}`);
  process.exit(1);
});
server.listen(port, '127.0.0.1', async () => {
  const { port: bound } = server.address();
  console.log(`express app on http://127.0.0.1:${bound} (evloop backend ${evloop.backend})`);
  if (!selfTest) return;
  const hello = await fetchJson(bound, 'GET', '/hello/evloop');
  const sum = await fetchJson(bound, 'POST', '/sum', { values: [1, 2, 3] });
  console.log(JSON.stringify(hello), JSON.stringify(sum));
  if (hello.hello !== 'evloop' || sum.sum !== 6) process.exit(1);
  server.close();
  httpServer.close();
});

function fetchJson(port, method, route, body) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const req = http.request({ host: '127.0.0.1', port, method, path: route, agent: false,
      headers: data ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } : {} },
    (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve(JSON.parse(text)));
    });
    req.on('error', reject);
    req.end(data);
  });
}
