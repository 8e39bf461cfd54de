// Retries seen from the backend's side: an MCP server over Streamable HTTP (written here) that
// answers every tools/call with HTTP 503 and notes when each try arrived. nexus must try again
// with exponential backoff and full jitter — each wait within its doubling bound, longer on
// average the later the try — give up after the configured attempts with an error naming the
// backend, never retry a tool's isError result, and let the retry budget stop a retry storm.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { startNexus, getJson, sleep, tempDir, HOST, assertCleanExit } from './lib/nexus.mjs';

const BASE_MS = 40;
const CAP_MS = 320;
const ATTEMPTS = 4;
const SLACK_MS = 60; // scheduling and loopback time on a busy 2-core machine

let server;
let port;
let nx;
let dir;
let client;
const tries = new Map(); // call tag -> arrival times (ms)
let isErrorCalls = 0;

function backend(req, res) {
  let body = '';
  req.on('data', (c) => { body += c; });
  req.on('end', () => {
    if (req.method !== 'POST') { res.writeHead(405).end(); return; }
    const msg = JSON.parse(body);
    const reply = (result) => {
      res.writeHead(200, { 'content-type': 'application/json', 'mcp-session-id': 'retry-test' });
      res.end(JSON.stringify({ jsonrpc: '2.0', id: msg.id, result }));
    };
    if (msg.id === undefined) { res.writeHead(202).end(); return; }
    if (msg.method === 'initialize') {
      reply({ protocolVersion: msg.params.protocolVersion, capabilities: { tools: {} },
        serverInfo: { name: 'retry-backend', version: '1' } });
    } else if (msg.method === 'tools/list') {
      const schema = { type: 'object', properties: { tag: { type: 'string' } } };
      reply({ tools: [{ name: 'down', inputSchema: schema }, { name: 'oops', inputSchema: schema }] });
    } else if (msg.method === 'tools/call' && msg.params.name === 'oops') {
      isErrorCalls++;
      reply({ content: [{ type: 'text', text: 'tool failed' }], isError: true });
    } else if (msg.method === 'tools/call') {
      const tag = msg.params.arguments.tag;
      if (!tries.has(tag)) tries.set(tag, []);
      tries.get(tag).push(performance.now());
      res.writeHead(503, { 'content-type': 'text/plain' }).end('overloaded');
    } else {
      reply({});
    }
  });
}

before(async () => {
  server = http.createServer(backend);
  await new Promise((r) => server.listen(0, HOST, r));
  port = server.address().port;
  dir = tempDir();
  const config = dir.path('gateway.yaml');
  fs.writeFileSync(config, [
    'servers:',
    '  - name: flaky',
    '    transport: http',
    `    url: http://${HOST}:${port}/mcp`,
    `    retry: {attempts: ${ATTEMPTS}, base: ${BASE_MS}ms, cap: ${CAP_MS}ms, budget_percent: 20, min_retries: 2}`,
    '    breaker: {enabled: false}',
    '    health: {enabled: false, eject_after: 0}',
    '    timeouts: {call: 2s, deadline: 10s}',
    '',
  ].join('\n'));
  nx = await startNexus({ shards: 1, config });
  for (let i = 0; i < 100; i++) {
    const b = (await getJson(nx.restPort, '/health')).data.backends.flaky;
    if (b.state === 'ready' && b.tools === 2) break;
    await sleep(50);
  }
  client = new Client({ name: 'retry-test', version: '1.0.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(`http://${HOST}:${nx.mcpPort}/mcp`)));
});

after(async () => {
  if (client) await client.close().catch(() => {});
  if (nx) await nx.kill();
  if (server) server.close();
});

const callDown = (tag) => client.callTool({ name: 'flaky__down', arguments: { tag } })
  .then(() => assert.fail('a 503 backend cannot succeed'), (e) => e);

test('each retry waits within its doubling bound, and the tries stop at the attempts', async () => {
  const gaps = [[], [], []];
  for (let i = 0; i < 12; i++) {
    const tag = `seq${i}`;
    const e = await callDown(tag);
    assert.match(e.message, /flaky answered HTTP 503/);
    const t = tries.get(tag);
    assert.equal(t.length, ATTEMPTS, `${tag}: ${t.length} tries`);
    for (let k = 1; k < t.length; k++) {
      const gap = t[k] - t[k - 1];
      const bound = Math.min(CAP_MS, BASE_MS * 2 ** (k - 1));
      assert.ok(gap <= bound + SLACK_MS, `${tag}: wait ${k} was ${gap.toFixed(1)} ms, bound ${bound}`);
      gaps[k - 1].push(gap);
    }
  }
  // Full jitter draws each wait at random below its bound: the bounds double, so on average
  // the third wait is longer than the first.
  const mean = (a) => a.reduce((x, y) => x + y, 0) / a.length;
  assert.ok(mean(gaps[2]) > mean(gaps[0]),
    `mean waits ${gaps.map((g) => mean(g).toFixed(1)).join(', ')} ms`);
  const h = (await getJson(nx.restPort, '/health')).data.backends.flaky;
  assert.ok(h.retries >= 12 * (ATTEMPTS - 1), `retries counted: ${h.retries}`);
});

test('a tool\'s isError result is never retried', async () => {
  const before = isErrorCalls;
  const r = await client.callTool({ name: 'flaky__oops', arguments: {} });
  assert.equal(r.isError, true);
  assert.equal(isErrorCalls - before, 1);
});

test('the retry budget stops a retry storm', async () => {
  const N = 30;
  tries.clear();
  const errors = await Promise.all(Array.from({ length: N }, (_, i) => callDown(`storm${i}`)));
  assert.equal(errors.length, N, 'every call was answered');
  const counts = [...tries.values()].map((t) => t.length);
  const retries = counts.reduce((a, c) => a + c - 1, 0);
  // Without a budget: N * (ATTEMPTS - 1) = 90 retries. The budget allows about 20% of the calls
  // in flight (at least 2) to be retrying at once.
  assert.ok(retries < N * (ATTEMPTS - 1) / 2, `${retries} retries for ${N} calls`);
  assert.ok(counts.some((c) => c === 1), 'some calls were not retried at all');
});

test('nexus exits cleanly', async () => {
  await client.close();
  client = null;
  const r = await nx.stop();
  nx = null;
  assertCleanExit(r);
});
