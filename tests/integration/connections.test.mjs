// Connections: 10 000 concurrent keep-alive connections to one nexus, the per-shard connection
// limit (503 + Retry-After), and the keep-alive idle timeout.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { readFileSync } from 'node:fs';
import {
  withNexus, RawConn, get, request, sleep, HOST, parseResponse, assertJsonError,
} from './lib/nexus.mjs';

const N = 10000;

/** The fd limit this node process runs with (node raises its soft limit to the hard one). */
function ownFdLimit() {
  try {
    const limits = readFileSync('/proc/self/limits', 'utf8');
    const m = /Max open files\s+(\d+|unlimited)/.exec(limits);
    return m ? (m[1] === 'unlimited' ? Infinity : Number(m[1])) : 0;
  } catch {
    return 0;
  }
}

/** Opens a socket, sends GET /plaintext, resolves with the socket once a 200 is read. */
function openAndRequest(port) {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: HOST, port });
    let buf = Buffer.alloc(0);
    let done = false;
    const timer = setTimeout(() => fail(new Error('timeout')), 20000);
    function fail(e) {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      reject(e);
    }
    s.on('error', fail);
    s.on('close', () => fail(new Error(`closed by the server; got ${JSON.stringify(buf.toString('latin1'))}`)));
    s.on('connect', () => s.write(get('/plaintext')));
    s.on('data', (d) => {
      if (done) return;
      buf = Buffer.concat([buf, d]);
      let r;
      try {
        r = parseResponse(buf);
      } catch (e) {
        fail(e);
        return;
      }
      if (r === null) return;
      if (r.status !== 200 || r.text !== 'Hello, World!') {
        fail(new Error(`status ${r.status}: ${r.text}`));
        return;
      }
      done = true;
      clearTimeout(timer);
      // Keep the socket open; errors after this point are counted by the caller.
      s.removeAllListeners('close');
      s.removeAllListeners('error');
      s.on('error', () => {});
      s.on('close', () => (s.closedEarly = true));
      resolve(s);
    });
  });
}

test(`${N} concurrent keep-alive connections, each answered, all open at once`, { timeout: 90000 }, async (t) => {
  const limit = ownFdLimit();
  assert.ok(limit >= N + 500,
    `the test process may open only ${limit} files; run node with "ulimit -n 65536"`);
  const t0 = Date.now();
  await withNexus({ shards: 2, fdLimit: 65536 }, async (nx) => {
    const sockets = [];
    try {
      const batch = 500;
      for (let i = 0; i < N; i += batch) {
        const part = await Promise.allSettled(
          Array.from({ length: Math.min(batch, N - i) }, () => openAndRequest(nx.restPort)));
        const failed = part.filter((p) => p.status === 'rejected');
        for (const p of part) if (p.status === 'fulfilled') sockets.push(p.value);
        if (failed.length) {
          assert.fail(`${failed.length} of connections ${i}..${i + batch} failed, first: ` +
            `${failed[0].reason.message}; ${sockets.length} open`);
        }
        assert.ok(Date.now() - t0 < 60000, `too slow: ${sockets.length} connections after 60 s`);
      }
      assert.equal(sockets.length, N);
      const closedEarly = sockets.filter((s) => s.closedEarly || s.destroyed).length;
      assert.equal(closedEarly, 0, `${closedEarly} connections were closed by the server`);

      const st = await request(nx.restPort, { path: '/stats' });
      assert.equal(st.status, 200);
      const stats = JSON.parse(st.text);
      const open = stats.connections_open ?? stats.net?.connections_open;
      assert.equal(typeof open, 'number', `no connections_open in /stats: ${st.text.slice(0, 500)}`);
      assert.ok(open >= N, `/stats says ${open} connections open, expected >= ${N}`);

      // Every connection still works: a second request on a sample of them.
      const sample = sockets.filter((_, i) => i % 500 === 0);
      await Promise.all(sample.map((s) => new Promise((resolve, reject) => {
        let buf = Buffer.alloc(0);
        const timer = setTimeout(() => reject(new Error('second request timed out')), 10000);
        s.on('data', (d) => {
          buf = Buffer.concat([buf, d]);
          const r = parseResponse(buf);
          if (r) {
            clearTimeout(timer);
            r.status === 200 ? resolve() : reject(new Error(`status ${r.status}`));
          }
        });
        s.write(get('/plaintext'));
      })));
    } finally {
      // RST rather than FIN: no 10 000 sockets left in TIME_WAIT on the client side.
      for (const s of sockets) {
        if (typeof s.resetAndDestroy === 'function') s.resetAndDestroy();
        else s.destroy();
      }
    }
    // The server notices the closes.
    const deadline = Date.now() + 15000;
    let open = Infinity;
    while (Date.now() < deadline) {
      const st = JSON.parse((await request(nx.restPort, { path: '/stats' })).text);
      open = st.connections_open ?? st.net?.connections_open;
      if (open <= 5) break;
      await sleep(200);
    }
    assert.ok(open <= 5, `${open} connections still open 15 s after the clients closed`);
  });
  t.diagnostic(`${N} connections: ${Date.now() - t0} ms`);
});

