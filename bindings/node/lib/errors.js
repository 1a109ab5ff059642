'use strict';
// Errors shaped as Node's own: `code`, `errno` (negative) and `syscall` on system errors, and
// the ERR_* codes Node's `net`, `dgram` and streams use for misuse.

const { native } = require('./native');

function systemError(errno, syscall, address, port, withMessage) {
  const code = native.errname(errno);
  let text = `${syscall} ${code}`;
  if (withMessage) text += `: ${native.strerror(errno).toLowerCase()}`;
  if (address !== undefined) text += port !== undefined && port !== -1 ? ` ${address}:${port}` : ` ${address}`;
  const e = new Error(text);
  e.errno = errno;
  e.code = code;
  e.syscall = syscall;
  if (address !== undefined) e.address = address;
  if (port !== undefined && port !== -1) e.port = port;
  return e;
}

/** `connect ECONNREFUSED 127.0.0.1:1`, as Node's exceptionWithHostPort words it. */
function errnoException(errno, syscall, address, port) {
  return systemError(errno, syscall, address, port, false);
}

/** `listen EADDRINUSE: address already in use 127.0.0.1:80`, as Node's uvExceptionWithHostPort. */
function uvException(errno, syscall, address, port) {
  return systemError(errno, syscall, address, port, true);
}

function nodeError(code, message, Base = Error) {
  const e = new Base(message);
  e.code = code;
  return e;
}

function invalidArgType(name, expected, actual) {
  const got = actual === null ? 'null' : typeof actual === 'object' ? `an instance of ${actual.constructor && actual.constructor.name}` : `type ${typeof actual} (${String(actual)})`;
  return nodeError('ERR_INVALID_ARG_TYPE', `The "${name}" argument must be ${expected}. Received ${got}`, TypeError);
}

module.exports = { errnoException, uvException, nodeError, invalidArgType };
