// nexus as a gateway in front of stdio MCP servers (servers: with transport stdio): the
// conformance fixture server unprefixed and nxmock prefixed, both spawned and supervised by
// nexus, each owned by one shard. The official SDK client sees one merged catalog, calls tools
// of both through whichever shard it lands on, receives the backend's progress, cancels a long
// call (the backend sees the cancellation), and keeps working after the backend process is
// killed: nexus restarts it. /health shows each backend's state, tools and restarts.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { startNexus, nexusBin, getJson, sleep, tempDir, HOST } from './lib/nexus.mjs';

const binDir = path.dirname(nexusBin());
const CONFORMANCE = path.join(binDir, 'examples', 'conformance_server');
const NXMOCK = path.join(binDir, 'nxmock');

let nx;
let dir;
before(async () => {
  dir = tempDir();
  const config = dir.path('gateway.yaml');
  fs.writeFileSync(config, [
    'servers:',
    '  - name: conf',
    '    transport: stdio',
    `    command: ${CONFORMANCE}`,
    '    args: ["--stdio", "--log-level", "warn"]',
    '    prefix: false',
    '  - name: mock',
    '    transport: stdio',
    `    command: ${NXMOCK}`,
    '    args: ["--stdio", "--log-level", "warn"]',
    '    restart: {base: 100ms, cap: 1s}',
    '',
  ].join('\n'));
  nx = await startNexus({ shards: 2, config });
  // Wait until both backends have announced their tools.
  for (let i = 0; i < 100; i++) {
    const h = (await getJson(nx.restPort, '/health')).data.backends;
    if (h.conf?.state === 'ready' && h.mock?.state === 'ready' && h.conf.tools > 0 && h.mock.tools > 0) break;
    await sleep(100);
  }
});
after(async () => {
  if (nx) await nx.kill();
});

async function connect() {
  const client = new Client({ name: 'gateway-test', version: '1.0.0' });
  const transport = new StreamableHTTPClientTransport(new URL(`http://${HOST}:${nx.mcpPort}/mcp`));
  await client.connect(transport);
  return { client, transport };
}

test('one merged catalog: native tools, the fixture server unprefixed, nxmock as mock__*', async () => {
  const { client, transport } = await connect();
  const names = (await client.listTools()).tools.map((t) => t.name);
  for (const n of ['health_check', 'test_simple_text', 'json_schema_2020_12_tool', 'mock__echo', 'mock__progress'])
    assert.ok(names.includes(n), `${n} missing from ${names}`);
  assert.ok(!names.includes('echo'), 'prefixed backends do not leak bare names');
  // A backend's schema passes through untouched (2020-12 keywords included).
  const t = (await client.listTools()).tools.find((x) => x.name === 'json_schema_2020_12_tool');
  assert.equal(t.inputSchema.$schema, 'https://json-schema.org/draft/2020-12/schema');
  assert.ok(t.inputSchema.$defs.address);
  await transport.terminateSession();
  await client.close();
});

test('calls reach the right backend from every shard, with progress', { timeout: 20000 }, async () => {
  const { client, transport } = await connect();
  for (let i = 0; i < 6; i++) {
    const r = await client.callTool({ name: 'mock__echo', arguments: { message: `hi ${i}` } });
    assert.equal(r.content[0].text, `hi ${i}`);
  }
  const s = await client.callTool({ name: 'test_simple_text', arguments: {} });
  assert.equal(s.content[0].text, 'This is a simple text response for testing.');
  const seen = [];
  const p = await client.callTool({ name: 'mock__progress', arguments: { steps: 3, ms: 20 } },
    undefined, { onprogress: (e) => seen.push(e.progress) });
  assert.match(p.content[0].text, /3/);
  assert.deepEqual(seen, [1, 2, 3], 'progress crosses the gateway with the client token');
  const unknown = await client.callTool({ name: 'mock__nope', arguments: {} }).catch((e) => e);
  assert.match(String(unknown.message ?? JSON.stringify(unknown)), /nope/);
  await transport.terminateSession();
  await client.close();
});

test('cancelling a call reaches the backend', { timeout: 20000 }, async () => {
  const { client, transport } = await connect();
  const ac = new AbortController();
  const call = client.callTool({ name: 'mock__sleep', arguments: { ms: 5000 } }, undefined,
    { signal: ac.signal });
  await sleep(200);
  ac.abort('test');
  await assert.rejects(call);
  let cancelled = 0;
  for (let i = 0; i < 50 && cancelled === 0; i++) {
    const st = await client.callTool({ name: 'mock__stats', arguments: {} });
    cancelled = st.structuredContent.cancelled;
    if (!cancelled) await sleep(50);
  }
  assert.equal(cancelled, 1, 'nxmock saw notifications/cancelled and stopped the sleep');
  await transport.terminateSession();
  await client.close();
});

test('a killed backend process is restarted and serves again', { timeout: 30000 }, async () => {
  const before = (await getJson(nx.restPort, '/health')).data.backends.mock;
  assert.ok(before.pid > 0);
  process.kill(before.pid, 'SIGKILL');
  let after;
  for (let i = 0; i < 100; i++) {
    after = (await getJson(nx.restPort, '/health')).data.backends.mock;
    if (after.restarts > before.restarts && after.state === 'ready' && after.pid !== before.pid) break;
    await sleep(100);
  }
  assert.equal(after.state, 'ready', JSON.stringify(after));
  assert.ok(after.restarts > before.restarts);
  const { client, transport } = await connect();
  const r = await client.callTool({ name: 'mock__echo', arguments: { message: 'again' } });
  assert.equal(r.content[0].text, 'again');
  await transport.terminateSession();
  await client.close();
});

test('nexus stops its backends and exits cleanly', async () => {
  const pids = Object.values((await getJson(nx.restPort, '/health')).data.backends).map((b) => b.pid);
  await nx.stopAndAssertClean();
  nx = null;
  for (const pid of pids) {
    let alive = true;
    try { process.kill(pid, 0); } catch { alive = false; }
    assert.equal(alive, false, `backend process ${pid} outlived nexus`);
  }
  dir.remove();
});
