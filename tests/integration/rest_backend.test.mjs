// Backends with `transport: rest`: plain HTTP/JSON services reached from any shard through that
// shard's own connection pools, with the same policy as MCP calls (bulkhead, breaker, replica
// balance, retries with backoff under a deadline) and the same views (/api/v1/connections,
// .../test, /metrics). Requests are driven through POST /debug/rest/{backend}, which calls
// nx_backends_http (the entry point workflow steps use) and answers {response, error, attempts}.
// The services are node:http servers written here that count what reaches them.
//
// The last tests are about MCP backends: "_meta": {"io.nexus/retry": {...}} on a tools/call
// replaces the backend's retry policy for that call, which a backend answering 503 makes
// visible as the number of tries it sees.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { startNexus, waitFor, getJson, request, tempDir, HOST, assertCleanExit } from './lib/nexus.mjs';

const RETRY_ATTEMPTS = 3; // svc's own retry policy
const MCP_ATTEMPTS = 4; // flaky's

let nx;
let dir;
let client;
let deadPort;
const servers = {};
const hits = new Map(); // tag -> requests seen
const healthGets = { A: 0, B: 0 };
const healthKeys = new Set(); // X-Api-Key values seen on health checks
const mcpTries = new Map(); // tag -> tools/call tries seen by the MCP backend
const hangsClosed = new Set(); // tags of /hang requests whose connection nexus closed

const count = (tag) => hits.get(tag) ?? 0;

// A REST service; <name> tells the replicas apart (X-Served-By).
function service(name) {
  return (req, res) => {
    let raw = '';
    req.on('data', (c) => { raw += c; });
    req.on('end', () => {
      const url = new URL(req.url, 'http://x');
      const tag = url.searchParams.get('tag');
      if (tag) hits.set(tag, count(tag) + 1);
      const json = (status, body, headers = {}) => {
        res.writeHead(status, { 'content-type': 'application/json', 'x-served-by': name, ...headers });
        res.end(JSON.stringify(body));
      };
      const path = url.pathname.replace(/^\/api/, '');
      if (path === '/health') {
        healthGets[name]++;
        healthKeys.add(req.headers['x-api-key']);
        json(200, { ok: true });
      } else if (path === '/echo') {
        let body = raw;
        try { body = JSON.parse(raw); } catch { /* text */ }
        json(200, { method: req.method, url: req.url, headers: req.headers, body },
          { 'set-cookie': ['a=1', 'b=2'] });
      } else if (path.startsWith('/status/')) {
        json(Number(path.slice(8)), { error: 'as asked' });
      } else if (path === '/text') {
        res.writeHead(200, { 'content-type': 'text/plain' }).end('hello, world');
      } else if (path === '/hang') {
        // never answers: nexus must give up on it (closeAllConnections ends what remains)
        res.on('close', () => hangsClosed.add(tag));
      } else {
        json(404, { error: 'no route' });
      }
    });
  };
}

// An MCP server over Streamable HTTP whose tool "down" always gets HTTP 503 (retryable).
function mcpBackend(req, res) {
  let body = '';
  req.on('data', (c) => { body += c; });
  req.on('end', () => {
    if (req.method !== 'POST') { res.writeHead(405).end(); return; }
    const msg = JSON.parse(body);
    const reply = (result) => {
      res.writeHead(200, { 'content-type': 'application/json', 'mcp-session-id': 'rest-test' });
      res.end(JSON.stringify({ jsonrpc: '2.0', id: msg.id, result }));
    };
    if (msg.id === undefined) { res.writeHead(202).end(); return; }
    if (msg.method === 'initialize') {
      reply({ protocolVersion: msg.params.protocolVersion, capabilities: { tools: {} },
        serverInfo: { name: 'flaky', version: '1' } });
    } else if (msg.method === 'tools/list') {
      reply({ tools: [{ name: 'down', inputSchema: { type: 'object', properties: { tag: { type: 'string' } } } }] });
    } else if (msg.method === 'tools/call') {
      const tag = msg.params.arguments.tag;
      mcpTries.set(tag, (mcpTries.get(tag) ?? 0) + 1);
      res.writeHead(503, { 'content-type': 'text/plain' }).end('overloaded');
    } else {
      reply({});
    }
  });
}

