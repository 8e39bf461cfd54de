// nexus as a gateway in front of MCP servers over Streamable HTTP (servers: with transport http):
// two nxmock replicas behind one backend, a session per shard per replica. The official SDK
// client sees the federated catalog, its calls spread over both replicas, progress and
// cancellation cross the gateway, a replica that dies is routed around (its tries are retried
// on the other), and a replica that restarts (so its sessions are gone: HTTP 404) gets new
// sessions without the client noticing.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { startNexus, getJson, sleep, tempDir, HOST, assertCleanExit } from './lib/nexus.mjs';
import { startMock } from './lib/nxmock.mjs';

let nx;
let dir;
const mocks = [];

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

async function waitReady(what, pred, ms = 10000) {
  const until = Date.now() + ms;
  for (;;) {
    const h = await backendHealth();
    if (pred(h)) return h;
    if (Date.now() > until) assert.fail(`${what}: ${JSON.stringify(h)}`);
    await sleep(50);
  }
}

before(async () => {
  mocks.push(await startMock([], { shards: 1 }));
  mocks.push(await startMock([], { shards: 1 }));
  dir = tempDir();
  const config = dir.path('gateway.yaml');
  fs.writeFileSync(config, [
    'servers:',
    '  - name: mock',
    '    transport: http',
    '    urls:',
    ...mocks.map((m) => `      - http://${HOST}:${m.mcpPort}/mcp`),
    '    retry: {attempts: 3, base: 10ms, cap: 50ms}',
    '    health: {eject_after: 2, base_ejection: 300ms}',
    '',
  ].join('\n'));
  nx = await startNexus({ shards: 2, config });
  await waitReady('both sessions on both shards', (h) =>
    h.state === 'ready' && h.tools > 0 && h.instances.every((i) => i.state === 'ready'));
});

after(async () => {
  if (nx) await nx.kill();
  for (const m of mocks) await m.kill();
});

async function connect() {
  const client = new Client({ name: 'gateway-http-test', version: '1.0.0' });
  const transport = new StreamableHTTPClientTransport(new URL(`http://${HOST}:${nx.mcpPort}/mcp`));
  await client.connect(transport);
  return client;
}

test('the catalog of the HTTP backend is federated: mock__* next to native tools', async () => {
  const h = await backendHealth();
  assert.equal(h.transport, 'http');
  assert.equal(h.instances.length, 4, 'a session per shard (2) per replica (2)');
  const client = await connect();
  const names = (await client.listTools()).tools.map((t) => t.name);
  for (const n of ['health_check', 'mock__echo', 'mock__progress', 'mock__sleep', 'mock__stats'])
    assert.ok(names.includes(n), `${n} in ${names.join(', ')}`);
  await client.close();
});

test('calls reach both replicas, from both shards, and answer correctly', async () => {
  const before0 = (await mockStats(mocks[0])).tools.echo ?? 0;
  const before1 = (await mockStats(mocks[1])).tools.echo ?? 0;
  const clients = await Promise.all([connect(), connect(), connect(), connect()]);
  const calls = [];
  for (let i = 0; i < 40; i++) {
    const c = clients[i % clients.length];
    calls.push(c.callTool({ name: 'mock__echo', arguments: { message: `m${i}` } })
      .then((r) => assert.equal(r.content[0].text, `m${i}`)));
  }
  await Promise.all(calls);
  const d0 = (await mockStats(mocks[0])).tools.echo - before0;
  const d1 = (await mockStats(mocks[1])).tools.echo - before1;
  assert.equal(d0 + d1, 40, 'every call reached one replica exactly once');
  assert.ok(d0 >= 10 && d1 >= 10, `round robin spreads the calls: ${d0} and ${d1}`);
  for (const c of clients) await c.close();
});

test('progress crosses the gateway; a cancelled call is cancelled at the replica', async () => {
  const client = await connect();
  const seen = [];
  const r = await client.callTool({ name: 'mock__progress', arguments: { steps: 4, ms: 5 } },
    undefined, { onprogress: (p) => seen.push(p.progress) });
  assert.equal(r.isError, undefined);
  assert.deepEqual(seen, [1, 2, 3, 4]);

  const cancelledBefore = (await mockStats(mocks[0])).cancelled + (await mockStats(mocks[1])).cancelled;
  const ac = new AbortController();
  const started = Date.now();
  const p = client.callTool({ name: 'mock__sleep', arguments: { ms: 20000 } }, undefined,
    { signal: ac.signal });
  await sleep(200);
  ac.abort();
  await assert.rejects(p);
  assert.ok(Date.now() - started < 5000);
  const until = Date.now() + 5000;
  let cancelled = 0;
  while (Date.now() < until) {
    cancelled = (await mockStats(mocks[0])).cancelled + (await mockStats(mocks[1])).cancelled;
    if (cancelled > cancelledBefore) break;
    await sleep(50);
  }
  assert.ok(cancelled > cancelledBefore, 'the replica saw the call cancelled');
  await client.close();
});

test('a replica that dies is routed around; a restarted one gets new sessions (404)', async () => {
  const client = await connect();
  const port = mocks[1].mcpPort;
  await mocks[1].kill();
  // Every call still succeeds: tries that hit the dead replica are retried on the live one.
  for (let i = 0; i < 20; i++) {
    const r = await client.callTool({ name: 'mock__echo', arguments: { message: `d${i}` } });
    assert.equal(r.content[0].text, `d${i}`);
  }
  const h = await backendHealth();
  assert.ok(h.retries > 0, `retries counted: ${h.retries}`);

  // The replica comes back on the same port, without the sessions nexus holds: once its
  // ejection (300 ms) is over, calls reach it again; the first on each shard meets HTTP 404 and
  // nexus opens a new session at once (a restart of that instance), the call going on.
  const restartsBefore = (await backendHealth()).restarts;
  mocks[1] = await startMock(['--mcp-port', String(port)], { shards: 1 });
  await sleep(400);
  for (let i = 0; i < 40; i++) {
    const r = await client.callTool({ name: 'mock__echo', arguments: { message: `r${i}` } });
    assert.equal(r.content[0].text, `r${i}`);
  }
  const served = (await mockStats(mocks[1])).tools.echo ?? 0;
  assert.ok(served >= 5, `the restarted replica serves again: ${served} calls`);
  const after = await backendHealth();
  assert.ok(after.restarts > restartsBefore, `new sessions counted: ${JSON.stringify(after)}`);
  assert.ok(after.instances.every((i) => i.state === 'ready'));
  await client.close();
});

test('nexus ends its sessions and exits cleanly', async () => {
  const r = await nx.stop();
  nx = null;
  assertCleanExit(r);
});
