// The connection manager: backends seen as connections over REST (/api/v1/connections, .../
// {id}/metrics, .../{id}/test) and as the MCP tools list_connections, get_connection_metrics and
// test_connection; their counters in /metrics; and active health checks (an MCP ping per
// instance): a backend process that stops answering (SIGSTOP) turns unhealthy and the
// connection degraded, and recovers when it answers again.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { startNexus, waitFor, getJson, request, sleep, tempDir, HOST, assertCleanExit } from './lib/nexus.mjs';
import { NXMOCK } from './lib/nxmock.mjs';

let nx;
let dir;
let client;

async function connection(id) {
  const r = await getJson(nx.restPort, `/api/v1/connections/${id}/metrics`);
  assert.equal(r.status, 200);
  return r.data;
}

before(async () => {
  dir = tempDir();
  const config = dir.path('gateway.yaml');
  fs.writeFileSync(config, [
    'servers:',
    '  - name: mock',
    '    transport: stdio',
    `    command: ${NXMOCK}`,
    '    args: ["--stdio", "--log-level", "warn"]',
    '    health: {interval: 100ms, timeout: 100ms, unhealthy_after: 2, healthy_after: 1}',
    '  - name: dead',
    '    transport: stdio',
    '    command: /bin/false',
    '    restart: {base: 1s, cap: 1s}',
    '',
  ].join('\n'));
  nx = await startNexus({ shards: 2, config });
  await waitFor('mock ready', async () => (await connection('mock')).status === 'connected');
  client = new Client({ name: 'connections-test', version: '1.0.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(`http://${HOST}:${nx.mcpPort}/mcp`)));
});

after(async () => {
  if (client) await client.close().catch(() => {});
  if (nx) await nx.kill();
});

test('GET /api/v1/connections lists every backend with its status', async () => {
  const r = await getJson(nx.restPort, '/api/v1/connections');
  assert.equal(r.status, 200);
  assert.equal(r.data.count, 2);
  const byId = Object.fromEntries(r.data.connections.map((c) => [c.id, c]));
  assert.equal(byId.mock.status, 'connected');
  assert.equal(byId.mock.transport, 'stdio');
  assert.equal(byId.mock.breaker, 'closed');
  assert.ok(['disconnected', 'unknown'].includes(byId.dead.status), byId.dead.status);
});

test('calls show in latency, success rate and /metrics', async () => {
  for (let i = 0; i < 5; i++) {
    const r = await client.callTool({ name: 'mock__echo', arguments: { message: `x${i}` } });
    assert.equal(r.content[0].text, `x${i}`);
  }
  const c = await connection('mock');
  assert.ok(c.calls >= 5, `calls ${c.calls}`);
  assert.equal(c.success_rate, 1);
  assert.ok(c.latency_ms.min > 0 && c.latency_ms.min <= c.latency_ms.avg &&
    c.latency_ms.avg <= c.latency_ms.max, JSON.stringify(c.latency_ms));
  const m = await request(nx.restPort, { path: '/metrics' });
  const line = m.text.split('\n').find((l) => l.startsWith('nexus_backend_calls_total{backend="mock"'));
  assert.ok(line && Number(line.split(' ').pop()) >= 5, line);
  assert.match(m.text, /nexus_backend_up\{backend="dead",transport="stdio"\} 0/);
});

test('POST .../test pings the backend; unknown ids are 404', async () => {
  const ok = await request(nx.restPort, { method: 'POST', path: '/api/v1/connections/mock/test' });
  assert.equal(ok.status, 200);
  const body = JSON.parse(ok.text);
  assert.equal(body.ok, true);
  assert.ok(body.latency_ms > 0);
  const dead = JSON.parse((await request(nx.restPort,
    { method: 'POST', path: '/api/v1/connections/dead/test' })).text);
  assert.equal(dead.ok, false);
  assert.match(dead.error, /not connected/);
  const none = await request(nx.restPort, { method: 'POST', path: '/api/v1/connections/nope/test' });
  assert.equal(none.status, 404);
  assert.match(JSON.parse(none.text).error.message, /no connection named 'nope'/);
  assert.equal((await getJson(nx.restPort, '/api/v1/connections/nope/metrics')).status, 404);
});

test('the same as MCP tools', async () => {
  const list = await client.callTool({ name: 'list_connections', arguments: {} });
  assert.deepEqual(list.structuredContent.connections.map((c) => c.id).sort(), ['dead', 'mock']);
  const one = await client.callTool({ name: 'get_connection_metrics', arguments: { id: 'mock' } });
  assert.equal(one.structuredContent.status, 'connected');
  const t = await client.callTool({ name: 'test_connection', arguments: { id: 'mock' } });
  assert.equal(t.structuredContent.ok, true);
  const bad = await client.callTool({ name: 'test_connection', arguments: { id: 'nope' } });
  assert.equal(bad.isError, true);
});

test('health checks: a backend that stops answering turns unhealthy, then recovers', async () => {
  const pid = (await getJson(nx.restPort, '/health')).data.backends.mock.pid;
  assert.ok(pid > 0);
  process.kill(pid, 'SIGSTOP');
  try {
    const c = await waitFor('degraded', async () => {
      const x = await connection('mock');
      return x.status === 'degraded' && x.instances[0].health === 'unhealthy' ? x : null;
    });
    assert.equal(c.instances[0].state, 'ready', 'the process is there, it just does not answer');
  } finally {
    process.kill(pid, 'SIGCONT');
  }
  await waitFor('connected again', async () => (await connection('mock')).status === 'connected');
  const r = await client.callTool({ name: 'mock__echo', arguments: { message: 'back' } });
  assert.equal(r.content[0].text, 'back');
});

test('nexus exits cleanly', async () => {
  await client.close();
  client = null;
  const r = await nx.stop();
  nx = null;
  assertCleanExit(r);
});
