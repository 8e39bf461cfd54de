// MCP Streamable HTTP front end (POST/GET/DELETE /mcp on the MCP port and on the REST port),
// driven by the official MCP TypeScript SDK client (@modelcontextprotocol/sdk, pinned in
// package.json) and by raw HTTP requests that check each status rule: Accept (406),
// MCP-Protocol-Version (400), DNS-rebinding protection on Host/Origin (403), session ids (400
// missing, 404 unknown or ended), notifications and responses (202), JSON-RPC errors (-32700,
// -32601, -32602), tool argument validation (isError results), async tools (50 concurrent
// debug_sleep calls overlap), sessions shared by all shards, and clients that leave mid-call.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import {
  startNexus, request, RawConn, parseResponse, assertJsonError, assertCleanExit, sleep,
  withTimeout, HOST,
} from './lib/nexus.mjs';
import {
  ACCEPT, PV, SESSION_RE, newId, mcpPost, sseEvents, rpcBody, rpc, rpcResult, callTool, toolText, initMsg, openSession, assertRpcError, rawToolCall,
} from './lib/mcp.mjs';

const LEGACY_REVISIONS = ['2024-11-05', '2025-03-26', '2025-06-18', '2025-11-25'];
const SYSTEM_TOOLS = ['health_check', 'get_server_metrics', 'get_available_tools'];
const DEBUG_TOOLS = ['debug_echo', 'debug_sleep', 'debug_progress', 'debug_sample'];

// One nexus (2 shards, debug routes) for everything but the disconnect tests, which start their
// own. The last test stops it and asserts a clean exit; after() only kills it if that did not run.
let nx;
before(async () => {
  nx = await startNexus({ shards: 2, debugRoutes: true });
});
after(async () => {
  if (nx) await nx.kill();
});

// ---------------------------------------------------------------------------------------------
// SDK helpers

/** Connects an SDK Client to http://127.0.0.1:<port>/mcp; errors reported by the transport are
 *  collected in .errors (they must stay empty while the client is in use). */
async function sdkConnect(port) {
  const transport = new StreamableHTTPClientTransport(new URL(`http://${HOST}:${port}/mcp`));
  const client = new Client({ name: 'nexus-it-sdk', version: '1.0.0' });
  const errors = [];
  client.onerror = (e) => errors.push(e);
  await withTimeout(client.connect(transport), 10000, `SDK connect to port ${port}`);
  return { client, transport, errors };
}

// ---------------------------------------------------------------------------------------------
// 1. The official SDK client

async function sdkRoundTrip(port) {
  const { client, transport, errors } = await sdkConnect(port);
  try {
    assert.match(String(transport.sessionId), SESSION_RE, `session id seen by the SDK: ${transport.sessionId}`);
    const info = client.getServerVersion();
    assert.equal(info?.name, 'nexus', `serverInfo: ${JSON.stringify(info)}`);
    assert.equal(typeof info.version, 'string');
    assert.equal(typeof client.getServerCapabilities()?.tools, 'object',
      `capabilities: ${JSON.stringify(client.getServerCapabilities())}`);
    assert.equal(transport.protocolVersion, '2025-11-25', 'the SDK negotiated its latest revision');

    const { tools } = await client.listTools();
    const names = tools.map((t) => t.name);
    for (const n of [...SYSTEM_TOOLS, ...DEBUG_TOOLS]) assert.ok(names.includes(n), `${n} missing from tools/list: ${names}`);
    for (const t of tools) assert.equal(t.inputSchema?.type, 'object', `${t.name}.inputSchema: ${JSON.stringify(t.inputSchema)}`);

    const health = await client.callTool({ name: 'health_check' });
    assert.ok(!health.isError, `health_check failed: ${JSON.stringify(health)}`);
    assert.ok(Array.isArray(health.content) && health.content.length > 0, `health_check content: ${JSON.stringify(health)}`);
    assert.match(toolText(health), /"status"/);

    const msg = `héllo from the SDK on port ${port} ✓ "quoted" \\ back\nslash`;
    const echo = await client.callTool({ name: 'debug_echo', arguments: { message: msg } });
    assert.ok(!echo.isError, `debug_echo failed: ${JSON.stringify(echo)}`);
    assert.equal(toolText(echo), msg);

    assert.deepEqual(await client.ping(), {});

    // Unknown tool: a JSON-RPC error (-32602), which the SDK turns into a rejected promise.
    await assert.rejects(client.callTool({ name: 'no_such_tool_xyz' }),
      (e) => e.code === -32602 || assert.fail(`unknown tool: ${e.code} ${e.message}`));
    // Invalid arguments: a result with isError (not a JSON-RPC error).
    const bad = await client.callTool({ name: 'debug_echo', arguments: { message: 42 } });
    assert.equal(bad.isError, true, `debug_echo {message: 42}: ${JSON.stringify(bad)}`);
    assert.match(toolText(bad), /message/);

    assert.deepEqual(errors.map(String), [], 'the SDK transport reported errors');

    // DELETE through the SDK, then the session is gone for everybody.
    const sid = transport.sessionId;
    await transport.terminateSession();
    const gone = await mcpPost(port, { jsonrpc: '2.0', id: newId(), method: 'ping' }, { sid });
    assert.equal(gone.status, 404, `ping in a session ended by the SDK: HTTP ${gone.status}: ${gone.text}`);
  } finally {
    await client.close();
  }
}

