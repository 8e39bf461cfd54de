// Workflows (pipelines) end to end on the real binary: every step kind, the expression
// language, join modes, map batching, fallback and on_error, step timeouts, the workflow
// deadline and cancellation, on the REST and MCP channels; input validation; the per-step
// record (status, attempts, timings, cache use). Backends: nxmock on stdio (counts its calls
// and cancellations), a REST service written here, and nexus's native debug tools.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { startNexus, request, sleep, tempDir, HOST, waitFor, runNexus } from './lib/nexus.mjs';
import { NXMOCK } from './lib/nxmock.mjs';

let nx;
let dir;
let rest;
let restPort;
const restHits = [];
let flakyLeft = 0;

function restService(req, res) {
  let body = '';
  req.on('data', (c) => { body += c; });
  req.on('end', () => {
    restHits.push({ method: req.method, url: req.url, headers: req.headers, body });
    const send = (status, obj) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(obj));
    };
    if (req.url.startsWith('/api/orders/')) {
      send(200, { id: req.url.split('/')[3].split('?')[0], method: req.method,
        query: req.url.split('?')[1] || '', trace: req.headers['x-trace'] || null,
        body: body ? JSON.parse(body) : null });
    } else if (req.url.startsWith('/api/flaky')) {
      if (flakyLeft > 0) { flakyLeft--; send(503, { error: 'busy' }); } else send(200, { ok: true });
    } else if (req.url.startsWith('/api/missing')) {
      send(404, { error: 'no such thing' });
    } else if (req.url === '/health') {
      send(200, { ok: true });
    } else {
      send(404, { error: 'unknown' });
    }
  });
}

