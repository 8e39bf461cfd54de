// Streamed (chunked) responses, the base of SSE and MCP Streamable HTTP: events arrive as they
// are produced, framing is valid chunked encoding, the connection serves requests queued behind
// the stream in order, HTTP/1.0 gets a close-delimited body, and a client leaving mid-stream
// frees everything (the sanitizer check at stop proves it).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startNexus, RawConn, get, sleep } from './lib/nexus.mjs';

let nx;
before(async () => {
  nx = await startNexus({ shards: 1, debugRoutes: true });
});
after(async () => {
  if (nx) await nx.kill();
});

function events(text) {
  return text
    .split('\n\n')
    .filter((e) => e.length)
    .map((e) => Object.fromEntries(e.split('\n').map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 2)])));
}

test('a streamed response is chunked, arrives incrementally and keeps the connection', async () => {
  const c = await RawConn.open(nx.restPort);
  try {
    const t0 = Date.now();
    c.write(get('/debug/stream/5'));
    // The first event must arrive long before the stream ends (5 x 20 ms).
    await c.waitFor('data: {"n":0}', 2000);
    const first = Date.now() - t0;
    const r = await c.readResponse({ timeoutMs: 5000 });
    const total = Date.now() - t0;
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], 'text/event-stream');
    assert.equal(r.headers['transfer-encoding'], 'chunked');
    assert.equal(r.headers['content-length'], undefined);
    const ev = events(r.text);
    assert.deepEqual(ev.map((e) => e.id), ['0', '1', '2', '3', '4']);
    assert.deepEqual(ev.map((e) => JSON.parse(e.data).n), [0, 1, 2, 3, 4]);
    assert.ok(total >= 80, `stream took ${total} ms, expected >= 80`);
    assert.ok(first < total, 'events were not sent as they were produced');
    // Same connection, next request.
    const r2 = await c.roundTrip(get('/plaintext'));
    assert.equal(r2.status, 200);
    assert.equal(r2.text, 'Hello, World!');
  } finally {
    c.destroy();
  }
});

test('requests pipelined behind a stream are answered after it, in order', async () => {
  const c = await RawConn.open(nx.restPort);
  try {
    c.write(get('/debug/stream/3') + get('/plaintext') + get('/debug/stream/0'));
    const [a, b, d] = await c.readResponses(3, { timeoutMs: 5000 });
    assert.equal(events(a.text).length, 3);
    assert.equal(b.text, 'Hello, World!');
    assert.equal(d.status, 200);
    assert.equal(d.text, '', 'an empty stream is a zero-length chunked body');
  } finally {
    c.destroy();
  }
});

test('HTTP/1.0 gets a body delimited by the connection closing', async () => {
  const c = await RawConn.open(nx.restPort);
  try {
    c.write(get('/debug/stream/2', { version: '1.0' }));
    await c.waitClose(5000);
    const text = c.buf.toString('latin1');
    assert.match(text, /^HTTP\/1\.1 200 /);
    assert.match(text, /\r\nConnection: close\r\n/i);
    assert.doesNotMatch(text, /Transfer-Encoding/i, 'no chunked encoding for HTTP/1.0');
    assert.equal(events(text.slice(text.indexOf('\r\n\r\n') + 4)).length, 2);
  } finally {
    c.destroy();
  }
});

test('a client leaving mid-stream does not disturb the server', async () => {
  for (let i = 0; i < 20; i++) {
    const c = await RawConn.open(nx.restPort);
    c.write(get('/debug/stream/1000'));
    await c.waitFor('data:', 2000);
    c.destroy();
  }
  await sleep(100);
  const c = await RawConn.open(nx.restPort);
  try {
    const r = await c.roundTrip(get('/health'));
    assert.equal(r.status, 200);
    const stats = JSON.parse((await c.roundTrip(get('/stats'))).text);
    assert.ok(stats.connections_open <= 2, `streams left open: ${stats.connections_open}`);
  } finally {
    c.destroy();
  }
});

test('an upgrade hands the connection to the new protocol, with bytes sent behind it', async () => {
  const c = await RawConn.open(nx.restPort);
  try {
    // The first echo payload is in the same write as the upgrade request.
    c.write(get('/debug/upgrade', { headers: 'Connection: Upgrade\r\nUpgrade: echo\r\n' }) + 'ping-1');
    await c.waitFor('ping-1', 2000);
    const text = c.buf.toString('latin1');
    assert.match(text, /^HTTP\/1\.1 101 Switching Protocols\r\n/);
    assert.match(text, /\r\nUpgrade: echo\r\n/);
    assert.ok(text.endsWith('\r\n\r\nping-1'), `unexpected bytes: ${JSON.stringify(text)}`);
    c.write('second');
    await c.waitFor('second', 2000);
    assert.doesNotMatch(c.buf.toString('latin1'), /HTTP\/1\.1 [^1]/, 'HTTP must not answer after 101');
  } finally {
    c.destroy();
  }
  const r = await RawConn.open(nx.restPort);
  try {
    const plain = await r.roundTrip(get('/debug/upgrade'));
    assert.equal(plain.status, 426, 'without Upgrade headers the route refuses');
  } finally {
    r.destroy();
  }
});

test('nexus exits 0 on SIGTERM with no sanitizer report', async () => {
  await nx.stopAndAssertClean();
});
