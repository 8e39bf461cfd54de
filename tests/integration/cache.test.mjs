// The TTL cache end to end with a real redis-server started here: tool results cached by
// servers[].cache (hit, miss, TTL expiry), canonical keys (argument order does not matter),
// single-flight (N concurrent identical calls -> one backend call, counted by nxmock), the
// Redis L2 shared by two nexus replicas with compressed values, stale-if-error on a workflow
// step, and Redis killed mid-run and restarted: no request fails, /health shows the cache
// degraded, a metric counts it, and nexus reconnects by itself.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { spawn } from 'node:child_process';
import { startNexus, request, sleep, tempDir, HOST, waitFor, promSum } from './lib/nexus.mjs';
import { NXMOCK } from './lib/nxmock.mjs';

let dir;
let redis = null;
let redisPort;
let shop;
let shopPort;
let shopFails = false;
let shopHits = 0;
const started = [];

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, HOST, () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

async function startRedis() {
  const child = spawn('redis-server', ['--port', String(redisPort), '--bind', HOST, '--save', '',
    '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let exited = false;
  child.on('exit', () => { exited = true; });
  await waitFor('redis-server to accept connections', () => new Promise((resolve) => {
    if (exited) { resolve(false); return; }
    const s = net.connect(redisPort, HOST, () => { s.end(); resolve(true); });
    s.on('error', () => resolve(false));
  }), 10000);
  child.isExited = () => exited;
  return child;
}

async function stopRedis() {
  if (redis === null) return;
  const r = redis;
  redis = null;
  if (!r.isExited()) {
    r.kill('SIGKILL');
    await new Promise((res) => r.once('exit', res));
  }
}

async function post(nx, path, body) {
  const r = await request(nx.restPort, {
    method: 'POST', path, body: JSON.stringify(body),
    headers: { 'content-type': 'application/json' }, timeoutMs: 20000,
  });
  return { status: r.status, data: r.text ? JSON.parse(r.text) : null };
}

async function stats(nx) {
  const r = await post(nx, '/tools/mock__stats', {});
  assert.equal(r.status, 200);
  return r.data.structuredContent;
}

async function health(nx) {
  return (await request(nx.restPort, { path: '/health' })).json();
}

function configText({ redisUrl = '', ttl = '300ms', grace = '10s', maxBytes = '64MiB',
  cacheExtra = [] } = {}) {
  return [
    'debug_routes: true',
    'cache:',
    `  redis: "${redisUrl}"`,
    `  stale_grace: ${grace}`,
    `  max_bytes: ${maxBytes}`,
    '  compression: zstd',
    '  compress_min: 512',
    '  redis_timeout: 200ms',
    ...cacheExtra,
    'servers:',
    '  - name: mock',
    '    transport: stdio',
    `    command: ${NXMOCK}`,
    '    args: ["--stdio", "--shards", "1"]',
    '    retry: {attempts: 1}',
    '    breaker: {enabled: false}',
    `    cache: {tools: {add: ${ttl}, echo: 30s, fail: 30s, stats: 0s}}`,
    '  - name: shop',
    '    transport: rest',
    `    url: http://${HOST}:${shopPort}`,
    '    retry: {attempts: 1}',
    '    breaker: {enabled: false}',
    '    health: {enabled: false}',
    'workflows:',
    '  - name: price',
    '    steps:',
    '      - id: get',
    '        call: shop',
    '        path: /price',
    '        cache: 200ms',
    '',
  ].join('\n');
}

async function startWith(opts, shards = 1) {
  const file = dir.path(`nexus-${started.length}.yaml`);
  fs.writeFileSync(file, configText(opts));
  const nx = await startNexus({ shards, config: file, debugRoutes: true });
  started.push(nx);
  await waitFor('mock listed', async () => (await health(nx)).backends.mock?.tools > 0);
  return nx;
}

before(async () => {
  dir = tempDir();
  redisPort = await freePort();
  shop = http.createServer((req, res) => {
    shopHits++;
    if (shopFails) { res.writeHead(503).end('down'); return; }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ price: 42, at: shopHits }));
  });
  await new Promise((r) => shop.listen(0, HOST, r));
  shopPort = shop.address().port;
});

