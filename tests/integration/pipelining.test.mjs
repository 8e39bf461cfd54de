// HTTP/1.1 pipelining: many requests in one write, answered in order even when an earlier
// request is slow (deferred on the timer wheel), across arbitrary write boundaries and with a
// client that does not read for a while.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startNexus, RawConn, get, post, sleep } from './lib/nexus.mjs';

let nx;
before(async () => {
  nx = await startNexus({ shards: 2, debugRoutes: true });
});
after(async () => {
  if (nx) await nx.kill();
});

/** 100 requests of three kinds; expect(i, r) checks the i-th response. */
function mixedBatch(n) {
  const reqs = [];
  const checks = [];
  for (let i = 0; i < n; i++) {
    if (i % 3 === 0) {
      // 0 is slow, then the others vary: a fast request right behind a slow one.
      const ms = i === 0 ? 50 : (i * 7) % 40;
      reqs.push(get(`/debug/delay/${ms}`));
      checks.push((r) => {
        assert.equal(r.status, 200, `#${i}`);
        assert.deepEqual(r.json(), { delayed_ms: ms }, `#${i} (delay ${ms})`);
      });
    } else if (i % 3 === 1) {
      reqs.push(get('/plaintext'));
      checks.push((r) => {
        assert.equal(r.status, 200, `#${i}`);
        assert.equal(r.text, 'Hello, World!', `#${i}`);
      });
    } else {
      const body = `request number ${i}`;
      reqs.push(post('/debug/echo', body, { contentType: 'text/x-seq' }));
      checks.push((r) => {
        assert.equal(r.status, 200, `#${i}`);
        assert.equal(r.text, body, `#${i}: responses out of order`);
      });
    }
  }
  const bytes = Buffer.concat(reqs.map((x) => (Buffer.isBuffer(x) ? x : Buffer.from(x))));
  return { bytes, checks };
}

test('100 pipelined requests in one write are answered in order (slow one first)', async () => {
  const c = await RawConn.open(nx.restPort);
  try {
    const { bytes, checks } = mixedBatch(100);
    await c.write(bytes);
    const rs = await c.readResponses(100, { timeoutMs: 10000 });
    rs.forEach((r, i) => checks[i](r));
    await sleep(100);
    assert.equal(c.buf.length, 0, 'extra bytes after 100 responses');
    // Still a working keep-alive connection.
    const r = await c.roundTrip(get('/plaintext'));
    assert.equal(r.status, 200);
  } finally {
    c.destroy();
  }
});

test('a fast request pipelined behind a slow one waits for it', async () => {
  const c = await RawConn.open(nx.restPort);
  try {
    const t0 = Date.now();
    await c.write(get('/debug/delay/300') + get('/plaintext'));
    await c.waitBytes(1, 3000);
    const firstByteMs = Date.now() - t0;
    assert.ok(firstByteMs >= 250, `first bytes after ${firstByteMs} ms: /plaintext overtook the delay`);
    const [a, b] = await c.readResponses(2);
    assert.deepEqual(a.json(), { delayed_ms: 300 });
    assert.equal(b.text, 'Hello, World!');
  } finally {
    c.destroy();
  }
});

test('pipelined requests split at arbitrary byte boundaries', async () => {
  const c = await RawConn.open(nx.restPort);
  try {
    const { bytes, checks } = mixedBatch(100);
    // Deterministic pseudo-random piece sizes 1..64 bytes.
    let seed = 12345;
    let off = 0;
    let writes = 0;
    while (off < bytes.length) {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      const n = 1 + (seed % 64);
      await c.write(bytes.subarray(off, off + n));
      off += n;
      if (++writes % 20 === 0) await sleep(1); // let some pieces arrive on their own
    }
    const rs = await c.readResponses(100, { timeoutMs: 10000 });
    rs.forEach((r, i) => checks[i](r));
  } finally {
    c.destroy();
  }
});

test('pipelined HEAD and GET are delimited correctly', async () => {
  const c = await RawConn.open(nx.restPort);
  try {
    let data = '';
    for (let i = 0; i < 10; i++) data += get('/plaintext', { method: i % 2 ? 'GET' : 'HEAD' });
    await c.write(data);
    for (let i = 0; i < 10; i++) {
      const head = i % 2 === 0;
      const r = await c.readResponse({ headOnly: head });
      assert.equal(r.status, 200, `#${i}`);
      assert.equal(r.headers['content-length'], '13');
      if (!head) assert.equal(r.text, 'Hello, World!', `#${i}`);
    }
  } finally {
    c.destroy();
  }
});

test('Connection: close on the last pipelined request: all answered, then EOF', async () => {
  const c = await RawConn.open(nx.restPort);
  try {
    let data = '';
    for (let i = 0; i < 49; i++) data += get(i % 2 ? '/plaintext' : '/debug/delay/1');
    data += get('/plaintext', { headers: 'Connection: close\r\n' });
    await c.write(data);
    const rs = await c.readResponses(50, { timeoutMs: 10000 });
    assert.ok(rs.every((r) => r.status === 200));
    assert.match(rs[49].headers.connection ?? '', /close/i);
    await c.waitClose(3000);
  } finally {
    c.destroy();
  }
});

test('requests behind Connection: close are not answered', async () => {
  const c = await RawConn.open(nx.restPort);
  try {
    await c.write(get('/plaintext', { headers: 'Connection: close\r\n' }) + get('/health'));
    const r = await c.readResponse();
    assert.equal(r.status, 200);
    await c.waitClose(3000);
    assert.equal(c.buf.length, 0, `answered after Connection: close: ${c.buf}`);
  } finally {
    c.destroy();
  }
});

test('20000 pipelined requests with a client that reads late (backpressure)', async () => {
  const c = await RawConn.open(nx.restPort);
  try {
    const n = 20000;
    const one = get('/plaintext');
    c.sock.pause(); // do not read: the server must stop reading instead of buffering forever
    const all = Buffer.from(one.repeat(n));
    const writeDone = c.write(all);
    await sleep(500);
    c.sock.resume();
    await writeDone;
    let ok = 0;
    for (let i = 0; i < n; i++) {
      const r = await c.readResponse({ timeoutMs: 20000 });
      if (r.status === 200 && r.text === 'Hello, World!') ok++;
    }
    assert.equal(ok, n);
    const r = await c.roundTrip(get('/health'));
    assert.equal(r.status, 200);
  } finally {
    c.destroy();
  }
});

test('clients that vanish during slow pipelined requests do not hurt the server', async () => {
  // 20 connections each with a slow request and more pipelined behind it, closed (some reset)
  // before the delay fires: the deferred replies must be dropped safely.
  const conns = [];
  for (let i = 0; i < 20; i++) {
    const c = await RawConn.open(nx.restPort);
    conns.push(c);
    await c.write(get('/debug/delay/300') + get('/plaintext') + post('/debug/echo', 'x'.repeat(i)));
  }
  await sleep(50);
  conns.forEach((c, i) => (i % 2 ? c.sock.resetAndDestroy() : c.destroy()));
  await sleep(500); // the timers fire after their connections are gone
  const c = await RawConn.open(nx.restPort);
  try {
    const rs = [];
    await c.write(get('/debug/delay/10') + get('/plaintext'));
    rs.push(...(await c.readResponses(2)));
    assert.deepEqual(rs[0].json(), { delayed_ms: 10 });
    assert.equal(rs[1].text, 'Hello, World!');
  } finally {
    c.destroy();
  }
});

test('nexus exits 0 on SIGTERM with no sanitizer report', async () => {
  await nx.stopAndAssertClean();
});
