// The 2026-07-28 (stateless) era of MCP over HTTP and WebSocket: no initialize, no session;
// every request carries _meta (protocol version, client capabilities) and, over HTTP, the
// MCP-Protocol-Version, Mcp-Method and Mcp-Name headers. Checks the validation order and each
// error (-32602 / -32020 / -32022 with data, HTTP 400; removed and unknown methods 404 -32601),
// server/discover, resultType and caching hints on results, SEP-2164 resource errors, progress
// on an event stream, log messages only with a logLevel, and that legacy clients are unaffected.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startNexus, request } from './lib/nexus.mjs';
import { ACCEPT, openSession, sseEvents, rpcResult } from './lib/mcp.mjs';

const V = '2026-07-28';
const META = {
  'io.modelcontextprotocol/protocolVersion': V,
  'io.modelcontextprotocol/clientCapabilities': {},
  'io.modelcontextprotocol/clientInfo': { name: 'modern-test', version: '1.0.0' },
};

let nx;
before(async () => {
  nx = await startNexus({ shards: 2, debugRoutes: true });
});
after(async () => {
  if (nx) await nx.kill();
});

let nextId = 100;
/**
 * POSTs a modern request. params._meta defaults to META (pass meta: null to send params as
 * given); headers default to the standard ones for the method (pass null to leave one out).
 */
async function modern(method, params = {}, { meta = META, headers = {}, port } = {}) {
  const id = nextId++;
  const p = meta === null ? params : { ...params, _meta: { ...meta, ...(params._meta ?? {}) } };
  const name = method === 'resources/read' ? params.uri : method.startsWith('tasks/') ? params.taskId : params.name;
  const h = {
    'content-type': 'application/json', accept: ACCEPT, 'mcp-protocol-version': V,
    'mcp-method': method, ...(name !== undefined ? { 'mcp-name': name } : {}), ...headers,
  };
  for (const k of Object.keys(h)) if (h[k] === null) delete h[k];
  const r = await request(port ?? nx.mcpPort, {
    method: 'POST', path: '/mcp', headers: h, body: JSON.stringify({ jsonrpc: '2.0', id, method, params: p }),
  });
  let body;
  if (/^text\/event-stream/.test(r.headers['content-type'] ?? '')) {
    const msgs = sseEvents(r.text).filter((e) => e.data).map((e) => JSON.parse(e.data));
    body = msgs.find((m) => m.id === id);
    body.notifications = msgs.filter((m) => m.method);
  } else {
    body = r.json();
    body.notifications = [];
  }
  assert.equal(r.headers['mcp-session-id'], undefined, 'stateless: no session');
  return { status: r.status, body, id, contentType: r.headers['content-type'] };
}

function assertError(r, status, code, what) {
  assert.equal(r.status, status, `${what}: HTTP ${r.status} ${JSON.stringify(r.body)}`);
  assert.equal(r.body.error?.code, code, `${what}: ${JSON.stringify(r.body)}`);
  assert.equal(r.body.id, r.id, `${what}: the error echoes the request id`);
}

test('server/discover: versions, capabilities, serverInfo in _meta, resultType and caching hints', async () => {
  const r = await modern('server/discover');
  assert.equal(r.status, 200);
  const d = r.body.result;
  assert.deepEqual(d.supportedVersions, [V]);
  for (const c of ['tools', 'resources', 'prompts']) assert.ok(d.capabilities[c], c);
  assert.equal(d._meta['io.modelcontextprotocol/serverInfo'].name, 'nexus');
  assert.equal(d.resultType, 'complete');
  assert.ok(Number.isInteger(d.ttlMs) && d.ttlMs >= 0);
  assert.ok(['public', 'private'].includes(d.cacheScope));
  // clientInfo is optional.
  const { 'io.modelcontextprotocol/clientInfo': _, ...noInfo } = META;
  assert.equal((await modern('server/discover', {}, { meta: noInfo })).status, 200);
});