test('SDK client on the MCP port: connect, listTools, health_check, debug_echo, ping, errors, terminate, close', { timeout: 20000 }, async () => {
  await sdkRoundTrip(nx.mcpPort);
});

test('SDK client on the REST port /mcp: the same session flow', { timeout: 20000 }, async () => {
  await sdkRoundTrip(nx.restPort);
});

test('SDK: get_available_tools lists every tool and get_server_metrics answers', { timeout: 20000 }, async () => {
  const { client, errors } = await sdkConnect(nx.mcpPort);
  try {
    const avail = await client.callTool({ name: 'get_available_tools' });
    assert.ok(!avail.isError, JSON.stringify(avail));
    const text = toolText(avail);
    for (const n of [...SYSTEM_TOOLS, ...DEBUG_TOOLS]) assert.ok(text.includes(n), `${n} not in get_available_tools: ${text}`);
    const metrics = await client.callTool({ name: 'get_server_metrics' });
    assert.ok(!metrics.isError, JSON.stringify(metrics));
    assert.ok(toolText(metrics).length > 0, `get_server_metrics: ${JSON.stringify(metrics)}`);
    assert.deepEqual(errors.map(String), []);
  } finally {
    await client.close();
  }
});

// ---------------------------------------------------------------------------------------------
// 2. Async tools: concurrent calls overlap

test('SDK: 50 concurrent debug_sleep(100 ms) calls finish in well under 50 x 100 ms', { timeout: 30000 }, async () => {
  const { client, errors } = await sdkConnect(nx.mcpPort);
  try {
    await client.callTool({ name: 'debug_sleep', arguments: { ms: 0 } }); // warm up
    const t0 = Date.now();
    const results = await Promise.all(Array.from({ length: 50 }, () =>
      client.callTool({ name: 'debug_sleep', arguments: { ms: 100 } })));
    const ms = Date.now() - t0;
    for (const r of results) {
      assert.ok(!r.isError, JSON.stringify(r));
      assert.deepEqual(r.content, [{ type: 'text', text: 'slept 100 ms' }]);
    }
    assert.ok(ms >= 95, `50 sleeps of 100 ms took only ${ms} ms: they did not sleep`);
    // Serial on 2 shards would take >= 2500 ms.
    assert.ok(ms < 2000, `50 concurrent debug_sleep(100) took ${ms} ms: the calls do not overlap`);
    assert.deepEqual(errors.map(String), []);
  } finally {
    await client.close();
  }
});

test('debug_sleep answers after the requested time, with the exact result', { timeout: 15000 }, async () => {
  const sid = await openSession(nx.mcpPort);
  const t0 = Date.now();
  const r = await callTool(nx.mcpPort, sid, 'debug_sleep', { ms: 300 });
  const ms = Date.now() - t0;
  assert.deepEqual(r.content, [{ type: 'text', text: 'slept 300 ms' }]);
  assert.ok(!r.isError);
  assert.ok(ms >= 290, `debug_sleep(300) answered after ${ms} ms`);
  assert.ok(ms < 2000, `debug_sleep(300) answered after ${ms} ms`);
});

// ---------------------------------------------------------------------------------------------
// 3. Raw HTTP: the status rules

