// Event streams of MCP over HTTP, on the wire: a POST answered as text/event-stream once its
// tool reports progress (numbered events, then the response), resumption of that stream with
// Last-Event-ID after the client lost it (the tool keeps running; the missed events and the
// answer arrive on the GET), the standalone GET stream receiving a broadcast, the legacy
// HTTP+SSE transport's errors, batches (2025-03-26 only), resources/prompts/completion/logging
// methods on a bare nexus, mcp.allowed_hosts, and the connected-client count.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startNexus, request, sleep } from './lib/nexus.mjs';
import {
  ACCEPT, PV, mcpPost, openSession, rpc, rpcResult, assertRpcError, newId, openStream, postStream,
  initMsg,
} from './lib/mcp.mjs';

let nx;
before(async () => {
  nx = await startNexus({ shards: 2, debugRoutes: true, set: { 'mcp.allowed_hosts': 'mcp.example.com, 10.1.2.3' } });
});
after(async () => {
  if (nx) await nx.kill();
});

const progressCall = (steps, ms, token = 'tok') => ({
  jsonrpc: '2.0', id: newId(), method: 'tools/call',
  params: { name: 'debug_progress', arguments: { steps, ms }, _meta: { progressToken: token } },
});

test('a POST whose tool reports progress is answered as an event stream: numbered events, then the response', { timeout: 15000 }, async () => {
  const sid = await openSession(nx.mcpPort);
  const msg = progressCall(2, 20);
  const s = await postStream(nx.mcpPort, msg, sid);
  assert.equal(s.status, 200);
  assert.match(s.headers['content-type'], /^text\/event-stream/);
  assert.equal(s.headers['cache-control'], 'no-cache');
  // 2025-11-25 clients get a priming event first: an id to resume from, no message.
  const priming = await s.next();
  assert.equal(priming.data, '', 'the priming event carries no message');
  assert.match(String(priming.id), /^[0-9]+$/);
  assert.match(s.text(), /^retry: [0-9]+$/m, 'the priming event says when to reconnect');
  const events = [];
  for (;;) {
    const ev = await s.next();
    events.push(ev);
    const m = JSON.parse(ev.data);
    if (m.id === msg.id) break;
  }
  assert.ok(await s.end(), 'the stream ends after the response');
  const msgs = events.map((e) => JSON.parse(e.data));
  const progress = msgs.filter((m) => m.method === 'notifications/progress');
  assert.deepEqual(progress.map((m) => m.params.progress), [1, 2]);
  assert.ok(progress.every((m) => m.params.progressToken === 'tok'));
  assert.equal(msgs.filter((m) => m.method === 'notifications/message').length, 2, 'log messages');
  assert.equal(msgs.at(-1).result.content[0].text, 'done after 2 steps');
  const ids = [priming, ...events].map((e) => Number(e.id));
  assert.ok(ids.every((id, i) => Number.isInteger(id) && id > 0 && (i === 0 || id > ids[i - 1])),
    `event ids increase: ${ids}`);
  // Without anything to stream first, the same session gets plain JSON.
  const plain = await mcpPost(nx.mcpPort, { jsonrpc: '2.0', id: newId(), method: 'ping' }, { sid });
  assert.match(plain.headers['content-type'], /^application\/json/);
});

test('Last-Event-ID: a client that lost a POST stream resumes it with GET; the tool was not cancelled', { timeout: 15000 }, async () => {
  // Resume on both ports: the session lives on one shard, connections land on either.
  for (const port of [nx.mcpPort, nx.restPort]) {
    const sid = await openSession(port);
    const msg = progressCall(4, 150);
    const s = await postStream(port, msg, sid);
    assert.equal((await s.next()).data, '', 'priming event');
    const first = await s.next();
    assert.equal(JSON.parse(first.data).params.progress, 1);
    s.close(); // the connection drops after the first event
    await sleep(50);
    const g = await openStream(port, {
      headers: { accept: ACCEPT, 'mcp-session-id': sid, 'mcp-protocol-version': PV, 'last-event-id': first.id },
    });
    assert.equal(g.status, 200, g.text());
    assert.match(g.headers['content-type'], /^text\/event-stream/);
    const rest = [];
    for (;;) {
      const ev = await g.next(5000);
      const m = JSON.parse(ev.data);
      rest.push(m);
      if (m.id === msg.id) break;
    }
    assert.ok(await g.end(), 'the resumed stream ends with the response');
    const progress = rest.filter((m) => m.method === 'notifications/progress').map((m) => m.params.progress);
    assert.deepEqual(progress, [2, 3, 4], 'exactly the events after Last-Event-ID, once each');
    assert.equal(rest.at(-1).result.content[0].text, 'done after 4 steps');
    // Replaying again from the same id gives the same events (the log keeps them) and ends.
    const again = await openStream(port, {
      headers: { accept: ACCEPT, 'mcp-session-id': sid, 'mcp-protocol-version': PV, 'last-event-id': first.id },
    });
    assert.ok(await again.end());
    assert.equal((again.text().match(/^id: /gm) ?? []).length, rest.length);
    // An id this session never issued.
    const bad = await request(port, {
      path: '/mcp',
      headers: { accept: ACCEPT, 'mcp-session-id': sid, 'mcp-protocol-version': PV, 'last-event-id': '999999' },
    });
    assert.equal(bad.status, 404, bad.text);
  }
});

