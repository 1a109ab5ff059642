'use strict';
// What every class over a native handle shares: `_h` is the handle's number (kNoHandle until it
// exists, and again after its close), and ref()/unref() as Node's handles have them, remembered
// in `_refed` and applied when the handle is made.

const { native } = require('./native');

const kNoHandle = -1;

function ref() {
  this._refed = true;
  if (this._h !== kNoHandle) native.setRef(this._h, true);
  return this;
}

function unref() {
  this._refed = false;
  if (this._h !== kNoHandle) native.setRef(this._h, false);
  return this;
}

/** Gives `Class` Node's ref()/unref(). */
function withRefMethods(Class) {
  Class.prototype.ref = ref;
  Class.prototype.unref = unref;
  return Class;
}

module.exports = { kNoHandle, withRefMethods };