const WORKFLOWS = `
workflows:
  - name: basics
    description: call, with, output and the expression language
    input:
      type: object
      properties:
        x: {type: integer}
        list: {type: array}
        obj: {type: object}
        name: {type: string}
      required: [x]
    steps:
      - id: add
        call: mock.add
        with: {a: "\${{ input.x }}", b: 2}
      - id: say
        call: debug_echo
        with: {message: "sum is \${{ steps.add.result.sum }} for \${{ input.name }}"}
    output:
      sum: "\${{ steps.add.result.sum }}"
      text: "\${{ steps.say.result }}"
      n: "\${{ length(input.list) }}"
      has: "\${{ contains(input.list, 2) }}"
      joined: "\${{ join(input.list, '-') }}"
      dflt: "\${{ default(input.missing, 'fallback') }}"
      js: "\${{ json(input.obj) }}"
      logic: "\${{ input.x > 3 && !(input.x == 4) || false }}"
      arith: "\${{ steps.add.result.sum + 1 }}"
      status: "\${{ steps.add.status }}"
      attempts: "\${{ steps.add.attempts }}"
      nested: {list: ["\${{ input.x }}", "x\${{ input.x }}"]}
  - name: branching
    input: {type: object, properties: {kind: {type: string}}, required: [kind]}
    steps:
      - id: never
        if: "input.kind == 'nope'"
        call: debug_echo
        with: {message: never}
      - id: route
        switch:
          - if: "\${{ input.kind == 'a' }}"
            steps:
              - {id: was_a, call: debug_echo, with: {message: "A"}}
          - elif: "input.kind == 'b'"
            steps:
              - {id: was_b, call: debug_echo, with: {message: "B"}}
          - else:
              - {id: was_other, call: debug_echo, with: {message: "other"}}
    output: {route: "\${{ steps.route.result }}", never: "\${{ steps.never.status }}"}
  - name: fanout
    input: {type: object, properties: {join: {type: string}}}
    steps:
      - id: all
        if: "input.join == 'all'"
        parallel:
          - {id: fast, call: debug_sleep, with: {ms: 50}}
          - {id: mid, call: debug_sleep, with: {ms: 150}}
          - {id: slow, call: debug_sleep, with: {ms: 300}}
      - id: any
        if: "input.join == 'any'"
        join: any
        parallel:
          - {id: a_slow, call: mock.sleep, with: {ms: 3000}}
          - {id: a_fast, call: debug_echo, with: {message: first}}
      - id: quorum
        if: "input.join == 'quorum'"
        join: {quorum: 2}
        parallel:
          - {id: q1, call: debug_sleep, with: {ms: 20}}
          - {id: q2, call: mock.fail, with: {mode: error}}
          - {id: q3, call: debug_sleep, with: {ms: 60}}
          - {id: q4, call: mock.sleep, with: {ms: 3000}}
      - id: serial
        if: "input.join == 'serial'"
        max_concurrency: 1
        parallel:
          - {id: s1, call: debug_sleep, with: {ms: 100}}
          - {id: s2, call: debug_sleep, with: {ms: 100}}
          - {id: s3, call: debug_sleep, with: {ms: 100}}
  - name: mapping
    input: {type: object, properties: {items: {type: array}, batch: {type: integer}}}
    steps:
      - id: each
        map:
          items: "\${{ input.items }}"
          concurrency: 3
          steps:
            - {id: twice, call: mock.add, with: {a: "\${{ item }}", b: "\${{ item }}"}}
            - {id: show, call: debug_echo, with: {message: "\${{ index }}:\${{ steps.twice.result.sum }}"}}
      - id: batched
        map:
          items: "\${{ input.items }}"
          batch_size: 3
          steps:
            - {id: batch, call: debug_echo, with: {message: "\${{ json(item) }}"}}
    output: {each: "\${{ steps.each.result }}", batched: "\${{ steps.batched.result }}"}
  - name: degrade
    steps:
      - id: news
        fallback:
          - {id: primary, call: mock.fail, with: {mode: error}}
          - {id: secondary, call: mock.fail, with: {mode: isError}}
          - {id: cached, call: debug_echo, with: {message: "from the cache"}}
      - id: optional
        call: mock.fail
        with: {mode: error}
        on_error: continue
      - id: defaulted
        call: mock.fail
        with: {mode: isError}
        on_error: {value: {placeholder: true, from: "\${{ steps.news.result }}"}}
    output:
      news: "\${{ steps.news.result }}"
      optional: "\${{ steps.optional.status }}"
      optional_error: "\${{ steps.optional.error.message }}"
      defaulted: "\${{ steps.defaulted.result }}"
  - name: all_fail
    steps:
      - id: news
        fallback:
          - {id: p1, call: mock.fail, with: {mode: error}}
          - {id: p2, call: mock.fail, with: {mode: isError}}
  - name: slow_step
    steps:
      - {id: nap, call: mock.sleep, with: {ms: 3000}, timeout: 150ms}
  - name: slow_workflow
    deadline: 300ms
    steps:
      - {id: nap1, call: debug_sleep, with: {ms: 200}}
      - {id: nap2, call: mock.sleep, with: {ms: 3000}}
  - name: long
    steps:
      - {id: nap, call: mock.sleep, with: {ms: 5000}}
  - name: orders
    input: {type: object, properties: {id: {type: string}}, required: [id]}
    steps:
      - id: get
        call: shop
        method: GET
        path: "/api/orders/\${{ input.id }}"
        query: {expand: "lines", n: 3}
        headers: {X-Trace: "t-\${{ input.id }}"}
      - id: put
        call: shop
        method: PUT
        path: /api/orders/\${{ input.id }}
        with: {seen: "\${{ steps.get.result.id }}", count: 2}
      - id: missing
        call: shop
        path: /api/missing
        on_error: continue
    output:
      get: "\${{ steps.get.result }}"
      put: "\${{ steps.put.result }}"
      missing: "\${{ steps.missing.error }}"
  - name: flaky
    steps:
      - id: call
        call: shop
        path: /api/flaky
        retry: {attempts: 4, base: 10ms, cap: 40ms}
  - name: typo
    steps:
      - {id: t, call: mock.ech, with: {message: x}}
  - name: rec
    steps:
      - {id: again, call: workflow_rec}
  - name: api_only
    channels: [api]
    steps:
      - {id: x, call: debug_echo, with: {message: api}}
`;

async function post(path, body, headers = {}) {
  const r = await request(nx.restPort, {
    method: 'POST', path, body: JSON.stringify(body),
    headers: { 'content-type': 'application/json', ...headers }, timeoutMs: 20000,
  });
  return { status: r.status, headers: r.headers, data: r.text ? JSON.parse(r.text) : null };
}

async function run(name, inputs = {}) {
  return post(`/api/workflows/${name}`, inputs);
}

function step(rec, id) {
  const s = rec.steps.find((x) => x.id === id);
  assert.ok(s, `step ${id} in ${JSON.stringify(rec.steps)}`);
  return s;
}

async function mockStats() {
  const r = await post('/tools/mock__stats', {});
  assert.equal(r.status, 200, JSON.stringify(r.data));
  return r.data.structuredContent;
}

