// Compiled (not run) by scripts/test_node.sh with tsc --strict: index.d.ts must describe the API as used.
import evloop, { createServer, connect, fs, createSocket, Socket } from '../../bindings/node';
const s = createServer((c: Socket) => { c.on('data', (d) => c.write(d)); });
s.listen(0, '127.0.0.1', () => { const a = s.address(); });
const c = connect({ port: 1, host: '127.0.0.1' });
c.on('error', (e) => console.log(e.code, e.errno));
fs.readFiles(['a']).then((b: Buffer[]) => b.length);
fs.readFile('x', 'utf8').then((t: string) => t.length);
const u = createSocket('udp4'); u.on('message', (m, r) => r.port);
console.log(evloop.backend);
const release: string = evloop.version;
console.log(release);
const d = c.toDuplex();
d.pipe(process.stdout);
// The members a Socket and its Duplex share (SocketCommon), with `this` kept for chaining.
const chained: Socket = c.setNoDelay(true).setKeepAlive(true, 1000).ref();
const port: number | undefined = d.setNoDelay().unref().remotePort;
const counts: number = c.bytesRead + d.bytesWritten + (d.localPort ?? 0);
console.log(chained.remoteAddress, port, counts, d.address(), d.connecting, c.pending);
// An http.Server served from an evloop listener.
import * as http from 'http';
import { serveHttp, Server } from '../../bindings/node';
const served: Server = serveHttp(http.createServer((_req, res) => res.end('ok')));
served.listen(0, '127.0.0.1');
evloop.serveHttp(http.createServer(), { allowHalfOpen: false }).close();
