// The Events channel end to end: SSE GET /events and WebSocket /ws (subprotocol nexus.events)
// observing workflow executions run by the real binary. Proves: the full event sequence of one
// execution in order with increasing ids on both channels; subscribe-after-202 still sees
// execution.started; filtering by execution; SSE resume with Last-Event-ID (exactly the missed
// events, no duplicates, no gaps) and the reset notice when the resume point is gone; a client
// that stops reading is cut instead of growing memory; the per-shard subscriber bound; bad
// WebSocket messages get error frames; MCP over /ws keeps working; drain ends the streams.
// Uses Node's WebSocket (run with --experimental-websocket).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { startNexus, withNexus, request, sleep, tempDir, waitFor, assertCleanExit, HOST } from './lib/nexus.mjs';

const CONFIG = `
workflows:
  - name: demo
    steps:
      - id: a
        call: debug_echo
        with: {message: hi}
      - id: b
        call: debug_sleep
        with: {ms: 200}
      - id: c
        call: debug_echo
        with: {message: "\${{ steps.a.result }}"}
  - name: slow
    steps:
      - {id: s1, call: debug_echo, with: {message: one}}
      - {id: s2, call: debug_sleep, with: {ms: 400}}
      - {id: s3, call: debug_echo, with: {message: three}}
      - {id: s4, call: debug_sleep, with: {ms: 400}}
      - {id: s5, call: debug_echo, with: {message: five}}
`;

// What one run of "demo" publishes, as "type step" strings.
const DEMO = [
  'execution.started',
  'step.started a', 'step.finished a',
  'step.started b', 'step.finished b',
  'step.started c', 'step.finished c',
  'execution.finished',
];
const SLOW_COUNT = 12; // started + 5 x (started, finished) + finished

let nx;
let dir;
before(async () => {
  dir = tempDir();
  fs.writeFileSync(dir.path('events.yaml'), CONFIG);
  nx = await startNexus({ shards: 2, debugRoutes: true, config: dir.path('events.yaml') });
});
after(async () => {
  if (nx) await nx.stopAndAssertClean();
});

// ---------------------------------------------------------------------------------------------
// helpers

async function startRun(workflow = 'demo', port = nx.restPort) {
  const r = await request(port, {
    method: 'POST', path: '/api/executions',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ workflow }),
  });
  assert.equal(r.status, 202, r.text);
  return r.json().id;
}

function label(e) {
  return e.data.step ? `${e.event} ${e.data.step}` : e.event;
}

/**
 * An SSE client on node:http: events [{id, event, data}], comments, and ended (a promise that
 * resolves when the server ends the stream). next(n) waits for n events in total.
 */
function sse(path, { headers = {}, port = nx.restPort } = {}) {
  return new Promise((resolve, reject) => {
    const c = { events: [], comments: [], status: 0, headers: null, waiters: new Set() };
    const req = http.request({ host: HOST, port, path, headers, agent: false }, (res) => {
      c.status = res.statusCode;
      c.headers = res.headers;
      let buf = '';
      res.setEncoding('utf8');
      res.on('data', (d) => {
        buf += d;
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const ev = {};
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) c.comments.push(line.slice(1).trim());
            else if (line.startsWith('id: ')) ev.id = line.slice(4);
            else if (line.startsWith('event: ')) ev.event = line.slice(7);
            else if (line.startsWith('data: ')) ev.data = JSON.parse(line.slice(6));
          }
          if (ev.event) c.events.push(ev);
        }
        for (const w of [...c.waiters]) w();
      });
      c.ended = new Promise((r) => res.on('end', r).on('close', r));
      resolve(c);
    });
    req.on('error', reject);
    req.end();
    c.close = () => req.destroy();
    c.next = (n, ms = 5000) => new Promise((res, rej) => {
      const check = () => {
        if (c.events.length >= n) {
          c.waiters.delete(check);
          clearTimeout(t);
          res(c.events.slice(0, n));
        }
      };
      const t = setTimeout(() => {
        c.waiters.delete(check);
        rej(new Error(`only ${c.events.length} of ${n} events in ${ms} ms: ` +
          JSON.stringify(c.events.map(label))));
      }, ms);
      c.waiters.add(check);
      check();
    });
  });
}

