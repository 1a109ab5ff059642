'use strict';
// UDP sockets in Node's `dgram` conventions, on evloop's loop.

const EventEmitter = require('events');
const dns = require('dns');
const nodeNet = require('net');
const { native } = require('./native');
const { kNoHandle, withRefMethods } = require('./handle');
const { errnoException, nodeError, invalidArgType } = require('./errors');


function messageBuffer(msg) {
  if (typeof msg === 'string') return Buffer.from(msg);
  if (Buffer.isBuffer(msg)) return msg;
  if (msg instanceof Uint8Array) return Buffer.from(msg.buffer, msg.byteOffset, msg.byteLength);
  if (Array.isArray(msg)) return Buffer.concat(msg.map(messageBuffer));
  throw invalidArgType('msg', 'of type string or an instance of Buffer, TypedArray, or DataView', msg);
}

class UdpSocket extends EventEmitter {
  constructor(options, listener) {
    super();
    if (typeof options === 'string') options = { type: options };
    if (!options || (options.type !== 'udp4' && options.type !== 'udp6')) {
      throw nodeError('ERR_SOCKET_BAD_TYPE', 'Bad socket type specified. Valid types are: udp4, udp6', TypeError);
    }
    this.type = options.type;
    this._options = options;
    this._h = kNoHandle;
    this._binding = false;
    this._closed = false;
    this._refed = true;
    this._sendCallbacks = [];
    this._pendingSends = [];
    if (listener) this.on('message', listener);
  }

  bind(...args) {
    const cb = typeof args[args.length - 1] === 'function' ? args.pop() : undefined;
    let port = args[0];
    let address = args[1];
    let exclusive = true;
    if (port !== null && typeof port === 'object') {
      ({ port = 0, address, exclusive = true } = port);
    }
    if (this._closed) throw nodeError('ERR_SOCKET_DGRAM_NOT_RUNNING', 'Not running');
    if (this._h !== kNoHandle || this._binding) throw nodeError('ERR_SOCKET_ALREADY_BOUND', 'Socket is already bound');
    port = port === undefined ? 0 : port;
    if (!Number.isInteger(port) || port < 0 || port > 65535) {
      throw nodeError('ERR_SOCKET_BAD_PORT', `Port should be >= 0 and < 65536. Received ${port}.`, RangeError);
    }
    if (cb) this.once('listening', cb);
    const any = this.type === 'udp6' ? '::' : '0.0.0.0';
    this._binding = true;
    const bindTo = (ip) => {
      this._binding = false;
      if (this._closed) return;
      const h = native.udpBind(ip, port, Boolean(this._options.reuseAddr) || !exclusive, Boolean(this._options.ipv6Only));
      if (h < 0) {
        this.emit('error', errnoException(h, 'bind', ip, port));
        return;
      }
      this._h = h;
      native.own(h, this);
      if (!this._refed) native.setRef(h, false);
      const r = native.udpRecvStart(h);
      if (r < 0) {
        this.emit('error', errnoException(r, 'recvStart'));
        return;
      }
      this.emit('listening');
      const queued = this._pendingSends;
      this._pendingSends = [];
      for (const args of queued) this._send(...args);
    };
    if (!address || nodeNet.isIP(address)) {
      process.nextTick(bindTo, address || any);
    } else {
      dns.lookup(address, { family: this.type === 'udp6' ? 6 : 4 }, (err, ip) => {
        if (err) {
          this._binding = false;
          this.emit('error', err);
          return;
        }
        bindTo(ip);
      });
    }
    return this;
  }

  send(msg, ...args) {
    const cb = typeof args[args.length - 1] === 'function' ? args.pop() : undefined;
    let offset;
    let length;
    if (typeof args[0] === 'number' && typeof args[1] === 'number' && args.length >= 3) {
      [offset, length] = args;
      args = args.slice(2);
    }
    const [port, address] = args;
    let buf = messageBuffer(msg);
    if (offset !== undefined) buf = buf.subarray(offset, offset + length);
    if (!Number.isInteger(port) || port <= 0 || port > 65535) {
      throw nodeError('ERR_SOCKET_BAD_PORT', `Port should be > 0 and < 65536. Received ${port}.`, RangeError);
    }
    if (this._closed) throw nodeError('ERR_SOCKET_DGRAM_NOT_RUNNING', 'Not running');
    const host = address || (this.type === 'udp6' ? '::1' : '127.0.0.1');
    if (this._h === kNoHandle) {
      this._pendingSends.push([buf, port, host, cb]);
      if (!this._binding) this.bind({ port: 0 });
      return;
    }
    this._send(buf, port, host, cb);
  }

  _send(buf, port, host, cb) {
    const go = (ip) => {
      if (this._h === kNoHandle) return;
      const r = native.udpSend(this._h, buf, ip, port, cb !== undefined);
      if (r < 0) {
        const err = errnoException(r, 'send', ip, port);
        if (cb) process.nextTick(cb, err);
        else process.nextTick(() => this.emit('error', err));
        return;
      }
      if (cb) this._sendCallbacks.push([cb, buf.length]);
    };
    if (nodeNet.isIP(host)) go(host);
    else {
      dns.lookup(host, { family: this.type === 'udp6' ? 6 : 4 }, (err, ip) => {
        if (err) {
          if (cb) cb(err);
          else this.emit('error', err);
          return;
        }
        go(ip);
      });
    }
  }

  _onSendDone(status) {
    const entry = this._sendCallbacks.shift();
    if (!entry) return;
    const [cb, length] = entry;
    if (status < 0) cb(errnoException(status, 'send'));
    else cb(null, length);
  }

  _onMessage(buf, address, port) {
    this.emit('message', buf, { address, family: nodeNet.isIPv6(address) ? 'IPv6' : 'IPv4', port, size: buf.length });
  }

  _onRecvError(errno) {
    this.emit('error', errnoException(errno, 'recvmsg'));
  }

  address() {
    if (this._h === kNoHandle) throw nodeError('ERR_SOCKET_DGRAM_NOT_RUNNING', 'Not running');
    const a = native.udpAddress(this._h);
    if (typeof a === 'number') throw errnoException(a, 'getsockname');
    return a;
  }

  close(cb) {
    if (this._closed) throw nodeError('ERR_SOCKET_DGRAM_NOT_RUNNING', 'Not running');
    this._closed = true;
    if (cb) this.once('close', cb);
    if (this._h !== kNoHandle) native.close(this._h);
    else process.nextTick(() => this._onClose());
    return this;
  }

  _onClose() {
    this._h = kNoHandle;
    const cbs = this._sendCallbacks;
    this._sendCallbacks = [];
    for (const [cb] of cbs) cb(errnoException(-125, 'send'));
    this.emit('close');
  }

  setBroadcast(flag) {
    this._check(native.udpSetBroadcast(this._handle(), Boolean(flag)), 'setBroadcast');
  }

  setTTL(ttl) {
    this._check(native.udpSetTtl(this._handle(), ttl), 'setTTL');
    return ttl;
  }

  _handle() {
    if (this._h === kNoHandle) throw nodeError('ERR_SOCKET_DGRAM_NOT_RUNNING', 'Not running');
    return this._h;
  }

  _check(r, syscall) {
    if (r < 0) throw errnoException(r, syscall);
  }

}
withRefMethods(UdpSocket);

function createSocket(type, listener) {
  return new UdpSocket(type, listener);
}

module.exports = { Socket: UdpSocket, createSocket };
