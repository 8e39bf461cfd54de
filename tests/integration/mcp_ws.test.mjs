// MCP over WebSocket on the MCP port: handshake with subprotocol "mcp", one JSON-RPC message per
// text frame with out-of-order async answers, in-band JSON-RPC errors, the close codes the
// server owes (1003 binary, 1009 too big, 1001 on shutdown), DNS-rebinding protection and the
// HTTP errors of a broken handshake. Uses Node's WebSocket (run with --experimental-websocket).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startNexus, RawConn, get, sleep } from './lib/nexus.mjs';

let nx;
before(async () => {
  nx = await startNexus({ shards: 2, debugRoutes: true, set: { 'mcp.max_message': '64KiB' } });
});
after(async () => {
  if (nx) await nx.kill();
});

/** Opens a WebSocket and collects messages; next() resolves with the next parsed message. */
function connect(port, path = '/mcp', protocols = 'mcp') {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`, protocols);
    const queue = [];
    const waiters = [];
    ws.closed = new Promise((r) => ws.addEventListener('close', (e) => r({ code: e.code, reason: e.reason })));
    ws.addEventListener('message', (e) => {
      const m = JSON.parse(e.data);
      if (waiters.length) waiters.shift()(m);
      else queue.push(m);
    });
    ws.next = (ms = 3000) =>
      queue.length
        ? Promise.resolve(queue.shift())
        : new Promise((res, rej) => {
            const t = setTimeout(() => rej(new Error('no message in time')), ms);
            waiters.push((m) => {
              clearTimeout(t);
              res(m);
            });
          });
    ws.rpc = (id, method, params) => ws.send(JSON.stringify({ jsonrpc: '2.0', id, method, params }));
    ws.addEventListener('open', () => resolve(ws), { once: true });
    ws.addEventListener('error', () => reject(new Error('websocket failed')), { once: true });
  });
}

const INIT = { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 't', version: '1' } };

test('handshake echoes mcp; requests are answered per frame, async ones out of order', async () => {
  const ws = await connect(nx.mcpPort);
  try {
    assert.equal(ws.protocol, 'mcp');
    ws.rpc(1, 'initialize', INIT);
    const init = await ws.next();
    assert.equal(init.id, 1);
    assert.equal(init.result.serverInfo.name, 'nexus');
    ws.send(JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }));
    ws.rpc(2, 'tools/call', { name: 'debug_sleep', arguments: { ms: 150 } });
    ws.rpc(3, 'tools/call', { name: 'debug_echo', arguments: { message: 'fast' } });
    const first = await ws.next();
    const second = await ws.next();
    assert.equal(first.id, 3, 'the fast call must not wait for the slow one');
    assert.equal(first.result.content[0].text, 'fast');
    assert.equal(second.id, 2);
    assert.equal(second.result.content[0].text, 'slept 150 ms');
    ws.rpc(4, 'tools/list', {});
    const list = await ws.next();
    assert.ok(list.result.tools.some((t) => t.name === 'health_check'));
  } finally {
    ws.close(1000);
  }
  assert.equal((await ws.closed).code, 1000, 'the server answers the close handshake');
});

test('bad JSON and bad requests get JSON-RPC errors on the same connection', async () => {
  const ws = await connect(nx.mcpPort, '/ws');
  try {
    ws.send('{not json');
    const e1 = await ws.next();
    assert.equal(e1.error.code, -32700);
    assert.equal(e1.id, null);
    ws.send(JSON.stringify({ jsonrpc: '1.0', id: 5, method: 'ping' }));
    const e2 = await ws.next();
    assert.equal(e2.error.code, -32600);
    assert.equal(e2.id, 5, 'the id is echoed');
    ws.rpc(6, 'no/such/method', {});
    assert.equal((await ws.next()).error.code, -32601);
    ws.rpc(9, 'tools/list', {});
    const early = await ws.next();
    assert.equal(early.error.code, -32600, 'a request before initialize is refused');
    assert.match(early.error.message, /initialize/);
    ws.rpc(7, 'ping', {});
    assert.deepEqual((await ws.next()).result, {}, 'still usable after errors');
  } finally {
    ws.close();
  }
});

test('notifications/cancelled stops a running call and no answer is sent for it', async () => {
  const ws = await connect(nx.mcpPort);
  try {
    ws.rpc(1, 'initialize', INIT);
    await ws.next();
    ws.rpc(7, 'tools/call', { name: 'debug_sleep', arguments: { ms: 400 } });
    ws.send(JSON.stringify({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 7, reason: 'user' } }));
    ws.rpc(8, 'ping', {});
    const m = await ws.next();
    assert.equal(m.id, 8);
    // Had the call not been cancelled, its answer would arrive at ~400 ms.
    await assert.rejects(ws.next(800), /no message/, 'a cancelled request must not be answered');
  } finally {
    ws.close();
  }
});

test('a message over the size limit closes with 1009, a binary frame with 1003', async () => {
  const big = await connect(nx.mcpPort);
  big.send(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping', params: { pad: 'x'.repeat(70 * 1024) } }));
  assert.equal((await big.closed).code, 1009);
  const bin = await connect(nx.mcpPort);
  bin.send(new Uint8Array([1, 2, 3]));
  assert.equal((await bin.closed).code, 1003);
});

test('handshake errors are HTTP answers', async () => {
  const c = await RawConn.open(nx.mcpPort);
  try {
    const base = 'Connection: Upgrade\r\nUpgrade: websocket\r\n';
    let r = await c.roundTrip(get('/ws', { host: '127.0.0.1', headers: `${base}Sec-WebSocket-Version: 13\r\n` }));
    assert.equal(r.status, 400, 'missing Sec-WebSocket-Key');
  } finally {
    c.destroy();
  }
  const c2 = await RawConn.open(nx.mcpPort);
  try {
    const r = await c2.roundTrip(
      get('/ws', {
        host: '127.0.0.1',
        headers: 'Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n',
      }),
    );
    assert.equal(r.status, 426);
    assert.equal(r.headers['sec-websocket-version'], '13');
  } finally {
    c2.destroy();
  }
  const c3 = await RawConn.open(nx.mcpPort);
  try {
    assert.equal((await c3.roundTrip(get('/ws', { host: '127.0.0.1' }))).status, 426, 'plain GET /ws asks for an upgrade');
  } finally {
    c3.destroy();
  }
  const c4 = await RawConn.open(nx.mcpPort);
  try {
    const r = await c4.roundTrip(
      get('/mcp', {
        host: '127.0.0.1',
        headers: 'Origin: https://evil.example.com\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n',
      }),
    );
    assert.equal(r.status, 403, 'a foreign Origin cannot open a WebSocket');
  } finally {
    c4.destroy();
  }
});

test('shutdown closes WebSocket clients with 1001 and exits cleanly', async () => {
  const own = await startNexus({ shards: 1, debugRoutes: true });
  const ws = await connect(own.mcpPort);
  ws.rpc(1, 'ping', {});
  await ws.next();
  const closed = ws.closed;
  await own.stopAndAssertClean(); // SIGTERM: exit 0, no sanitizer report
  assert.equal((await closed).code, 1001);
});

test('nexus exits 0 on SIGTERM with no sanitizer report', async () => {
  await nx.stopAndAssertClean();
});