/** Opens a WebSocket and collects parsed messages; next() resolves with the next one. */
function wsConnect(path = '/ws', protocols = 'nexus.events', port = nx.restPort) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://${HOST}:${port}${path}`, protocols);
    const queue = [];
    const waiters = [];
    ws.closed = new Promise((r) => ws.addEventListener('close', (e) => r({ code: e.code, reason: e.reason })));
    ws.addEventListener('message', (e) => {
      const m = JSON.parse(e.data);
      if (waiters.length) waiters.shift()(m);
      else queue.push(m);
    });
    ws.next = (ms = 5000) =>
      queue.length
        ? Promise.resolve(queue.shift())
        : new Promise((res, rej) => {
            const w = (m) => {
              clearTimeout(t);
              res(m);
            };
            const t = setTimeout(() => {
              waiters.splice(waiters.indexOf(w), 1);
              rej(new Error('no message in time'));
            }, ms);
            waiters.push(w);
          });
    ws.json = (m) => ws.send(JSON.stringify(m));
    ws.addEventListener('open', () => resolve(ws), { once: true });
    ws.addEventListener('error', () => reject(new Error('websocket failed')), { once: true });
  });
}

function assertIncreasing(events, what) {
  for (let i = 1; i < events.length; i++) {
    assert.ok(BigInt(events[i].id) > BigInt(events[i - 1].id),
      `${what}: ids must increase (${events[i - 1].id} then ${events[i].id})`);
  }
}

async function health() {
  return (await request(nx.restPort, { path: '/health' })).json();
}

// ---------------------------------------------------------------------------------------------
// SSE

test('SSE: subscribing right after the 202 sees the whole execution in order, then the stream ends', async () => {
  const id = await startRun();
  const s = await sse(`/events?execution=${id}`);
  assert.equal(s.status, 200);
  assert.match(s.headers['content-type'], /^text\/event-stream/);
  assert.equal(s.headers['cache-control'], 'no-cache');
  const events = await s.next(DEMO.length);
  assert.deepEqual(events.map(label), DEMO);
  assert.deepEqual(events.map((e) => e.data.seq), [1, 2, 3, 4, 5, 6, 7, 8]);
  assertIncreasing(events, 'sse');
  for (const e of events) {
    assert.equal(e.data.execution, id);
    assert.equal(e.data.workflow, 'demo');
    assert.match(e.data.time, /^\d{4}-\d\d-\d\dT/);
  }
  assert.equal(events.at(-1).data.result, 'hi');
  await s.ended; // ends by itself after execution.finished
  assert.equal(s.events.length, DEMO.length, 'nothing after the terminal event');
});

test('SSE: an ended execution is replayed from its start; filtering excludes other executions', async () => {
  const all = await sse('/events');
  const a = await startRun();
  const b = await startRun();
  // Both ended before this subscriber exists: it still gets all of a, none of b.
  await waitFor('both executions to end', async () => {
    const ra = (await request(nx.restPort, { path: `/api/executions/${a}` })).json();
    const rb = (await request(nx.restPort, { path: `/api/executions/${b}` })).json();
    return ra.status === 'succeeded' && rb.status === 'succeeded';
  });
  const only = await sse(`/events?execution=${a}`);
  await only.ended;
  assert.deepEqual(only.events.map(label), DEMO);
  assert.ok(only.events.every((e) => e.data.execution === a));
  // The unfiltered stream saw both executions, interleaved, each in its own order.
  await all.next(2 * DEMO.length);
  all.close();
  assertIncreasing(all.events, 'all');
  for (const x of [a, b]) {
    const mine = all.events.filter((e) => e.data.execution === x);
    assert.deepEqual(mine.map(label), DEMO, `all-events stream, execution ${x}`);
    assert.deepEqual(mine.map((e) => e.data.seq), [1, 2, 3, 4, 5, 6, 7, 8]);
  }
  // The ids of a's events are the same on both streams: one id per published event.
  assert.deepEqual(only.events.map((e) => e.id),
    all.events.filter((e) => e.data.execution === a).map((e) => e.id));
});

