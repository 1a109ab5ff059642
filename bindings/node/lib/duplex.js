'use strict';
// A stream.Duplex over an evloop Socket, for code that needs a real Node stream: `pipeline()`,
// `http.Server` (emit 'connection' with it), an HTTP client's `createConnection`, other
// libraries that take a socket-like stream. The Socket itself stays an EventEmitter, which
// is cheaper per message (BENCHMARKS.md); this costs a Readable and a Writable state on top.

const { Duplex } = require('stream');

class SocketDuplex extends Duplex {
  constructor(socket, options = {}) {
    super({ allowHalfOpen: true, ...options, emitClose: true, autoDestroy: true });
    this.socket = socket;
    // The stream decides when the write side ends (its own allowHalfOpen); the socket must not
    // end it by itself on the peer's EOF while written data still waits in the stream.
    socket.allowHalfOpen = true;
    socket.on('data', (chunk) => {
      if (!this.push(chunk)) socket.pause();
    });
    // Reading starts when the stream is read.
    socket.pause();
    socket.on('end', () => this.push(null));
    socket.on('error', (err) => this.destroy(err));
    socket.on('close', () => {
      if (!this.destroyed) this.destroy();
    });
    socket.on('connect', () => this.emit('connect'));
    socket.on('ready', () => this.emit('ready'));
    socket.on('timeout', () => this.emit('timeout'));
  }

  _read() {
    this.socket.resume();
  }

  _write(chunk, encoding, cb) {
    this.socket.write(chunk, encoding, cb);
  }

  _final(cb) {
    if (this.socket.writableFinished) {
      cb();
      return;
    }
    this.socket.end();
    this.socket.once('finish', () => cb());
  }

  _destroy(err, cb) {
    this.socket.destroy();
    cb(err);
  }

  setNoDelay(noDelay) {
    this.socket.setNoDelay(noDelay);
    return this;
  }

  setKeepAlive(enable, delay) {
    this.socket.setKeepAlive(enable, delay);
    return this;
  }

  setTimeout(ms, cb) {
    this.socket.setTimeout(ms);
    if (cb) {
      if (ms === 0) this.removeListener('timeout', cb);
      else this.once('timeout', cb);
    }
    return this;
  }

  ref() {
    this.socket.ref();
    return this;
  }

  unref() {
    this.socket.unref();
    return this;
  }

  address() {
    return this.socket.address();
  }

  get remoteAddress() { return this.socket.remoteAddress; }
  get remotePort() { return this.socket.remotePort; }
  get remoteFamily() { return this.socket.remoteFamily; }
  get localAddress() { return this.socket.localAddress; }
  get localPort() { return this.socket.localPort; }
  get bytesRead() { return this.socket.bytesRead; }
  get bytesWritten() { return this.socket.bytesWritten; }
  get connecting() { return this.socket.connecting; }
  get pending() { return this.socket.pending; }
}

module.exports = { SocketDuplex };