test('_meta is checked before the header match, then the version (-32602, -32020, -32022)', async () => {
  assertError(await modern('server/discover', {}, { meta: null }), 400, -32602, 'no _meta');
  const { 'io.modelcontextprotocol/protocolVersion': _v, ...noVersion } = META;
  assertError(await modern('server/discover', {}, { meta: noVersion }), 400, -32602, 'no version');
  const { 'io.modelcontextprotocol/clientCapabilities': _c, ...noCaps } = META;
  assertError(await modern('server/discover', {}, { meta: noCaps }), 400, -32602, 'no capabilities');
  const v999 = { ...META, 'io.modelcontextprotocol/protocolVersion': 'v999.0.0' };
  const un = await modern('server/discover', {}, { meta: v999, headers: { 'mcp-protocol-version': 'v999.0.0' } });
  assertError(un, 400, -32022, 'unsupported version');
  assert.deepEqual(un.body.error.data, { supported: [V], requested: 'v999.0.0' });
  assertError(await modern('server/discover', {}, { meta: v999 }), 400, -32020, 'header != _meta');
  assertError(await modern('server/discover', {}, { headers: { 'mcp-protocol-version': null } }), 400, -32020, 'no version header');
});

test('Mcp-Method and Mcp-Name must repeat the body (case-sensitive values, any header case, spaces trimmed)', async () => {
  assertError(await modern('tools/list', {}, { headers: { 'mcp-method': 'prompts/list' } }), 400, -32020, 'mismatched method');
  assertError(await modern('tools/list', {}, { headers: { 'mcp-method': null } }), 400, -32020, 'missing method');
  assertError(await modern('tools/list', {}, { headers: { 'mcp-method': 'TOOLS/LIST' } }), 400, -32020, 'value case');
  assert.equal((await modern('tools/list', {}, { headers: { 'mcp-method': null, 'MCP-METHOD': 'tools/list' } })).status, 200);
  const call = { name: 'health_check', arguments: {} };
  assertError(await modern('tools/call', call, { headers: { 'mcp-name': 'other' } }), 400, -32020, 'mismatched name');
  assertError(await modern('tools/call', call, { headers: { 'mcp-name': null } }), 400, -32020, 'missing name');
  const ok = await modern('tools/call', call, { headers: { 'mcp-name': '  health_check  ' } });
  assert.equal(ok.status, 200, JSON.stringify(ok.body));
  assert.equal(ok.body.result.resultType, 'complete');
  assert.ok(ok.body.result.content.length > 0);
  assertError(await modern('resources/read', { uri: 'test://a' }, { headers: { 'mcp-name': 'test://b' } }), 400, -32020, 'uri name');
});

test('methods that need a session are gone (404 -32601), as is anything unknown', async () => {
  for (const m of ['initialize', 'ping', 'logging/setLevel', 'resources/subscribe', 'resources/unsubscribe', 'no/such'])
    assertError(await modern(m, m.startsWith('resources/') ? { uri: 'test://x' } : {}), 404, -32601, m);
});

test('results carry resultType; lists and reads carry ttlMs and cacheScope; SEP-2164 not found', async () => {
  for (const [m, key] of [['tools/list', 'tools'], ['prompts/list', 'prompts'], ['resources/list', 'resources'],
    ['resources/templates/list', 'resourceTemplates']]) {
    const r = (await modern(m)).body.result;
    assert.ok(Array.isArray(r[key]), m);
    assert.equal(r.resultType, 'complete', m);
    assert.ok(Number.isInteger(r.ttlMs) && r.ttlMs >= 0, m);
    assert.ok(['public', 'private'].includes(r.cacheScope), m);
  }
  const nf = await modern('resources/read', { uri: 'test://nonexistent' });
  assert.equal(nf.status, 200);
  assert.equal(nf.body.error.code, -32602);
  assert.equal(nf.body.error.data.uri, 'test://nonexistent');
});

test('progress arrives on an event stream before the result; logs only with _meta logLevel', async () => {
  const args = { name: 'debug_progress', arguments: { steps: 3, ms: 5 } };
  const r = await modern('tools/call', { ...args, _meta: { progressToken: 'p-1' } });
  assert.match(r.contentType, /^text\/event-stream/);
  const progress = r.body.notifications.filter((n) => n.method === 'notifications/progress');
  assert.deepEqual(progress.map((n) => [n.params.progressToken, n.params.progress]), [['p-1', 1], ['p-1', 2], ['p-1', 3]]);
  assert.equal(r.body.notifications.filter((n) => n.method === 'notifications/message').length, 0,
    'no log messages without a logLevel');
  assert.equal(r.body.result.resultType, 'complete');
  const logged = await modern('tools/call', { ...args, _meta: { 'io.modelcontextprotocol/logLevel': 'info' } });
  assert.equal(logged.body.notifications.filter((n) => n.method === 'notifications/message').length, 3);
  const quiet = await modern('tools/call', { ...args, _meta: { 'io.modelcontextprotocol/logLevel': 'error' } });
  assert.equal(quiet.body.notifications.length, 0, 'info logs are below the error level');
  assert.match(quiet.contentType, /^application\/json/, 'nothing to stream: a JSON answer');
  // A stateless request cannot be asked anything: the tool sees the failure.
  const sample = await modern('tools/call', { name: 'debug_sample', arguments: { prompt: 'x' },
    _meta: { 'io.modelcontextprotocol/clientCapabilities': { sampling: {} } } });
  assert.equal(sample.body.result.isError, true);
  assert.match(sample.body.result.content[0].text, /sampling failed/);
});

