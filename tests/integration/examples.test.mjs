// The bundled examples behind `make run`: nexus on examples/quickstart.yaml with the nine demo
// backends (examples/demo_backends.c) over stdio, and its four pipelines answering on every
// channel: REST (POST /api/workflows/<name>, POST /api/executions + GET), MCP (the tool
// workflow_<name> through the official SDK client) and the CLI (`nexus run`). Each pipeline's
// point is checked: content_pipeline falls back to cached headlines when the feed fails (the
// failed alternative stays in the record), bi_dashboard joins parallel queries into KPIs and a
// report, api_integration retries a slow partner, degrades without orders and, once the partner
// keeps failing, meets an open breaker; monitoring alerts only when something is down.
//
// The config is used as shipped, except for the command of the backends: the demo_backends
// next to $NEXUS_BIN (<build>/examples/demo_backends), not build/ of `make run`.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import {
  startNexus, runNexus, nexusBin, getJson, request, sleep, tempDir, assertCleanExit, HOST,
} from './lib/nexus.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const QUICKSTART = path.join(ROOT, 'examples', 'quickstart.yaml');
const DEMO = path.join(path.dirname(nexusBin()), 'examples', 'demo_backends');
const BACKENDS = ['news', 'templates', 'database', 'analytics', 'reports', 'external',
  'transform', 'monitor', 'alerts'];

let nx;
let config;
before(async () => {
  assert.ok(fs.existsSync(DEMO), `${DEMO} is missing: build the examples`);
  const text = fs.readFileSync(QUICKSTART, 'utf8');
  const uses = text.match(/command: build\/examples\/demo_backends\n/g) ?? [];
  assert.equal(uses.length, BACKENDS.length, 'every backend runs build/examples/demo_backends');
  config = tempDir().path('quickstart.yaml');
  fs.writeFileSync(config, text.replaceAll('command: build/examples/demo_backends\n',
    `command: ${DEMO}\n`));
  nx = await startNexus({ config, shards: 2, timeoutMs: 30000 });
  // Nine sanitizer-built processes take a few seconds to start and list their tools.
  for (let i = 0; ; i++) {
    const b = (await getJson(nx.restPort, '/health')).data.backends;
    if (BACKENDS.every((n) => b[n]?.state === 'ready' && b[n].tools > 0)) break;
    if (i === 300) assert.fail(`backends not ready: ${JSON.stringify(b)}\n${nx.stderr}`);
    await sleep(100);
  }
});
after(async () => {
  if (!nx) return;
  assertCleanExit(await nx.stop());
});

/** POST /api/workflows/<name> with <inputs>: {status, record}. */
async function run(name, inputs) {
  const r = await request(nx.restPort, {
    method: 'POST', path: `/api/workflows/${name}`, body: JSON.stringify(inputs),
    headers: { 'content-type': 'application/json' }, timeoutMs: 30000,
  });
  return { status: r.status, record: JSON.parse(r.text) };
}

/** The step <id> of an execution record. */
function step(record, id) {
  const s = record.steps.find((x) => x.id === id);
  assert.ok(s, `no step ${id} in ${JSON.stringify(record.steps)}`);
  return s;
}

async function withClient(fn) {
  const client = new Client({ name: 'examples-test', version: '1.0.0' });
  const transport = new StreamableHTTPClientTransport(new URL(`http://${HOST}:${nx.mcpPort}/mcp`));
  await client.connect(transport);
  try {
    return await fn(client);
  } finally {
    await transport.terminateSession().catch(() => {});
    await client.close();
  }
}

async function alertsSent(client) {
  const r = await client.callTool({ name: 'alerts__history', arguments: {} });
  return r.structuredContent.sent;
}

test('nexus check-config accepts examples/quickstart.yaml as shipped', async () => {
  const r = await runNexus(['check-config', QUICKSTART]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout + r.stderr, /configuration OK/);
});