before(async () => {
  rest = http.createServer(restService);
  await new Promise((r) => rest.listen(0, HOST, r));
  restPort = rest.address().port;
  dir = tempDir();
  const config = dir.path('workflows.yaml');
  fs.writeFileSync(config, [
    'debug_routes: true',
    'servers:',
    '  - name: mock',
    '    transport: stdio',
    `    command: ${NXMOCK}`,
    '    args: ["--stdio", "--shards", "1"]',
    '    timeouts: {call: 10s, deadline: 20s}',
    '    retry: {attempts: 1}',
    '    breaker: {enabled: false}',
    '  - name: shop',
    '    transport: rest',
    `    url: http://${HOST}:${restPort}`,
    '    retry: {attempts: 1}',
    '    breaker: {enabled: false}',
    '    health: {enabled: false}',
    WORKFLOWS,
  ].join('\n'));
  nx = await startNexus({ shards: 2, config, debugRoutes: true });
  await waitFor('mock listed', async () => {
    const h = (await request(nx.restPort, { path: '/health' })).json();
    return h.backends.mock && h.backends.mock.tools > 0;
  });
});

after(async () => {
  if (nx) await nx.stopAndAssertClean();
  if (rest) await new Promise((r) => rest.close(r));
  dir?.remove?.();
});

test('GET /api/workflows lists names, descriptions, schemas and channels', async () => {
  const r = await request(nx.restPort, { path: '/api/workflows' });
  assert.equal(r.status, 200);
  const list = r.json();
  const basics = list.workflows.find((w) => w.name === 'basics');
  assert.equal(basics.description, 'call, with, output and the expression language');
  assert.deepEqual(basics.input_schema.required, ['x']);
  assert.deepEqual(list.workflows.find((w) => w.name === 'api_only').channels, ['api']);
  assert.equal(list.count, list.workflows.length);
});

test('call steps, whole-value and interpolated templates, operators and functions', async () => {
  const r = await run('basics', { x: 5, list: [1, 2, 3], obj: { k: 'v' }, name: 'ann' });
  assert.equal(r.status, 200, JSON.stringify(r.data));
  assert.equal(r.data.status, 'succeeded');
  const out = r.data.result;
  assert.equal(out.sum, 7); // a number, not "7": a whole-value template keeps its type
  assert.equal(out.text, 'sum is 7 for ann');
  assert.equal(out.n, 3);
  assert.equal(out.has, true);
  assert.equal(out.joined, '1-2-3');
  assert.equal(out.dflt, 'fallback');
  assert.equal(out.js, '{"k":"v"}');
  assert.equal(out.logic, true);
  assert.equal(out.arith, 8);
  assert.equal(out.status, 'succeeded');
  assert.equal(out.attempts, 1);
  assert.deepEqual(out.nested, { list: [5, 'x5'] });
  const add = step(r.data, 'add');
  assert.equal(add.status, 'succeeded');
  assert.equal(add.attempts, 1);
  assert.equal(add.cached, false);
  assert.ok(add.duration_ms >= 0);
  const again = await run('basics', { x: 4, list: [] });
  assert.equal(again.data.result.logic, false);
  assert.equal(again.data.result.text, 'sum is 6 for ');
});

test('inputs are validated against the schema before anything runs', async () => {
  const before = await mockStats();
  const r = await run('basics', { x: 'five' });
  assert.equal(r.status, 400);
  assert.match(JSON.stringify(r.data.error.errors), /x/);
  const missing = await run('basics', {});
  assert.equal(missing.status, 400);
  const after = await mockStats();
  assert.equal(after.tools.add, before.tools.add, 'no step ran');
  const unknown = await run('nope', {});
  assert.equal(unknown.status, 404);
  const bad = await request(nx.restPort, { method: 'POST', path: '/api/workflows/basics', body: '{' });
  assert.equal(bad.status, 400);
});

test('if skips a step; switch takes if, elif or else', async () => {
  for (const [kind, want, ran] of [['a', 'A', 'was_a'], ['b', 'B', 'was_b'], ['z', 'other', 'was_other']]) {
    const r = await run('branching', { kind });
    assert.equal(r.status, 200, JSON.stringify(r.data));
    assert.equal(r.data.result.route, want);
    assert.equal(r.data.result.never, 'skipped');
    assert.equal(step(r.data, ran).status, 'succeeded');
    for (const other of ['was_a', 'was_b', 'was_other'].filter((x) => x !== ran))
      assert.equal(step(r.data, other).status, 'pending');
  }
});