test('SSE: a client that drops mid-run and resumes with Last-Event-ID gets exactly the rest', async () => {
  const id = await startRun('slow');
  const first = await sse(`/events?execution=${id}`);
  const got = await first.next(3); // execution.started, step.started s1, step.finished s1
  first.close();
  await sleep(600); // s2 and more run while nobody listens
  const lastId = got.at(-1).id;
  const second = await sse(`/events?execution=${id}`, { headers: { 'Last-Event-ID': lastId } });
  await withTimeoutEnd(second);
  const all = [...got, ...second.events];
  assert.equal(all.length, SLOW_COUNT, JSON.stringify(all.map(label)));
  assert.deepEqual(all.map((e) => e.data.seq), Array.from({ length: SLOW_COUNT }, (_, i) => i + 1),
    'no duplicates, no gaps');
  assertIncreasing(all, 'resumed');
  assert.equal(second.events[0].data.seq, 4);
  assert.equal(all.at(-1).event, 'execution.finished');
  // The query parameter works the same (for clients that cannot set headers), and resuming
  // after the terminal event ends the stream at once with nothing to send.
  const q = await sse(`/events?execution=${id}&last_event_id=${all[8].id}`);
  await withTimeoutEnd(q);
  assert.deepEqual(q.events.map((e) => e.data.seq), [10, 11, 12]);
  const done = await sse(`/events?execution=${id}&last_event_id=${all.at(-1).id}`);
  await withTimeoutEnd(done);
  assert.equal(done.events.length, 0);
});

async function withTimeoutEnd(s, ms = 8000) {
  let t;
  await Promise.race([s.ended, new Promise((_, rej) => { t = setTimeout(() => rej(new Error('stream did not end')), ms); })]);
  clearTimeout(t);
}

test('SSE: ?follow=1 keeps an execution stream open after its end; all-events resume after an id', async () => {
  const id = await startRun();
  const f = await sse(`/events?execution=${id}&follow=1`);
  await f.next(DEMO.length);
  const ended = await Promise.race([f.ended.then(() => true), sleep(400).then(() => false)]);
  assert.equal(ended, false, 'follow keeps the stream open');
  f.close();
  // Resume an all-events stream after the 3rd event of that run: the rest of it follows.
  const s = await sse('/events', { headers: { 'Last-Event-ID': f.events[2].id } });
  const rest = await s.next(DEMO.length - 3);
  s.close();
  assert.deepEqual(rest.map(label), DEMO.slice(3));
});

test('SSE: a resume point the ring no longer holds, or never issued, gets a reset event first', async () => {
  const s0 = await sse('/events');
  const id = await startRun();
  await s0.next(1);
  s0.close();
  const old = s0.events[0].id;
  // Push the execution out of the ring (8192 events) with synthetic events.
  const r = await request(nx.restPort, {
    method: 'POST', path: '/debug/events', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ type: 'debug.filler', count: 8300 }),
  });
  assert.equal(r.status, 200, r.text);
  const s = await sse(`/events?execution=${id}`, { headers: { 'Last-Event-ID': old } });
  await withTimeoutEnd(s);
  assert.equal(s.events[0].event, 'reset');
  assert.equal(s.events[0].id, undefined, 'a reset carries no id: the client keeps its own');
  assert.equal(String(s.events[0].data.last_event_id), old);
  assert.match(s.events[0].data.message, /no longer retained/);
  // An id from the future (another process) is reset too, then live events flow.
  const f = await sse('/events', { headers: { 'Last-Event-ID': '99999999999999999' } });
  await f.next(1);
  assert.equal(f.events[0].event, 'reset');
  assert.match(f.events[0].data.message, /names no event/);
  f.close();
});

