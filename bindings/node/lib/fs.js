'use strict';
// Promise-based file functions on evloop's file operations: no thread per call on io_uring.

const { native } = require('./native');
const { invalidArgType } = require('./errors');
const { fileURLToPath } = require('url');

function toPath(p, name = 'path') {
  if (typeof p === 'string') return p;
  if (Buffer.isBuffer(p)) return p.toString();
  if (p instanceof URL) return fileURLToPath(p);
  throw invalidArgType(name, 'of type string or an instance of Buffer or URL', p);
}

function encodingOf(options) {
  if (typeof options === 'string') return options;
  return options && options.encoding ? options.encoding : null;
}

function toData(data, options) {
  if (typeof data === 'string') return Buffer.from(data, encodingOf(options) || 'utf8');
  if (Buffer.isBuffer(data)) return data;
  if (ArrayBuffer.isView(data)) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  throw invalidArgType('data', 'of type string or an instance of Buffer, TypedArray, or DataView', data);
}

/** Like `fs.promises.readFile`: a Buffer, or a string with `encoding`. */
async function readFile(path, options) {
  const buf = await native.readFile(toPath(path));
  const enc = encodingOf(options);
  return enc ? buf.toString(enc) : buf;
}

/** Like `fs.promises.writeFile`: creates or truncates `path`. */
async function writeFile(path, data, options) {
  await native.writeFile(toPath(path), toData(data, options));
}

class Stats {
  constructor(raw) {
    Object.assign(this, raw);
    this.atime = new Date(raw.atimeMs);
    this.mtime = new Date(raw.mtimeMs);
    this.ctime = new Date(raw.ctimeMs);
    this.birthtime = new Date(raw.birthtimeMs);
  }

  _type() {
    return this.mode & 0o170000;
  }

  isFile() { return this._type() === 0o100000; }
  isDirectory() { return this._type() === 0o040000; }
  isSymbolicLink() { return this._type() === 0o120000; }
  isFIFO() { return this._type() === 0o010000; }
  isSocket() { return this._type() === 0o140000; }
  isCharacterDevice() { return this._type() === 0o020000; }
  isBlockDevice() { return this._type() === 0o060000; }
}

/** Like `fs.promises.stat`, following symbolic links. */
async function stat(path) {
  return new Stats(await native.stat(toPath(path)));
}

function concurrencyOf(options) {
  const c = options && options.concurrency;
  if (c === undefined) return undefined;
  if (!Number.isInteger(c) || c < 1) throw new RangeError('options.concurrency must be a positive integer');
  return c;
}

/** Reads many files in one batch (at most `concurrency`, default 256, at once); resolves to
 * their contents in order, or rejects with the first error. */
async function readFiles(paths, options) {
  if (!Array.isArray(paths)) throw invalidArgType('paths', 'an instance of Array', paths);
  const bufs = await native.readFiles(paths.map((p) => toPath(p)), concurrencyOf(options));
  const enc = encodingOf(options);
  return enc ? bufs.map((b) => b.toString(enc)) : bufs;
}

/** Writes `data[i]` to `paths[i]`, many at once. */
async function writeFiles(paths, data, options) {
  if (!Array.isArray(paths)) throw invalidArgType('paths', 'an instance of Array', paths);
  if (!Array.isArray(data)) throw invalidArgType('data', 'an instance of Array', data);
  await native.writeFiles(paths.map((p) => toPath(p)), data.map((d) => toData(d, options)), concurrencyOf(options));
}

module.exports = { readFile, writeFile, stat, readFiles, writeFiles, Stats };