test('the standalone GET stream receives a broadcast; /api/v1/mcp/clients counts clients', { timeout: 15000 }, async () => {
  const sid = await openSession(nx.mcpPort);
  const g = await openStream(nx.restPort, {
    headers: { accept: 'text/event-stream', 'mcp-session-id': sid, 'mcp-protocol-version': PV },
  });
  assert.equal(g.status, 200);
  assert.match(g.headers['content-type'], /^text\/event-stream/);
  const ws = new WebSocket(`ws://127.0.0.1:${nx.mcpPort}/ws`, 'mcp');
  const wsMsgs = [];
  await new Promise((r, j) => { ws.onopen = r; ws.onerror = j; });
  ws.onmessage = (e) => wsMsgs.push(JSON.parse(e.data));
  const clients = (await request(nx.restPort, { path: '/api/v1/mcp/clients' })).json();
  assert.ok(clients.websocket >= 1 && clients.sessions >= 1, JSON.stringify(clients));
  const r = await request(nx.restPort, {
    method: 'POST', path: '/api/v1/mcp/broadcast', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ method: 'notifications/tools/list_changed' }),
  });
  assert.equal(r.status, 200, r.text);
  assert.ok(r.json().delivered >= 2, r.text);
  const ev = await g.next();
  assert.equal(JSON.parse(ev.data).method, 'notifications/tools/list_changed');
  for (let i = 0; i < 50 && wsMsgs.length === 0; i++) await sleep(20);
  assert.equal(wsMsgs[0]?.method, 'notifications/tools/list_changed');
  ws.close();
  g.close();
  const bad = await request(nx.restPort, {
    method: 'POST', path: '/api/v1/mcp/broadcast', body: JSON.stringify({ method: 'tools/call' }),
  });
  assert.equal(bad.status, 400, 'only notifications can be broadcast');
});

test('legacy HTTP+SSE: endpoint event; /messages needs a known sessionId; a session ends with its stream', { timeout: 15000 }, async () => {
  const s = await openStream(nx.mcpPort, { path: '/sse', headers: { accept: 'text/event-stream' } });
  assert.equal(s.status, 200);
  const ep = await s.next();
  assert.equal(ep.event, 'endpoint');
  const m = /^\/messages\?sessionId=([0-9a-f]{34})$/.exec(ep.data);
  assert.ok(m, ep.data);
  const post = (path, body) => request(nx.restPort, {
    method: 'POST', path, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body),
  });
  const r = await post(ep.data, initMsg('2024-11-05'));
  assert.equal(r.status, 202, r.text);
  const init = JSON.parse((await s.next()).data);
  assert.equal(init.result.protocolVersion, '2024-11-05');
  assert.equal((await post('/messages', { jsonrpc: '2.0', id: 1, method: 'ping' })).status, 400);
  assert.equal((await post(`/messages?sessionId=${'0'.repeat(34)}`, { jsonrpc: '2.0', id: 1, method: 'ping' })).status, 404);
  s.close();
  await sleep(100);
  assert.equal((await post(ep.data, { jsonrpc: '2.0', id: 2, method: 'ping' })).status, 404,
    'the session ended with its event stream');
});