test('SSE: publishers on every shard, subscribers on every shard: each stream sees every id once, in order', async () => {
  const streams = await Promise.all(Array.from({ length: 6 }, () => sse('/events')));
  await waitFor('subscribers', async () => (await health()).events.subscribers >= 6);
  // 40 concurrent publishers (the kernel spreads their connections over both shards).
  const N = 40, PER = 50;
  await Promise.all(Array.from({ length: N }, () => request(nx.restPort, {
    method: 'POST', path: '/debug/events', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ type: 'debug.burst', count: PER }),
  })));
  for (const s of streams) {
    await waitFor('the burst', () => s.events.filter((e) => e.event === 'debug.burst').length >= N * PER);
    s.close();
    const ids = s.events.filter((e) => e.event === 'debug.burst').map((e) => BigInt(e.id));
    assert.equal(ids.length, N * PER, 'no duplicates');
    for (let i = 1; i < ids.length; i++) {
      assert.equal(ids[i], ids[i - 1] + 1n, `consecutive ids: no gap, no reordering (at ${i})`);
    }
  }
});

test('SSE: bad parameters and unknown executions are HTTP errors', async () => {
  let r = await request(nx.restPort, { path: '/events?execution=x-nope' });
  assert.equal(r.status, 404);
  assert.match(r.json().error.message, /no such execution/);
  r = await request(nx.restPort, { path: '/events?execution=bad%20id' });
  assert.equal(r.status, 400);
  r = await request(nx.restPort, { path: '/events?last_event_id=abc' });
  assert.equal(r.status, 400);
  const doc = (await request(nx.restPort, { path: '/openapi.json' })).json();
  assert.ok(doc.paths['/events'].get.summary.includes('Last-Event-ID'));
});

test('SSE: a backlog larger than the send bound is paced, not cut', async () => {
  const s0 = await sse('/events');
  await waitFor('the subscriber', async () => (await health()).events.subscribers >= 1);
  const pad = 'y'.repeat(100 * 1024);
  const r = await request(nx.restPort, {
    method: 'POST', path: '/debug/events', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ type: 'debug.backlog', data: { pad }, count: 40 }),
  });
  assert.equal(r.status, 200);
  await s0.next(1);
  s0.close();
  // Resume before all 40 (4 MB, four times the bound): every one arrives, in order.
  const first = s0.events[0];
  assert.equal(first.event, 'debug.backlog');
  const s = await sse('/events', { headers: { 'Last-Event-ID': String(BigInt(first.id) - 1n) } });
  const got = await s.next(40, 15000);
  s.close();
  assert.deepEqual(got.map((e) => e.data.n), Array.from({ length: 40 }, (_, i) => i));
  assert.ok(got.every((e) => e.event === 'debug.backlog' && e.data.pad.length === pad.length));
  assert.ok(!s.events.some((e) => e.event === 'overflow'), 'a client that reads is never cut');
});

