// HTTP/1.1 basics against one nexus (2 shards, debug routes): routes, HEAD, keep-alive,
// HTTP/1.0, request bodies (Content-Length, chunked split across writes, 100-continue).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startNexus, RawConn, get, post, rawOnce, request, sleep,
} from './lib/nexus.mjs';

let nx;
before(async () => {
  nx = await startNexus({ shards: 2, debugRoutes: true });
});
after(async () => {
  if (nx) await nx.kill();
});

test('GET /plaintext answers "Hello, World!" as text/plain', async () => {
  const { r, c } = await rawOnce(nx.restPort, get('/plaintext'));
  c.destroy();
  assert.equal(r.status, 200);
  assert.equal(r.version, '1.1');
  assert.equal(r.text, 'Hello, World!');
  assert.match(r.headers['content-type'], /^text\/plain/);
  assert.equal(r.headers['content-length'], '13');
  assert.ok(r.headers.date, 'no Date header');
  assert.ok(!Number.isNaN(Date.parse(r.headers.date)), `bad Date: ${r.headers.date}`);
  assert.equal(r.headers.connection, undefined, 'HTTP/1.1 keep-alive response says Connection');
});

test('GET / is a JSON index linking docs, openapi, health and metrics', async () => {
  const r = await request(nx.restPort, { path: '/' });
  assert.equal(r.status, 200);
  assert.match(r.headers['content-type'], /^application\/json/);
  const j = r.json();
  assert.equal(j.name, 'nexus');
  assert.match(j.version, /^\d+\.\d+\.\d+$/);
  assert.equal(j.docs, '/docs');
  assert.equal(j.openapi, '/openapi.json');
  assert.equal(j.health, '/health');
  assert.equal(j.metrics, '/metrics');
});

test('a query string does not change routing', async () => {
  const r = await request(nx.restPort, { path: '/plaintext?x=1&y=2' });
  assert.equal(r.status, 200);
  assert.equal(r.text, 'Hello, World!');
});

test('HEAD answers like GET without a body and with the same Content-Length', async () => {
  const c = await RawConn.open(nx.restPort);
  try {
    for (const path of ['/plaintext', '/docs', '/openapi.json', '/']) {
      await c.write(get(path));
      const g = await c.readResponse();
      assert.equal(g.status, 200, path);
      await c.write(get(path, { method: 'HEAD' }));
      const h = await c.readResponse({ headOnly: true });
      assert.equal(h.status, 200, `HEAD ${path}`);
      assert.equal(h.headers['content-length'], String(g.body.length), `HEAD ${path} length`);
      assert.equal(h.headers['content-type'], g.headers['content-type'], `HEAD ${path} type`);
    }
    // If HEAD had sent a body, those bytes would now sit in front of this response.
    await c.write(get('/plaintext'));
    const after = await c.readResponse();
    assert.equal(after.status, 200);
    assert.equal(after.text, 'Hello, World!');
    await sleep(100);
    assert.equal(c.buf.length, 0, `unexpected bytes after the responses: ${c.buf}`);
  } finally {
    c.destroy();
  }
});

test('HEAD /health works (GET-able routes accept HEAD)', async () => {
  const { r, c } = await rawOnce(nx.restPort, get('/health', { method: 'HEAD' }), { headOnly: true });
  assert.equal(r.status, 200);
  assert.ok(Number(r.headers['content-length']) > 0);
  await sleep(100);
  assert.equal(c.buf.length, 0, 'HEAD /health sent a body');
  c.destroy();
});

test('HTTP/1.1 keep-alive: 200 sequential requests on one socket', async () => {
  const c = await RawConn.open(nx.restPort);
  try {
    const paths = ['/plaintext', '/health', '/', '/ready'];
    for (let i = 0; i < 200; i++) {
      const path = paths[i % paths.length];
      const r = await c.roundTrip(get(path));
      assert.equal(r.status, 200, `request ${i} ${path}`);
      assert.notEqual(r.headers.connection, 'close', `request ${i} closed the connection`);
    }
    assert.equal(c.closed, false);
  } finally {
    c.destroy();
  }
});

test('HTTP/1.1 Connection: close gets "Connection: close" and then EOF', async () => {
  const { r, c } = await rawOnce(nx.restPort, get('/plaintext', { headers: 'Connection: close\r\n' }));
  try {
    assert.equal(r.status, 200);
    assert.match(r.headers.connection, /close/i);
    await c.waitClose(3000);
  } finally {
    c.destroy();
  }
});

test('HTTP/1.0 without keep-alive: response, then the server closes', async () => {
  const { r, c } = await rawOnce(nx.restPort, 'GET /plaintext HTTP/1.0\r\n\r\n');
  try {
    assert.equal(r.status, 200);
    assert.equal(r.text, 'Hello, World!');
    assert.doesNotMatch(r.headers.connection ?? '', /keep-alive/i);
    await c.waitClose(3000);
  } finally {
    c.destroy();
  }
});