test('parallel join all waits for every branch and runs them at once', async () => {
  const t0 = Date.now();
  const r = await run('fanout', { join: 'all' });
  const ms = Date.now() - t0;
  assert.equal(r.status, 200, JSON.stringify(r.data));
  assert.deepEqual(Object.keys(r.data.result).sort(), ['fast', 'mid', 'slow']);
  assert.ok(ms >= 290 && ms < 1500, `took ${ms} ms: concurrent, bounded by the slowest branch`);
  for (const id of ['fast', 'mid', 'slow']) assert.equal(step(r.data, id).status, 'succeeded');
});

test('parallel join any takes the first success and cancels the rest at the backend', async () => {
  const before = await mockStats();
  const t0 = Date.now();
  const r = await run('fanout', { join: 'any' });
  assert.equal(r.status, 200, JSON.stringify(r.data));
  assert.ok(Date.now() - t0 < 2000, 'did not wait for the slow branch');
  assert.equal(r.data.result, 'first');
  assert.equal(step(r.data, 'a_slow').status, 'cancelled');
  await waitFor('the slow call cancelled at nxmock', async () =>
    (await mockStats()).cancelled > before.cancelled, 5000);
});

test('parallel quorum needs N successes, tolerates failures, cancels the rest', async () => {
  const r = await run('fanout', { join: 'quorum' });
  assert.equal(r.status, 200, JSON.stringify(r.data));
  assert.deepEqual(Object.keys(r.data.result).sort(), ['q1', 'q3']);
  assert.equal(step(r.data, 'q2').status, 'failed');
  assert.equal(step(r.data, 'q4').status, 'cancelled');
});

test('max_concurrency 1 runs branches one after another', async () => {
  const t0 = Date.now();
  const r = await run('fanout', { join: 'serial' });
  assert.equal(r.status, 200);
  assert.ok(Date.now() - t0 >= 290, 'three 100 ms branches in a row');
});

test('map runs steps per item in order with concurrency, and in batches', async () => {
  const items = [1, 2, 3, 4, 5, 6, 7];
  const r = await run('mapping', { items });
  assert.equal(r.status, 200, JSON.stringify(r.data));
  assert.deepEqual(r.data.result.each, items.map((x, i) => `${i}:${2 * x}`));
  assert.deepEqual(r.data.result.batched, [[1, 2, 3], [4, 5, 6], [7]]);
  assert.equal(step(r.data, 'batch').runs, 3, 'one call per batch');
  assert.equal(step(r.data, 'twice').runs, 7);
  const empty = await run('mapping', { items: [] });
  assert.deepEqual(empty.data.result.each, []);
});

test('fallback tries alternatives in order; on_error continue and value', async () => {
  const r = await run('degrade');
  assert.equal(r.status, 200, JSON.stringify(r.data));
  assert.equal(r.data.result.news, 'from the cache');
  assert.equal(step(r.data, 'primary').status, 'failed');
  assert.equal(step(r.data, 'secondary').status, 'failed');
  assert.equal(step(r.data, 'cached').status, 'succeeded');
  assert.equal(r.data.result.optional, 'failed');
  assert.ok(r.data.result.optional_error.length > 0);
  assert.deepEqual(r.data.result.defaulted, { placeholder: true, from: 'from the cache' });
  const all = await run('all_fail');
  assert.equal(all.status, 502);
  assert.equal(all.data.status, 'failed');
  assert.match(all.data.error.message, /alternative/);
});

test('a step timeout cuts the call; the workflow deadline ends the run with 504', async () => {
  const t0 = Date.now();
  const r = await run('slow_step');
  assert.equal(r.status, 502, JSON.stringify(r.data));
  assert.ok(Date.now() - t0 < 2000);
  assert.match(step(r.data, 'nap').error.message, /timed out|deadline|within/);
  const t1 = Date.now();
  const d = await run('slow_workflow');
  assert.equal(d.status, 504, JSON.stringify(d.data));
  assert.ok(Date.now() - t1 < 2000);
  assert.equal(d.data.error.reason, 'deadline');
  assert.equal(step(d.data, 'nap1').status, 'succeeded');
  assert.equal(step(d.data, 'nap2').status, 'cancelled');
});