test('initialize: 200 application/json, negotiated version, capabilities.tools, serverInfo, Mcp-Session-Id', { timeout: 15000 }, async () => {
  for (const port of [nx.mcpPort, nx.restPort]) {
    const msg = initMsg('2025-06-18');
    const r = await mcpPost(port, msg, { headers: { 'mcp-protocol-version': null } });
    assert.equal(r.status, 200, `port ${port}: HTTP ${r.status}: ${r.text}`);
    assert.match(String(r.headers['content-type']), /^application\/json/, 'initialize content-type');
    assert.match(String(r.headers['mcp-session-id']), SESSION_RE, `Mcp-Session-Id: ${r.headers['mcp-session-id']}`);
    const body = r.json();
    assert.equal(body.jsonrpc, '2.0');
    assert.equal(body.id, msg.id);
    assert.equal(body.result.protocolVersion, '2025-06-18');
    assert.equal(typeof body.result.capabilities?.tools, 'object', JSON.stringify(body.result));
    assert.equal(body.result.serverInfo?.name, 'nexus', JSON.stringify(body.result));
    assert.equal(typeof body.result.serverInfo.version, 'string');
    assert.ok(body.result.serverInfo.version.length > 0);
  }
  // Every supported legacy revision is echoed; an unknown one gets the latest (2025-11-25).
  const ids = new Set();
  for (const v of [...LEGACY_REVISIONS, '1999-01-01']) {
    const r = await mcpPost(nx.mcpPort, initMsg(v), { headers: { 'mcp-protocol-version': null } });
    assert.equal(r.status, 200, `initialize ${v}: HTTP ${r.status}: ${r.text}`);
    const want = v === '1999-01-01' ? '2025-11-25' : v;
    assert.equal(r.json().result?.protocolVersion, want, `initialize with ${v}: ${r.text}`);
    ids.add(r.headers['mcp-session-id']);
  }
  assert.equal(ids.size, 5, 'every initialize creates a new session id');
});

test('Accept must list application/json and text/event-stream, else 406 with a JSON error', { timeout: 15000 }, async () => {
  for (const accept of ['application/json', 'text/event-stream', 'text/html', null]) {
    const r = await mcpPost(nx.mcpPort, initMsg(), { headers: { accept } });
    assertJsonError(r, 406);
    assert.equal(r.headers['mcp-session-id'], undefined, `Accept ${accept}: a session was created`);
  }
  // Also in an established session, and on the REST port.
  const sid = await openSession(nx.mcpPort);
  const r = await mcpPost(nx.mcpPort, { jsonrpc: '2.0', id: 1, method: 'ping' },
    { sid, headers: { accept: 'application/json' } });
  assertJsonError(r, 406);
  assertJsonError(await mcpPost(nx.restPort, initMsg(), { headers: { accept: 'text/plain' } }), 406);
  // Both types with parameters and in another order are fine.
  const ok = await mcpPost(nx.mcpPort, { jsonrpc: '2.0', id: 2, method: 'ping' },
    { sid, headers: { accept: 'text/event-stream;q=0.9, application/json;q=1' } });
  assert.equal(ok.status, 200, `Accept with q parameters: HTTP ${ok.status}: ${ok.text}`);
});

test('MCP-Protocol-Version: each supported revision is accepted, others get 400', { timeout: 15000 }, async () => {
  const sid = await openSession(nx.mcpPort);
  for (const v of LEGACY_REVISIONS) {
    const body = await rpc(nx.mcpPort, sid, 'ping', undefined, { headers: { 'mcp-protocol-version': v } });
    assert.deepEqual(body.result, {}, `ping with MCP-Protocol-Version ${v}: ${JSON.stringify(body)}`);
  }
  // Absent header: assume 2025-03-26, accepted.
  const none = await rpc(nx.mcpPort, sid, 'ping', undefined, { headers: { 'mcp-protocol-version': null } });
  assert.deepEqual(none.result, {});
  for (const v of ['1999-01-01', '2025-11-24', 'banana']) {
    const r = await mcpPost(nx.mcpPort, { jsonrpc: '2.0', id: newId(), method: 'ping' },
      { sid, headers: { 'mcp-protocol-version': v } });
    assert.equal(r.status, 400, `MCP-Protocol-Version ${v}: HTTP ${r.status}: ${r.text}`);
  }
  const r = await mcpPost(nx.mcpPort, initMsg(), { headers: { 'mcp-protocol-version': '1999-01-01' } });
  assert.equal(r.status, 400, `initialize with MCP-Protocol-Version 1999-01-01: HTTP ${r.status}: ${r.text}`);
});