test('max_connections=5: the 6th connection gets 503 with Retry-After and is closed', async () => {
  await withNexus({ shards: 1, set: { 'http.max_connections': '5' } }, async (nx) => {
    const conns = [];
    try {
      for (let i = 0; i < 5; i++) {
        const c = await RawConn.open(nx.restPort);
        conns.push(c);
        const r = await c.roundTrip(get('/plaintext'));
        assert.equal(r.status, 200, `connection ${i + 1}`);
      }
      const sixth = await RawConn.open(nx.restPort);
      try {
        // Nothing is written: the server answers on accept, and unread request bytes would
        // turn its close into a reset that can discard the response.
        // The refusal is written and the socket closed at once: read everything until EOF.
        await sixth.waitClose(3000);
        const raw = sixth.buf;
        assert.match(raw.toString('latin1'), /^HTTP\/1\.1 503 /, `6th connection got ${raw}`);
        const r = parseResponse(raw, { eof: true, headOnly: true });
        assert.ok(r.headers['retry-after'], `no Retry-After: ${r.head}`);
        assert.ok(Number(r.headers['retry-after']) >= 1);
        assert.match(r.headers.connection ?? '', /close/i);
        const body = raw.subarray(r.consumed);
        assert.equal(Number(r.headers['content-length']), body.length,
          `Content-Length ${r.headers['content-length']} but the body has ${body.length} bytes: ` +
          JSON.stringify(body.toString()));
        assertJsonError({ ...r, text: body.toString() }, 503);
      } finally {
        sixth.destroy();
      }
      // The five accepted ones still work.
      for (const c of conns) assert.equal((await c.roundTrip(get('/plaintext'))).status, 200);

      // Closing one frees a slot.
      conns.pop().destroy();
      let ok = false;
      for (let i = 0; i < 40 && !ok; i++) {
        await sleep(50);
        const c = await RawConn.open(nx.restPort);
        try {
          const r = await c.roundTrip(get('/plaintext'));
          ok = r.status === 200;
        } catch { /* closed: still full */ } finally {
          c.destroy();
        }
      }
      assert.ok(ok, 'no connection accepted after one of the five closed');

      const st = JSON.parse((await request(nx.restPort, { path: '/stats' })).text);
      const rejected = st.connections_rejected ?? st.net?.connections_rejected;
      if (rejected !== undefined) assert.ok(rejected >= 1, `connections_rejected = ${rejected}`);
    } finally {
      for (const c of conns) c.destroy();
    }
  });
});

test('an idle keep-alive connection is closed after keepalive_timeout', async () => {
  await withNexus({ shards: 1, set: { 'http.keepalive_timeout': '500ms' } }, async (nx) => {
    const c = await RawConn.open(nx.restPort);
    try {
      const r = await c.roundTrip(get('/plaintext'));
      assert.equal(r.status, 200);
      const t0 = Date.now();
      await c.waitClose(5000);
      const ms = Date.now() - t0;
      assert.ok(ms >= 350, `closed after ${ms} ms, before keepalive_timeout`);
      assert.ok(ms <= 2500, `closed after ${ms} ms (keepalive_timeout is 500 ms)`);
    } finally {
      c.destroy();
    }
  });
});

test('a connection in use is not closed by the keep-alive timeout', async () => {
  await withNexus({ shards: 1, set: { 'http.keepalive_timeout': '500ms' } }, async (nx) => {
    const c = await RawConn.open(nx.restPort);
    try {
      // 10 requests 300 ms apart: 3 s in all, each gap shorter than the timeout.
      for (let i = 0; i < 10; i++) {
        const r = await c.roundTrip(get('/plaintext'));
        assert.equal(r.status, 200, `request ${i}`);
        await sleep(300);
      }
    } finally {
      c.destroy();
    }
  });
});
