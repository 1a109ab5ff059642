'use strict';
// Echo server for bench/node_echo.py and bench/node_idle.py: the same program on evloop's
// addon or on Node's own `net`.
//
//   node bench/node/echo_server.js PORT evloop|duplex|net   (EVLOOP_BACKEND picks evloop's backend;
//   duplex: evloop sockets through Socket#toDuplex(), the stream.Duplex wrapper)

const path = require('path');
const [port, impl] = process.argv.slice(2);
const net = impl === 'net' ? require('net') : require(path.join(__dirname, '..', '..', 'bindings', 'node'));

const server = net.createServer((s) => {
  const socket = impl === 'duplex' ? s.toDuplex() : s;
  socket.on('data', (data) => socket.write(data));
  socket.on('error', () => socket.destroy());
});
server.listen(Number(port), '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
