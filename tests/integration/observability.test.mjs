// Observability routes: /health, /ready, /status, /stats, /metrics (Prometheus), /openapi.json,
// /docs, and request-level access logs. One nexus without debug routes (2 shards).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startNexus, withNexus, runNexus, RawConn, get, request, getJson, sleep, promSum,
  parseLabels, rawOnce,
} from './lib/nexus.mjs';

let nx;
let version;
before(async () => {
  version = (await runNexus(['--version'])).stdout.trim().replace(/^nexus /, '');
  nx = await startNexus({ shards: 2 });
});
after(async () => {
  if (nx) await nx.kill();
});

test('GET /health: status, version, uptime, shards, ring mode, channels', async () => {
  const { status, data } = await getJson(nx.restPort, '/health');
  assert.equal(status, 200);
  assert.equal(data.status, 'ok');
  assert.equal(data.version, version);
  assert.equal(typeof data.uptime_seconds, 'number');
  assert.ok(data.uptime_seconds >= 0 && data.uptime_seconds < 600, `uptime ${data.uptime_seconds}`);
  assert.equal(data.shards, 2);
  assert.equal(typeof data.ring_mode, 'string');
  assert.ok(data.ring_mode.length > 0);
  assert.deepEqual(data.channels.rest, { listening: true, host: '127.0.0.1', port: nx.restPort });
  assert.equal(data.channels.mcp.listening, true);
  assert.equal(data.channels.mcp.host, '127.0.0.1');
  assert.equal(data.channels.mcp.port, nx.mcpPort);
  assert.equal(typeof data.channels.mcp.state, 'string');
  assert.notEqual(nx.restPort, nx.mcpPort);
});

test('uptime_seconds advances', async () => {
  const a = (await getJson(nx.restPort, '/health')).data.uptime_seconds;
  await sleep(1100);
  const b = (await getJson(nx.restPort, '/health')).data.uptime_seconds;
  assert.ok(b - a >= 0.9 && b - a < 5, `uptime went from ${a} to ${b} in 1.1 s`);
});

test('GET /ready: 200 {ready:true}', async () => {
  const { status, data } = await getJson(nx.restPort, '/ready');
  assert.equal(status, 200);
  assert.deepEqual(data, { ready: true });
});

test('GET /status: pid, connections, config', async () => {
  const c = await RawConn.open(nx.restPort); // an extra open connection to count
  try {
    assert.equal((await c.roundTrip(get('/plaintext'))).status, 200);
    const { status, data } = await getJson(nx.restPort, '/status');
    assert.equal(status, 200);
    assert.equal(data.pid, nx.pid);
    assert.equal(data.version, version);
    assert.equal(data.shards, 2);
    assert.equal(typeof data.connections, 'object');
    assert.ok(data.connections.connections_open >= 2,
      `connections: ${JSON.stringify(data.connections)}`);
    assert.equal(typeof data.config, 'object');
    assert.ok(data.config !== null);
    // The effective configuration is in there (at least the http limits).
    assert.match(JSON.stringify(data.config), /max_body/);
  } finally {
    c.destroy();
  }
});

test('GET /stats: JSON counters that move with requests', async () => {
  const before = (await getJson(nx.restPort, '/stats')).data;
  const c = await RawConn.open(nx.restPort);
  try {
    for (let i = 0; i < 5; i++) assert.equal((await c.roundTrip(get('/plaintext'))).status, 200);
  } finally {
    c.destroy();
  }
  const { status, data } = await getJson(nx.restPort, '/stats');
  assert.equal(status, 200);
  const net = data.net ?? data;
  assert.ok(net.connections_accepted >= (before.net ?? before).connections_accepted + 2);
  assert.ok(net.bytes_in > (before.net ?? before).bytes_in);
  assert.ok(net.bytes_out > (before.net ?? before).bytes_out);
  assert.ok(JSON.stringify(data).includes('GET /plaintext'), 'no per-route counters in /stats');
});