async function listen(handler) {
  const s = http.createServer(handler);
  await new Promise((r) => s.listen(0, HOST, r));
  return s;
}

// A port nothing listens on: connections to it are refused.
async function closedPort() {
  const s = net.createServer();
  await new Promise((r) => s.listen(0, HOST, r));
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}

async function rest(backend, req) {
  const r = await request(nx.restPort, {
    method: 'POST', path: `/debug/rest/${backend}`, headers: { 'content-type': 'application/json' },
    body: JSON.stringify(req), timeoutMs: 15000,
  });
  assert.equal(r.status, 200, r.text);
  return r.json();
}

const connection = async (id) => (await getJson(nx.restPort, `/api/v1/connections/${id}/metrics`)).data;

before(async () => {
  servers.A = await listen(service('A'));
  servers.B = await listen(service('B'));
  servers.mcp = await listen(mcpBackend);
  deadPort = await closedPort();
  const port = (s) => s.address().port;
  dir = tempDir();
  const config = dir.path('rest.yaml');
  const health = 'health: {interval: 100ms, timeout: 500ms, unhealthy_after: 2, healthy_after: 1}';
  fs.writeFileSync(config, [
    'servers:',
    '  - name: svc',
    '    transport: rest',
    `    url: http://${HOST}:${port(servers.A)}/api`,
    '    headers: {X-Api-Key: k1}',
    `    retry: {attempts: ${RETRY_ATTEMPTS}, base: 10ms, cap: 40ms}`,
    '    timeouts: {call: 5s, deadline: 10s}',
    '    breaker: {enabled: false}',
    `    ${health}`,
    '  - name: pair',
    '    transport: rest',
    `    urls: [http://${HOST}:${port(servers.A)}/, http://${HOST}:${port(servers.B)}/]`,
    '    balance: round_robin',
    `    ${health}`,
    '  - name: down',
    '    transport: rest',
    `    url: http://${HOST}:${deadPort}/`,
    '    retry: {attempts: 2, base: 5ms, cap: 10ms}',
    '    breaker: {window: 4, minimum_calls: 4, failure_rate: 50, open_for: 60s}',
    `    ${health}`,
    '  - name: tiny',
    '    transport: rest',
    `    url: http://${HOST}:${port(servers.A)}/`,
    '    bulkhead: {max_concurrent: 1}',
    '    timeouts: {call: 200ms, deadline: 5s}',
    '    retry: {attempts: 2, base: 5ms, cap: 10ms}',
    '    breaker: {enabled: false}',
    '    health: {enabled: false}',
    '  - name: flaky',
    '    transport: http',
    `    url: http://${HOST}:${port(servers.mcp)}/mcp`,
    `    retry: {attempts: ${MCP_ATTEMPTS}, base: 5ms, cap: 20ms}`,
    '    breaker: {enabled: false}',
    '    health: {enabled: false, eject_after: 0}',
    '',
  ].join('\n'));
  nx = await startNexus({ shards: 2, config, debugRoutes: true });
  await waitFor('flaky listed', async () =>
    (await getJson(nx.restPort, '/health')).data.backends.flaky.tools === 1);
  await waitFor('svc connected', async () => (await connection('svc')).status === 'connected');
  client = new Client({ name: 'rest-test', version: '1.0.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(`http://${HOST}:${nx.mcpPort}/mcp`)));
});

after(async () => {
  if (client) await client.close().catch(() => {});
  if (nx) await nx.kill();
  for (const s of Object.values(servers)) {
    s.closeAllConnections();
    s.close();
  }
});

test('GET with a query: the replica path, the backend headers and the request headers go along', async () => {
  const r = await rest('svc', { method: 'GET', path: '/echo?x=1&y=two', headers: { 'X-Trace': 't-1' } });
  assert.equal(r.error, null);
  assert.equal(r.attempts, 1);
  assert.equal(r.response.status, 200);
  assert.equal(r.response.headers['x-served-by'], 'A');
  assert.equal(r.response.headers['content-type'], 'application/json');
  assert.equal(r.response.headers['set-cookie'], 'a=1, b=2', 'repeated headers are joined');
  const seen = r.response.body;
  assert.equal(seen.method, 'GET');
  assert.equal(seen.url, '/api/echo?x=1&y=two');
  assert.equal(seen.headers['x-api-key'], 'k1');
  assert.equal(seen.headers['x-trace'], 't-1');
});

test('POST with a JSON body; a text answer comes back as a string', async () => {
  const r = await rest('svc', { method: 'POST', path: 'echo', body: { a: 1, b: [2, 'three'] } });
  assert.equal(r.response.status, 200);
  assert.equal(r.response.body.method, 'POST');
  assert.equal(r.response.body.headers['content-type'], 'application/json');
  assert.deepEqual(r.response.body.body, { a: 1, b: [2, 'three'] });
  const put = await rest('svc', { method: 'PUT', path: '/echo', body: 'plain', content_type: 'text/plain' });
  assert.equal(put.response.body.body, 'plain');
  assert.equal(put.response.body.headers['content-type'], 'text/plain');
  const t = await rest('svc', { path: '/text' });
  assert.equal(t.response.body, 'hello, world');
});

test('4xx and 500 are answers: handed back, never retried', async () => {
  for (const code of [400, 404, 429, 500]) {
    const tag = `s${code}`;
    const r = await rest('svc', { path: `/status/${code}?tag=${tag}` });
    assert.equal(r.error, null);
    assert.equal(r.response.status, code);
    assert.deepEqual(r.response.body, { error: 'as asked' });
    assert.equal(r.attempts, 1);
    assert.equal(count(tag), 1, `${code} reached the service ${count(tag)} times`);
  }
});

test('503 is retried up to the backend\'s attempts; the last answer is handed back', async () => {
  for (const code of [502, 503, 504]) {
    const tag = `r${code}`;
    const r = await rest('svc', { path: `/status/${code}?tag=${tag}` });
    assert.equal(r.response.status, code);
    assert.equal(r.attempts, RETRY_ATTEMPTS);
    assert.equal(count(tag), RETRY_ATTEMPTS);
  }
});

test('the request\'s retry policy replaces the backend\'s; a malformed one is ignored', async () => {
  const one = await rest('svc', { path: '/status/503?tag=o1', retry: { attempts: 1 } });
  assert.equal(one.attempts, 1);
  assert.equal(count('o1'), 1);
  const five = await rest('svc', { path: '/status/503?tag=o5', retry: { attempts: 5, base: 1, cap: 5 } });
  assert.equal(five.attempts, 5);
  assert.equal(count('o5'), 5);
  const bad = await rest('svc', { path: '/status/503?tag=obad', retry: { attempts: 50 } });
  assert.equal(bad.attempts, RETRY_ATTEMPTS);
  assert.equal(count('obad'), RETRY_ATTEMPTS);
});

test('the deadline cuts a request the service never answers', async () => {
  const t0 = Date.now();
  const r = await rest('svc', { path: '/hang', timeout_ms: 300 });
  const ms = Date.now() - t0;
  assert.equal(r.response, null);
  assert.equal(r.error.data.reason, 'deadline');
  assert.equal(r.error.data.backend, 'svc');
  assert.match(r.error.message, /svc did not answer within 300 ms/);
  assert.equal(r.attempts, 1);
  assert.ok(ms >= 280 && ms < 3000, `answered after ${ms} ms`);
});

test('the bulkhead bounds requests in flight; a try that outlives timeouts.call is retried', async () => {
  const slow = rest('tiny', { path: '/hang?tag=t-slow', timeout_ms: 2000 });
  await waitFor('the slow request arrived', () => count('t-slow') === 1);
  const t0 = Date.now();
  const full = await rest('tiny', { path: '/echo' });
  assert.equal(full.error.data.reason, 'bulkhead');
  assert.equal(full.error.data.backend, 'tiny');
  assert.equal(full.attempts, 0);
  assert.ok(Date.now() - t0 < 1000);
  const r = await slow;
  assert.equal(r.error.data.reason, 'timeout');
  assert.equal(r.error.data.retryable, true);
  assert.match(r.error.message, /tiny did not answer within 200 ms/);
  assert.equal(r.attempts, 2);
  assert.equal(count('t-slow'), 2);
  await waitFor('both tries closed', () => hangsClosed.has('t-slow'));
  const ok = await rest('tiny', { path: '/echo' }); // the bulkhead place came back
  assert.equal(ok.response.status, 200);
});

test('a client that goes away cancels its request: the connection to the service closes', async () => {
  const req = http.request({ host: HOST, port: nx.restPort, method: 'POST', path: '/debug/rest/svc',
    headers: { 'content-type': 'application/json' }, agent: false });
  req.on('error', () => {});
  req.end(JSON.stringify({ path: '/hang?tag=t-gone' }));
  await waitFor('the request arrived', () => count('t-gone') === 1);
  req.destroy();
  await waitFor('nexus closed its request', () => hangsClosed.has('t-gone'));
  const c = await waitFor('nothing in flight', async () => {
    const x = await connection('svc');
    return x.pool.in_flight === 0 ? x : null;
  });
  assert.equal(count('t-gone'), 1, 'a cancelled request is not retried');
  assert.equal(c.instances.reduce((a, i) => a + i.outstanding, 0), 0);
});

test('a refused connection is a retryable error naming the backend, after its retries', async () => {
  const r = await rest('down', { path: '/anything' });
  assert.equal(r.response, null);
  assert.equal(r.error.data.backend, 'down');
  assert.equal(r.error.data.reason, 'refused');
  assert.equal(r.error.data.retryable, true);
  assert.match(r.error.message, /backend down: .*refused/i);
  assert.equal(r.attempts, 2);
});

test('the breaker opens after failures: requests then fail fast with circuit_open', async () => {
  let r;
  for (let i = 0; i < 6; i++) {
    r = await rest('down', { path: '/anything' });
    if (r.error.data.reason === 'circuit_open') break;
  }
  assert.equal(r.error.data.reason, 'circuit_open', JSON.stringify(r.error));
  const t0 = Date.now();
  const fast = await rest('down', { path: '/anything' });
  assert.equal(fast.error.data.reason, 'circuit_open');
  assert.equal(fast.attempts, 0, 'no try is made while the circuit is open');
  assert.ok(fast.error.data.retryAfterMs > 0);
  assert.match(fast.error.message, /backend down is failing \(circuit open\)/);
  assert.ok(Date.now() - t0 < 1000);
  const c = await connection('down');
  assert.equal(c.breaker, 'open');
  assert.equal(c.status, 'disconnected');
});

test('two replicas share the requests (round robin on each shard)', async () => {
  const by = { A: 0, B: 0 };
  for (let i = 0; i < 12; i++) {
    const r = await rest('pair', { path: '/echo' });
    by[r.response.headers['x-served-by']]++;
  }
  assert.ok(by.A >= 4 && by.B >= 4, JSON.stringify(by));
});

test('rest backends are connections: listed with status, tested with a GET of the health path', async () => {
  const list = (await getJson(nx.restPort, '/api/v1/connections')).data;
  const byId = Object.fromEntries(list.connections.map((c) => [c.id, c]));
  assert.equal(byId.svc.transport, 'rest');
  assert.equal(byId.svc.status, 'connected');
  assert.equal(byId.pair.instances.length, 2 * 2, 'a pool per shard per replica');
  assert.match(byId.svc.instances[0].url, /\/api$/);
  assert.ok(byId.svc.calls > 0 && byId.svc.success_rate < 1, JSON.stringify(byId.svc));
  assert.ok(byId.svc.latency_ms.max >= byId.svc.latency_ms.min);
  assert.ok(healthGets.A > 0, 'health checks GET /health');
  // svc's checks carry its headers (pair's, to the same service, have none).
  assert.ok(healthKeys.has('k1'), 'health checks carry the backend headers');

  const ok = await request(nx.restPort, { method: 'POST', path: '/api/v1/connections/svc/test' });
  assert.equal(ok.status, 200);
  const body = ok.json();
  assert.equal(body.ok, true, ok.text);
  assert.equal(body.status, 200);
  assert.ok(body.latency_ms > 0);
  const bad = (await request(nx.restPort, { method: 'POST', path: '/api/v1/connections/down/test' })).json();
  assert.equal(bad.ok, false);
  assert.match(bad.error, /GET \/health: .*refused/i);
  // Failing health checks: nothing serves.
  await waitFor('down disconnected by its checks', async () => {
    const d = await connection('down');
    return d.instances.every((i) => i.health === 'unhealthy');
  });
  const h = (await getJson(nx.restPort, '/health')).data.backends.svc;
  assert.equal(h.transport, 'rest');
  assert.equal(h.state, 'ready');
});

test('/metrics has lines for rest backends', async () => {
  const m = (await request(nx.restPort, { path: '/metrics' })).text;
  const value = (name, backend) => {
    const line = m.split('\n').find((l) => l.startsWith(`${name}{backend="${backend}",transport="rest"}`));
    assert.ok(line, `${name} for ${backend}`);
    return Number(line.split(' ').pop());
  };
  assert.equal(value('nexus_backend_up', 'svc'), 1);
  assert.equal(value('nexus_backend_up', 'down'), 0);
  assert.ok(value('nexus_backend_calls_total', 'svc') >= 10);
  assert.ok(value('nexus_backend_retries_total', 'svc') >= 3 * (RETRY_ATTEMPTS - 1));
  assert.ok(value('nexus_backend_failures_total', 'svc') >= 1);
  assert.equal(value('nexus_backend_breaker_open', 'down'), 1);
  assert.equal(value('nexus_backend_in_flight', 'svc'), 0);
});

test('unknown and non-rest backends are 404; a request with CR/LF in it is 400', async () => {
  for (const name of ['nope', 'flaky']) {
    const r = await request(nx.restPort, {
      method: 'POST', path: `/debug/rest/${name}`, body: '{"path": "/"}',
      headers: { 'content-type': 'application/json' },
    });
    assert.equal(r.status, 404, name);
  }
  const bad = await request(nx.restPort, {
    method: 'POST', path: '/debug/rest/svc', body: JSON.stringify({ path: '/x\r\nEvil: 1' }),
    headers: { 'content-type': 'application/json' },
  });
  assert.equal(bad.status, 400);
});

const callDown = (tag, meta) => client.callTool({ name: 'flaky__down', arguments: { tag }, ...(meta ? { _meta: meta } : {}) })
  .then(() => assert.fail('a 503 backend cannot succeed'), (e) => e);

test('MCP: "_meta": {"io.nexus/retry"} replaces the backend\'s retry policy for one call', async () => {
  let e = await callDown('m-default');
  assert.match(e.message, /flaky answered HTTP 503/);
  assert.equal(mcpTries.get('m-default'), MCP_ATTEMPTS);
  e = await callDown('m-one', { 'io.nexus/retry': { attempts: 1 } });
  assert.match(e.message, /flaky answered HTTP 503/);
  assert.equal(mcpTries.get('m-one'), 1, 'attempts 1: one try, no retry');
  await callDown('m-two', { 'io.nexus/retry': { attempts: 2, base: 1, cap: 2 } });
  assert.equal(mcpTries.get('m-two'), 2);
  await callDown('m-bad', { 'io.nexus/retry': { attempts: 3, base: 50, cap: 10 } });
  assert.equal(mcpTries.get('m-bad'), MCP_ATTEMPTS, 'a malformed policy is ignored');
});

test('a request in flight at SIGTERM is answered before nexus exits cleanly', async () => {
  await client.close();
  client = null;
  const pending = rest('svc', { path: '/hang?tag=t-drain', timeout_ms: 500 });
  await waitFor('the request arrived', () => count('t-drain') === 1);
  const stopped = nx.stop();
  const r = await pending;
  assert.equal(r.error.data.reason, 'deadline');
  const exit = await stopped;
  nx = null;
  assertCleanExit(exit);
  assert.ok(hangsClosed.has('t-drain'));
});
