// REST access to tools: GET /tools lists the whole MCP catalog (native tools and those of stdio
// backends) and POST /tools/{name} calls one with the JSON body as its arguments, through the
// same MCP server core an MCP client reaches. Two shards, nxmock backends owned by one of them,
// so calls cross shards. Every error path has its answer: 404 unknown tool, 400 bad body or
// name, 413 too large, 502 a backend's JSON-RPC error, 503 + Retry-After open breaker / full
// bulkhead; an isError result is a 200. A client that goes away cancels its call (the backend
// hears of it), a call in flight at shutdown is answered, and nexus exits cleanly (no sanitizer
// report).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import {
  startNexus, nexusBin, getJson, request, sleep, tempDir, assertJsonError, RawConn, post, get, HOST,
} from './lib/nexus.mjs';

const NXMOCK = path.join(path.dirname(nexusBin()), 'nxmock');
const MAX_BODY = 64 * 1024;

let nx;
let dir;
before(async () => {
  dir = tempDir();
  const config = dir.path('rest_tools.yaml');
  fs.writeFileSync(config, [
    'servers:',
    '  - name: mock',
    '    transport: stdio',
    `    command: ${NXMOCK}`,
    '    args: ["--stdio", "--log-level", "warn"]',
    '    restart: {base: 100ms, cap: 1s}',
    '  - name: flaky',
    '    transport: stdio',
    `    command: ${NXMOCK}`,
    '    args: ["--stdio", "--error-rate", "1", "--log-level", "warn"]',
    '    retry: {attempts: 1}',
    '    breaker: {window: 4, minimum_calls: 4, failure_rate: 50, open_for: 5s, half_open_calls: 1}',
    '  - name: narrow',
    '    transport: stdio',
    `    command: ${NXMOCK}`,
    '    args: ["--stdio", "--log-level", "warn"]',
    '    bulkhead: {max_concurrent: 1}',
    '',
  ].join('\n'));
  nx = await startNexus({ shards: 2, config, debugRoutes: true, set: { 'http.max_body': `${MAX_BODY}` } });
  for (let i = 0; i < 100; i++) {
    const h = (await getJson(nx.restPort, '/health')).data.backends;
    if (['mock', 'flaky', 'narrow'].every((n) => h[n]?.state === 'ready' && h[n].tools > 0)) break;
    await sleep(100);
  }
});
after(async () => {
  if (nx) await nx.kill();
});

/** POST /tools/<name> with <body> (an object is sent as JSON, a string as is). */
function callTool(name, body = {}, { headers = {} } = {}) {
  return request(nx.restPort, {
    method: 'POST',
    path: `/tools/${name}`,
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body),
  });
}

/** Asserts a 200 with a JSON CallToolResult and returns it. */
function okResult(r, what) {
  assert.equal(r.status, 200, `${what}: ${r.status} ${r.text}`);
  assert.match(String(r.headers['content-type']), /^application\/json/);
  const j = r.json();
  assert.ok(Array.isArray(j.content), `${what}: not a CallToolResult: ${r.text}`);
  assert.ok(!('jsonrpc' in j) && !('result' in j), `${what}: the JSON-RPC envelope leaked: ${r.text}`);
  return j;
}

async function mockStats() {
  return okResult(await callTool('mock__stats'), 'mock__stats').structuredContent;
}

test('GET /tools lists native and backend tools, the same catalog MCP clients see', async () => {
  const r = await getJson(nx.restPort, '/tools');
  assert.equal(r.status, 200);
  const { tools, count } = r.data;
  assert.ok(Array.isArray(tools));
  assert.equal(count, tools.length);
  const names = tools.map((t) => t.name);
  for (const n of ['health_check', 'get_server_metrics', 'get_available_tools', 'debug_sleep',
    'mock__echo', 'mock__sleep', 'mock__stats', 'flaky__echo', 'narrow__sleep'])
    assert.ok(names.includes(n), `${n} missing from ${names}`);
  assert.ok(tools.every((t) => typeof t.inputSchema === 'object'), 'Tool objects as listed by MCP');
  assert.equal(new Set(names).size, names.length, 'no tool twice');

  const client = new Client({ name: 'rest-tools-test', version: '1.0.0' });
  const transport = new StreamableHTTPClientTransport(new URL(`http://${HOST}:${nx.mcpPort}/mcp`));
  await client.connect(transport);
  const viaMcp = [];
  let cursor;
  for (let page = 0; page < 100; page++) {
    const res = await client.listTools(cursor ? { cursor } : {});
    viaMcp.push(...res.tools);
    cursor = res.nextCursor;
    if (!cursor) break;
  }
  assert.deepEqual(tools, viaMcp, 'GET /tools and MCP tools/list agree, in order');
  await transport.terminateSession();
  await client.close();

  const head = await request(nx.restPort, { method: 'HEAD', path: '/tools' });
  assert.equal(head.status, 200);
  const wrong = await request(nx.restPort, { method: 'POST', path: '/tools', body: '{}' });
  assertJsonError(wrong, 405);
  const doc = (await getJson(nx.restPort, '/openapi.json')).data;
  assert.ok(doc.paths['/tools'].get, 'GET /tools in the OpenAPI document');
  assert.equal(doc.paths['/tools/{name}'].post.parameters[0].name, 'name');
});

