// Types for evloop's Node addon. The networking API follows Node's `net` and `dgram`; the file
// functions return Promises.

import { EventEmitter } from 'events';
import { Duplex } from 'stream';

/** The backend the loop runs on. */
export const backend: 'uring' | 'epoll';
/** evloop's release (the same number as the npm package's, the Python module's and the C library's). */
export const version: string;

export interface AddressInfo {
  address: string;
  family: 'IPv4' | 'IPv6' | 'unix';
  port: number;
}

/** A system error, as Node's: `code` ('ECONNREFUSED'…), negative `errno`, `syscall`. */
export interface ErrnoException extends Error {
  code: string;
  errno: number;
  syscall: string;
  address?: string;
  port?: number;
  path?: string;
}

export interface SocketOptions {
  allowHalfOpen?: boolean;
}

export interface TcpConnectOptions extends SocketOptions {
  port: number | string;
  host?: string;
  family?: 4 | 6 | 0;
  timeout?: number;
}

export interface IpcConnectOptions extends SocketOptions {
  path: string;
  timeout?: number;
}

/** What a Socket and its stream.Duplex view (`toDuplex()`) both answer: options, addresses, counts. */
export interface SocketCommon {
  setNoDelay(noDelay?: boolean): this;
  setKeepAlive(enable?: boolean, initialDelay?: number): this;
  setTimeout(timeout: number, callback?: () => void): this;
  ref(): this;
  unref(): this;
  address(): AddressInfo | {};
  readonly remoteAddress?: string;
  readonly remotePort?: number;
  readonly remoteFamily?: string;
  readonly localAddress?: string;
  readonly localPort?: number;
  readonly bytesRead: number;
  readonly bytesWritten: number;
}

export interface Socket extends SocketCommon {}

export class Socket extends EventEmitter {
  constructor(options?: SocketOptions);
  connect(options: TcpConnectOptions | IpcConnectOptions, connectListener?: () => void): this;
  connect(port: number, host?: string, connectListener?: () => void): this;
  connect(path: string, connectListener?: () => void): this;
  /** Queues `data`; false once the queue is at or above the high-water mark (wait for 'drain'). */
  write(data: string | Uint8Array, cb?: (err?: Error) => void): boolean;
  write(data: string | Uint8Array, encoding?: BufferEncoding, cb?: (err?: Error) => void): boolean;
  end(cb?: () => void): this;
  end(data: string | Uint8Array, cb?: () => void): this;
  end(data: string | Uint8Array, encoding?: BufferEncoding, cb?: () => void): this;
  destroy(error?: Error): this;
  destroySoon(): void;
  resetAndDestroy(): this;
  pause(): this;
  resume(): this;
  isPaused(): boolean;
  pipe<T extends { write(chunk: Buffer): boolean; end(): unknown; once(ev: 'drain', f: () => void): unknown; emit(ev: string, ...a: unknown[]): boolean }>(
    destination: T,
    options?: { end?: boolean },
  ): T;
  setEncoding(encoding: BufferEncoding): this;
  /** This socket as a stream.Duplex, for code that needs a Node stream (http, pipeline…). */
  toDuplex(options?: import('stream').DuplexOptions): SocketDuplex;
  readonly writableLength: number;
  readonly bufferSize: number;
  readonly writableNeedDrain: boolean;
  readonly writableEnded: boolean;
  readonly writableFinished: boolean;
  readonly readableFlowing: boolean | null;
  readonly readyState: 'opening' | 'open' | 'readOnly' | 'writeOnly' | 'closed';
  readonly timeout?: number;
  connecting: boolean;
  pending: boolean;
  destroyed: boolean;
  readable: boolean;
  writable: boolean;
  allowHalfOpen: boolean;

  on(event: 'connect' | 'ready' | 'end' | 'drain' | 'timeout' | 'finish', listener: () => void): this;
  on(event: 'data', listener: (data: Buffer | string) => void): this;
  on(event: 'error', listener: (err: ErrnoException) => void): this;
  on(event: 'close', listener: (hadError: boolean) => void): this;
  on(event: string | symbol, listener: (...args: any[]) => void): this;
}

/** A stream.Duplex over an evloop Socket. */
export interface SocketDuplex extends SocketCommon {}

export class SocketDuplex extends Duplex {
  constructor(socket: Socket, options?: import('stream').DuplexOptions);
  readonly socket: Socket;
  readonly connecting: boolean;
  readonly pending: boolean;
}

export interface ServerOptions {
  allowHalfOpen?: boolean;
  pauseOnConnect?: boolean;
  noDelay?: boolean;
  keepAlive?: boolean;
  keepAliveInitialDelay?: number;
}

export interface ListenOptions {
  port?: number | string;
  host?: string;
  path?: string;
  backlog?: number;
  ipv6Only?: boolean;
  reusePort?: boolean;
}

export class Server extends EventEmitter {
  constructor(options?: ServerOptions, connectionListener?: (socket: Socket) => void);
  constructor(connectionListener?: (socket: Socket) => void);
  listen(port?: number | string, host?: string, backlog?: number, listeningListener?: () => void): this;
  listen(port?: number | string, host?: string, listeningListener?: () => void): this;
  listen(port?: number | string, listeningListener?: () => void): this;
  listen(path: string, backlog?: number, listeningListener?: () => void): this;
  listen(options: ListenOptions, listeningListener?: () => void): this;
  listen(listeningListener?: () => void): this;
  /** `{address, family, port}`, the path of a Unix server, or null before listening. */
  address(): AddressInfo | string | null;
  close(callback?: (err?: Error) => void): this;
  getConnections(cb: (error: Error | null, count: number) => void): this;
  ref(): this;
  unref(): this;
  readonly listening: boolean;
  maxConnections?: number;

