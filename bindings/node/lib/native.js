'use strict';
// Loads the addon and routes every event the loop produces to the object that owns the
// handle. The numbers are the ones src/runtime.rs defines in `mod kind`.

const path = require('path');

// The addon: EVLOOP_NODE_ADDON if set; else a source build (`npm run build` in the repository,
// or the npm package's fallback, scripts/install.js); else the package's prebuilt binary.
const PREBUILT = `evloop.${process.platform}-${process.arch}-gnu.node`;
const candidates = [
  process.env.EVLOOP_NODE_ADDON,
  path.join(__dirname, '..', 'evloop.node'),
  path.join(__dirname, '..', PREBUILT),
].filter(Boolean);

function unsupportedPlatform() {
  if (process.platform === 'linux' && process.arch === 'x64') return null;
  const e = new Error(
    `evloop: runs on Linux x86_64 only (io_uring and epoll); this is ${process.platform}-${process.arch}`,
  );
  e.code = 'ERR_EVLOOP_UNSUPPORTED_PLATFORM';
  return e;
}

const unsupported = unsupportedPlatform();
if (unsupported) throw unsupported;
let native;
let lastError;
for (const file of candidates) {
  try {
    native = require(file);
    break;
  } catch (e) {
    lastError = e;
  }
}
if (!native) {
  const e = new Error(
    'evloop: the native addon is not built (in the repository: `npm run build` in bindings/node; ' +
      'from npm: reinstall, or set EVLOOP_BUILD_FROM_SOURCE=1 to build it with cargo): ' +
      (lastError && lastError.message),
  );
  e.code = 'ERR_EVLOOP_NOT_BUILT';
  throw e;
}

const DATA = 1;
const EOF = 2;
const READ_ERROR = 3;
const CONNECTION = 4;
const ACCEPT_ERROR = 5;
const CONNECT = 6;
const WRITE_DONE = 7;
const DRAIN = 8;
const SHUTDOWN = 9;
const CLOSE = 10;
const MESSAGE = 11;
const RECV_ERROR = 12;
const SEND_DONE = 13;
const DATA_IN_SLAB = 14;

function dispatch(owner, kind, a, b, n) {
  switch (kind) {
    case DATA_IN_SLAB: owner._onData(Buffer.from(a, n, b)); break;
    case DATA: owner._onData(a); break;
    case WRITE_DONE: owner._onWriteDone(n); break;
    case DRAIN: owner._onDrain(); break;
    case EOF: owner._onEnd(); break;
    case READ_ERROR: owner._onReadError(n); break;
    case CONNECTION: owner._onConnection(a); break;
    case ACCEPT_ERROR: owner._onAcceptError(n); break;
    case CONNECT: owner._onConnect(n); break;
    case SHUTDOWN: owner._onShutdown(n); break;
    case CLOSE: owner._onClose(); break;
    case MESSAGE: owner._onMessage(a, b, n); break;
    case RECV_ERROR: owner._onRecvError(n); break;
    case SEND_DONE: owner._onSendDone(n); break;
    default: throw new Error(`evloop: unknown event ${kind}`);
  }
}

const backend = native.init(dispatch);

module.exports = { native, backend, version: native.version() };
