'use strict';
// TCP and Unix sockets in Node's `net` conventions, on evloop's loop. `Socket` and `Server`
// are EventEmitters; a socket delivers 'data' once something reads it (a 'data' listener,
// `resume()` or `pipe()`), as a Node socket does.

const EventEmitter = require('events');
const dns = require('dns');
const nodeNet = require('net');
const { native } = require('./native');
const { kNoHandle, withRefMethods } = require('./handle');
const { errnoException, uvException, nodeError, invalidArgType } = require('./errors');

/** Node's readableHighWaterMark for sockets: how much is read ahead for nobody. */
const kReadHighWaterMark = 64 * 1024;

function validatePort(port, name = 'options.port') {
  const n = typeof port === 'string' && port.trim() !== '' ? Number(port) : port;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > 65535) {
    throw nodeError(
      'ERR_SOCKET_BAD_PORT',
      `${name} should be >= 0 and < 65536. Received ${typeof port === 'number' ? `type number (${port})` : `type ${typeof port} (${JSON.stringify(port)})`}.`,
      RangeError,
    );
  }
  return n;
}

/** Resolves `host` unless it is already an IP address; `cb(err, ip, family)`. */
function lookup(host, family, cb) {
  const fam = nodeNet.isIP(host);
  if (fam) {
    process.nextTick(cb, null, host, fam);
    return;
  }
  dns.lookup(host, { family: family || 0 }, cb);
}

function toBuffer(data, encoding) {
  if (typeof data === 'string') return Buffer.from(data, encoding || 'utf8');
  if (Buffer.isBuffer(data)) return data;
  if (data instanceof Uint8Array) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  throw invalidArgType('chunk', 'of type string or an instance of Buffer or Uint8Array', data);
}

class Socket extends EventEmitter {
  constructor(options = {}) {
    super();
    if (typeof options === 'number') options = {};
    this._h = kNoHandle;
    this._server = null;
    this.connecting = false;
    this.pending = true;
    this.destroyed = false;
    this.readable = false;
    this.writable = false;
    this.allowHalfOpen = Boolean(options.allowHalfOpen);
    this.bytesRead = 0;
    this._bytesWritten = 0;
    this._flowing = null; // null: nobody reads yet; true: reading; false: paused by the user
    this._reading = false;
    this._ending = false; // end() called
    this._finished = false; // our side shut down
    this._peerEnded = false;
    this._needDrain = false;
    this._writeCallbacks = null; // callbacks of writes in flight; the array comes with the first
    this._queued = null; // writes made before the handle exists (name lookup in progress)
    this._decoder = null;
    this._buffered = null;
    this._bufferedBytes = 0;
    this._eofPending = false;
    this._refed = true;
    this._hadError = false;
    this._closeEmitted = false;
    this._timeoutMs = 0;
    this._timer = null;
    this._remote = null;
    this._noDelay = undefined;
    this._keepAlive = undefined;
    if (options.handle !== undefined) this._adopt(options.handle);
  }

  // ---- life cycle ----

  _adopt(h) {
    this._h = h;
    native.own(h, this);
    this.pending = false;
    this.connecting = false;
    this.readable = true;
    this.writable = true;
    if (!this._refed) native.setRef(h, false);
    if (this._noDelay !== undefined) native.setNoDelay(h, this._noDelay);
    if (this._keepAlive !== undefined) native.setKeepAlive(h, this._keepAlive[0], this._keepAlive[1]);
    if (this._flowing !== false) this._startReading();
  }

  connect(...args) {
    let options = args[0];
    let cb = args[args.length - 1];
    if (typeof cb !== 'function') cb = undefined;
    if (typeof options !== 'object' || options === null) {
      options = typeof options === 'string' && !/^\d+$/.test(options) ? { path: options } : { port: args[0], host: typeof args[1] === 'string' ? args[1] : undefined };
    }
    if (this.connecting || this._h !== kNoHandle) {
      throw nodeError('ERR_INVALID_STATE', 'Invalid state: the socket is already connecting or connected');
    }
    if (cb) this.once('connect', cb);
    this.connecting = true;
    this.destroyed = false;
    if (options.path !== undefined) {
      this._remote = { address: String(options.path), port: undefined, family: 'unix' };
      this._open(native.unixConnect(String(options.path)), String(options.path));
      return this;
    }
    const port = validatePort(options.port);
    const host = options.host || 'localhost';
    lookup(host, options.family, (err, ip, family) => {
      if (this.destroyed) return;
      if (err) {
        this.destroy(err);
        return;
      }
      this._remote = { address: ip, port, family: family === 6 ? 'IPv6' : 'IPv4' };
      this._open(native.tcpConnect(ip, port), ip, port);
    });
    return this;
  }