test('HTTP/1.0 with Connection: keep-alive stays open and says keep-alive', async () => {
  const c = await RawConn.open(nx.restPort);
  try {
    for (let i = 0; i < 3; i++) {
      const r = await c.roundTrip('GET /plaintext HTTP/1.0\r\nConnection: keep-alive\r\n\r\n');
      assert.equal(r.status, 200);
      assert.match(r.headers.connection ?? '', /keep-alive/i, `response ${i}: ${r.head}`);
    }
    await sleep(200);
    assert.equal(c.closed, false, 'HTTP/1.0 keep-alive connection was closed');
  } finally {
    c.destroy();
  }
});

test('POST /debug/echo echoes the body with the request Content-Type', async () => {
  const body = '{"hello":"wörld","n":[1,2,3]}';
  const { r, c } = await rawOnce(nx.restPort, post('/debug/echo', body, { contentType: 'application/x-nexus-test' }));
  c.destroy();
  assert.equal(r.status, 200);
  assert.equal(r.headers['content-type'], 'application/x-nexus-test');
  assert.equal(r.text, body);
  assert.equal(Number(r.headers['content-length']), Buffer.byteLength(body));
});

test('POST /debug/echo with an empty body', async () => {
  const { r, c } = await rawOnce(nx.restPort, post('/debug/echo', ''));
  c.destroy();
  assert.equal(r.status, 200);
  assert.equal(r.headers['content-length'], '0');
  assert.equal(r.body.length, 0);
});

test('a 1 MiB body arriving in many pieces is echoed intact', async () => {
  const body = Buffer.alloc(1 << 20);
  for (let i = 0; i < body.length; i++) body[i] = (i * 31 + (i >> 9)) & 0xff;
  const c = await RawConn.open(nx.restPort);
  try {
    await c.write(`POST /debug/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: ${body.length}\r\n\r\n`);
    for (let off = 0; off < body.length; off += 100000) {
      await c.write(body.subarray(off, off + 100000));
    }
    const r = await c.readResponse({ timeoutMs: 15000 });
    assert.equal(r.status, 200);
    assert.equal(r.body.length, body.length);
    assert.ok(r.body.equals(body), 'echoed body differs');
    // And the connection is still usable.
    const r2 = await c.roundTrip(get('/plaintext'));
    assert.equal(r2.status, 200);
  } finally {
    c.destroy();
  }
});

test('chunked request body split across writes is decoded and echoed', async () => {
  const c = await RawConn.open(nx.restPort);
  try {
    const pieces = [
      'POST /debug/echo HTTP/1.1\r\nHost: x\r\nContent-Type: text/x-chunks\r\nTransfer-Encoding: chunked\r\n\r\n',
      '5\r\nHel', 'lo\r\n', '7', '\r\n, Chunk\r\n', '1', '1\r\n', 'y world, 17 b', 'ytes\r\n',
      '0;ext=1\r\n', 'X-Trailer: yes\r\n', '\r\n',
    ];
    for (const p of pieces) {
      await c.write(p);
      await sleep(15);
    }
    const r = await c.readResponse();
    assert.equal(r.status, 200);
    assert.equal(r.text, 'Hello, Chunky world, 17 bytes');
    assert.equal(r.headers['content-type'], 'text/x-chunks');
    assert.equal(Number(r.headers['content-length']), 'Hello, Chunky world, 17 bytes'.length);
    // The connection stays usable after a chunked request.
    const r2 = await c.roundTrip(get('/plaintext'));
    assert.equal(r2.text, 'Hello, World!');
  } finally {
    c.destroy();
  }
});

test('Expect: 100-continue gets "100 Continue" before the body is sent', async () => {
  const c = await RawConn.open(nx.restPort);
  try {
    const body = 'x'.repeat(5000);
    await c.write('POST /debug/echo HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n' +
      `Content-Length: ${body.length}\r\nExpect: 100-continue\r\n\r\n`);
    const interim = await c.readResponse({ timeoutMs: 3000 });
    assert.equal(interim.status, 100);
    assert.equal(interim.version, '1.1');
    assert.equal(c.buf.length, 0, 'more than the 100 Continue arrived before the body was sent');
    await c.write(body);
    const r = await c.readResponse();
    assert.equal(r.status, 200);
    assert.equal(r.text, body);
    // The next request on the same connection gets no stray 100 Continue.
    const r2 = await c.roundTrip(get('/plaintext'));
    assert.equal(r2.status, 200);
  } finally {
    c.destroy();
  }
});

test('the MCP port answers GET /health and nothing else', async () => {
  const h = await request(nx.mcpPort, { path: '/health' });
  assert.equal(h.status, 200);
  const j = h.json();
  assert.equal(j.status, 'ok');
  assert.equal(j.channels.mcp.port, nx.mcpPort);
  const p = await request(nx.mcpPort, { path: '/plaintext' });
  assert.equal(p.status, 404);
});

test('nexus exits 0 on SIGTERM with no sanitizer report', async () => {
  await nx.stopAndAssertClean();
});
