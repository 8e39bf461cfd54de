// Process lifecycle: SIGTERM drain (in-flight requests finish, new ones are refused, exit 0
// within shutdown.grace), grace expiry, SIGINT, and SIGHUP configuration reload.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { writeFileSync } from 'node:fs';
import {
  startNexus, withNexus, RawConn, get, post, rawOnce, sleep, tempDir, HOST,
  assertCleanExit, assertJsonError, parseResponse, assertNoSanitizerReport,
} from './lib/nexus.mjs';

const tmp = tempDir();

/**
 * Tries a new connection and a GET /plaintext. Resolves with one of
 * {kind: 'connect-error'|'reset'|'closed'|'response'|'timeout', ...}.
 */
function tryNewConnection(port, timeoutMs = 1000) {
  return new Promise((resolve) => {
    const s = net.connect({ host: HOST, port });
    let buf = Buffer.alloc(0);
    let connected = false;
    let done = false;
    const finish = (v) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      resolve(v);
    };
    const timer = setTimeout(() => finish({ kind: 'timeout', connected }), timeoutMs);
    s.on('connect', () => {
      connected = true;
      s.write(get('/plaintext'));
    });
    s.on('error', (e) => finish({ kind: connected ? 'reset' : 'connect-error', code: e.code }));
    s.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      const r = parseResponse(buf);
      if (r) finish({ kind: 'response', status: r.status, r });
    });
    s.on('end', () => finish({ kind: 'closed', bytes: buf.length }));
  });
}

test('SIGTERM drains: in-flight request completes, new connections refused, exit 0', { timeout: 30000 }, async (t) => {
  // The spec scenario: one slow request in flight, nothing else. With 2 shards, one shard has
  // nothing to drain and finishes at once while the other waits for the request.
  const nx = await startNexus({ shards: 2, debugRoutes: true, set: { 'shutdown.grace': '5s' } });
  const slow = await RawConn.open(nx.restPort);
  try {
    const t0 = Date.now();
    await slow.write(get('/debug/delay/1500'));
    await sleep(200);
    const tSig = Date.now();
    nx.signal('SIGTERM');
    await sleep(200);

    // New connections: refused, or answered 503; never accepted and left hanging.
    const n = await tryNewConnection(nx.restPort, 500);
    const nMs = Date.now() - tSig;
    t.diagnostic(`new connection after SIGTERM: ${n.kind}${n.code ? ` ${n.code}` : ''}`);

    // The in-flight request completes normally.
    const r = await slow.readResponse({ timeoutMs: 5000 });
    const ms = Date.now() - t0;
    assert.equal(r.status, 200);
    assert.deepEqual(r.json(), { delayed_ms: 1500 });
    assert.ok(ms >= 1400, `delayed response after only ${ms} ms`);
    assert.match(r.headers.connection ?? '', /close/i, 'a response while draining keeps the connection');
    await slow.waitClose(3000);

    const ex = await nx.waitExit(6000);
    const exitMs = ex.at - tSig;
    assert.ok(exitMs < 5000, `exited ${exitMs} ms after SIGTERM (grace 5 s)`);
    assert.ok(exitMs < 3500, `exited ${exitMs} ms after SIGTERM, long after the last request finished`);
    assertCleanExit(await nx.stop());
    // Checked last so that a failure here does not hide the rest of the drain behaviour.
    assert.ok(n.kind === 'connect-error' || (n.kind === 'response' && n.status === 503),
      `a new connection made ${nMs} ms after SIGTERM (while a request was in flight) got ` +
      `${JSON.stringify({ ...n, r: n.r?.head })}: it was accepted by the kernel but never ` +
      'answered nor refused');
  } finally {
    slow.destroy();
    await nx.kill();
  }
});