test('DNS-rebinding protection: a foreign Host or Origin gets 403, local names are accepted', { timeout: 15000 }, async () => {
  const port = nx.mcpPort;
  for (const host of ['evil.example.com', `evil.example.com:${port}`, '127.0.0.1.evil.example.com', 'localhost.evil.com']) {
    const r = await mcpPost(port, initMsg(), { headers: { host } });
    assert.equal(r.status, 403, `Host: ${host}: HTTP ${r.status}: ${r.text}`);
    assert.equal(r.headers['mcp-session-id'], undefined, `Host: ${host}: a session was created`);
  }
  for (const origin of ['http://evil.example.com', `http://evil.example.com:${port}`, 'https://localhost.evil.com']) {
    const r = await mcpPost(port, initMsg(), { headers: { origin } });
    assert.equal(r.status, 403, `Origin: ${origin}: HTTP ${r.status}: ${r.text}`);
  }
  // Also for a request in an existing session, and on the REST port.
  const sid = await openSession(port);
  const r1 = await mcpPost(port, { jsonrpc: '2.0', id: 1, method: 'ping' }, { sid, headers: { host: 'evil.example.com' } });
  assert.equal(r1.status, 403, `ping with Host evil.example.com: HTTP ${r1.status}: ${r1.text}`);
  const r2 = await mcpPost(nx.restPort, initMsg(), { headers: { host: 'evil.example.com' } });
  assert.equal(r2.status, 403, `REST port, Host evil.example.com: HTTP ${r2.status}: ${r2.text}`);

  for (const host of [`localhost:${port}`, 'localhost', `127.0.0.1:${port}`, `[::1]:${port}`, '[::1]']) {
    const r = await mcpPost(port, initMsg(), { headers: { host } });
    assert.equal(r.status, 200, `Host: ${host}: HTTP ${r.status}: ${r.text}`);
  }
  for (const origin of [`http://localhost:${port}`, `http://127.0.0.1:${port}`, 'http://[::1]:8080', 'http://localhost']) {
    const r = await mcpPost(port, initMsg(), { headers: { origin } });
    assert.equal(r.status, 200, `Origin: ${origin}: HTTP ${r.status}: ${r.text}`);
  }
  // The opaque origin "null" (sandboxed iframes, file: pages) names no local host either.
  const rn = await mcpPost(port, initMsg(), { headers: { origin: 'null' } });
  assert.equal(rn.status, 403, `Origin: null: HTTP ${rn.status}: ${rn.text}`);
});

test('session ids: missing -> 400 JSON-RPC error, unknown -> 404', { timeout: 15000 }, async () => {
  for (const method of ['ping', 'tools/list']) {
    const r = await mcpPost(nx.mcpPort, { jsonrpc: '2.0', id: 7, method });
    assert.equal(r.status, 400, `${method} without Mcp-Session-Id: HTTP ${r.status}: ${r.text}`);
    assertRpcError(rpcBody(r), undefined, `${method} without Mcp-Session-Id`);
    assert.ok(r.json().error.code < 0, r.text);
  }
  for (const sid of ['0'.repeat(34), 'f'.repeat(34), 'not-a-session', (await openSession(nx.mcpPort)).replace(/.$/, (c) => (c === '0' ? '1' : '0'))]) {
    const r = await mcpPost(nx.mcpPort, { jsonrpc: '2.0', id: 8, method: 'ping' }, { sid });
    assert.equal(r.status, 404, `ping with unknown Mcp-Session-Id ${sid}: HTTP ${r.status}: ${r.text}`);
  }
});

test('notifications and responses get 202 with an empty body', { timeout: 15000 }, async () => {
  const sid = await openSession(nx.mcpPort);
  for (const msg of [
    { jsonrpc: '2.0', method: 'notifications/initialized' },
    { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 12345, reason: 'test' } },
    { jsonrpc: '2.0', method: 'notifications/roots/list_changed' },
    { jsonrpc: '2.0', id: 'srv-1', result: {} },
    { jsonrpc: '2.0', id: 'srv-2', error: { code: -32601, message: 'nope' } },
  ]) {
    const r = await mcpPost(nx.mcpPort, msg, { sid });
    assert.equal(r.status, 202, `${JSON.stringify(msg)}: HTTP ${r.status}: ${r.text}`);
    assert.equal(r.body.length, 0, `${JSON.stringify(msg)}: 202 with a body: ${r.text}`);
  }
});