test('content_pipeline: live news rendered per article, stored and tracked', async () => {
  const { status, record } = await run('content_pipeline', { topic: 'observability', limit: 2 });
  assert.equal(status, 200, JSON.stringify(record));
  assert.equal(record.status, 'succeeded');
  const r = record.result;
  assert.equal(r.topic, 'observability');
  assert.equal(r.source, 'live');
  assert.equal(r.degraded, false);
  assert.equal(r.stored_ids.length, 2);
  assert.match(r.preview, /observability/);
  assert.match(r.event, /^evt-\d+$/);
  assert.equal(step(record, 'latest').status, 'succeeded');
  assert.equal(step(record, 'cached').runs, 0, 'the fallback alternative did not run');
  assert.equal(step(record, 'article').runs, 2, 'the map rendered each article');
  for (const id of ['news', 'render', 'store', 'track'])
    assert.equal(step(record, id).status, 'succeeded', id);
});

test('content_pipeline: the news feed down, cached headlines serve instead', async () => {
  const { status, record } = await run('content_pipeline',
    { topic: 'observability', limit: 2, simulate_outage: true });
  assert.equal(status, 200, JSON.stringify(record));
  assert.equal(record.status, 'succeeded');
  assert.equal(record.result.source, 'cache');
  assert.equal(record.result.degraded, true);
  assert.match(record.result.preview, /cache-/);
  const latest = step(record, 'latest');
  assert.equal(latest.status, 'failed');
  assert.match(latest.error.message, /news feed unavailable.*simulated outage/);
  assert.equal(step(record, 'cached').status, 'succeeded');
  assert.equal(step(record, 'news').status, 'succeeded');
  assert.equal(step(record, 'store').status, 'succeeded');
});

test('content_pipeline: the same fetch again within 30s comes from the step cache', async () => {
  // The cache is per shard (without Redis): both runs go on one keep-alive connection, so on
  // the shard that filled it.
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const post = (inputs) => new Promise((resolve, reject) => {
    const req = http.request({ host: HOST, port: nx.restPort, method: 'POST', agent,
      path: '/api/workflows/content_pipeline', headers: { 'content-type': 'application/json' } },
    (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode, record: JSON.parse(body) }));
    });
    req.on('error', reject);
    req.end(JSON.stringify(inputs));
  });
  try {
    const inputs = { topic: 'caching', limit: 1 };
    const first = await post(inputs);
    assert.equal(first.status, 200, JSON.stringify(first.record));
    assert.equal(step(first.record, 'latest').cached, false);
    const second = await post(inputs);
    assert.equal(second.status, 200, JSON.stringify(second.record));
    assert.equal(step(second.record, 'latest').cached, true, JSON.stringify(second.record));
    assert.equal(step(second.record, 'latest').attempts, 0);
    assert.equal(second.record.result.from_cache, true);
    // Cached: the news, not the pipeline's effects. The article is stored again.
    assert.notDeepEqual(second.record.result.stored_ids, first.record.result.stored_ids);
  } finally {
    agent.destroy();
  }
});

