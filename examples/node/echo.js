'use strict';
// An echo server on evloop, in Node's `net` style: the code is what a `net` program would be;
// only the module differs.
//
//   node examples/node/echo.js [--port 7000]      serve until Ctrl-C
//   node examples/node/echo.js --self-test        serve, run 10 clients against it, exit
//
// EVLOOP_BACKEND=uring|epoll chooses the backend.

const path = require('path');
const evloop = require(path.join(__dirname, '..', '..', 'bindings', 'node'));

const args = process.argv.slice(2);
const selfTest = args.includes('--self-test');
const portArg = args.indexOf('--port');
const port = portArg >= 0 ? Number(args[portArg + 1]) : selfTest ? 0 : 7000;

const server = evloop.createServer((socket) => {
  socket.setNoDelay(true);
  socket.on('data', (data) => socket.write(data));
  socket.on('error', () => socket.destroy());
});

server.on('error', (err) => {
  console.error(`echo: ${err.message}`);
  process.exit(1);
});

server.listen(port, '127.0.0.1', async () => {
  const { port: bound } = server.address();
  console.log(`echo server on 127.0.0.1:${bound} (backend ${evloop.backend})`);
  if (!selfTest) return;
  const started = process.hrtime.bigint();
  const rounds = 1000;
  await Promise.all(Array.from({ length: 10 }, (_, i) => client(bound, i, rounds)));
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  console.log(`10 clients x ${rounds} round trips in ${seconds.toFixed(3)} s`);
  server.close(() => console.log('server closed'));
});

function client(port, id, rounds) {
  return new Promise((resolve, reject) => {
    const message = Buffer.from(`client ${id} says hello`);
    const socket = evloop.connect(port, '127.0.0.1');
    let left = rounds;
    let pending = Buffer.alloc(0);
    socket.on('connect', () => socket.write(message));
    socket.on('data', (data) => {
      pending = Buffer.concat([pending, data]);
      while (pending.length >= message.length) {
        if (!pending.subarray(0, message.length).equals(message)) {
          reject(new Error(`client ${id}: echo mismatch`));
          return;
        }
        pending = pending.subarray(message.length);
        if (--left === 0) {
          socket.end();
          return;
        }
        socket.write(message);
      }
    });
    socket.on('error', reject);
    socket.on('close', () => (left === 0 ? resolve() : reject(new Error(`client ${id}: closed early`))));
  });
}