test('ping, tools/list and the system tools over raw HTTP', { timeout: 15000 }, async () => {
  const sid = await openSession(nx.mcpPort);
  assert.deepEqual(await rpcResult(nx.mcpPort, sid, 'ping'), {});

  const { tools } = await rpcResult(nx.mcpPort, sid, 'tools/list');
  assert.ok(Array.isArray(tools), 'tools/list: tools is not an array');
  const byName = Object.fromEntries(tools.map((t) => [t.name, t]));
  for (const n of [...SYSTEM_TOOLS, ...DEBUG_TOOLS]) {
    assert.ok(byName[n], `${n} missing from tools/list: ${Object.keys(byName)}`);
    assert.equal(byName[n].inputSchema?.type, 'object', `${n}.inputSchema: ${JSON.stringify(byName[n].inputSchema)}`);
  }
  const echo = byName.debug_echo.inputSchema;
  assert.equal(echo.properties?.message?.type, 'string', JSON.stringify(echo));
  assert.ok(Array.isArray(echo.required) && echo.required.includes('message'), JSON.stringify(echo));
  const sl = byName.debug_sleep.inputSchema;
  assert.equal(sl.properties?.ms?.type, 'integer', JSON.stringify(sl));

  const health = await callTool(nx.mcpPort, sid, 'health_check');
  assert.ok(!health.isError, JSON.stringify(health));
  let parsed;
  try {
    parsed = JSON.parse(toolText(health));
  } catch {
    assert.fail(`health_check text is not JSON: ${toolText(health)}`);
  }
  assert.ok('status' in parsed, `health_check: ${toolText(health)}`);

  const avail = toolText(await callTool(nx.mcpPort, sid, 'get_available_tools'));
  for (const n of [...SYSTEM_TOOLS, ...DEBUG_TOOLS]) assert.ok(avail.includes(n), `${n} not in: ${avail}`);

  // Arguments may be omitted or empty for a tool without required fields.
  assert.ok(!(await callTool(nx.mcpPort, sid, 'health_check', {})).isError);
});

test('without --debug-routes the debug tools are not listed and cannot be called', { timeout: 20000 }, async () => {
  const plain = await startNexus({ shards: 1 });
  try {
    const sid = await openSession(plain.mcpPort);
    const { tools } = await rpcResult(plain.mcpPort, sid, 'tools/list');
    const names = tools.map((t) => t.name);
    for (const n of SYSTEM_TOOLS) assert.ok(names.includes(n), `${n} missing: ${names}`);
    for (const n of DEBUG_TOOLS) assert.ok(!names.includes(n), `${n} listed without --debug-routes`);
    const body = await rpc(plain.mcpPort, sid, 'tools/call', { name: 'debug_echo', arguments: { message: 'x' } });
    assertRpcError(body, -32602, 'debug_echo without --debug-routes');
  } finally {
    assertCleanExit(await plain.stop());
  }
});

test('JSON-RPC errors: parse error (400, -32700, id null), unknown method -32601, unknown tool -32602', { timeout: 15000 }, async () => {
  const sid = await openSession(nx.mcpPort);
  for (const bad of ['{"jsonrpc":"2.0","id":1,"method":', 'not json at all', '{"jsonrpc":"2.0","id":1,"method":"ping"} trailing']) {
    const r = await mcpPost(nx.mcpPort, bad, { sid });
    assert.equal(r.status, 400, `malformed body ${JSON.stringify(bad)}: HTTP ${r.status}: ${r.text}`);
    const body = rpcBody(r);
    assertRpcError(body, -32700, `malformed body ${JSON.stringify(bad)}`);
    assert.ok('id' in body && body.id === null, `parse error id must be null: ${r.text}`);
  }

  // Also before any session exists (the body cannot be an initialize request).
  const ns = await mcpPost(nx.mcpPort, '{"jsonrpc":"2.0","id":1,"method":"initialize",');
  assert.equal(ns.status, 400, `malformed body without a session: HTTP ${ns.status}: ${ns.text}`);
  assertRpcError(rpcBody(ns), -32700, 'malformed body without a session');
  assert.equal(rpcBody(ns).id, null);

  const um = await rpc(nx.mcpPort, sid, 'nexus/no_such_method', {});
  assertRpcError(um, -32601, 'unknown method');

  const ut = await rpc(nx.mcpPort, sid, 'tools/call', { name: 'no_such_tool_xyz', arguments: {} });
  assertRpcError(ut, -32602, 'unknown tool');
  assert.match(ut.error.message, /no_such_tool_xyz|tool/i, 'the error names the tool');

  // A string id is echoed as is.
  const sr = await mcpPost(nx.mcpPort, { jsonrpc: '2.0', id: 'abc-"1"', method: 'ping' }, { sid });
  assert.equal(sr.status, 200, sr.text);
  assert.equal(rpcBody(sr, 'abc-"1"').id, 'abc-"1"');
});