  _open(h, address, port) {
    if (h < 0) {
      this.destroy(errnoException(h, 'connect', address, port));
      return;
    }
    this._h = h;
    native.own(h, this);
    if (!this._refed) native.setRef(h, false);
    if (this._queued) {
      const q = this._queued;
      this._queued = null;
      for (const [buf, cb] of q) this._writeNow(buf, cb);
    }
    if (this._ending) native.shutdown(h);
  }

  _onConnect(status) {
    if (this.destroyed) return;
    if (status < 0) {
      const r = this._remote || {};
      this.destroy(errnoException(status, 'connect', r.address, r.port));
      return;
    }
    this.connecting = false;
    this.pending = false;
    this.readable = true;
    this.writable = !this._ending;
    if (this._noDelay !== undefined) native.setNoDelay(this._h, this._noDelay);
    if (this._keepAlive !== undefined) native.setKeepAlive(this._h, this._keepAlive[0], this._keepAlive[1]);
    if (this._flowing !== false) this._startReading();
    this.emit('connect');
    this.emit('ready');
  }

  destroy(err) {
    if (this.destroyed) return this;
    this.destroyed = true;
    this.connecting = false;
    this.readable = false;
    this.writable = false;
    this._clearTimer();
    if (err) this._hadError = true;
    const h = this._h;
    const pendingCbs = this._writeCallbacks || [];
    this._writeCallbacks = null;
    if (h !== kNoHandle) {
      native.close(h);
    } else {
      process.nextTick(() => this._onClose());
    }
    if (err) process.nextTick(() => this.emit('error', err));
    if (pendingCbs.length) {
      const e = err || nodeError('ERR_STREAM_DESTROYED', 'Cannot call write after a stream was destroyed');
      process.nextTick(() => { for (const cb of pendingCbs) cb(e); });
    }
    return this;
  }

  destroySoon() {
    if (this.writable) this.end();
    if (this._finished) this.destroy();
    else this.once('finish', () => this.destroy());
  }

  resetAndDestroy() {
    return this.destroy();
  }

  _onClose() {
    if (this._closeEmitted) return;
    this._closeEmitted = true;
    this._h = kNoHandle;
    this.destroyed = true;
    if (this._server) this._server._connectionClosed();
    this.emit('close', this._hadError);
  }

  // ---- reading ----
  // A socket reads ahead from the start, as Node's does: data that comes before anyone reads
  // (a 'data' listener, resume(), pipe()) waits in `_buffered`, up to the high-water mark,
  // then reading stops until it is consumed. So a peer's EOF is seen, and 'end' emitted, even
  // by a socket nobody reads. pause() stops reading at once.

  on(event, listener) {
    super.on(event, listener);
    if (event === 'data' && this._flowing !== false) this.resume();
    return this;
  }

  pause() {
    this._flowing = false;
    this._stopReading();
    return this;
  }

  resume() {
    if (this._flowing === true) return this;
    this._flowing = true;
    if (this._buffered) process.nextTick(() => this._flush());
    else if (this._eofPending) process.nextTick(() => this._onEnd());
    if (this._h !== kNoHandle && !this.connecting) this._startReading();
    return this;
  }

  isPaused() {
    return this._flowing === false;
  }

  get readableFlowing() {
    return this._flowing;
  }

  _flush() {
    while (this._buffered && this._flowing === true) {
      const buf = this._buffered.shift();
      this._bufferedBytes -= buf.length;
      if (this._buffered.length === 0) this._buffered = null;
      this.emit('data', this._decoder ? this._decoder.write(buf) : buf);
    }
    if (!this._buffered && this._eofPending && this._flowing === true) this._onEnd();
  }