test('POST /tools/health_check: a native tool, body empty or {}', async () => {
  for (const body of ['', '{}', ' \r\n\t ']) {
    const j = okResult(await callTool('health_check', body), `body ${JSON.stringify(body)}`);
    assert.equal(j.structuredContent.status, 'ok');
    assert.equal(j.structuredContent.shards, 2);
    assert.ok(!j.isError);
  }
  // The tool name is percent-decoded.
  const enc = okResult(await callTool('health%5Fcheck'), 'health%5Fcheck');
  assert.equal(enc.structuredContent.status, 'ok');
});

test('backend tools answer from both shards (the backend lives on one)', { timeout: 30000 }, async () => {
  const perShard = async () => (await getJson(nx.restPort, '/stats')).data.per_shard.map((s) => s.requests);
  const before = await perShard();
  const N = 24;
  const results = await Promise.all(Array.from({ length: N }, (_, i) =>
    callTool('mock__echo', { message: `hi ${i} ✓` })));
  results.forEach((r, i) => assert.equal(okResult(r, `echo ${i}`).content[0].text, `hi ${i} ✓`));
  const after = await perShard();
  const delta = after.map((n, i) => n - before[i]);
  assert.equal(delta.reduce((a, b) => a + b, 0), N + 1, `requests per shard ${delta} (+1: /stats)`);
  assert.ok(delta.every((d) => d >= 2), `every shard answered calls (per shard: ${delta})`);
  // A structured result passes through as the tool wrote it; encoded names work for backends.
  const sum = okResult(await callTool('mock%5F%5Fadd', { a: 0.1, b: 0.2 }), 'add');
  assert.equal(sum.structuredContent.sum, 0.1 + 0.2);
  const slow = okResult(await callTool('mock__sleep', { ms: 200 }), 'sleep');
  assert.equal(slow.content[0].text, 'slept 200 ms');
});

test('isError results are 200 with isError: true', async () => {
  const r = okResult(await callTool('mock__fail', { mode: 'isError' }), 'fail isError');
  assert.equal(r.isError, true);
  assert.match(r.content[0].text, /injected isError/);
  // Arguments that break a native tool's schema: an isError result naming the problem.
  const bad = okResult(await callTool('health_check', { unexpected: 1 }), 'bad args');
  assert.equal(bad.isError, true);
  assert.match(bad.content[0].text, /Invalid arguments for tool health_check/);
});

test('an unknown tool is a 404 naming it', async () => {
  for (const [pathName, name] of [['nope', 'nope'], ['mock__nope', 'mock__nope'],
    ['no%20such%2Ftool', 'no such/tool'], ['%E2%9C%93'.repeat(150), '✓'.repeat(150)]]) {
    const r = await callTool(pathName, {});
    const body = assertJsonError(r, 404);
    assert.equal(body.error.tool, name);
    assert.ok(body.error.message.includes(JSON.stringify(name)), body.error.message);
  }
});

