// Error responses: JSON bodies, status codes for each protocol violation and limit, and the
// connection closing after a protocol error. One nexus with small limits and timeouts.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startNexus, withNexus, RawConn, get, rawOnce, request, sleep, assertJsonError,
} from './lib/nexus.mjs';

let nx;
before(async () => {
  nx = await startNexus({
    shards: 2,
    debugRoutes: true,
    set: {
      'http.header_timeout': '1s',
      'http.body_timeout': '1s',
      'http.max_body': '1KiB',
      'http.max_uri': '1KiB',
      'http.max_header_bytes': '4KiB',
      'http.max_headers': '20',
    },
  });
});
after(async () => {
  if (nx) await nx.kill();
});

/** Sends raw bytes on a new connection, expects <status> as JSON error, then EOF. */
async function expectErrorAndClose(data, status, { timeoutMs = 3000 } = {}) {
  const c = await RawConn.open(nx.restPort);
  try {
    await c.write(data);
    const r = await c.readResponse({ timeoutMs });
    assertJsonError(r, status);
    assert.match(r.headers.connection ?? '', /close/i,
      `${status} response lacks "Connection: close": ${r.head}`);
    await c.waitClose(3000);
    assert.equal(c.buf.length, 0, `bytes after the ${status} response: ${c.buf}`);
    return r;
  } finally {
    c.destroy();
  }
}

test('404 for an unknown path is JSON and keeps the connection open', async () => {
  const c = await RawConn.open(nx.restPort);
  try {
    const r = await c.roundTrip(get('/no/such/path'));
    assertJsonError(r, 404);
    assert.doesNotMatch(r.headers.connection ?? '', /close/i);
    const r2 = await c.roundTrip(get('/plaintext'));
    assert.equal(r2.status, 200);
  } finally {
    c.destroy();
  }
});

test('405 for a wrong method, with an Allow header listing GET', async () => {
  const c = await RawConn.open(nx.restPort);
  try {
    const r = await c.roundTrip('POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n');
    assertJsonError(r, 405);
    assert.ok(r.headers.allow, `no Allow header: ${r.head}`);
    assert.match(r.headers.allow, /\bGET\b/);
    assert.doesNotMatch(r.headers.allow, /\bPOST\b/);
    const r2 = await c.roundTrip('DELETE /plaintext HTTP/1.1\r\nHost: x\r\n\r\n');
    assertJsonError(r2, 405);
    assert.match(r2.headers.allow, /\bGET\b/);
    const r3 = await c.roundTrip(get('/debug/echo'));
    assertJsonError(r3, 405);
    assert.match(r3.headers.allow, /\bPOST\b/);
    const r4 = await c.roundTrip(get('/plaintext'));
    assert.equal(r4.status, 200, '405 should not close the connection');
  } finally {
    c.destroy();
  }
});

test('400 for a header line without a colon, then close', async () => {
  await expectErrorAndClose('GET / HTTP/1.1\r\nbad header line\r\n\r\n', 400);
});

test('400 for an HTTP/1.1 request without Host, then close', async () => {
  await expectErrorAndClose('GET /plaintext HTTP/1.1\r\n\r\n', 400);
});

test('400 for bare LF line endings, then close', async () => {
  await expectErrorAndClose('GET /plaintext HTTP/1.1\nHost: x\n\n', 400);
});