  _startReading() {
    if (this._reading || this.destroyed || this._peerEnded || this._eofPending) return;
    const r = native.readStart(this._h);
    if (r < 0) {
      this.destroy(errnoException(r, 'read'));
      return;
    }
    this._reading = true;
  }

  _stopReading() {
    if (!this._reading) return;
    this._reading = false;
    native.readStop(this._h);
  }

  setEncoding(encoding) {
    const { StringDecoder } = require('string_decoder');
    this._decoder = new StringDecoder(encoding);
    return this;
  }

  _onData(buf) {
    this.bytesRead += buf.length;
    if (this._timer) this._timer.refresh();
    if (this._flowing === true && !this._buffered) {
      this.emit('data', this._decoder ? this._decoder.write(buf) : buf);
      return;
    }
    (this._buffered || (this._buffered = [])).push(buf);
    this._bufferedBytes += buf.length;
    if (this._bufferedBytes >= kReadHighWaterMark) this._stopReading();
  }

  _onEnd() {
    this._reading = false;
    if (this._buffered) {
      // 'end' comes after the data that came before it.
      this._eofPending = true;
      return;
    }
    this._eofPending = false;
    if (this._peerEnded) return;
    this._peerEnded = true;
    this.readable = false;
    this.emit('end');
    if (this.destroyed) return;
    if (!this.allowHalfOpen) {
      this.end();
    }
    if (this._finished) this.destroy();
  }

  _onReadError(errno) {
    this.destroy(errnoException(errno, 'read'));
  }

  pipe(dest, options = {}) {
    this.on('data', (chunk) => {
      if (dest.write(chunk) === false) {
        this.pause();
        dest.once('drain', () => this.resume());
      }
    });
    if (options.end !== false) this.once('end', () => dest.end());
    dest.emit('pipe', this);
    return dest;
  }

  // ---- writing ----

  get bytesWritten() {
    return this._bytesWritten;
  }

  get writableLength() {
    return this._h === kNoHandle ? 0 : native.writeQueueSize(this._h);
  }

  get bufferSize() {
    return this.writableLength;
  }

  get writableNeedDrain() {
    return this._needDrain;
  }

  get writableEnded() {
    return this._ending;
  }

  get writableFinished() {
    return this._finished;
  }

  write(data, encoding, cb) {
    if (typeof encoding === 'function') {
      cb = encoding;
      encoding = undefined;
    }
    const buf = toBuffer(data, encoding);
    if (this.destroyed) {
      const err = nodeError('ERR_STREAM_DESTROYED', 'Cannot call write after a stream was destroyed');
      if (cb) process.nextTick(cb, err);
      return false;
    }
    if (this._ending) {
      const err = nodeError('ERR_STREAM_WRITE_AFTER_END', 'write after end');
      if (cb) process.nextTick(cb, err);
      process.nextTick(() => this.emit('error', err));
      return false;
    }
    this._bytesWritten += buf.length;
    if (this._h === kNoHandle) {
      (this._queued || (this._queued = [])).push([Buffer.from(buf), cb]);
      return true;
    }
    return this._writeNow(buf, cb);
  }

  _writeNow(buf, cb) {
    const r = native.write(this._h, buf, cb !== undefined);
    if (r < 0) {
      const err = errnoException(r, 'write');
      if (cb) process.nextTick(cb, err);
      this.destroy(err);
      return false;
    }
    if (cb !== undefined) (this._writeCallbacks || (this._writeCallbacks = [])).push(cb);
    if (this._timer) this._timer.refresh();
    if (r === 0) {
      this._needDrain = true;
      return false;
    }
    return true;
  }

  _onWriteDone(status) {
    const cb = this._writeCallbacks && this._writeCallbacks.shift();
    if (cb) cb(status < 0 ? errnoException(status, 'write') : undefined);
  }

  _onDrain() {
    if (!this._needDrain) return;
    this._needDrain = false;
    this.emit('drain');
  }

  end(data, encoding, cb) {
    if (typeof data === 'function') {
      cb = data;
      data = undefined;
    } else if (typeof encoding === 'function') {
      cb = encoding;
      encoding = undefined;
    }
    if (data !== undefined && data !== null) this.write(data, encoding);
    if (cb) {
      if (this._finished) process.nextTick(cb);
      else this.once('finish', cb);
    }
    if (this._ending || this.destroyed) return this;
    this._ending = true;
    this.writable = false;
    if (this._h !== kNoHandle) {
      const r = native.shutdown(this._h);
      if (r < 0 && r !== -114 /* EALREADY */) this.destroy(errnoException(r, 'shutdown'));
    }
    return this;
  }