test('a body that is not a JSON object of arguments is a 400 saying why', async () => {
  const cases = [
    ['[1, 2]', /JSON object.*not an array/],
    ['"text"', /JSON object.*not a string/],
    ['42', /JSON object.*not a number/],
    ['null', /JSON object.*not null/],
    ['true', /JSON object.*not a boolean/],
    ['{"message": "x"', /JSON object.*line 1/],
    ['not json', /JSON object.*invalid token.*line 1, column \d+/],
    ['{"a": 1, "a": 2}', /JSON object.*duplicate/],
  ];
  // Bytes that are not UTF-8 (the parser quotes them; the answer stays valid JSON).
  cases.push([Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d]), /JSON object.*UTF-8|JSON object.*decode/i]);
  cases.push([Buffer.concat([Buffer.from('{"'), Buffer.from('é'.repeat(200)), Buffer.from([0xe2])]), /JSON object/]);
  for (const [body, re] of cases) {
    const r = await callTool('mock__echo', body);
    const j = assertJsonError(r, 400);
    assert.match(j.error.message, re, `body ${body}`);
  }
  const nest = (n) => '{"message": "deep", "x": ' + '['.repeat(n - 1) + ']'.repeat(n - 1) + '}';
  const deep = assertJsonError(await callTool('mock__echo', nest(63)), 400);
  assert.match(deep.error.message, /nest deeper than 62 levels/);
  const fine = okResult(await callTool('mock__echo', nest(62)), '62 levels');
  assert.equal(fine.content[0].text, 'deep');
});

test('a tool name that is not valid percent-encoded UTF-8 is a 400', async () => {
  for (const name of ['%zz', 'abc%4', 'a%00b', '%FF%FE']) {
    const j = assertJsonError(await callTool(name, {}), 400);
    assert.match(j.error.message, /percent-encoded UTF-8/, name);
  }
});

test('http.max_body applies: a larger body is a 413', async () => {
  const big = JSON.stringify({ message: 'x'.repeat(MAX_BODY + 10) });
  const c = await RawConn.open(nx.restPort);
  try {
    const r = await c.roundTrip(post('/tools/mock__echo', big, { contentType: 'application/json' }));
    assertJsonError(r, 413);
  } finally {
    c.destroy();
  }
  const near = JSON.stringify({ message: 'y'.repeat(MAX_BODY - 100) });
  const ok = okResult(await callTool('mock__echo', near), 'just under max_body');
  assert.equal(ok.content[0].text.length, MAX_BODY - 100);
});

test('a backend error is a 502; an open breaker a 503 with Retry-After', { timeout: 20000 }, async () => {
  for (let i = 0; i < 4; i++) {
    const r = await callTool('flaky__echo', { message: 'x' });
    const j = assertJsonError(r, 502);
    assert.match(j.error.message, /injected error/);
    assert.equal(j.error.jsonrpc_code, -32603);
    assert.equal(r.headers['retry-after'], undefined, 'no Retry-After without a hint');
  }
  const t0 = Date.now();
  const r = await callTool('flaky__echo', { message: 'x' });
  assert.ok(Date.now() - t0 < 1000, 'an open breaker answers at once');
  const j = assertJsonError(r, 503);
  assert.match(j.error.message, /flaky.*circuit open/);
  assert.equal(j.error.jsonrpc_code, -32603);
  assert.equal(j.error.data.reason, 'circuit_open');
  assert.equal(j.error.data.backend, 'flaky');
  const ms = j.error.data.retryAfterMs;
  assert.ok(ms > 0 && ms <= 5000, `retryAfterMs ${ms}`);
  assert.match(String(r.headers['retry-after']), /^\d+$/);
  assert.equal(Number(r.headers['retry-after']), Math.ceil(ms / 1000), 'seconds, rounded up');
  assert.equal((await getJson(nx.restPort, '/health')).data.backends.flaky.breaker, 'open');
});

test('a full bulkhead is a 503 with Retry-After', { timeout: 20000 }, async () => {
  const first = callTool('narrow__sleep', { ms: 1500 });
  let rejected;
  for (let i = 0; i < 40 && !rejected; i++) {
    await sleep(50);
    const r = await callTool('narrow__sleep', { ms: 1 });
    if (r.status === 503) rejected = r;
    else okResult(r, 'narrow__sleep before the first one reached the backend');
  }
  assert.ok(rejected, 'a second call while the first runs is rejected');
  const j = assertJsonError(rejected, 503);
  assert.equal(j.error.data.reason, 'bulkhead');
  assert.match(j.error.message, /narrow.*limit of 1/);
  assert.equal(rejected.headers['retry-after'], '1', 'retryAfterMs 100 rounds up to 1 s');
  assert.equal(okResult(await first, 'first').content[0].text, 'slept 1500 ms');
});