  on(event: 'listening' | 'close', listener: () => void): this;
  on(event: 'connection', listener: (socket: Socket) => void): this;
  on(event: 'error', listener: (err: ErrnoException) => void): this;
  on(event: string | symbol, listener: (...args: any[]) => void): this;
}

export function createServer(connectionListener?: (socket: Socket) => void): Server;
export function createServer(options?: ServerOptions, connectionListener?: (socket: Socket) => void): Server;
export function connect(options: TcpConnectOptions | IpcConnectOptions, connectListener?: () => void): Socket;
export function connect(port: number, host?: string, connectListener?: () => void): Socket;
export function connect(path: string, connectListener?: () => void): Socket;
export const createConnection: typeof connect;

/**
 * An evloop Server (not yet listening) whose accepted connections `httpServer` serves, each as
 * a stream.Duplex: an Express app, `http.createServer(handler)`, or the server a Fastify
 * `serverFactory` returns. Listen on it instead of on the http server.
 */
export function serveHttp(httpServer: import('http').Server, options?: ServerOptions): Server;

export namespace net {
  export { Socket, Server, createServer, connect, createConnection };
  export const Stream: typeof Socket;
  export function isIP(input: string): number;
  export function isIPv4(input: string): boolean;
  export function isIPv6(input: string): boolean;
}

export interface RemoteInfo {
  address: string;
  family: 'IPv4' | 'IPv6';
  port: number;
  size: number;
}

export interface UdpSocketOptions {
  type: 'udp4' | 'udp6';
  reuseAddr?: boolean;
  ipv6Only?: boolean;
}

export class UdpSocket extends EventEmitter {
  bind(port?: number, address?: string, callback?: () => void): this;
  bind(options: { port?: number; address?: string; exclusive?: boolean }, callback?: () => void): this;
  send(msg: string | Uint8Array | ReadonlyArray<string | Uint8Array>, port: number, address?: string, callback?: (error: Error | null, bytes?: number) => void): void;
  send(msg: string | Uint8Array, offset: number, length: number, port: number, address?: string, callback?: (error: Error | null, bytes?: number) => void): void;
  address(): AddressInfo;
  close(callback?: () => void): this;
  setBroadcast(flag: boolean): void;
  setTTL(ttl: number): number;
  ref(): this;
  unref(): this;
  readonly type: 'udp4' | 'udp6';

  on(event: 'listening' | 'close', listener: () => void): this;
  on(event: 'message', listener: (msg: Buffer, rinfo: RemoteInfo) => void): this;
  on(event: 'error', listener: (err: ErrnoException) => void): this;
  on(event: string | symbol, listener: (...args: any[]) => void): this;
}

export function createSocket(type: 'udp4' | 'udp6' | UdpSocketOptions, callback?: (msg: Buffer, rinfo: RemoteInfo) => void): UdpSocket;

export namespace dgram {
  export { createSocket };
  export const Socket: typeof UdpSocket;
}

export type PathLike = string | Buffer | URL;

export interface Stats {
  dev: number;
  ino: number;
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  rdev: number;
  size: number;
  blksize: number;
  blocks: number;
  atimeMs: number;
  mtimeMs: number;
  ctimeMs: number;
  birthtimeMs: number;
  atime: Date;
  mtime: Date;
  ctime: Date;
  birthtime: Date;
  isFile(): boolean;
  isDirectory(): boolean;
  isSymbolicLink(): boolean;
  isFIFO(): boolean;
  isSocket(): boolean;
  isCharacterDevice(): boolean;
  isBlockDevice(): boolean;
}

export interface BatchOptions {
  /** Operations in flight at once (default 256). */
  concurrency?: number;
  encoding?: BufferEncoding;
}

export namespace fs {
  function readFile(path: PathLike): Promise<Buffer>;
  function readFile(path: PathLike, options: BufferEncoding | { encoding: BufferEncoding }): Promise<string>;
  function writeFile(path: PathLike, data: string | ArrayBufferView, options?: BufferEncoding | { encoding?: BufferEncoding }): Promise<void>;
  function stat(path: PathLike): Promise<Stats>;
  /** Reads every file, many at once; their contents in order, or the first error. */
  function readFiles(paths: PathLike[], options?: BatchOptions & { encoding?: undefined }): Promise<Buffer[]>;
  function readFiles(paths: PathLike[], options: BatchOptions & { encoding: BufferEncoding }): Promise<string[]>;
  /** Writes `data[i]` to `paths[i]`, many at once. */
  function writeFiles(paths: PathLike[], data: Array<string | ArrayBufferView>, options?: BatchOptions): Promise<void>;
}

declare const evloop: {
  backend: typeof backend;
  version: typeof version;
  net: typeof net;
  dgram: typeof dgram;
  fs: typeof fs;
  createServer: typeof createServer;
  connect: typeof connect;
  createConnection: typeof connect;
  Server: typeof Server;
  Socket: typeof Socket;
  createSocket: typeof createSocket;
  SocketDuplex: typeof SocketDuplex;
  serveHttp: typeof serveHttp;
};
export default evloop;
