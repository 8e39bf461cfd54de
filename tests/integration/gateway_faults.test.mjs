// Faults behind the gateway, asserted from outside with nxmock as stdio backends: the circuit
// breaker opens after the configured failures, fails fast while open (naming the backend, with
// a retry-after hint), half-opens after open_for and opens again when the probe fails; the
// bulkhead rejects calls over max_concurrent at once; a backend that does not answer is cut at
// its deadline; a call whose backend process is killed goes again (backoff) once nexus has
// restarted it; a backend that never starts is restarted with backoff and lists nothing.
// /health reports breaker state, rejections, restarts and retries.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { startNexus, nexusBin, getJson, sleep, tempDir, HOST } from './lib/nexus.mjs';

const NXMOCK = path.join(path.dirname(nexusBin()), 'nxmock');

let nx;
let dir;
let client;
let transport;
before(async () => {
  dir = tempDir();
  const config = dir.path('faults.yaml');
  (await import('node:fs')).writeFileSync(config, [
    'servers:',
    '  - name: flaky',
    '    transport: stdio',
    `    command: ${NXMOCK}`,
    '    args: ["--stdio", "--error-rate", "1", "--log-level", "warn"]',
    '    breaker: {window: 4, minimum_calls: 4, failure_rate: 50, open_for: 1s, half_open_calls: 1}',
    '  - name: slow',
    '    transport: stdio',
    `    command: ${NXMOCK}`,
    '    args: ["--stdio", "--log-level", "warn"]',
    '    bulkhead: {max_concurrent: 2}',
    '    timeouts: {call: 400ms, deadline: 400ms}',
    '  - name: crashy',
    '    transport: stdio',
    `    command: ${NXMOCK}`,
    '    args: ["--stdio", "--log-level", "warn"]',
    '    restart: {base: 50ms, cap: 200ms}',
    '    retry: {attempts: 6, base: 50ms, cap: 400ms}',
    '    timeouts: {call: 5s, deadline: 8s}',
    '  - name: down',
    '    transport: stdio',
    '    command: /bin/false',
    '    restart: {base: 50ms, cap: 100ms}',
    '',
  ].join('\n'));
  nx = await startNexus({ shards: 2, config });
  for (let i = 0; i < 100; i++) {
    const h = (await getJson(nx.restPort, '/health')).data.backends;
    if (h.flaky?.tools > 0 && h.slow?.tools > 0 && h.crashy?.tools > 0) break;
    await sleep(100);
  }
  client = new Client({ name: 'faults-test', version: '1.0.0' });
  transport = new StreamableHTTPClientTransport(new URL(`http://${HOST}:${nx.mcpPort}/mcp`));
  await client.connect(transport);
});
after(async () => {
  if (nx) await nx.kill();
});

const call = (name, args) => client.callTool({ name, arguments: args }).then(
  (r) => ({ ok: r }), (e) => ({ error: e }));

test('the breaker opens after the configured failures, fails fast, half-opens, reopens', { timeout: 20000 }, async () => {
  for (let i = 0; i < 4; i++) {
    const r = await call('flaky__echo', { message: 'x' });
    assert.match(String(r.error?.message), /injected error/, 'the backend itself answered');
  }
  const t0 = Date.now();
  const fast = await call('flaky__echo', { message: 'x' });
  assert.match(String(fast.error?.message), /flaky.*circuit open/);
  assert.equal(fast.error.data.backend, 'flaky');
  assert.equal(fast.error.data.reason, 'circuit_open');
  assert.ok(fast.error.data.retryAfterMs > 0 && fast.error.data.retryAfterMs <= 1000);
  assert.ok(Date.now() - t0 < 200, 'an open breaker answers at once');
  assert.equal((await getJson(nx.restPort, '/health')).data.backends.flaky.breaker, 'open');
  await sleep(1100);
  const probe = await call('flaky__echo', { message: 'x' });
  assert.match(String(probe.error?.message), /injected error/, 'half-open: one probe reaches the backend');
  const again = await call('flaky__echo', { message: 'x' });
  assert.match(String(again.error?.message), /circuit open/, 'the failed probe opened it again');
  const h = (await getJson(nx.restPort, '/health')).data.backends.flaky;
  assert.equal(h.breaker, 'open');
  assert.equal(h.failures, 5, 'four failures, then the probe');
});