test('a client that goes away cancels its call: backend and native, from both shards', { timeout: 30000 }, async () => {
  const before = (await mockStats()).cancelled;
  const N = 6;
  const conns = [];
  for (let i = 0; i < N; i++) {
    const c = await RawConn.open(nx.restPort);
    await c.write(post('/tools/mock__sleep', JSON.stringify({ ms: 20000 }), { contentType: 'application/json' }));
    conns.push(c);
  }
  // Native asynchronous tool (its cancel hook runs), and a call that is cut before it reached
  // the backend's shard.
  for (let i = 0; i < 4; i++) {
    const c = await RawConn.open(nx.restPort);
    await c.write(post('/tools/debug_sleep', JSON.stringify({ ms: 20000 }), { contentType: 'application/json' }));
    conns.push(c);
  }
  const racer = await RawConn.open(nx.restPort);
  await racer.write(post('/tools/mock__sleep', JSON.stringify({ ms: 20000 }), { contentType: 'application/json' }));
  racer.destroy();
  await sleep(300);
  for (const c of conns) c.destroy();
  let cancelled = before;
  for (let i = 0; i < 100 && cancelled < before + N; i++) {
    await sleep(50);
    cancelled = (await mockStats()).cancelled;
  }
  assert.ok(cancelled >= before + N, `the backend saw ${cancelled - before} of ${N} cancellations`);
  // Nothing is left waiting: the backend's in-flight count is back to zero.
  let inFlight;
  for (let i = 0; i < 50; i++) {
    inFlight = (await getJson(nx.restPort, '/health')).data.backends.mock.in_flight;
    if (inFlight === 0) break;
    await sleep(50);
  }
  assert.equal(inFlight, 0);
  assert.equal(okResult(await callTool('mock__echo', { message: 'still fine' }), 'after').content[0].text,
    'still fine');
});

test('nexus exits cleanly (no leak, no sanitizer report)', async () => {
  await nx.stopAndAssertClean();
  nx = null;
  dir.remove();
});

// During a drain a backend's calls in flight finish before its process is stopped, so a call
// in flight gets its real answer before nexus exits, also on the shard that does not own the
// backend (that shard waits for the owner's answer).
test('a call in flight at shutdown is answered, from the shard without the backend', {
  timeout: 30000,
}, async () => {
  const d = tempDir();
  const config = d.path('shutdown.yaml');
  fs.writeFileSync(config, ['servers:', '  - name: mock', '    transport: stdio',
    `    command: ${NXMOCK}`, '    args: ["--stdio", "--log-level", "warn"]', ''].join('\n'));
  const n = await startNexus({ shards: 2, config, set: { 'shutdown.grace': '4s' } });
  try {
    for (let i = 0; i < 100; i++) {
      if ((await getJson(n.restPort, '/health')).data.backends.mock?.tools > 0) break;
      await sleep(100);
    }
    // A keep-alive connection on the shard that does not own the backend: the one whose
    // request count moves between two GET /status on it.
    const owner = (await getJson(n.restPort, '/health')).data.backends.mock.instances?.[0]?.shard ?? 0;
    let conn = null;
    for (let i = 0; i < 40 && conn === null; i++) {
      const c = await RawConn.open(n.restPort);
      const counts = async () => (await c.roundTrip(get('/status'))).json().per_shard.map((x) => x.requests);
      const [x, y] = [await counts(), await counts()];
      const mine = y.findIndex((v, k) => v - x[k] === 1);
      if (mine >= 0 && mine !== owner) conn = c;
      else c.destroy();
    }
    assert.ok(conn, 'a connection on the shard that does not own the backend');
    await conn.write(post('/tools/mock__sleep', JSON.stringify({ ms: 2000 }), { contentType: 'application/json' }));
    await sleep(300);
    const t0 = Date.now();
    const stopped = n.stop({ timeoutMs: 15000 });
    const answer = await conn.readResponse({ timeoutMs: 3000 }).then((r) => r.status, (e) => e.message);
    const r = await stopped;
    conn.destroy();
    assert.equal(r.code, 0);
    assert.equal(answer, 200,
      `the call in flight is answered with its result within 3 s of SIGTERM (waited ${Date.now() - t0} ms): ${answer}`);
  } finally {
    await n.kill();
    d.remove();
  }
});
