'use strict';
// Hello-world HTTP server for bench/light_load.py: Node's own `http` server, fed either by
// Node's `net` or by evloop sockets through Socket#toDuplex().
//
//   node bench/node/http_server.js PORT evloop|net   (EVLOOP_BACKEND picks evloop's backend)

const http = require('http');
const path = require('path');
const [port, impl] = process.argv.slice(2);

const app = http.createServer({ keepAliveTimeout: 600000 }, (req, res) => {
  res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': 13 });
  res.end('Hello, world!');
});
if (impl === 'net') {
  app.listen(Number(port), '127.0.0.1');
} else {
  const evloop = require(path.join(__dirname, '..', '..', 'bindings', 'node'));
  evloop.createServer((socket) => app.emit('connection', socket.toDuplex())).listen(Number(port), '127.0.0.1');
}
process.on('SIGTERM', () => process.exit(0));