test('the bulkhead rejects calls over max_concurrent at once', { timeout: 20000 }, async () => {
  const t0 = Date.now();
  const results = await Promise.all([1, 2, 3].map((i) => {
    const started = Date.now();
    return call('slow__sleep', { ms: 300 }).then((r) => ({ ...r, ms: Date.now() - started, i }));
  }));
  const rejected = results.filter((r) => r.error && /limit of 2/.test(r.error.message));
  const done = results.filter((r) => r.ok);
  assert.equal(rejected.length, 1, JSON.stringify(results.map((r) => r.error?.message ?? 'ok')));
  assert.equal(done.length, 2);
  assert.equal(rejected[0].error.data.reason, 'bulkhead');
  assert.ok(rejected[0].ms < 250, `rejected after ${rejected[0].ms} ms, not queued`);
  assert.ok(Date.now() - t0 < 5000);
  assert.ok((await getJson(nx.restPort, '/health')).data.backends.slow.rejected >= 1);
});

test('a backend that does not answer is cut at its deadline', { timeout: 20000 }, async () => {
  const t0 = Date.now();
  const r = await call('slow__sleep', { ms: 3000 });
  const ms = Date.now() - t0;
  assert.match(String(r.error?.message), /slow did not answer within 400 ms/);
  assert.ok(ms >= 380 && ms < 1500, `answered after ${ms} ms`);
  // The backend is still usable afterwards.
  const ok = await call('slow__echo', { message: 'still here' });
  assert.equal(ok.ok.content[0].text, 'still here');
});

test('a client deadline in _meta shortens the backend deadline, never lengthens it', { timeout: 20000 }, async () => {
  // crashy has a 5 s per-try timeout and an 8 s deadline; the client wants its answer in 300 ms.
  const t0 = Date.now();
  const r = await client.callTool({ name: 'crashy__sleep', arguments: { ms: 3000 },
    _meta: { 'io.nexus/timeoutMs': 300 } }).then((x) => ({ ok: x }), (e) => ({ error: e }));
  const ms = Date.now() - t0;
  assert.match(String(r.error?.message), /crashy did not answer within 300 ms \(the call's deadline\)/);
  assert.equal(r.error.data.reason, 'deadline');
  assert.ok(ms >= 280 && ms < 1500, `answered after ${ms} ms`);
  // A longer client deadline does not stretch slow's 400 ms one.
  const t1 = Date.now();
  const s = await client.callTool({ name: 'slow__sleep', arguments: { ms: 3000 },
    _meta: { 'io.nexus/timeoutMs': 60000 } }).then((x) => ({ ok: x }), (e) => ({ error: e }));
  assert.ok(s.error, 'cut by the backend deadline');
  assert.ok(Date.now() - t1 < 1500, `answered after ${Date.now() - t1} ms`);
});

test('a call whose backend process dies is retried after the restart and succeeds', { timeout: 20000 }, async () => {
  const before = (await getJson(nx.restPort, '/health')).data.backends.crashy;
  const pending = call('crashy__sleep', { ms: 800 });
  await sleep(200);
  process.kill(before.pid, 'SIGKILL');
  const r = await pending;
  assert.equal(r.ok?.content[0].text, 'slept 800 ms', JSON.stringify(r.error?.message));
  const after = (await getJson(nx.restPort, '/health')).data.backends.crashy;
  assert.ok(after.restarts > before.restarts, 'the process was restarted');
  assert.ok(after.retries >= 1, 'the call went again');
  assert.notEqual(after.pid, before.pid);
});

test('a backend that never comes up lists no tools, its calls fail as unknown, nexus keeps restarting it', { timeout: 20000 }, async () => {
  const names = (await client.listTools()).tools.map((t) => t.name);
  assert.ok(!names.some((n) => n.startsWith('down__')), 'a backend that never started lists nothing');
  const h0 = (await getJson(nx.restPort, '/health')).data.backends.down;
  assert.notEqual(h0.state, 'ready');
  // Its tools are unknown, so calls never reach the retry loop: they fail as unknown tools.
  const r = await call('down__anything', {});
  assert.match(String(r.error?.message), /Unknown tool/);
  const h1 = (await getJson(nx.restPort, '/health')).data.backends.down;
  assert.ok(h1.restarts >= h0.restarts, 'nexus keeps restarting it with backoff');
});

test('nexus stops cleanly after the faults', async () => {
  await transport.terminateSession();
  await client.close();
  await nx.stopAndAssertClean();
  nx = null;
  dir.remove();
});
