// Active health checks by HTTP GET: an HTTP backend with `health: {path: /healthz}` is checked
// with a GET of that path on its pool (2xx passes) instead of an MCP ping. A backend whose
// /healthz starts failing turns unhealthy (the connection degraded) while its MCP session
// still works, and recovers when /healthz passes again.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import { startNexus, waitFor, getJson, sleep, tempDir, HOST, assertCleanExit } from './lib/nexus.mjs';

let server;
let nx;
let dir;
let healthStatus = 200;
let healthGets = 0;
let pings = 0;

function backend(req, res) {
  if (req.method === 'GET' && req.url === '/healthz') {
    healthGets++;
    res.writeHead(healthStatus, { 'content-type': 'text/plain' }).end(healthStatus === 200 ? 'ok' : 'down');
    return;
  }
  if (req.method !== 'POST') { res.writeHead(405).end(); return; }
  let body = '';
  req.on('data', (c) => { body += c; });
  req.on('end', () => {
    const msg = JSON.parse(body);
    if (msg.id === undefined) { res.writeHead(202).end(); return; }
    if (msg.method === 'ping') pings++;
    const result = msg.method === 'initialize'
      ? { protocolVersion: msg.params.protocolVersion, capabilities: { tools: {} },
        serverInfo: { name: 'health-backend', version: '1' } }
      : msg.method === 'tools/list'
        ? { tools: [{ name: 'noop', inputSchema: { type: 'object' } }] }
        : {};
    res.writeHead(200, { 'content-type': 'application/json', 'mcp-session-id': 'health-test' });
    res.end(JSON.stringify({ jsonrpc: '2.0', id: msg.id, result }));
  });
}

const connection = async () => (await getJson(nx.restPort, '/api/v1/connections/web/metrics')).data;

before(async () => {
  server = http.createServer(backend);
  await new Promise((r) => server.listen(0, HOST, r));
  dir = tempDir();
  const config = dir.path('gateway.yaml');
  fs.writeFileSync(config, [
    'servers:',
    '  - name: web',
    '    transport: http',
    `    url: http://${HOST}:${server.address().port}/mcp`,
    '    health: {path: /healthz, interval: 100ms, timeout: 500ms, unhealthy_after: 2, healthy_after: 1}',
    '',
  ].join('\n'));
  nx = await startNexus({ shards: 1, config });
  await waitFor('connected', async () => (await connection()).status === 'connected');
});

after(async () => {
  if (nx) await nx.kill();
  if (server) server.close();
});

test('the backend is checked with GET of its health path, not with MCP pings', async () => {
  const before = healthGets;
  await sleep(500);
  assert.ok(healthGets - before >= 3, `${healthGets - before} GETs of /healthz in 500 ms`);
  assert.equal(pings, 0, 'no MCP ping was sent');
  const c = await connection();
  assert.ok(c.instances[0].last_check_ms > 0);
});

test('a failing health path makes the instance unhealthy; passing again makes it healthy', async () => {
  healthStatus = 503;
  const bad = await waitFor('degraded', async () => {
    const c = await connection();
    return c.status === 'degraded' && c.instances[0].health === 'unhealthy' ? c : null;
  });
  assert.equal(bad.instances[0].state, 'ready', 'the session itself is fine');
  healthStatus = 200;
  await waitFor('connected again', async () => (await connection()).status === 'connected');
});

test('nexus exits cleanly', async () => {
  const r = await nx.stop();
  nx = null;
  assertCleanExit(r);
});