test('SSE: a subscriber that stops reading waits at the bound and is cut when it falls out of the ring', async () => {
  const before = (await health()).events.subscribers;
  const openConns = async () => (await request(nx.restPort, { path: '/stats' })).json().connections_open;
  const baseline = await openConns();
  // A raw socket that asks for every event and then never reads.
  const sock = net.connect({ host: HOST, port: nx.restPort });
  await new Promise((r) => sock.once('connect', r));
  let received = 0;
  sock.on('data', (d) => { received += d.length; });
  sock.on('error', () => {});
  const closed = new Promise((r) => sock.on('close', r));
  sock.write(`GET /events HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`);
  await waitFor('the subscriber to register', async () => (await health()).events.subscribers === before + 1);
  sock.pause();
  // ~10 MB: more than the socket buffers plus the 1 MiB bound. It waits, it is not cut.
  const pad = 'x'.repeat(100 * 1024);
  const r = await request(nx.restPort, {
    method: 'POST', path: '/debug/events', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ type: 'debug.big', data: { pad }, count: 100 }),
  });
  assert.equal(r.status, 200);
  await sleep(300);
  assert.equal((await health()).events.subscribers, before + 1, 'a waiting subscriber stays');
  // Now the ring (8192 events) moves past what it still needs: it is cut at once, and the
  // server closes the connection after a short grace (the paused client only notices when it
  // reads again).
  const r2 = await request(nx.restPort, {
    method: 'POST', path: '/debug/events', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ type: 'debug.small', count: 8300 }),
  });
  assert.equal(r2.status, 200);
  await waitFor('the slow subscriber to be cut', async () => (await health()).events.subscribers === before, 5000);
  await waitFor('the server to close the connection', async () => (await openConns()) === baseline, 10000);
  sock.resume();
  await closed;
  assert.ok(received < 10 * 1024 * 1024, `it never received everything (${received} bytes)`);
  // The server is fine: a new subscriber works.
  const id = await startRun();
  const s = await sse(`/events?execution=${id}`);
  await withTimeoutEnd(s);
  assert.deepEqual(s.events.map(label), DEMO);
});

// ---------------------------------------------------------------------------------------------
// WebSocket

test('WebSocket: subscribe after the 202 sees the whole execution in order, then the subscription ends', async () => {
  const ws = await wsConnect();
  try {
    assert.equal(ws.protocol, 'nexus.events');
    const id = await startRun();
    ws.json({ type: 'subscribe', execution: id, id: 7 });
    const ack = await ws.next();
    assert.equal(ack.type, 'subscribed');
    assert.equal(ack.execution, id);
    assert.equal(ack.id, 7, 'the correlation id is echoed');
    const events = [];
    for (let i = 0; i < DEMO.length; i++) {
      const m = await ws.next();
      assert.equal(m.type, 'event', JSON.stringify(m));
      events.push({ id: String(m.id), event: m.event, data: m.data });
    }
    assert.deepEqual(events.map(label), DEMO);
    assert.deepEqual(events.map((e) => e.data.seq), [1, 2, 3, 4, 5, 6, 7, 8]);
    assertIncreasing(events, 'ws');
    assert.ok(events.every((e) => e.data.execution === id));
    const end = await ws.next();
    assert.deepEqual(end, { type: 'unsubscribed', execution: id, reason: 'ended' });
    ws.json({ type: 'ping' });
    assert.deepEqual(await ws.next(), { type: 'pong' });
  } finally {
    ws.close(1000);
  }
  assert.equal((await ws.closed).code, 1000);
});

test('WebSocket: /ws?events=1, all-events subscription, resume with last_event_id, unsubscribe', async () => {
  const ws = await wsConnect('/ws?events=1', []);
  try {
    ws.json({ type: 'subscribe' });
    const ack = await ws.next();
    assert.equal(ack.type, 'subscribed');
    assert.equal(ack.execution, null);
    assert.equal(ack.replay, 0, 'all events: live only');
    const id = await startRun();
    const events = [];
    while (events.length < DEMO.length) {
      const m = await ws.next();
      if (m.type === 'event' && m.data.execution === id) events.push(m);
    }
    assert.deepEqual(events.map((m) => (m.data.step ? `${m.event} ${m.data.step}` : m.event)), DEMO);
    ws.json({ type: 'unsubscribe' });
    assert.equal((await ws.next()).type, 'unsubscribed');
    // Resume that execution after its 4th event on the same connection.
    ws.json({ type: 'subscribe', execution: id, last_event_id: events[3].id });
    const ack2 = await ws.next();
    assert.equal(ack2.replay, DEMO.length - 4);
    const rest = [];
    for (let i = 0; i < DEMO.length - 4; i++) rest.push((await ws.next()).data.seq);
    assert.deepEqual(rest, [5, 6, 7, 8]);
    assert.equal((await ws.next()).reason, 'ended');
  } finally {
    ws.close();
  }
});