test('async executions: 202, GET the record, DELETE cancels the backend call', async () => {
  const before = await mockStats();
  const started = await post('/api/executions', { workflow: 'long', inputs: {} });
  assert.equal(started.status, 202);
  const id = started.data.id;
  assert.equal(started.headers.location, `/api/executions/${id}`);
  await waitFor('the call under way', async () => (await mockStats()).tools.sleep > before.tools.sleep);
  const running = (await request(nx.restPort, { path: `/api/executions/${id}` })).json();
  assert.equal(running.status, 'running');
  const del = await request(nx.restPort, { method: 'DELETE', path: `/api/executions/${id}` });
  assert.equal(del.status, 202);
  await waitFor('cancelled', async () =>
    (await request(nx.restPort, { path: `/api/executions/${id}` })).json().status === 'cancelled');
  await waitFor('nxmock saw the cancellation', async () =>
    (await mockStats()).cancelled > before.cancelled, 5000);
  const again = await request(nx.restPort, { method: 'DELETE', path: `/api/executions/${id}` });
  assert.equal(again.status, 409);
  const unknown = await request(nx.restPort, { path: '/api/executions/x-nope' });
  assert.equal(unknown.status, 404);
  const waited = await post('/api/executions', { workflow: 'basics', inputs: { x: 1 }, wait: true });
  assert.equal(waited.status, 200);
  assert.equal(waited.data.result.sum, 3);
  const bad = await post('/api/executions', { inputs: {} });
  assert.equal(bad.status, 400);
  // Any shard answers about any execution: many requests land on both shards.
  for (let i = 0; i < 6; i++) {
    const g = await request(nx.restPort, { path: `/api/executions/${waited.data.id}` });
    assert.equal(g.status, 200);
    assert.equal(g.json().status, 'succeeded');
  }
});

test('REST backend steps: method, path, query, headers, JSON body; HTTP errors', async () => {
  restHits.length = 0;
  const r = await run('orders', { id: 'o-17' });
  assert.equal(r.status, 200, JSON.stringify(r.data));
  assert.equal(r.data.result.get.id, 'o-17');
  assert.equal(r.data.result.get.method, 'GET');
  assert.match(r.data.result.get.query, /expand=lines/);
  assert.match(r.data.result.get.query, /n=3/);
  assert.equal(r.data.result.get.trace, 't-o-17');
  assert.deepEqual(r.data.result.put.body, { seen: 'o-17', count: 2 });
  assert.equal(r.data.result.put.method, 'PUT');
  assert.equal(r.data.result.missing.status, 404);
});

test('a step retry policy replaces the backend policy; attempts are recorded', async () => {
  flakyLeft = 2;
  const r = await run('flaky');
  assert.equal(r.status, 200, JSON.stringify(r.data));
  assert.equal(step(r.data, 'call').attempts, 3);
});

test('channels: a workflow limited to api is not an MCP tool', async () => {
  const transport = new StreamableHTTPClientTransport(new URL(`http://${HOST}:${nx.mcpPort}/mcp`));
  const client = new Client({ name: 'wf-test', version: '1' });
  await client.connect(transport);
  try {
    const { tools } = await client.listTools();
    const names = tools.map((t) => t.name);
    assert.ok(names.includes('workflow_basics'));
    assert.ok(!names.includes('workflow_api_only'));
    const basics = tools.find((t) => t.name === 'workflow_basics');
    assert.deepEqual(basics.inputSchema.required, ['x']);
  } finally {
    await client.close();
  }
});

test('MCP: a workflow tool runs it, reports progress per step, and cancellation stops it', async () => {
  const transport = new StreamableHTTPClientTransport(new URL(`http://${HOST}:${nx.mcpPort}/mcp`));
  const client = new Client({ name: 'wf-test', version: '1' });
  await client.connect(transport);
  try {
    const progress = [];
    const res = await client.callTool({ name: 'workflow_basics', arguments: { x: 2, name: 'mcp' } },
      undefined, { onprogress: (p) => progress.push(p) });
    assert.equal(res.isError, undefined);
    assert.equal(res.structuredContent.sum, 4);
    assert.equal(res.structuredContent.text, 'sum is 4 for mcp');
    assert.ok(progress.length >= 2, `progress ${JSON.stringify(progress)}`);
    assert.ok(progress.every((p, i) => i === 0 || p.progress > progress[i - 1].progress));
    const failed = await client.callTool({ name: 'workflow_all_fail', arguments: {} });
    assert.equal(failed.isError, true);
    const bad = await client.callTool({ name: 'workflow_basics', arguments: { x: 'no' } })
      .catch((e) => e);
    assert.ok(bad instanceof Error || bad.isError, 'invalid arguments refused');
    const before = await mockStats();
    const ac = new AbortController();
    const p = client.callTool({ name: 'workflow_long', arguments: {} }, undefined,
      { signal: ac.signal });
    await waitFor('the call under way', async () => (await mockStats()).tools.sleep > before.tools.sleep);
    ac.abort();
    await assert.rejects(p);
    await waitFor('nxmock saw the cancellation', async () =>
      (await mockStats()).cancelled > before.cancelled, 5000);
    const list = (await request(nx.restPort, { path: '/api/executions' })).json();
    const last = list.executions.find((e) => e.workflow === 'long');
    await waitFor('the execution ended cancelled', async () => {
      const rec = (await request(nx.restPort, { path: `/api/executions/${last.id}` })).json();
      return rec.status === 'cancelled';
    });
  } finally {
    await client.close();
  }
});