test('tools/call with arguments violating the schema: isError result naming the field', { timeout: 15000 }, async () => {
  const sid = await openSession(nx.mcpPort);
  const cases = [
    ['debug_echo', {}, /message/],
    ['debug_echo', { message: 42 }, /message/],
    ['debug_echo', { message: null }, /message/],
    ['debug_sleep', { ms: 'soon' }, /ms/],
    ['debug_sleep', { ms: 1.5 }, /ms/],
    ['debug_sleep', { ms: -1 }, /ms/],
    ['debug_sleep', { ms: 60001 }, /ms/],
    ['debug_sleep', {}, /ms/],
  ];
  for (const [name, args, re] of cases) {
    const t0 = Date.now();
    const r = await callTool(nx.mcpPort, sid, name, args);
    assert.equal(r.isError, true, `${name} ${JSON.stringify(args)}: ${JSON.stringify(r)}`);
    assert.match(toolText(r), re, `${name} ${JSON.stringify(args)}: the text does not name the field`);
    assert.ok(Date.now() - t0 < 2000, `${name} ${JSON.stringify(args)} was run instead of rejected`);
  }
  // The limits themselves are valid.
  const zero = await callTool(nx.mcpPort, sid, 'debug_sleep', { ms: 0 });
  assert.deepEqual(zero.content, [{ type: 'text', text: 'slept 0 ms' }]);
});

test('DELETE /mcp ends the session: 200/204, then 404 for it on any connection', { timeout: 15000 }, async () => {
  const sid = await openSession(nx.mcpPort);
  assert.deepEqual(await rpcResult(nx.mcpPort, sid, 'ping'), {});
  const d = await request(nx.mcpPort, { method: 'DELETE', path: '/mcp',
    headers: { 'mcp-session-id': sid, 'mcp-protocol-version': PV } });
  assert.ok(d.status === 200 || d.status === 204, `DELETE: HTTP ${d.status}: ${d.text}`);
  for (let i = 0; i < 6; i++) {
    const port = i % 2 ? nx.restPort : nx.mcpPort;
    const r = await mcpPost(port, { jsonrpc: '2.0', id: newId(), method: i % 3 ? 'ping' : 'tools/list' }, { sid });
    assert.equal(r.status, 404, `request ${i} after DELETE: HTTP ${r.status}: ${r.text}`);
  }
  // DELETE without a session id is a client error, with an unknown one 404.
  const d2 = await request(nx.mcpPort, { method: 'DELETE', path: '/mcp', headers: {} });
  assert.equal(d2.status, 400, `DELETE without Mcp-Session-Id: HTTP ${d2.status}: ${d2.text}`);
  const d3 = await request(nx.mcpPort, { method: 'DELETE', path: '/mcp', headers: { 'mcp-session-id': sid } });
  assert.equal(d3.status, 404, `second DELETE of the same session: HTTP ${d3.status}: ${d3.text}`);
  for (const bogus of ['x', 'not-a-session', '0'.repeat(34), '0'.repeat(35), 'z'.repeat(200)]) {
    const d4 = await request(nx.mcpPort, { method: 'DELETE', path: '/mcp', headers: { 'mcp-session-id': bogus } });
    assert.equal(d4.status, 404, `DELETE of unknown session ${bogus}: HTTP ${d4.status}: ${d4.text}`);
  }
});

test('GET /mcp: 405 with Allow, or an SSE stream', { timeout: 15000 }, async () => {
  const sid = await openSession(nx.mcpPort);
  const c = await RawConn.open(nx.mcpPort);
  try {
    await c.write(`GET /mcp HTTP/1.1\r\nHost: 127.0.0.1:${nx.mcpPort}\r\nAccept: text/event-stream\r\n` +
      `Mcp-Session-Id: ${sid}\r\nMCP-Protocol-Version: ${PV}\r\n\r\n`);
    await c.waitFor('\r\n\r\n', 5000);
    const head = parseResponse(c.buf, { headOnly: true });
    if (head.status === 405) {
      const allow = String(head.headers.allow ?? '');
      assert.ok(allow.length > 0, `405 without an Allow header: ${head.head}`);
      assert.match(allow, /POST/, `Allow: ${allow}`);
    } else {
      assert.equal(head.status, 200, `GET /mcp: ${head.head}`);
      assert.match(String(head.headers['content-type']), /^text\/event-stream/, head.head);
    }
  } finally {
    c.destroy();
  }
  // The session still works after the GET (and after the client left an SSE stream).
  assert.deepEqual(await rpcResult(nx.mcpPort, sid, 'ping'), {});
});