test('while draining: idle connections close, arriving requests get 503 from /ready and /health', { timeout: 30000 }, async () => {
  const nx = await startNexus({ shards: 2, debugRoutes: true, set: { 'shutdown.grace': '5s' } });
  const conns = [];
  try {
    // An idle keep-alive connection: drain closes it.
    const idle = await RawConn.open(nx.restPort);
    conns.push(idle);
    assert.equal((await idle.roundTrip(get('/plaintext'))).status, 200);
    // Two connections in the middle of a request head: they finish during the drain.
    const readyConn = await RawConn.open(nx.restPort);
    const healthConn = await RawConn.open(nx.restPort);
    conns.push(readyConn, healthConn);
    await readyConn.write('GET /ready HTTP/1.1\r\nHost: x\r\n');
    await healthConn.write('GET /health HTTP/1.1\r\nHost: x\r\n');
    // A slow request keeps the process draining meanwhile.
    const slow = await RawConn.open(nx.restPort);
    conns.push(slow);
    await slow.write(get('/debug/delay/1500'));
    await sleep(200);
    nx.signal('SIGTERM');
    await sleep(200);

    await idle.waitClose(2000);

    await readyConn.write('\r\n');
    const ready = await readyConn.readResponse();
    assertJsonError(ready, 503);
    assert.ok(ready.headers['retry-after'], 'no Retry-After on /ready while draining');
    assert.match(ready.headers.connection ?? '', /close/i);
    await healthConn.write('\r\n');
    const health = await healthConn.readResponse();
    assert.equal(health.status, 503);
    const hj = health.json();
    assert.equal(hj.status, 'draining');
    assert.equal(hj.channels.rest.listening, false, 'REST still reported listening while draining');
    assert.match(health.headers.connection ?? '', /close/i);
    readyConn.destroy();
    healthConn.destroy();

    const r = await slow.readResponse({ timeoutMs: 5000 });
    assert.deepEqual(r.json(), { delayed_ms: 1500 });
    await nx.waitExit(6000);
    assertCleanExit(await nx.stop());
  } finally {
    for (const c of conns) c.destroy();
    await nx.kill();
  }
});

test('SIGTERM with grace 500ms closes a request still in flight and exits 0 in ~1-2 s', { timeout: 30000 }, async () => {
  const nx = await startNexus({ shards: 2, debugRoutes: true, set: { 'shutdown.grace': '500ms' } });
  const slow = await RawConn.open(nx.restPort);
  try {
    await slow.write(get('/debug/delay/5000'));
    await sleep(200);
    const tSig = Date.now();
    nx.signal('SIGTERM');
    await slow.waitClose(3000);
    const closedMs = Date.now() - tSig;
    assert.ok(!/delayed_ms/.test(slow.buf.toString()), 'the 5 s request was answered');
    assert.ok(closedMs >= 400, `connection closed ${closedMs} ms after SIGTERM, before the grace`);
    const ex = await nx.waitExit(5000);
    const exitMs = ex.at - tSig;
    assert.ok(exitMs <= 2500, `exited ${exitMs} ms after SIGTERM (grace 500 ms)`);
    assertCleanExit(await nx.stop());
  } finally {
    slow.destroy();
    await nx.kill();
  }
});

test('SIGTERM with only idle connections exits 0 at once', { timeout: 30000 }, async () => {
  const nx = await startNexus({ shards: 2, set: { 'shutdown.grace': '10s' } });
  const conns = [];
  try {
    for (let i = 0; i < 6; i++) {
      const c = await RawConn.open(nx.restPort);
      conns.push(c);
      assert.equal((await c.roundTrip(get('/plaintext'))).status, 200);
    }
    const tSig = Date.now();
    nx.signal('SIGTERM');
    const ex = await nx.waitExit(12000);
    const exitMs = ex.at - tSig;
    assert.ok(exitMs < 2000, `exited ${exitMs} ms after SIGTERM with only idle connections`);
    for (const c of conns) await c.waitClose(1000);
    assertCleanExit(await nx.stop());
  } finally {
    for (const c of conns) c.destroy();
    await nx.kill();
  }
});

test('SIGINT drains and exits 0 like SIGTERM', { timeout: 30000 }, async () => {
  const nx = await startNexus({ shards: 1, debugRoutes: true });
  const c = await RawConn.open(nx.restPort);
  try {
    await c.write(get('/debug/delay/300'));
    await sleep(100);
    nx.signal('SIGINT');
    const r = await c.readResponse({ timeoutMs: 3000 });
    assert.deepEqual(r.json(), { delayed_ms: 300 });
    await nx.waitExit(5000);
    assertCleanExit(await nx.stop());
  } finally {
    c.destroy();
    await nx.kill();
  }
});