  _onShutdown(status) {
    if (status < 0 && status !== -107 /* ENOTCONN: the peer is gone already */) {
      this.destroy(errnoException(status, 'shutdown'));
      return;
    }
    this._finished = true;
    this.emit('finish');
    if (this._peerEnded || !this.readable) this.destroy();
  }

  // ---- options and addresses ----

  setNoDelay(noDelay = true) {
    this._noDelay = Boolean(noDelay);
    if (this._h !== kNoHandle && this._remote?.family !== 'unix') native.setNoDelay(this._h, this._noDelay);
    return this;
  }

  setKeepAlive(enable = false, initialDelay = 0) {
    this._keepAlive = [Boolean(enable), Math.max(1, Math.floor(initialDelay / 1000))];
    if (this._h !== kNoHandle && this._remote?.family !== 'unix') native.setKeepAlive(this._h, this._keepAlive[0], this._keepAlive[1]);
    return this;
  }

  setTimeout(ms, cb) {
    this._clearTimer();
    this._timeoutMs = ms;
    if (cb) {
      if (ms === 0) this.removeListener('timeout', cb);
      else this.once('timeout', cb);
    }
    if (ms > 0) {
      this._timer = setTimeout(() => this.emit('timeout'), ms);
      this._timer.unref();
    }
    return this;
  }

  _clearTimer() {
    if (this._timer) {
      clearTimeout(this._timer);
      this._timer = null;
    }
  }

  get timeout() {
    return this._timeoutMs || undefined;
  }

  _addressOf(peer) {
    if (this._h === kNoHandle) return undefined;
    const a = native.streamAddress(this._h, peer);
    return typeof a === 'number' ? undefined : a;
  }

  address() {
    return this._addressOf(false) || {};
  }

  _peer() {
    if (!this._peerInfo) this._peerInfo = this._addressOf(true);
    return this._peerInfo || {};
  }

  get remoteAddress() {
    return this._peer().address;
  }

  get remotePort() {
    const p = this._peer();
    return p.family === 'unix' ? undefined : p.port;
  }

  get remoteFamily() {
    return this._peer().family;
  }

  get localAddress() {
    return this.address().address;
  }

  get localPort() {
    const a = this.address();
    return a.family === 'unix' ? undefined : a.port;
  }

  /** This socket as a `stream.Duplex` (lib/duplex.js), for code that needs a Node stream. */
  toDuplex(options) {
    const { SocketDuplex } = require('./duplex');
    return new SocketDuplex(this, options);
  }

  get readyState() {
    if (this.connecting) return 'opening';
    if (this.readable && this.writable) return 'open';
    if (this.readable) return 'readOnly';
    if (this.writable) return 'writeOnly';
    return 'closed';
  }
}
withRefMethods(Socket);
Socket.prototype.addListener = Socket.prototype.on;

class Server extends EventEmitter {
  constructor(options, connectionListener) {
    super();
    if (typeof options === 'function') {
      connectionListener = options;
      options = {};
    }
    this._options = options || {};
    this._h = kNoHandle;
    this._listening = false;
    this._closing = false;
    this._connections = 0;
    this._refed = true;
    this._pipeName = null;
    this.maxConnections = undefined;
    if (connectionListener) this.on('connection', connectionListener);
  }

  get listening() {
    return this._listening;
  }

