// ESM entry: the same module as index.js.
import evloop from './index.js';

export default evloop;
export const { backend, version, net, dgram, fs, createServer, connect, createConnection, Server, Socket, createSocket, SocketDuplex, serveHttp } = evloop;
