// Opens N keep-alive connections to host:port, sends one GET on each, waits for every
// response, then holds them all open for HOLD seconds (so the server's RSS can be read),
// printing "ready" when all are established. Bounded: exits after HOLD seconds.
import net from 'node:net';

const [host, port, count, hold, path = '/plaintext'] = process.argv.slice(2);
const n = Number(count);
const sockets = [];
let answered = 0;
let failed = 0;

function open(i) {
  return new Promise((resolve) => {
    const s = net.connect({ host, port: Number(port) });
    let got = '';
    s.setNoDelay(true);
    s.on('connect', () => s.write(`GET ${path} HTTP/1.1\r\nHost: bench\r\n\r\n`));
    s.on('data', (d) => {
      got += d;
      if (got.includes('\r\n\r\n') && got.startsWith('HTTP/1.1 200')) {
        answered++;
        resolve();
      }
    });
    s.on('error', () => { failed++; resolve(); });
    sockets.push(s);
  });
}

const batch = 500;
for (let i = 0; i < n; i += batch) {
  await Promise.all(Array.from({ length: Math.min(batch, n - i) }, (_, k) => open(i + k)));
}
console.log(JSON.stringify({ ready: true, answered, failed }));
setTimeout(() => {
  for (const s of sockets) s.destroy();
  process.exit(failed ? 1 : 0);
}, Number(hold) * 1000);