function writeConfig(file, { maxBody, access = false, extra = '' }) {
  writeFileSync(file, [
    'log:',
    '  level: info',
    `  access: ${access}`,
    'http:',
    `  max_body: ${maxBody}`,
    extra,
    '',
  ].join('\n'));
}

async function waitReload(nx, from) {
  // The reload is logged; give the shards time to pick up the new snapshot either way.
  await nx.waitForLog((l) => (/reload/i.test(l.msg ?? '') && l.level !== 'debug' &&
    !/SIGHUP/.test(l.msg)) || /Sanitizer|runtime error:/.test(l.raw ?? ''),
  { from, timeoutMs: 3000, what: 'a reload log line' }).catch(() => {});
  await sleep(300);
  assertNoSanitizerReport(nx.stderr);
  assert.equal(nx.exited, null, `nexus exited during the reload:\n${nx.stderr}`);
}

test('SIGHUP reloads limits; open keep-alive connections keep working', { timeout: 30000 }, async () => {
  const file = tmp.path('reload.yaml');
  writeConfig(file, { maxBody: '1KiB' });
  await withNexus({ shards: 2, debugRoutes: true, config: file }, async (nx) => {
    const k = await RawConn.open(nx.restPort);
    try {
      assert.equal((await k.roundTrip(get('/plaintext'))).status, 200);
      const body = Buffer.alloc(50 * 1024, 'r');
      // Before: 50 KiB is over the 1 KiB limit (answered after the head alone).
      const before = await rawOnce(nx.restPort,
        `POST /debug/echo HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\n\r\n`);
      before.c.destroy();
      assertJsonError(before.r, 413);

      writeConfig(file, { maxBody: '100KiB' });
      const from = nx.logCount();
      nx.signal('SIGHUP');
      await waitReload(nx, from);

      // Same connection, still serving.
      const again = await k.roundTrip(get('/plaintext'));
      assert.equal(again.status, 200);
      assert.equal(k.closed, false);
      // And now the 50 KiB body is accepted, on that same connection.
      const echo = await k.roundTrip(post('/debug/echo', body), { timeoutMs: 5000 });
      assert.equal(echo.status, 200, echo.text.slice(0, 200));
      assert.ok(echo.body.equals(body), 'echoed body differs');
      // And on a fresh connection (either shard).
      for (let i = 0; i < 4; i++) {
        const fresh = await rawOnce(nx.restPort, post('/debug/echo', body));
        fresh.c.destroy();
        assert.equal(fresh.r.status, 200, `fresh connection ${i}`);
      }

      // A broken file: the error is logged, the old configuration (100 KiB) stays.
      writeFileSync(file, 'log:\n  level: info\nhttp:\n  max_body: 2KiB\n  max_bodyy: 5\n');
      const from2 = nx.logCount();
      nx.signal('SIGHUP');
      const errLine = await nx.waitForLog(
        (l) => (l.level === 'error' || l.level === 'warn') && /max_bodyy|reload\.yaml/.test(l.msg ?? ''),
        { from: from2, timeoutMs: 3000, what: 'an error line about the broken file' });
      assert.match(errLine.msg, /max_bodyy/, `the log line does not name the bad key: ${errLine.msg}`);
      await sleep(300);
      const still = await k.roundTrip(get('/plaintext'));
      assert.equal(still.status, 200, 'the server stopped serving after a bad reload');
      const echo2 = await k.roundTrip(post('/debug/echo', body), { timeoutMs: 5000 });
      assert.equal(echo2.status, 200, 'max_body changed by a rejected reload');
      // Not reset to the 10 MiB default either: 200 KiB is still over the kept 100 KiB limit.
      const over = await rawOnce(nx.restPort,
        'POST /debug/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 204800\r\n\r\n');
      over.c.destroy();
      assertJsonError(over.r, 413);
    } finally {
      k.destroy();
    }
  });
});