test('WebSocket: bad messages get error frames and the connection stays usable', async () => {
  const ws = await wsConnect();
  try {
    const bad = [
      ['{not json', /not JSON/],
      ['[1,2]', /JSON object/],
      [JSON.stringify({ type: 'dance' }), /unknown type/],
      [JSON.stringify({ execution: 'x-1' }), /"type"/],
      [JSON.stringify({ type: 'subscribe', execution: 'no such id!' }), /execution id/],
      [JSON.stringify({ type: 'subscribe', execution: 'x-0000' }), /no such execution/],
      [JSON.stringify({ type: 'subscribe', executionId: 'x' }), /unknown member/],
      [JSON.stringify({ type: 'subscribe', last_event_id: -3 }), /last_event_id/],
      [JSON.stringify({ type: 'unsubscribe', execution: 'x-abc' }), /not subscribed/],
    ];
    for (const [text, re] of bad) {
      ws.send(text);
      const m = await ws.next();
      assert.equal(m.type, 'error', `${text} -> ${JSON.stringify(m)}`);
      assert.match(m.message, re, text);
    }
    ws.json({ type: 'dance', id: 'q1' });
    assert.equal((await ws.next()).id, 'q1', 'errors echo the correlation id');
    ws.send(new Uint8Array([1, 2, 3]));
    const bin = await ws.next();
    assert.equal(bin.type, 'error');
    assert.match(bin.message, /binary/);
    ws.json({ type: 'ping' });
    assert.deepEqual(await ws.next(), { type: 'pong' });
  } finally {
    ws.close();
  }
  // An oversized control message closes with 1009.
  const big = await wsConnect();
  big.json({ type: 'ping', id: 'x'.repeat(70 * 1024) });
  assert.equal((await big.closed).code, 1009);
});

test('MCP over WebSocket on /ws still works next to the events protocol', async () => {
  for (const port of [nx.restPort, nx.mcpPort]) {
    const ws = await wsConnect('/ws', 'mcp', port);
    try {
      assert.equal(ws.protocol, 'mcp');
      ws.json({ jsonrpc: '2.0', id: 1, method: 'initialize',
        params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 't', version: '1' } } });
      const init = await ws.next();
      assert.equal(init.result.serverInfo.name, 'nexus');
      ws.json({ jsonrpc: '2.0', method: 'notifications/initialized' });
      ws.json({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'debug_echo', arguments: { message: 'still mcp' } } });
      assert.equal((await ws.next()).result.content[0].text, 'still mcp');
      ws.json({ jsonrpc: '2.0', id: 3, method: 'tools/list', params: {} });
      assert.ok((await ws.next()).result.tools.some((t) => t.name === 'debug_echo'));
    } finally {
      ws.close();
    }
  }
});

test('health reports the bus', async () => {
  const h = await health();
  assert.equal(typeof h.events.subscribers, 'number');
  assert.ok(h.events.retained > 0);
  assert.ok(h.events.last_event_id > 0);
});

// ---------------------------------------------------------------------------------------------
// bounds and drain on their own servers

test('a full shard answers 503 with Retry-After', async () => {
  await withNexus({ shards: 1, debugRoutes: true, fdLimit: 4096 }, async (n) => {
    const socks = [];
    try {
      const open = async () => {
        const sock = net.connect({ host: HOST, port: n.restPort });
        sock.on('error', () => {});
        socks.push(sock);
        await new Promise((r) => sock.once('connect', r));
        const head = new Promise((r) => {
          let b = '';
          sock.on('data', (d) => {
            b += d.toString('latin1');
            if (b.includes('\r\n\r\n')) r(b);
          });
        });
        sock.write(`GET /events HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`);
        return head;
      };
      for (let i = 0; i < 1024; i += 64) {
        const heads = await Promise.all(Array.from({ length: 64 }, open));
        for (const h of heads) assert.match(h, /^HTTP\/1\.1 200/);
      }
      const over = await request(n.restPort, { path: '/events' });
      assert.equal(over.status, 503);
      assert.equal(over.headers['retry-after'], '1');
      const ws = new WebSocket(`ws://${HOST}:${n.restPort}/ws`, 'nexus.events');
      const failed = await new Promise((r) => {
        ws.addEventListener('open', () => r(false));
        ws.addEventListener('error', () => r(true));
      });
      assert.equal(failed, true, 'a WebSocket event client counts against the same bound');
    } finally {
      for (const s of socks) s.destroy();
    }
    await waitFor('the streams to go', async () =>
      (await request(n.restPort, { path: '/health' })).json().events.subscribers === 0);
  });
});