test('GET /metrics counts GET /plaintext per shard; the sum matches what was sent', async () => {
  // A fresh server so that the count is exact.
  await withNexus({ shards: 2 }, async (s) => {
    const sent = 23;
    for (let i = 0; i < sent; i++) {
      // New connection each time: requests spread over both shards.
      const { r, c } = await rawOnce(s.restPort, get('/plaintext'));
      c.destroy();
      assert.equal(r.status, 200);
    }
    // Two 404s, to see they are not counted as /plaintext.
    for (let i = 0; i < 2; i++) assert.equal((await request(s.restPort, { path: '/nope' })).status, 404);
    const m = await request(s.restPort, { path: '/metrics' });
    assert.equal(m.status, 200);
    assert.match(m.headers['content-type'], /^text\/plain/);
    const text = m.text;
    assert.match(text, /^# TYPE nexus_http_requests_total counter$/m);
    const { sum, found } = promSum(text, 'nexus_http_requests_total',
      { route: 'GET /plaintext', status: '200' });
    assert.ok(found >= 1, `no nexus_http_requests_total{route="GET /plaintext",status="200"}:\n${text.slice(0, 2000)}`);
    assert.equal(sum, sent, `sum over shards ${sum}, sent ${sent}`);
    // Every sample has a shard label.
    for (const line of text.split('\n').filter((l) => l.startsWith('nexus_http_requests_total{'))) {
      const ls = parseLabels(line);
      assert.match(ls.shard ?? '', /^\d+$/, `no shard label: ${line}`);
      assert.ok(ls.route && ls.status, line);
    }
    // Latency histogram for the same route: +Inf bucket == count == requests.
    assert.match(text, /^# TYPE nexus_http_request_duration_seconds histogram$/m);
    const inf = promSum(text, 'nexus_http_request_duration_seconds_bucket', { route: 'GET /plaintext', le: '+Inf' });
    const cnt = promSum(text, 'nexus_http_request_duration_seconds_count', { route: 'GET /plaintext' });
    const dsum = promSum(text, 'nexus_http_request_duration_seconds_sum', { route: 'GET /plaintext' });
    assert.ok(inf.found >= 1 && cnt.found >= 1 && dsum.found >= 1, 'histogram series missing');
    assert.equal(inf.sum, sent);
    assert.equal(cnt.sum, sent);
    assert.ok(dsum.sum > 0 && dsum.sum < sent * 1.0, `duration sum ${dsum.sum}`);
    // Buckets are cumulative.
    const buckets = text.split('\n')
      .filter((l) => l.startsWith('nexus_http_request_duration_seconds_bucket{') &&
        l.includes('route="GET /plaintext"') && l.includes('shard="0"'));
    let prev = -1;
    for (const b of buckets) {
      const v = Number(b.split(/\s+/).pop());
      assert.ok(v >= prev, `buckets not cumulative: ${buckets.join('\n')}`);
      prev = v;
    }
    // Connection and byte counters per shard.
    const metricLines = text.split('\n').filter((l) => !l.startsWith('#') && l.trim() !== '');
    for (const shard of ['0', '1']) {
      assert.ok(metricLines.some((l) => /^nexus_\w*connection\w*\{/.test(l) && parseLabels(l).shard === shard),
        `no connection counter for shard ${shard}`);
      assert.ok(metricLines.some((l) => /^nexus_\w*bytes\w*\{/.test(l) && parseLabels(l).shard === shard),
        `no byte counter for shard ${shard}`);
    }
    // The exposition format is well formed: every sample line is "name{labels} value".
    for (const l of metricLines) {
      assert.match(l, /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{.*\})? [-+]?(\d+(\.\d+)?([eE][-+]?\d+)?|\+Inf|NaN)$/, `bad line: ${l}`);
    }
  });
});

test('GET /openapi.json: OpenAPI 3.1 with every route', async () => {
  const { status, data } = await getJson(nx.restPort, '/openapi.json');
  assert.equal(status, 200);
  assert.equal(data.openapi, '3.1.0');
  assert.equal(data.info.title, 'nexus');
  assert.equal(data.info.version, version);
  for (const p of ['/', '/health', '/ready', '/status', '/stats', '/metrics', '/openapi.json', '/docs', '/plaintext']) {
    assert.ok(data.paths[p], `openapi lacks ${p}`);
    assert.ok(data.paths[p].get, `openapi lacks GET ${p}`);
    assert.ok(data.paths[p].get.responses['200'], `GET ${p} has no 200 response`);
  }
  // Debug routes are not served here, so not documented either.
  assert.ok(!Object.keys(data.paths).some((p) => p.startsWith('/debug')), 'debug routes documented');
  // operationIds are unique.
  const ids = Object.values(data.paths).flatMap((item) => Object.values(item).map((op) => op.operationId));
  assert.equal(new Set(ids).size, ids.length, `duplicate operationId: ${ids}`);
});

test('with --debug-routes the OpenAPI document lists the debug routes', async () => {
  await withNexus({ shards: 1, debugRoutes: true }, async (s) => {
    const { data } = await getJson(s.restPort, '/openapi.json');
    assert.ok(data.paths['/debug/delay/{ms}']?.get, 'no GET /debug/delay/{ms}');
    assert.ok(data.paths['/debug/echo']?.post, 'no POST /debug/echo');
    const params = data.paths['/debug/delay/{ms}'].get.parameters ?? [];
    assert.ok(params.some((p) => p.name === 'ms' && p.in === 'path'), 'no path parameter ms');
  });
});

test('debug routes are off by default (404)', async () => {
  assert.equal((await request(nx.restPort, { path: '/debug/delay/1' })).status, 404);
  assert.equal((await request(nx.restPort, { method: 'POST', path: '/debug/echo', body: 'x' })).status, 404);
});

test('GET /docs: an HTML page that loads /openapi.json', async () => {
  const r = await request(nx.restPort, { path: '/docs' });
  assert.equal(r.status, 200);
  assert.match(r.headers['content-type'], /^text\/html/);
  assert.match(r.text, /<html/i);
  assert.ok(r.text.includes('/openapi.json'));
});

test('every GET route answers HEAD with the same status and no body', async () => {
  const c = await RawConn.open(nx.restPort);
  try {
    for (const p of ['/', '/health', '/ready', '/status', '/stats', '/metrics', '/openapi.json', '/docs', '/plaintext']) {
      const r = await c.roundTrip(get(p, { method: 'HEAD' }), { headOnly: true });
      assert.equal(r.status, 200, `HEAD ${p}`);
      assert.ok(Number(r.headers['content-length']) > 0, `HEAD ${p} without Content-Length`);
    }
    const r = await c.roundTrip(get('/plaintext'));
    assert.equal(r.text, 'Hello, World!', 'a HEAD response carried a body');
  } finally {
    c.destroy();
  }
});

test('--access-log writes one JSON line per request with request_id and shard', async () => {
  await withNexus({ shards: 2, args: ['--access-log'] }, async (s) => {
    const from = s.logCount();
    const { r, c } = await rawOnce(s.restPort, get('/plaintext'));
    c.destroy();
    assert.equal(r.status, 200);
    await request(s.restPort, { path: '/missing' });
    const l = await s.waitForLog((x) => x.access === true && x.route === 'GET /plaintext',
      { from, what: 'access line for /plaintext' });
    assert.equal(l.level, 'info');
    assert.equal(l.status, 200);
    assert.equal(typeof l.request_id, 'string');
    assert.ok(l.request_id.length > 0);
    assert.equal(typeof l.shard, 'number');
    const miss = await s.waitForLog((x) => x.access === true && x.status === 404,
      { from, what: 'access line for the 404' });
    assert.ok(miss.request_id !== l.request_id);
  });
});

test('nexus exits 0 on SIGTERM with no sanitizer report', async () => {
  await nx.stopAndAssertClean();
});