test('SIGHUP turns on the access log on every shard', { timeout: 30000 }, async () => {
  const file = tmp.path('access.yaml');
  writeConfig(file, { maxBody: '1KiB', access: false });
  await withNexus({ shards: 2, config: file }, async (nx) => {
    for (let i = 0; i < 4; i++) {
      const { r, c } = await rawOnce(nx.restPort, get('/plaintext'));
      c.destroy();
      assert.equal(r.status, 200);
    }
    await sleep(200);
    assert.equal(nx.logLines().filter((l) => l.access === true).length, 0,
      'access lines while log.access is false');
    writeConfig(file, { maxBody: '1KiB', access: true });
    const from = nx.logCount();
    nx.signal('SIGHUP');
    await waitReload(nx, from);
    // Several connections so that both shards see requests.
    for (let i = 0; i < 8; i++) {
      const { r, c } = await rawOnce(nx.restPort, get('/plaintext'));
      c.destroy();
      assert.equal(r.status, 200);
    }
    const access = await nx.waitForLog((l) => l.access === true && l.route === 'GET /plaintext',
      { from, timeoutMs: 3000, what: 'an access log line' });
    assert.equal(access.status, 200);
    assert.equal(typeof access.request_id, 'string');
    assert.equal(typeof access.shard, 'number');
    await sleep(200);
    const lines = nx.logLines().slice(from).filter((l) => l.access === true);
    assert.equal(lines.length, 8, `expected 8 access lines, got ${lines.length}`);
    const shards = new Set(lines.map((l) => l.shard));
    assert.ok(shards.size >= 1);
  });
});

test('10 SIGHUP reloads in a row: each one applies, serving never stops', { timeout: 60000 }, async () => {
  const file = tmp.path('flip.yaml');
  writeConfig(file, { maxBody: '1KiB' });
  await withNexus({ shards: 2, debugRoutes: true, config: file }, async (nx) => {
    const k = await RawConn.open(nx.restPort);
    try {
      const body = Buffer.alloc(2048, 'f');
      for (let i = 0; i < 10; i++) {
        const big = i % 2 === 0; // even rounds allow 4 KiB, odd rounds 1 KiB
        writeConfig(file, { maxBody: big ? '4KiB' : '1KiB' });
        const from = nx.logCount();
        nx.signal('SIGHUP');
        await waitReload(nx, from);
        assert.equal((await k.roundTrip(get('/plaintext'))).status, 200, `round ${i}`);
        // Two fresh connections, so that both shards are likely asked.
        for (let j = 0; j < 2; j++) {
          const { r, c } = await rawOnce(nx.restPort, big ? post('/debug/echo', body)
            : `POST /debug/echo HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\n\r\n`);
          c.destroy();
          assert.equal(r.status, big ? 200 : 413, `round ${i} (max_body ${big ? '4KiB' : '1KiB'})`);
        }
      }
    } finally {
      k.destroy();
    }
  });
});

test('an open MCP GET stream does not hold the shutdown up: it ends, its connection closes', async () => {
  const { openSession, ACCEPT, PV } = await import('./lib/mcp.mjs');
  const { RawConn } = await import('./lib/nexus.mjs');
  const nx = await startNexus({ shards: 1 });
  const sid = await openSession(nx.mcpPort);
  const c = await RawConn.open(nx.mcpPort);
  const get = `GET /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: ${ACCEPT}\r\n` +
    `Mcp-Session-Id: ${sid}\r\nMCP-Protocol-Version: ${PV}\r\n\r\n`;
  await c.write(get);
  await c.waitFor('\r\n\r\n');
  const t0 = Date.now();
  process.kill(nx.pid, 'SIGTERM');
  await c.waitFor('0\r\n\r\n', 3000); // the stream's last chunk
  await c.waitClose(3000); // and the connection is not kept for another request
  const r = await nx.stop({ timeoutMs: 15000 });
  c.destroy();
  assert.equal(r.code, 0);
  assert.ok(Date.now() - t0 < 5000, `exited after ${Date.now() - t0} ms, not at the grace period's end`);
});