after(async () => {
  // Every nexus must exit cleanly (status 0, no sanitizer report): collect, then fail.
  const unclean = [];
  for (const nx of started) {
    try {
      await nx.stopAndAssertClean();
    } catch (e) {
      unclean.push(e);
      await nx.kill();
    }
  }
  await stopRedis();
  if (shop) await new Promise((r) => shop.close(r));
  dir?.remove();
  if (unclean.length > 0) throw unclean[0];
});

test('L1: hit, miss, TTL expiry and canonical keys for a cached tool', async () => {
  const nx = await startWith({ ttl: '300ms' });
  const s0 = (await stats(nx)).tools.add;
  const first = await post(nx, '/tools/mock__add', { a: 1, b: 2 });
  assert.equal(first.status, 200);
  assert.equal(first.data.structuredContent.sum, 3);
  assert.equal(first.data._meta?.['io.nexus/cache'], undefined, 'a miss is not marked');
  const second = await post(nx, '/tools/mock__add', { b: 2, a: 1 }); // other key order
  assert.equal(second.data._meta['io.nexus/cache'], 'hit');
  assert.equal(second.data.structuredContent.sum, 3);
  assert.equal((await stats(nx)).tools.add, s0 + 1, 'one backend call for both');
  const other = await post(nx, '/tools/mock__add', { a: 1, b: 3 });
  assert.equal(other.data.structuredContent.sum, 4);
  assert.equal((await stats(nx)).tools.add, s0 + 2, 'other arguments miss');
  await sleep(350);
  const expired = await post(nx, '/tools/mock__add', { a: 1, b: 2 });
  assert.equal(expired.data._meta?.['io.nexus/cache'], undefined);
  assert.equal((await stats(nx)).tools.add, s0 + 3, 'expired after the TTL');
  const h = await health(nx);
  assert.equal(h.cache.status, 'ok');
  assert.equal(h.cache.redis, 'none');
  assert.ok(h.cache.l1_hits >= 1);
  const metrics = (await request(nx.restPort, { path: '/metrics' })).text;
  assert.ok(promSum(metrics, 'nexus_cache_l1_hits_total').sum >= 1);
  // isError results are not cached.
  const s1 = (await stats(nx)).tools.fail;
  await post(nx, '/tools/mock__fail', { mode: 'isError' });
  await post(nx, '/tools/mock__fail', { mode: 'isError' });
  assert.equal((await stats(nx)).tools.fail, s1 + 2);
});

test('single-flight: concurrent identical misses make one backend call', async () => {
  const nx = started[0];
  const before = (await stats(nx)).tools.echo;
  const calls = Array.from({ length: 20 }, () =>
    post(nx, '/tools/mock__echo', { message: 'flight', latency_ms: 300 }));
  const results = await Promise.all(calls);
  for (const r of results) {
    assert.equal(r.status, 200);
    assert.equal(r.data.content[0].text, 'flight');
  }
  assert.equal((await stats(nx)).tools.echo, before + 1, '20 concurrent calls, 1 backend call');
  const shared = results.filter((r) => r.data._meta?.['io.nexus/cache'] === 'shared').length;
  assert.equal(shared, 19);
});

test('stale-if-error: a failed step is answered from the expired entry, flagged', async () => {
  const nx = started[0];
  shopFails = false;
  const fresh = await post(nx, '/api/workflows/price', {});
  assert.equal(fresh.status, 200, JSON.stringify(fresh.data));
  const cached = await post(nx, '/api/workflows/price', {});
  assert.equal(cached.data.steps[0].cached, true);
  assert.deepEqual(cached.data.result, fresh.data.result);
  await sleep(250);
  shopFails = true;
  const stale = await post(nx, '/api/workflows/price', {});
  shopFails = false;
  assert.equal(stale.status, 200, JSON.stringify(stale.data));
  assert.deepEqual(stale.data.result, fresh.data.result);
  assert.equal(stale.data.steps[0].cached, true);
  assert.equal(stale.data.steps[0].stale, true);
  assert.ok((await health(nx)).cache.stale_served >= 1);
});

