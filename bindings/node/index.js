'use strict';
// evloop for Node.js: io_uring (or epoll) networking and files, driven from Node's own loop
// on the main thread. `net` and `dgram` follow Node's modules of the same names.

const { backend, version } = require('./lib/native');
const net = require('./lib/net');
const dgram = require('./lib/dgram');
const fs = require('./lib/fs');
const { SocketDuplex } = require('./lib/duplex');
const { serveHttp } = require('./lib/http');

module.exports = {
  backend,
  version,
  net,
  dgram,
  fs,
  createServer: net.createServer,
  connect: net.connect,
  createConnection: net.createConnection,
  Server: net.Server,
  Socket: net.Socket,
  createSocket: dgram.createSocket,
  SocketDuplex,
  serveHttp,
};