test('tasks extension: a slow tool becomes a task; tasks/get polls it on any shard; cancel; gating', { timeout: 20000 }, async () => {
  const TASKS = { 'io.modelcontextprotocol/clientCapabilities': { extensions: { 'io.modelcontextprotocol/tasks': {} } } };
  const created = await modern('tools/call', { name: 'debug_sleep', arguments: { ms: 300 }, _meta: TASKS });
  const t = created.body.result;
  assert.equal(t.resultType, 'task', JSON.stringify(t));
  assert.match(t.taskId, /^[0-9a-f]{34}$/);
  assert.equal(t.status, 'working');
  assert.ok(Number.isInteger(t.ttlMs) && t.ttlMs > 0 && Number.isInteger(t.pollIntervalMs));
  assert.ok(!('result' in t) && !('task' in t));
  // Polled through both ports: whichever shard gets the request finds the task.
  let last;
  for (let i = 0; i < 40; i++) {
    last = (await modern('tasks/get', { taskId: t.taskId, _meta: TASKS }, { port: i % 2 ? nx.restPort : nx.mcpPort })).body.result;
    if (last.status !== 'working') break;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.equal(last.status, 'completed', JSON.stringify(last));
  assert.equal(last.result.content[0].text, 'slept 300 ms');
  // Cancel: the tool stops; the ack is empty; cancelling again is idempotent.
  const long = (await modern('tools/call', { name: 'debug_sleep', arguments: { ms: 5000 }, _meta: TASKS })).body.result;
  assert.deepEqual((await modern('tasks/cancel', { taskId: long.taskId, _meta: TASKS })).body.result, { resultType: 'complete' });
  assert.equal((await modern('tasks/get', { taskId: long.taskId, _meta: TASKS })).body.result.status, 'cancelled');
  assert.deepEqual((await modern('tasks/cancel', { taskId: long.taskId, _meta: TASKS })).body.result, { resultType: 'complete' });
  // Without the extension: the same call answers in the request; tasks/* need the capability.
  const sync = await modern('tools/call', { name: 'debug_sleep', arguments: { ms: 10 } });
  assert.equal(sync.body.result.content[0].text, 'slept 10 ms');
  assertError(await modern('tasks/get', { taskId: t.taskId }), 400, -32021, 'tasks/get without the extension');
  const unknown = await modern('tasks/get', { taskId: 'nope', _meta: TASKS });
  assert.equal(unknown.body.error.code, -32602);
  assertError(await modern('tasks/get', { taskId: t.taskId, _meta: TASKS }, { headers: { 'mcp-name': 'other' } }), 400, -32020, 'Mcp-Name must repeat the taskId');
  // The discover result announces the extension.
  const d = (await modern('server/discover')).body.result;
  assert.ok(d.capabilities.extensions['io.modelcontextprotocol/tasks']);
});

test('legacy sessions are unaffected, and the same modern request works over WebSocket', async () => {
  const sid = await openSession(nx.restPort);
  const tools = await rpcResult(nx.restPort, sid, 'tools/list');
  assert.equal(tools.resultType, undefined, 'legacy results have no resultType');
  const ws = new WebSocket(`ws://127.0.0.1:${nx.mcpPort}/ws`, 'mcp');
  await new Promise((r, j) => { ws.onopen = r; ws.onerror = j; });
  const got = new Promise((r) => { ws.onmessage = (e) => r(JSON.parse(e.data)); });
  ws.send(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'server/discover', params: { _meta: META } }));
  const d = await got;
  assert.deepEqual(d.result.supportedVersions, [V]);
  const bad = new Promise((r) => { ws.onmessage = (e) => r(JSON.parse(e.data)); });
  ws.send(JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list',
    params: { _meta: { 'io.modelcontextprotocol/protocolVersion': '1999-01-01', 'io.modelcontextprotocol/clientCapabilities': {} } } }));
  assert.equal((await bad).error.code, -32022);
  ws.close();
});

test('nexus stops cleanly after all of it', async () => {
  await nx.stopAndAssertClean();
  nx = null;
});