test('bi_dashboard: parallel queries joined into KPIs and a report, deterministic', async () => {
  const { status, record } = await run('bi_dashboard', { period: '2026-Q2', top: 2 });
  assert.equal(status, 200, JSON.stringify(record));
  for (const id of ['queries', 'sales', 'products', 'users', 'kpis', 'revenue', 'report'])
    assert.equal(step(record, id).status, 'succeeded', id);
  const r = record.result;
  assert.equal(r.period, '2026-Q2');
  for (const k of ['revenue', 'mean_revenue_per_region', 'orders', 'active_users'])
    assert.equal(typeof r.kpis[k], 'number', k);
  assert.equal(r.kpis.mean_revenue_per_region, Math.round((r.kpis.revenue / 4) * 100) / 100);
  assert.equal(typeof r.top_product, 'string');
  assert.match(r.report.id, /^rpt-[0-9a-f]{8}$/);
  assert.match(r.report.markdown, /^# Business dashboard 2026-Q2\n/);
  assert.match(r.report.markdown, /\| region \| revenue \| orders \| growth_pct \|/);
  assert.match(r.report.markdown, new RegExp(`\\| ${r.top_product} \\|`));
  // The same inputs give the same dashboard.
  const again = await run('bi_dashboard', { period: '2026-Q2', top: 2 });
  assert.deepEqual(again.record.result, r);
  // Inputs are checked against the workflow's schema before anything runs.
  const bad = await run('bi_dashboard', { period: 'last quarter' });
  assert.equal(bad.status, 400, JSON.stringify(bad.record));
});

test('api_integration: customer normalized, orders summarized, report built', async () => {
  const { status, record } = await run('api_integration', { customer_id: 'C-1001' });
  assert.equal(status, 200, JSON.stringify(record));
  const r = record.result;
  assert.equal(r.customer.id, 'C-1001');
  assert.match(r.customer.name, /^[A-Z][a-z]+( [A-Z][a-z]+)+$/, 'name title-cased and trimmed');
  assert.equal(r.customer.email, r.customer.email.trim().toLowerCase());
  assert.match(r.customer.country, /^[A-Z]{2}$/);
  assert.match(r.customer.phone, /^\+\d+$/);
  assert.ok(r.changed_fields.length > 0);
  assert.ok(r.orders >= 2);
  assert.equal(typeof r.spend, 'number');
  assert.equal(r.degraded, false);
  assert.equal(r.lookup_attempts, 1);
  assert.match(r.report, /^# Customer 360: /);
  assert.equal(step(record, 'track').status, 'succeeded');
});

test('api_integration: a lookup slower than the per-try timeout is retried', async () => {
  const { status, record } = await run('api_integration',
    { customer_id: 'C-4242', simulate: 'slow_once' });
  assert.equal(status, 200, JSON.stringify(record));
  assert.equal(record.result.lookup_attempts, 2);
  assert.equal(step(record, 'customer').attempts, 2);
  assert.ok(step(record, 'customer').duration_ms >= 400, 'the first try waited out its timeout');
});

test('api_integration: the orders service down, on_error keeps the pipeline going', async () => {
  const { status, record } = await run('api_integration',
    { customer_id: 'C-1001', simulate: 'orders_down' });
  assert.equal(status, 200, JSON.stringify(record));
  assert.equal(record.result.degraded, true);
  assert.equal(record.result.orders, 0);
  assert.equal(record.result.spend, 0);
  const orders = step(record, 'orders');
  assert.equal(orders.status, 'succeeded');
  assert.match(orders.error.message, /orders service unavailable/);
});

test('monitoring: all healthy, no alert sent', async () => {
  await withClient(async (client) => {
    const before = await alertsSent(client);
    const { status, record } = await run('monitoring', {});
    assert.equal(status, 200, JSON.stringify(record));
    const r = record.result;
    assert.equal(r.status, 'ok');
    assert.equal(r.checked, BACKENDS.length + 4);
    assert.deepEqual(r.down, []);
    assert.equal(r.alert, null);
    assert.equal(step(record, 'respond').status, 'skipped');
    assert.equal(step(record, 'check').runs, 4);
    assert.equal(await alertsSent(client), before, 'no alert went out');
  });
});

test('monitoring: a target down pages on-call, a slow one is named', async () => {
  await withClient(async (client) => {
    const before = await alertsSent(client);
    const { status, record } = await run('monitoring',
      { targets: ['web', 'payments', 'search'], simulate_down: ['payments'],
        simulate_slow: ['search'] });
    assert.equal(status, 200, JSON.stringify(record));
    const r = record.result;
    assert.equal(r.status, 'critical');
    assert.deepEqual(r.down, ['payments']);
    assert.deepEqual(r.slow, ['search']);
    assert.equal(r.alert.sent, true);
    assert.equal(r.alert.severity, 'critical');
    assert.equal(step(record, 'page').status, 'succeeded');
    const h = (await client.callTool({ name: 'alerts__history', arguments: {} })).structuredContent;
    assert.equal(h.sent, before + 1);
    assert.deepEqual(h.alerts.at(-1).targets, ['payments']);
  });
});

test('MCP: the four pipelines are tools workflow_<name> of the SDK client', async () => {
  await withClient(async (client) => {
    const names = [];
    let cursor;
    do {
      const page = await client.listTools(cursor ? { cursor } : {});
      names.push(...page.tools.map((t) => t.name));
      cursor = page.nextCursor;
    } while (cursor);
    for (const n of ['workflow_content_pipeline', 'workflow_bi_dashboard',
      'workflow_api_integration', 'workflow_monitoring', 'news__fetch_latest',
      'external__get_customer', 'alerts__send'])
      assert.ok(names.includes(n), `${n} missing from ${names}`);

    const call = async (name, args) => {
      const r = await client.callTool({ name: `workflow_${name}`, arguments: args }, undefined,
        { timeout: 30000 });
      assert.notEqual(r.isError, true, JSON.stringify(r));
      return r.structuredContent;
    };
    const content = await call('content_pipeline', { topic: 'mcp', simulate_outage: true });
    assert.equal(content.source, 'cache');
    assert.equal(content.stored_ids.length, 3);
    const bi = await call('bi_dashboard', { period: '2026-Q1' });
    assert.match(bi.report.markdown, /^# Business dashboard 2026-Q1/);
    const api = await call('api_integration', { customer_id: 'C-2002' });
    assert.equal(api.customer.id, 'C-2002');
    const mon = await call('monitoring', { targets: ['api'] });
    assert.equal(mon.status, 'ok');

    // Inputs that break the workflow's schema: a tool error naming the field, nothing runs.
    const bad = await client.callTool({ name: 'workflow_api_integration',
      arguments: { customer_id: 'nobody' } });
    assert.equal(bad.isError, true);
    assert.match(bad.content[0].text, /customer_id/);
  });
});

test('REST: POST /api/executions starts a run, GET /api/executions/{id} follows it', async () => {
  const r = await request(nx.restPort, {
    method: 'POST', path: '/api/executions', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ workflow: 'bi_dashboard', inputs: { period: '2026-Q4' } }),
  });
  assert.equal(r.status, 202, r.text);
  const { id } = JSON.parse(r.text);
  let rec;
  for (let i = 0; i < 200; i++) {
    rec = (await getJson(nx.restPort, `/api/executions/${id}`)).data;
    if (rec.status !== 'running') break;
    await sleep(50);
  }
  assert.equal(rec.status, 'succeeded', JSON.stringify(rec));
  assert.equal(rec.result.period, '2026-Q4');
});

test('CLI: nexus run prints the result of a pipeline', async () => {
  const r = await runNexus(['run', 'api_integration', '--parameters', '{"customer_id":"C-777"}',
    '--server', `http://${HOST}:${nx.restPort}`], { timeoutMs: 30000 });
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.equal(out.customer.id, 'C-777');
});

// Last: it leaves the breaker of `external` open.
test('api_integration: a partner that keeps failing opens its breaker; monitoring sees it', async () => {
  const failures = [];
  for (let i = 0; i < 12; i++) {
    const { status, record } = await run('api_integration',
      { customer_id: 'C-5000', simulate: 'outage' });
    assert.equal(status, 502, JSON.stringify(record));
    assert.equal(record.status, 'failed');
    failures.push(step(record, 'customer').error);
    if (failures.at(-1).data?.reason === 'circuit_open') break;
  }
  assert.match(failures[0].message, /HTTP 503.*simulated/);
  assert.equal(failures[0].data.upstream_status, 503);
  const open = failures.at(-1);
  assert.equal(open.data?.reason, 'circuit_open', JSON.stringify(failures));
  assert.match(open.message, /circuit open/);
  assert.ok(failures.length >= 2 && failures.length <= 10, `opened after ${failures.length}`);
  assert.equal((await getJson(nx.restPort, '/health')).data.backends.external.breaker, 'open');
  // Even a healthy request fails fast now, without reaching the partner.
  const fast = await run('api_integration', { customer_id: 'C-1001' });
  assert.equal(fast.status, 502);
  assert.equal(step(fast.record, 'customer').error.data.reason, 'circuit_open');
  // The sweep reports the backend down and pages.
  const { record } = await run('monitoring', { targets: ['web'] });
  assert.equal(record.result.status, 'critical');
  assert.deepEqual(record.result.down, ['external']);
  assert.equal(record.result.alert.severity, 'critical');
});