test('Redis L2: two replicas share entries, large values round-trip compressed', async () => {
  redis = await startRedis();
  const url = `redis://${HOST}:${redisPort}/3`;
  const a = await startWith({ redisUrl: url, ttl: '30s' });
  const b = await startWith({ redisUrl: url, ttl: '30s' });
  await waitFor('redis up on both', async () =>
    (await health(a)).cache.redis === 'up' && (await health(b)).cache.redis === 'up');
  const big = 'x'.repeat(8000) + 'y'.repeat(8000);
  const ra = await post(a, '/tools/mock__echo', { message: big });
  assert.equal(ra.data.content[0].text, big);
  // SET is fire and forget: give it a moment to land.
  await waitFor('the value in Redis', async () => {
    const rb = await post(b, '/tools/mock__echo', { message: big });
    return rb.data._meta?.['io.nexus/cache'] === 'hit-l2' && rb.data.content[0].text === big;
  }, 5000);
  assert.equal((await stats(b)).tools.echo, 0, 'replica b never called its backend');
  const again = await post(b, '/tools/mock__echo', { message: big });
  assert.equal(again.data._meta['io.nexus/cache'], 'hit', 'then from its own L1');
  assert.ok((await health(b)).cache.l2_hits >= 1);
});

test('Redis killed mid-run and restarted: no failed request, degraded, then recovered', async () => {
  const [, a] = started.slice(-2);
  let failures = 0;
  let done = 0;
  let stop = false;
  const loop = (async () => {
    let i = 0;
    while (!stop) {
      const r = await post(a, '/tools/mock__add', { a: i % 5, b: 1 });
      if (r.status !== 200 || r.data.structuredContent?.sum !== (i % 5) + 1) failures++;
      done++;
      i++;
    }
  })();
  await sleep(300);
  await stopRedis();
  await waitFor('cache degraded in /health', async () => {
    const h = await health(a);
    return h.cache.status === 'degraded' && h.cache.redis === 'down';
  }, 5000);
  const metrics = (await request(a.restPort, { path: '/metrics' })).text;
  assert.ok(promSum(metrics, 'nexus_cache_redis_down_total').sum >= 1);
  assert.equal(promSum(metrics, 'nexus_cache_redis_up').sum, 0);
  const during = done;
  await sleep(500);
  assert.ok(done > during, 'requests keep flowing while Redis is down');
  redis = await startRedis();
  await waitFor('cache recovered', async () => {
    const h = await health(a);
    return h.cache.status === 'ok' && h.cache.redis === 'up';
  }, 10000);
  await sleep(300);
  stop = true;
  await loop;
  assert.equal(failures, 0, `${failures} of ${done} requests failed`);
  assert.ok(done > 20);
});

test('cache.default_ttl caches unnamed tools; cache.cache_errors caches isError results', async () => {
  const nx = await startWith({ cacheExtra: ['  default_ttl: 30s', '  cache_errors: true'] });
  const s0 = await stats(nx);
  const first = await post(nx, '/tools/mock__sleep', { ms: 1 });
  const second = await post(nx, '/tools/mock__sleep', { ms: 1 });
  assert.equal(first.status, 200);
  assert.equal(second.data._meta['io.nexus/cache'], 'hit');
  const e1 = await post(nx, '/tools/mock__fail', { mode: 'isError' });
  const e2 = await post(nx, '/tools/mock__fail', { mode: 'isError' });
  assert.equal(e1.data.isError, true);
  assert.equal(e2.data.isError, true);
  assert.equal(e2.data._meta['io.nexus/cache'], 'hit');
  const s1 = await stats(nx);
  assert.equal(s1.tools.sleep, s0.tools.sleep + 1);
  assert.equal(s1.tools.fail, s0.tools.fail + 1);
  // JSON-RPC errors are never cached.
  await post(nx, '/tools/mock__fail', { mode: 'error' });
  await post(nx, '/tools/mock__fail', { mode: 'error' });
  assert.equal((await stats(nx)).tools.fail, s1.tools.fail + 2);
});