test('a session works on every shard: 20 separate connections (2 shards), then DELETE seen by all', { timeout: 20000 }, async () => {
  const sid = await openSession(nx.mcpPort);
  // Concurrent separate connections (node:http, agent: false => Connection: close).
  const conc = await Promise.all(Array.from({ length: 20 }, async (_, i) => {
    const r = await callTool(nx.mcpPort, sid, 'debug_echo', { message: `conc-${i}` });
    return toolText(r);
  }));
  assert.deepEqual(conc, Array.from({ length: 20 }, (_, i) => `conc-${i}`));
  // And one after the other, alternating between the MCP and the REST port.
  for (let i = 0; i < 20; i++) {
    const port = i % 2 ? nx.restPort : nx.mcpPort;
    const r = await callTool(port, sid, 'debug_echo', { message: `seq-${i}` });
    assert.equal(toolText(r), `seq-${i}`, `sequential request ${i} on port ${port}`);
  }
  const d = await request(nx.mcpPort, { method: 'DELETE', path: '/mcp',
    headers: { 'mcp-session-id': sid, 'mcp-protocol-version': PV } });
  assert.ok(d.status === 200 || d.status === 204, `DELETE: HTTP ${d.status}: ${d.text}`);
  const gone = await Promise.all(Array.from({ length: 20 }, () =>
    mcpPost(nx.mcpPort, { jsonrpc: '2.0', id: newId(), method: 'ping' }, { sid })));
  assert.deepEqual(gone.map((r) => r.status), Array(20).fill(404), 'requests after DELETE on 20 connections');
});

test('keep-alive: several MCP requests on one connection', { timeout: 15000 }, async () => {
  const sid = await openSession(nx.mcpPort);
  const c = await RawConn.open(nx.mcpPort);
  try {
    for (let i = 0; i < 5; i++) {
      const r = await c.roundTrip(rawToolCall(sid, 100 + i, 'debug_echo', { message: `ka-${i}` }));
      assert.equal(r.status, 200, r.text);
      const m = rpcBody(r, 100 + i);
      assert.equal(toolText(m.result), `ka-${i}`);
    }
  } finally {
    c.destroy();
  }
});

// ---------------------------------------------------------------------------------------------
// 4. Clients leaving in the middle of a call

// 2 shards: with 10 connections some land on the shard owning the session and some on the
// other one (the request is then forwarded), so both paths see their client leave.
test('clients disconnecting during debug_sleep do not break the server', { timeout: 30000 }, async () => {
  const own = await startNexus({ shards: 2, debugRoutes: true });
  try {
    const sid = await openSession(own.mcpPort);
    // Raw clients that send a call and leave before the answer.
    for (let i = 0; i < 10; i++) {
      const c = await RawConn.open(i % 2 ? own.restPort : own.mcpPort);
      await c.write(rawToolCall(sid, i, 'debug_sleep', { ms: 200 + 10 * i }));
      await sleep(20);
      if (i % 2) c.sock.resetAndDestroy(); else c.destroy();
    }
    // An SDK client that aborts its call (fetch aborted + notifications/cancelled).
    const { client } = await sdkConnect(own.mcpPort);
    try {
      const ac = new AbortController();
      const p = client.callTool({ name: 'debug_sleep', arguments: { ms: 300 } }, undefined, { signal: ac.signal });
      await sleep(50);
      ac.abort();
      await assert.rejects(p);
      // The same client keeps working.
      const echo = await client.callTool({ name: 'debug_echo', arguments: { message: 'still here' } });
      assert.equal(toolText(echo), 'still here');
    } finally {
      await client.close();
    }
    // Let every abandoned sleep expire (the timers fire with their clients gone).
    await sleep(600);
    assert.deepEqual(await rpcResult(own.mcpPort, sid, 'ping'), {});
    const r = await callTool(own.mcpPort, sid, 'debug_sleep', { ms: 50 });
    assert.deepEqual(r.content, [{ type: 'text', text: 'slept 50 ms' }]);
    const { client: c2 } = await sdkConnect(own.restPort);
    try {
      assert.equal(toolText(await c2.callTool({ name: 'debug_echo', arguments: { message: 'ok' } })), 'ok');
    } finally {
      await c2.close();
    }
  } finally {
    assertCleanExit(await own.stop());
  }
});

test('an abandoned long debug_sleep does not hold up shutdown', { timeout: 30000 }, async () => {
  const own = await startNexus({ shards: 2, debugRoutes: true, set: { 'shutdown.grace': '5s' } });
  try {
    const sid = await openSession(own.mcpPort);
    // 6 connections: some on the session's shard, some forwarded from the other one.
    for (let i = 0; i < 6; i++) {
      const c = await RawConn.open(own.mcpPort);
      await c.write(rawToolCall(sid, i, 'debug_sleep', { ms: 30000 }));
      await sleep(50);
      c.destroy();
    }
    await sleep(100);
    assert.deepEqual(await rpcResult(own.mcpPort, sid, 'ping'), {});
    const r = await own.stop();
    assertCleanExit(r);
    assert.ok(r.ms < 4000, `nexus took ${r.ms} ms to stop (grace 5 s) with only an abandoned call pending`);
  } finally {
    await own.kill();
  }
});

