// nexus as a gateway in front of an MCP server over WebSocket (servers: with transport ws): one
// nxmock behind a `ws://` backend, a connection (subprotocol mcp) per shard. The official SDK
// client, over Streamable HTTP to nexus, sees the federated catalog, calls from several clients
// answer correctly, progress and cancellation cross the gateway, a backend that is killed makes
// calls fail fast (retryable) until it is back on the same port and nexus has reconnected, and
// nexus closes its connections and exits cleanly.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { startNexus, getJson, sleep, tempDir, HOST, assertCleanExit } from './lib/nexus.mjs';
import { startMock } from './lib/nxmock.mjs';

let nx;
let mock;
let dir;

async function mockStats(m) {
  const client = new Client({ name: 'stats', version: '1.0.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(`http://${HOST}:${m.mcpPort}/mcp`)));
  const r = await client.callTool({ name: 'stats', arguments: {} });
  await client.close();
  return r.structuredContent;
}

async function backendHealth() {
  return (await getJson(nx.restPort, '/health')).data.backends.mock;
}

async function waitFor(what, pred, ms = 10000) {
  const until = Date.now() + ms;
  for (;;) {
    const h = await backendHealth();
    if (pred(h)) return h;
    if (Date.now() > until) assert.fail(`${what}: ${JSON.stringify(h)}`);
    await sleep(50);
  }
}

const allReady = (h) => h.state === 'ready' && h.tools > 0 &&
  h.instances.every((i) => i.state === 'ready');

before(async () => {
  mock = await startMock([], { shards: 1 });
  dir = tempDir();
  const config = dir.path('gateway.yaml');
  fs.writeFileSync(config, [
    'servers:',
    '  - name: mock',
    '    transport: ws',
    `    url: ws://${HOST}:${mock.mcpPort}/ws`,
    '    retry: {attempts: 2, base: 10ms, cap: 50ms}',
    '    health: {eject_after: 5, base_ejection: 300ms}',
    '',
  ].join('\n'));
  nx = await startNexus({ shards: 2, config });
  await waitFor('a connection on each shard', allReady);
});

after(async () => {
  if (nx) await nx.kill();
  if (mock) await mock.kill();
});

async function connect() {
  const client = new Client({ name: 'gateway-ws-test', version: '1.0.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(`http://${HOST}:${nx.mcpPort}/mcp`)));
  return client;
}

test('the catalog of the WebSocket backend is federated: mock__* next to native tools', async () => {
  const h = await backendHealth();
  assert.equal(h.transport, 'ws');
  assert.equal(h.instances.length, 2, 'a connection per shard (2) for the one url');
  const client = await connect();
  const names = (await client.listTools()).tools.map((t) => t.name);
  for (const n of ['health_check', 'mock__echo', 'mock__progress', 'mock__sleep', 'mock__stats'])
    assert.ok(names.includes(n), `${n} in ${names.join(', ')}`);
  await client.close();
});

test('calls from several clients cross the WebSocket and answer correctly', async () => {
  const before = (await mockStats(mock)).tools.echo ?? 0;
  const clients = await Promise.all([connect(), connect(), connect(), connect()]);
  const calls = [];
  for (let i = 0; i < 40; i++) {
    const c = clients[i % clients.length];
    calls.push(c.callTool({ name: 'mock__echo', arguments: { message: `m${i} ünïcode` } })
      .then((r) => assert.equal(r.content[0].text, `m${i} ünïcode`)));
  }
  await Promise.all(calls);
  const served = (await mockStats(mock)).tools.echo - before;
  assert.equal(served, 40, 'every call reached the backend exactly once');
  for (const c of clients) await c.close();
});

test('progress crosses the gateway; a cancelled call is cancelled at the backend', async () => {
  const client = await connect();
  const seen = [];
  const r = await client.callTool({ name: 'mock__progress', arguments: { steps: 4, ms: 5 } },
    undefined, { onprogress: (p) => seen.push(p.progress) });
  assert.equal(r.isError, undefined);
  assert.deepEqual(seen, [1, 2, 3, 4]);

  const restartsBefore = (await backendHealth()).restarts;
  const cancelledBefore = (await mockStats(mock)).cancelled;
  const ac = new AbortController();
  const started = Date.now();
  const p = client.callTool({ name: 'mock__sleep', arguments: { ms: 20000 } }, undefined,
    { signal: ac.signal });
  await sleep(200);
  ac.abort();
  await assert.rejects(p);
  assert.ok(Date.now() - started < 5000);
  const until = Date.now() + 5000;
  let cancelled = cancelledBefore;
  while (Date.now() < until) {
    cancelled = (await mockStats(mock)).cancelled;
    if (cancelled > cancelledBefore) break;
    await sleep(50);
  }
  assert.ok(cancelled > cancelledBefore, 'the backend saw the call cancelled');
  assert.equal((await backendHealth()).restarts, restartsBefore,
    'by a notification on the open connection, not by dropping it');
  await client.close();
});

test('a killed backend fails calls fast; once it is back on its port nexus reconnects', async () => {
  const client = await connect();
  const port = mock.mcpPort;
  const restartsBefore = (await backendHealth()).restarts;
  await mock.kill(); // SIGKILL: the connections end without a close frame
  mock = null;
  await waitFor('both connections seen down',
    (h) => h.instances.every((i) => i.state !== 'ready'), 5000);

  // While it is down a call is refused at once (retryable), not held until some timeout.
  for (let i = 0; i < 3; i++) {
    const t0 = Date.now();
    const outcome = await client.callTool({ name: 'mock__echo', arguments: { message: 'x' } })
      .then((r) => (r.isError ? 'isError' : 'ok'), () => 'error');
    assert.notEqual(outcome, 'ok', 'no backend, no answer');
    assert.ok(Date.now() - t0 < 2000, `failed fast: ${Date.now() - t0} ms`);
  }

  mock = await startMock(['--mcp-port', String(port)], { shards: 1 });
  const h = await waitFor('reconnected on both shards', allReady, 15000);
  assert.ok(h.restarts >= restartsBefore + 2, `a reconnect per shard counted: ${h.restarts}`);
  for (let i = 0; i < 20; i++) {
    const r = await client.callTool({ name: 'mock__echo', arguments: { message: `r${i}` } });
    assert.equal(r.content[0].text, `r${i}`);
  }
  const served = (await mockStats(mock)).tools.echo ?? 0;
  assert.equal(served, 20, 'the new backend process serves the calls');
  await client.close();
});

test('nexus closes its WebSocket connections and exits cleanly', async () => {
  const r = await nx.stop();
  nx = null;
  assertCleanExit(r);
});
