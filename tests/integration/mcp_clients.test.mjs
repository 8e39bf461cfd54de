// The official TypeScript SDK client over every transport nexus serves: Streamable HTTP (POST
// answered as an event stream once a tool reports progress), the legacy HTTP+SSE transport
// (GET /sse + POST /messages), WebSocket (subprotocol mcp) and stdio (`nexus mcp`). Each one
// connects, lists tools, calls a tool that reports progress and logs, gets a sampling request
// that the client answers, sets the log level, and disconnects cleanly. Two shards, so sessions
// created on one shard are reached through the other.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { WebSocketClientTransport } from '@modelcontextprotocol/sdk/client/websocket.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import {
  CreateMessageRequestSchema,
  LoggingMessageNotificationSchema,
} from '@modelcontextprotocol/sdk/types.js';
import { startNexus, nexusBin, nexusEnv, assertNoSanitizerReport, HOST } from './lib/nexus.mjs';

let nx;
before(async () => {
  nx = await startNexus({ shards: 2, debugRoutes: true });
});
after(async () => {
  if (nx) await nx.kill();
});

/** A client that offers sampling (answering with a fixed reply) and records log messages. */
function makeClient(name) {
  const client = new Client({ name, version: '1.0.0' }, { capabilities: { sampling: {} } });
  const logs = [];
  const samples = [];
  client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => logs.push(n.params));
  client.setRequestHandler(CreateMessageRequestSchema, async (req) => {
    samples.push(req.params);
    return {
      role: 'assistant',
      content: { type: 'text', text: `echo of ${req.params.messages[0].content.text}` },
      model: 'test-model',
      stopReason: 'endTurn',
    };
  });
  return { client, logs, samples };
}

/** The same checks on any connected transport. */
async function exercise({ client, logs, samples }, label) {
  const tools = (await client.listTools()).tools.map((t) => t.name);
  for (const t of ['health_check', 'debug_progress', 'debug_sample'])
    assert.ok(tools.includes(t), `${label}: ${t} missing from ${tools}`);

  const progress = [];
  const r = await client.callTool({ name: 'debug_progress', arguments: { steps: 3, ms: 20 } },
    undefined, { onprogress: (p) => progress.push(p) });
  assert.equal(r.content[0].text, 'done after 3 steps', label);
  assert.deepEqual(progress.map((p) => p.progress), [1, 2, 3], `${label}: progress in order`);
  assert.ok(progress.every((p) => p.total === 3), `${label}: total reported`);
  assert.equal(progress[2].message, 'step 3 of 3');
  const stepLogs = logs.filter((l) => l.logger === 'debug_progress');
  assert.deepEqual(stepLogs.map((l) => l.data), ['step 1 of 3', 'step 2 of 3', 'step 3 of 3'],
    `${label}: log notifications`);
  assert.ok(stepLogs.every((l) => l.level === 'info'));

  // logging/setLevel above info silences the tool's info messages.
  await client.setLoggingLevel('warning');
  const before = logs.length;
  await client.callTool({ name: 'debug_progress', arguments: { steps: 2, ms: 5 } });
  assert.equal(logs.length, before, `${label}: no info logs after setLevel warning`);

  const s = await client.callTool({ name: 'debug_sample', arguments: { prompt: `hi from ${label}` } });
  assert.ok(!s.isError, `${label}: ${JSON.stringify(s)}`);
  assert.equal(s.content[0].text, `the client said: echo of hi from ${label}`);
  assert.equal(samples.length, 1, `${label}: one sampling request reached the client`);
  assert.equal(samples[0].maxTokens, 100);

  // Several calls at once: each answer and each progress stream stays with its call.
  const many = await Promise.all([1, 2, 3, 4].map((n) => {
    const seen = [];
    return client.callTool({ name: 'debug_progress', arguments: { steps: n, ms: 10 } },
      undefined, { onprogress: (p) => seen.push(p.progress) })
      .then((res) => ({ n, text: res.content[0].text, seen }));
  }));
  for (const m of many) {
    assert.equal(m.text, `done after ${m.n} steps`);
    assert.deepEqual(m.seen, Array.from({ length: m.n }, (_, i) => i + 1));
  }
}

test('Streamable HTTP: progress and logs on an event-stream answer, sampling, setLevel, terminate', { timeout: 30000 }, async () => {
  const c = makeClient('streamable');
  const transport = new StreamableHTTPClientTransport(new URL(`http://${HOST}:${nx.mcpPort}/mcp`));
  await c.client.connect(transport);
  await exercise(c, 'streamable-http');
  assert.match(transport.sessionId, /^[0-9a-f]{34}$/);
  await transport.terminateSession();
  await c.client.close();
});

test('legacy HTTP+SSE (GET /sse, POST /messages): the same flow, answers on the event stream', { timeout: 30000 }, async () => {
  const c = makeClient('sse');
  const transport = new SSEClientTransport(new URL(`http://${HOST}:${nx.mcpPort}/sse`));
  await c.client.connect(transport);
  await exercise(c, 'legacy-sse');
  await c.client.close();
});

test('WebSocket (subprotocol mcp): the same flow', { timeout: 30000 }, async () => {
  const c = makeClient('ws');
  const transport = new WebSocketClientTransport(new URL(`ws://${HOST}:${nx.mcpPort}/ws`));
  await c.client.connect(transport);
  await exercise(c, 'websocket');
  await c.client.close();
});

test('stdio (`nexus mcp`): the same flow, then a clean exit', { timeout: 30000 }, async () => {
  const transport = new StdioClientTransport({
    command: nexusBin(), args: ['mcp', '--debug-routes'], env: nexusEnv(), stderr: 'pipe',
  });
  let stderr = '';
  transport.stderr.on('data', (d) => (stderr += d));
  const c = makeClient('stdio');
  await c.client.connect(transport);
  await exercise(c, 'stdio');
  await c.client.close();
  assertNoSanitizerReport(stderr, 'nexus mcp');
});

test('a sampling request the client refuses becomes an isError result, not a hang', { timeout: 15000 }, async () => {
  const client = new Client({ name: 'no-sampling', version: '1.0.0' });
  const transport = new StreamableHTTPClientTransport(new URL(`http://${HOST}:${nx.restPort}/mcp`));
  await client.connect(transport);
  const r = await client.callTool({ name: 'debug_sample', arguments: { prompt: 'x' } });
  assert.equal(r.isError, true);
  assert.match(r.content[0].text, /does not offer sampling/);
  await transport.terminateSession();
  await client.close();
});

test('nexus stops cleanly after all of it', async () => {
  await nx.stopAndAssertClean();
  nx = null;
});