test('400 for both Content-Length and Transfer-Encoding, then close', async () => {
  await expectErrorAndClose('POST /debug/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n' +
    'Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 400);
});

test('400 for a malformed request line, then close', async () => {
  await expectErrorAndClose('GET\r\n\r\n', 400);
});

test('400 for a non-numeric Content-Length, then close', async () => {
  await expectErrorAndClose('POST /debug/echo HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n', 400);
});

test('a request pipelined behind a protocol error is not answered', async () => {
  const c = await RawConn.open(nx.restPort);
  try {
    await c.write('GET / HTTP/2.0\r\n\r\n' + get('/plaintext'));
    const r = await c.readResponse();
    assertJsonError(r, 505);
    await c.waitClose(3000);
    assert.equal(c.buf.length, 0, `a response followed the 505: ${c.buf}`);
  } finally {
    c.destroy();
  }
});

test('408 for a slowloris head (one byte every 300 ms) within ~1-2 s, then close', async () => {
  const c = await RawConn.open(nx.restPort);
  try {
    const t0 = Date.now();
    await c.write('GET /plaintext HTTP/1.1\r\nHost: x\r\n');
    const drip = 'X-Slow: ' + 'a'.repeat(40);
    let i = 0;
    // Bounded: at most 20 bytes (6 s); stops once the server answers or closes.
    while (i < 20 && c.buf.length === 0 && !c.closed) {
      await sleep(300);
      if (c.buf.length > 0 || c.closed) break;
      await c.write(drip[i++]).catch(() => {});
    }
    const r = await c.readResponse({ timeoutMs: 3000 });
    const ms = Date.now() - t0;
    assertJsonError(r, 408);
    assert.ok(ms >= 800, `408 came after ${ms} ms, before header_timeout (1 s)`);
    assert.ok(ms <= 2500, `408 came after ${ms} ms (header_timeout is 1 s)`);
    assert.match(r.headers.connection ?? '', /close/i);
    await c.waitClose(3000);
  } finally {
    c.destroy();
  }
});

test('408 when a body stops arriving (body_timeout 1 s), then close', async () => {
  const c = await RawConn.open(nx.restPort);
  try {
    const t0 = Date.now();
    await c.write('POST /debug/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789');
    const r = await c.readResponse({ timeoutMs: 4000 });
    const ms = Date.now() - t0;
    assertJsonError(r, 408);
    assert.ok(ms >= 800 && ms <= 2500, `408 after ${ms} ms (body_timeout is 1 s)`);
    await c.waitClose(3000);
  } finally {
    c.destroy();
  }
});

test('a silent new connection is closed after header_timeout', async () => {
  const c = await RawConn.open(nx.restPort);
  try {
    const t0 = Date.now();
    await c.waitClose(4000);
    const ms = Date.now() - t0;
    assert.ok(ms >= 800, `closed after ${ms} ms, before header_timeout`);
  } finally {
    c.destroy();
  }
});

test('413 for Content-Length over max_body, answered without sending the body', async () => {
  const c = await RawConn.open(nx.restPort);
  try {
    const t0 = Date.now();
    await c.write('POST /debug/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1025\r\n\r\n');
    const r = await c.readResponse({ timeoutMs: 3000 });
    const ms = Date.now() - t0;
    assertJsonError(r, 413);
    assert.ok(ms < 800, `413 took ${ms} ms: it should come right after the head`);
    assert.match(r.headers.connection ?? '', /close/i);
    await c.waitClose(3000);
  } finally {
    c.destroy();
  }
});

test('a body of exactly max_body is accepted', async () => {
  const body = 'b'.repeat(1024);
  const r = await request(nx.restPort, { method: 'POST', path: '/debug/echo', body });
  assert.equal(r.status, 200);
  assert.equal(r.text, body);
});

test('413 for a chunked body that grows over max_body', async () => {
  const chunk = 'c'.repeat(600);
  const data = 'POST /debug/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n' +
    `258\r\n${chunk}\r\n258\r\n${chunk}\r\n0\r\n\r\n`;
  await expectErrorAndClose(data, 413);
});

test('414 for a request-target longer than max_uri', async () => {
  await expectErrorAndClose(get('/' + 'u'.repeat(2000)), 414);
});

test('a request-target just under max_uri is routed (404, not 414)', async () => {
  const { r, c } = await rawOnce(nx.restPort, get('/' + 'u'.repeat(1000)));
  c.destroy();
  assertJsonError(r, 404);
});

test('431 for a head larger than max_header_bytes', async () => {
  await expectErrorAndClose(get('/plaintext', { headers: `X-Big: ${'h'.repeat(5000)}\r\n` }), 431);
});

test('431 for more header fields than max_headers', async () => {
  let h = '';
  for (let i = 0; i < 25; i++) h += `X-H${i}: ${i}\r\n`;
  await expectErrorAndClose(get('/plaintext', { headers: h }), 431);
});

test('a request with exactly max_headers fields is accepted', async () => {
  let h = '';
  for (let i = 0; i < 19; i++) h += `X-H${i}: ${i}\r\n`; // + Host = 20
  const { r, c } = await rawOnce(nx.restPort, get('/plaintext', { headers: h }));
  c.destroy();
  assert.equal(r.status, 200);
});

test('501 for Transfer-Encoding: gzip', async () => {
  await expectErrorAndClose('POST /debug/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n', 501);
});

test('505 for HTTP/2.0 in the request line', async () => {
  await expectErrorAndClose('GET / HTTP/2.0\r\nHost: x\r\n\r\n', 505);
});

test('505 for HTTP/1.2 in the request line', async () => {
  await expectErrorAndClose('GET / HTTP/1.2\r\nHost: x\r\n\r\n', 505);
});

test('the server is healthy after all the errors', async () => {
  const r = await request(nx.restPort, { path: '/health' });
  assert.equal(r.status, 200);
  assert.equal(r.json().status, 'ok');
});

test('default limits: 101 headers -> 431, 17 KiB head -> 431, 9 KiB target -> 414', async () => {
  await withNexus({ shards: 1 }, async (s) => {
    let h = '';
    for (let i = 0; i < 100; i++) h += `X-H${i}: v\r\n`; // + Host = 101
    const cases = [
      [get('/plaintext', { headers: h }), 431],
      [get('/plaintext', { headers: `X-Big: ${'a'.repeat(17 * 1024)}\r\n` }), 431],
      [get('/' + 'a'.repeat(9 * 1024)), 414],
      [get('/plaintext', { headers: `X-Big: ${'a'.repeat(15 * 1024)}\r\n` }), 200],
    ];
    for (const [data, status] of cases) {
      const { r, c } = await rawOnce(s.restPort, data);
      c.destroy();
      assert.equal(r.status, status, r.text);
    }
  });
});

test('nexus exits 0 on SIGTERM with no sanitizer report', async () => {
  await nx.stopAndAssertClean();
});
