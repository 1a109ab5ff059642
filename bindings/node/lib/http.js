'use strict';
// An existing Node `http.Server` (and what is built on one: Express, Koa, Fastify through its
// `serverFactory`) served from an evloop listener: each connection evloop accepts reaches the
// http server as a stream.Duplex (Socket#toDuplex()), which is all Node's http needs. The app
// does not change; only what listens does.

const net = require('./net');
const { invalidArgType } = require('./errors');

/**
 * Returns an evloop Server (not yet listening) whose connections `httpServer` serves. Call its
 * `listen()` instead of the http server's; close both to stop (the listener, then the http
 * server's own timers and connections).
 *
 * The socket options an http.Server applies when it accepts for itself (`noDelay`, true by
 * default, and `keepAlive`) are applied here too: Node's http server sets them in its listener,
 * not when a connection is handed to it, and without TCP_NODELAY a response written in two
 * pieces (Express writes its headers, then the body) waits for the peer's delayed ACK, ~40 ms.
 */
function serveHttp(httpServer, options) {
  if (httpServer === null || typeof httpServer !== 'object' || typeof httpServer.emit !== 'function') {
    throw invalidArgType('httpServer', 'an instance of http.Server', httpServer);
  }
  const socketOptions = {
    noDelay: httpServer.noDelay !== false,
    keepAlive: Boolean(httpServer.keepAlive),
    // http.Server keeps the delay in seconds; the option is in milliseconds, as for net.
    keepAliveInitialDelay: (Number(httpServer.keepAliveInitialDelay) || 0) * 1000,
  };
  return net.createServer({ ...socketOptions, ...options }, (socket) => {
    httpServer.emit('connection', socket.toDuplex());
  });
}

module.exports = { serveHttp };