test('drain ends SSE streams and closes WebSocket event clients with 1001', async () => {
  const d = tempDir();
  fs.writeFileSync(d.path('events.yaml'), CONFIG);
  const n = await startNexus({ shards: 2, debugRoutes: true, config: d.path('events.yaml') });
  try {
    const s = await sse('/events', { port: n.restPort });
    const ws = await wsConnect('/ws', 'nexus.events', n.restPort);
    ws.json({ type: 'subscribe' });
    assert.equal((await ws.next()).type, 'subscribed');
    await waitFor('both subscribers', async () =>
      (await request(n.restPort, { path: '/health' })).json().events.subscribers === 2);
    n.signal('SIGTERM');
    await withTimeoutEnd(s, 5000);
    assert.equal((await ws.closed).code, 1001);
    const r = await n.stop();
    assertCleanExit(r);
    assert.ok(r.ms < 5000, `drained promptly (${r.ms} ms)`);
  } finally {
    await n.kill();
  }
});

test('backend.health events follow a backend going down and coming back', async () => {
  const hits = { n: 0 };
  const handler = (req, res) => {
    hits.n++;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{"ok":true}');
  };
  let svc = http.createServer(handler);
  await new Promise((r) => svc.listen(0, HOST, r));
  const port = svc.address().port;
  const d = tempDir();
  fs.writeFileSync(d.path('health.yaml'), [
    'servers:',
    '  - name: svc',
    '    transport: rest',
    `    url: http://${HOST}:${port}/`,
    '    breaker: {enabled: false}',
    '    health: {interval: 100ms, timeout: 300ms, unhealthy_after: 2, healthy_after: 1}',
  ].join('\n') + '\n');
  const n = await startNexus({ shards: 2, config: d.path('health.yaml') });
  try {
    const status = async () =>
      (await request(n.restPort, { path: '/api/v1/connections/svc/metrics' })).json().status;
    await waitFor('svc connected', async () => (await status()) === 'connected');
    // Everything published so far (unknown -> connected) is replayed from the first id.
    const s = await sse('/events?last_event_id=1', { port: n.restPort });
    const health = () => s.events.filter((e) => e.event === 'backend.health').map((e) => e.data);
    await waitFor('the connected event', () => health().some((h) => h.status === 'connected'));
    assert.deepEqual(
      (({ backend, status, previous, transport }) => ({ backend, status, previous, transport }))(health()[0]),
      { backend: 'svc', status: 'connected', previous: 'unknown', transport: 'rest' });
    svc.closeAllConnections();
    await new Promise((r) => svc.close(r));
    await waitFor('the disconnected event', () => health().some((h) => h.status === 'disconnected'), 8000);
    const down = health().find((h) => h.status === 'disconnected');
    assert.equal(down.previous, 'connected');
    assert.equal(down.backend, 'svc');
    assert.match(down.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    svc = http.createServer(handler);
    await new Promise((r) => svc.listen(port, HOST, r));
    await waitFor('the reconnected event', () => health().filter((h) => h.status === 'connected').length === 2, 8000);
    assert.equal(health().at(-1).previous, 'disconnected');
    assert.equal(s.events[0].event, 'reset', 'id 1 is older than anything this process kept');
    assertIncreasing(s.events.slice(1), 'health');
    s.close();
    assertCleanExit(await n.stop());
  } finally {
    await n.kill();
    svc.closeAllConnections();
    svc.close();
  }
});