test('definition errors name the file, line and path', async () => {
  const bad = dir.path('bad.yaml');
  fs.writeFileSync(bad, [
    'workflows:',
    '  - name: broken',
    '    steps:',
    '      - id: a',
    '        call: debug_echo',
    '        with: {message: "${{ steps.b.result }}"}',
    '      - id: b',
    '        call: debug_echo',
    '        with: {message: x}',
    '',
  ].join('\n'));
  const r = await runNexus(['check-config', bad]);
  assert.equal(r.code, 2, r.stderr + r.stdout);
  assert.match(r.stderr + r.stdout, /bad\.yaml:6:.*workflows\[0\]\.steps\[0\]\.with.*\bb\b/);
  const syntax = dir.path('syntax.yaml');
  fs.writeFileSync(syntax, [
    'workflows:',
    '  - name: broken',
    '    steps:',
    '      - id: a',
    '        call: debug_echo',
    '        with: {message: "${{ input.x == }}"}',
    '',
  ].join('\n'));
  const s = await runNexus(['check-config', syntax]);
  assert.equal(s.code, 2);
  assert.match(s.stderr + s.stdout, /syntax\.yaml:6:/);
});

test('the same workflows give the same results on REST, MCP and the CLI', async () => {
  const cases = [
    ['basics', { x: 6, list: [2, 4], obj: { a: [1] }, name: 'all' }],
    ['mapping', { items: [3, 1, 2, 5] }],
    ['degrade', {}],
    ['branching', { kind: 'b' }],
  ];
  const transport = new StreamableHTTPClientTransport(new URL(`http://${HOST}:${nx.mcpPort}/mcp`));
  const client = new Client({ name: 'wf-channels', version: '1' });
  await client.connect(transport);
  try {
    for (const [name, inputs] of cases) {
      const viaRest = await run(name, inputs);
      assert.equal(viaRest.status, 200, JSON.stringify(viaRest.data));
      const viaMcp = await client.callTool({ name: `workflow_${name}`, arguments: inputs });
      assert.equal(viaMcp.isError, undefined, JSON.stringify(viaMcp));
      assert.deepEqual(viaMcp.structuredContent, viaRest.data.result, `${name} over MCP`);
      const cli = await runNexus(['run', name, '--parameters', JSON.stringify(inputs),
        '--server', `http://${HOST}:${nx.restPort}`], { timeoutMs: 20000 });
      assert.equal(cli.code, 0, cli.stderr);
      assert.deepEqual(JSON.parse(cli.stdout), viaRest.data.result, `${name} from the CLI`);
    }
  } finally {
    await client.close();
  }
});

test('a call step naming a tool its backend does not list is reported once the catalog is known', async () => {
  const line = await nx.waitForLog((l) => typeof l.msg === 'string' &&
    /workflows\[\d+\]\.steps\[0\]\.call: backend mock lists no tool 'mock__ech'/.test(l.msg),
  { timeoutMs: 10000, what: 'the unknown-tool warning' });
  assert.match(line.msg, /workflows\.yaml:\d+:/);
  const r = await run('typo');
  assert.equal(r.status, 502);
  assert.equal(step(r.data, 't').status, 'failed');
});

test('a workflow calling itself through its MCP tool is stopped at a bounded depth', async () => {
  const before = (await request(nx.restPort, { path: '/api/executions' })).json().count;
  const t0 = Date.now();
  const r = await run('rec');
  assert.equal(r.status, 502, JSON.stringify(r.data));
  assert.ok(Date.now() - t0 < 3000);
  assert.match(JSON.stringify(r.data.error), /too deeply/);
  const after = (await request(nx.restPort, { path: '/api/executions' })).json().count;
  assert.ok(after - before <= 9, `${after - before} executions for one request`);
});
