// A stateless stdio backend run as several processes (instances: N): nexus spreads them over
// its shards, balances calls over them, and keeps serving through one of them being killed
// while it restarts that one.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { startNexus, getJson, sleep, tempDir, HOST, assertCleanExit } from './lib/nexus.mjs';
import { NXMOCK } from './lib/nxmock.mjs';

let nx;
let dir;
let client;

const health = async () => (await getJson(nx.restPort, '/health')).data.backends.pool;

before(async () => {
  dir = tempDir();
  const config = dir.path('gateway.yaml');
  fs.writeFileSync(config, [
    'servers:',
    '  - name: pool',
    '    transport: stdio',
    `    command: ${NXMOCK}`,
    '    args: ["--stdio", "--log-level", "warn"]',
    '    instances: 2',
    '    balance: least_outstanding',
    '    restart: {base: 100ms, cap: 500ms}',
    '',
  ].join('\n'));
  nx = await startNexus({ shards: 2, config });
  for (let i = 0; i < 100; i++) {
    const h = await health();
    if (h.tools > 0 && h.instances.every((x) => x.state === 'ready')) break;
    await sleep(100);
  }
  client = new Client({ name: 'instances-test', version: '1.0.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(`http://${HOST}:${nx.mcpPort}/mcp`)));
});

after(async () => {
  if (client) await client.close().catch(() => {});
  if (nx) await nx.kill();
});

test('two processes, one per shard, each its own pid', async () => {
  const h = await health();
  assert.equal(h.instances.length, 2);
  assert.deepEqual(h.instances.map((i) => i.shard).sort(), [0, 1]);
  const pids = h.instances.map((i) => i.pid);
  assert.ok(pids.every((p) => p > 0) && pids[0] !== pids[1], JSON.stringify(pids));
});

test('concurrent calls are spread over both processes', async () => {
  // Slow calls at once from one client (one shard): least-outstanding balancing must use both
  // processes, which /health shows while the calls are in flight.
  const calls = Promise.all(Array.from({ length: 8 }, () =>
    client.callTool({ name: 'pool__sleep', arguments: { ms: 600 } })));
  await sleep(200);
  const h = await health();
  await calls;
  const loads = h.instances.map((i) => i.outstanding);
  assert.equal(loads[0] + loads[1], 8, JSON.stringify(loads));
  assert.ok(Math.abs(loads[0] - loads[1]) <= 2, `balanced: ${loads.join(' and ')}`);
});

test('killing one process loses no call; it is restarted', async () => {
  const before = await health();
  process.kill(before.instances[0].pid, 'SIGKILL');
  for (let i = 0; i < 20; i++) {
    const r = await client.callTool({ name: 'pool__echo', arguments: { message: `k${i}` } });
    assert.equal(r.content[0].text, `k${i}`);
  }
  let after;
  for (let i = 0; i < 100; i++) {
    after = await health();
    if (after.instances.every((x) => x.state === 'ready') && after.instances[0].pid !== before.instances[0].pid) break;
    await sleep(50);
  }
  assert.ok(after.restarts > before.restarts);
  assert.notEqual(after.instances[0].pid, before.instances[0].pid);
  assert.equal(after.instances[1].pid, before.instances[1].pid, 'the other process was untouched');
});

test('nexus exits cleanly', async () => {
  await client.close();
  client = null;
  const r = await nx.stop();
  nx = null;
  assertCleanExit(r);
});