// The shutdown tests use 2 shards and 6 connections: some land on the shard owning the session,
// some on the other one (their calls are forwarded), so both paths are exercised.
async function openCalls(nx2, sid, n, ms) {
  const conns = [];
  for (let i = 0; i < n; i++) {
    const c = await RawConn.open(nx2.mcpPort);
    conns.push(c);
    await c.write(rawToolCall(sid, i, 'debug_sleep', { ms }));
  }
  return conns;
}

// A call forwarded to the shard owning its session must be answered even when that shard has
// nothing else in flight at SIGTERM. Which shard a connection lands on is up to the kernel, so
// each round starts a fresh nexus with one call on one connection (forwarded with chance 1/2).
test('SIGTERM during an MCP call: the call is answered within the grace, then exit 0 (4 rounds)', { timeout: 40000 }, async () => {
  for (let round = 0; round < 4; round++) {
    const own = await startNexus({ shards: 2, debugRoutes: true, set: { 'shutdown.grace': '2s' } });
    let conns = [];
    try {
      const sid = await openSession(own.mcpPort);
      conns = await openCalls(own, sid, 1, 300);
      await sleep(100);
      const tSig = Date.now();
      own.signal('SIGTERM');
      const r = await conns[0].readResponse({ timeoutMs: 3000 }).catch((e) => assert.fail(
        `round ${round}: no answer to a debug_sleep(300) in flight at SIGTERM (grace 2 s): ${e.message}`));
      assert.equal(r.status, 200, `round ${round}: ${r.text}`);
      assert.deepEqual(rpcBody(r, 0).result?.content, [{ type: 'text', text: 'slept 300 ms' }]);
      const ex = await own.waitExit(5000);
      assert.ok(ex.at - tSig < 1500, `round ${round}: exited ${ex.at - tSig} ms after SIGTERM; the call ended after ~200 ms`);
      assertCleanExit(await own.stop());
    } finally {
      conns.forEach((c) => c.destroy());
      await own.kill();
    }
  }
});

test('SIGTERM with MCP calls outliving the grace: exit 0 after the grace, nothing leaked', { timeout: 30000 }, async () => {
  const own = await startNexus({ shards: 2, debugRoutes: true, set: { 'shutdown.grace': '500ms' } });
  let conns = [];
  try {
    const sid = await openSession(own.mcpPort);
    conns = await openCalls(own, sid, 6, 30000);
    await sleep(100);
    const tSig = Date.now();
    own.signal('SIGTERM');
    await Promise.all(conns.map((c) => c.waitClose(4000)));
    const ex = await own.waitExit(5000);
    assert.ok(ex.at - tSig < 3000, `exited ${ex.at - tSig} ms after SIGTERM (grace 500 ms)`);
    assertCleanExit(await own.stop());
  } finally {
    conns.forEach((c) => c.destroy());
    await own.kill();
  }
});

// ---------------------------------------------------------------------------------------------

test('mcp.max_sessions is enforced: a flood gets 503 + Retry-After, sessions in use survive', async () => {
  const own = await startNexus({
    shards: 1,
    set: { 'mcp.max_sessions': '2', 'mcp.session_evict_idle': '1h' },
  });
  try {
    const a = await openSession(own.mcpPort);
    const b = await openSession(own.mcpPort);
    const r = await mcpPost(own.mcpPort, initMsg(PV));
    assert.equal(r.status, 503, `third session: HTTP ${r.status}: ${r.text}`);
    assert.ok(r.headers['retry-after'], 'a shed request says when to retry');
    assertRpcError(JSON.parse(r.text), undefined, 'session flood');
    // The two sessions in use were not evicted by the flood.
    assert.deepEqual(await rpcResult(own.mcpPort, a, 'ping'), {});
    assert.deepEqual(await rpcResult(own.mcpPort, b, 'ping'), {});
    await own.stopAndAssertClean();
  } finally {
    await own.kill();
  }
});

test('the shared nexus exits cleanly (exit 0, no sanitizer report) after all the MCP traffic', { timeout: 30000 }, async () => {
  const r = await nx.stop();
  assertCleanExit(r);
});