  listen(...args) {
    let cb = typeof args[args.length - 1] === 'function' ? args.pop() : undefined;
    let opts;
    if (args[0] !== null && typeof args[0] === 'object') {
      opts = { ...args[0] };
    } else if (typeof args[0] === 'string' && !/^\d+$/.test(args[0])) {
      opts = { path: args[0], backlog: args[1] };
    } else {
      opts = { port: args[0], host: typeof args[1] === 'string' ? args[1] : undefined };
      opts.backlog = typeof args[1] === 'number' ? args[1] : args[2];
    }
    if (this._listening || this._h !== kNoHandle || this._binding) {
      throw nodeError('ERR_SERVER_ALREADY_LISTEN', 'Listen method has been called more than once without closing.');
    }
    const backlog = Number.isInteger(opts.backlog) ? opts.backlog : 511;
    if (cb) this.once('listening', cb);
    this._closing = false;
    if (opts.path !== undefined) {
      this._pipeName = String(opts.path);
      this._bound(native.unixListen(this._pipeName, backlog), this._pipeName, -1);
      return this;
    }
    const port = validatePort(opts.port === undefined || opts.port === null ? 0 : opts.port);
    const ipv6Only = Boolean(opts.ipv6Only);
    const reusePort = Boolean(opts.reusePort);
    if (opts.host === undefined || opts.host === null || opts.host === '') {
      let h = native.tcpListen('::', port, backlog, ipv6Only, reusePort);
      let shown = '::';
      if (h === -97 /* EAFNOSUPPORT: no IPv6 here */) {
        h = native.tcpListen('0.0.0.0', port, backlog, false, reusePort);
        shown = '0.0.0.0';
      }
      this._bound(h, shown, port);
      return this;
    }
    this._binding = true;
    lookup(opts.host, 0, (err, ip) => {
      this._binding = false;
      if (err) {
        this.emit('error', err);
        return;
      }
      this._bound(native.tcpListen(ip, port, backlog, ipv6Only, reusePort), ip, port);
    });
    return this;
  }

  _bound(h, address, port) {
    if (h < 0) {
      process.nextTick(() => this.emit('error', uvException(h, 'listen', address, port)));
      return;
    }
    this._h = h;
    native.own(h, this);
    if (!this._refed) native.setRef(h, false);
    this._listening = true;
    process.nextTick(() => this.emit('listening'));
  }

  address() {
    if (this._h === kNoHandle) return null;
    if (this._pipeName !== null) return this._pipeName;
    const a = native.streamAddress(this._h, false);
    return typeof a === 'number' ? null : a;
  }

  _onConnection(h) {
    const socket = new Socket({ handle: h, allowHalfOpen: this._options.allowHalfOpen });
    socket._server = this;
    this._connections++;
    if (this.maxConnections !== undefined && this._connections > this.maxConnections) {
      socket.destroy();
      return;
    }
    if (this._options.noDelay) socket.setNoDelay(true);
    if (this._options.keepAlive) socket.setKeepAlive(true, this._options.keepAliveInitialDelay);
    if (this._options.pauseOnConnect) socket.pause();
    this.emit('connection', socket);
  }

  _onAcceptError(errno) {
    // Out of fds or memory for one connection: Node reports it and keeps listening.
    this.emit('error', errnoException(errno, 'accept'));
  }

  close(cb) {
    if (typeof cb === 'function') {
      if (!this._listening) {
        this.once('close', () => cb(nodeError('ERR_SERVER_NOT_RUNNING', 'Server is not running.')));
      } else {
        this.once('close', cb);
      }
    }
    if (this._h !== kNoHandle && !this._closing) {
      this._closing = true;
      native.close(this._h);
    } else if (!this._listening) {
      process.nextTick(() => this.emit('close'));
    }
    return this;
  }

  _onClose() {
    this._h = kNoHandle;
    this._listening = false;
    this._maybeEmitClose();
  }

  _connectionClosed() {
    this._connections--;
    this._maybeEmitClose();
  }

  _maybeEmitClose() {
    if (this._closing && this._h === kNoHandle && this._connections === 0) {
      this._closing = false;
      this.emit('close');
    }
  }

  getConnections(cb) {
    process.nextTick(cb, null, this._connections);
    return this;
  }

}
withRefMethods(Server);

function createServer(options, connectionListener) {
  return new Server(options, connectionListener);
}

function connect(...args) {
  let options = args[0];
  const socketOptions = options !== null && typeof options === 'object' ? options : {};
  const socket = new Socket(socketOptions);
  if (socketOptions.timeout) socket.setTimeout(socketOptions.timeout);
  return socket.connect(...args);
}

module.exports = {
  Socket,
  Server,
  Stream: Socket,
  createServer,
  connect,
  createConnection: connect,
  isIP: nodeNet.isIP,
  isIPv4: nodeNet.isIPv4,
  isIPv6: nodeNet.isIPv6,
};