test('batches: answered as an array for 2025-03-26 sessions, refused for later revisions', { timeout: 15000 }, async () => {
  const old = await openSession(nx.mcpPort, { protocolVersion: '2025-03-26' });
  const batch = [
    { jsonrpc: '2.0', id: 'a', method: 'ping' },
    { jsonrpc: '2.0', method: 'notifications/initialized' },
    { jsonrpc: '2.0', id: 'b', method: 'tools/call', params: { name: 'debug_sleep', arguments: { ms: 30 } } },
    { jsonrpc: '2.0', id: 'c', method: 'nope' },
  ];
  const r = await mcpPost(nx.mcpPort, JSON.stringify(batch), { sid: old, headers: { 'mcp-protocol-version': '2025-03-26' } });
  assert.equal(r.status, 200, r.text);
  const answers = r.json();
  assert.ok(Array.isArray(answers), r.text);
  assert.deepEqual(answers.map((a) => a.id).sort(), ['a', 'b', 'c']);
  assert.equal(answers.find((a) => a.id === 'b').result.content[0].text, 'slept 30 ms');
  assert.equal(answers.find((a) => a.id === 'c').error.code, -32601);
  const dup = await mcpPost(nx.mcpPort, JSON.stringify([batch[0], batch[0]]), { sid: old, headers: { 'mcp-protocol-version': '2025-03-26' } });
  assert.equal(dup.status, 400, 'repeated ids in a batch');
  const sid = await openSession(nx.mcpPort);
  const refused = await mcpPost(nx.mcpPort, JSON.stringify([batch[0]]), { sid });
  assert.equal(refused.status, 400, refused.text);
  assertRpcError(refused.json(), -32600, 'batch in 2025-11-25');
});

test('resources, prompts, completion and logging on a nexus without any: empty lists and precise errors', { timeout: 15000 }, async () => {
  const sid = await openSession(nx.mcpPort);
  const port = nx.mcpPort;
  assert.deepEqual((await rpcResult(port, sid, 'resources/list')).resources, []);
  assert.deepEqual((await rpcResult(port, sid, 'resources/templates/list')).resourceTemplates, []);
  assert.deepEqual((await rpcResult(port, sid, 'prompts/list')).prompts, []);
  const nf = await rpc(port, sid, 'resources/read', { uri: 'test://nothing' });
  assertRpcError(nf, -32002, 'unknown resource');
  assert.match(nf.error.message, /test:\/\/nothing/);
  assertRpcError(await rpc(port, sid, 'prompts/get', { name: 'nope' }), -32602, 'unknown prompt');
  const c = await rpcResult(port, sid, 'completion/complete', {
    ref: { type: 'ref/prompt', name: 'x' }, argument: { name: 'a', value: 'b' },
  });
  assert.deepEqual(c.completion.values, []);
  assertRpcError(await rpc(port, sid, 'completion/complete', { ref: { type: 'bad' }, argument: { name: 'a', value: 'b' } }), -32602, 'bad ref');
  assert.deepEqual(await rpcResult(port, sid, 'logging/setLevel', { level: 'error' }), {});
  const bad = await rpc(port, sid, 'logging/setLevel', { level: 'loud' });
  assertRpcError(bad, -32602, 'bad level');
  assert.match(bad.error.message, /params\.level/);
  assertRpcError(await rpc(port, sid, 'resources/subscribe', {}), -32602, 'subscribe without uri');
  assert.deepEqual(await rpcResult(port, sid, 'resources/subscribe', { uri: 'test://x' }), {});
  assert.deepEqual(await rpcResult(port, sid, 'resources/unsubscribe', { uri: 'test://x' }), {});
});

test('mcp.allowed_hosts: listed names pass the DNS-rebinding check, others still get 403', { timeout: 15000 }, async () => {
  for (const host of ['mcp.example.com', `mcp.example.com:${nx.mcpPort}`, '10.1.2.3']) {
    const r = await mcpPost(nx.mcpPort, initMsg(), { headers: { host } });
    assert.equal(r.status, 200, `Host ${host}: ${r.text}`);
  }
  const r = await mcpPost(nx.mcpPort, initMsg(), { headers: { host: 'other.example.com' } });
  assert.equal(r.status, 403);
  const o = await mcpPost(nx.mcpPort, initMsg(), { headers: { origin: 'https://mcp.example.com' } });
  assert.equal(o.status, 200, o.text);
});

test('nexus stops cleanly after all of it', async () => {
  await nx.stopAndAssertClean();
  nx = null;
});
