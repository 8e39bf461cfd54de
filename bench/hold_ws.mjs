// Opens N MCP WebSocket clients (subprotocol mcp) to ws://host:port/ws, sends initialize on
// each and waits for every answer, prints "ready: N initialized, F failed", then holds them
// open for HOLD seconds so the server's RSS can be read. Bounded: exits after HOLD seconds.
const [host, port, count, hold] = process.argv.slice(2);
const n = Number(count);
const sockets = [];
let ready = 0;
let failed = 0;

const INIT = JSON.stringify({
  jsonrpc: '2.0', id: 1, method: 'initialize',
  params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'hold_ws', version: '1' } },
});

function open() {
  return new Promise((resolve) => {
    const ws = new WebSocket(`ws://${host}:${port}/ws`, 'mcp');
    sockets.push(ws);
    ws.onopen = () => ws.send(INIT);
    ws.onmessage = () => { ready++; resolve(); };
    ws.onerror = () => { failed++; resolve(); };
  });
}

const batch = 250;
for (let i = 0; i < n; i += batch) {
  await Promise.all(Array.from({ length: Math.min(batch, n - i) }, open));
}
console.log(`${ready} initialized, ${failed} failed`);
setTimeout(() => {
  for (const ws of sockets) ws.close();
  process.exit(0);
}, Number(hold) * 1000);
