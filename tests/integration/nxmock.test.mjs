// nxmock, the mock MCP backend of the fault tests and benchmarks (bench/nxmock.c): its tools
// over Streamable HTTP, WebSocket and stdio with the official SDK client, each fault flag doing
// what it says (JSON-RPC errors, isError results, connection resets, hangs, latency, crashes),
// seeded runs repeating, and bad flag values refused with exit status 2. Every server is
// stopped with SIGTERM and must exit 0 without a sanitizer report.
//
// The binary: $NXMOCK_BIN, else `nxmock` next to the nexus binary ($NEXUS_BIN or build-asan).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { WebSocketClientTransport } from '@modelcontextprotocol/sdk/client/websocket.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import {
  Nexus, nexusBin, nexusEnv, assertCleanExit, assertNoSanitizerReport, request, sleep,
  withTimeout, HOST, SANITIZER_MARKERS,
} from './lib/nexus.mjs';
import { startMock, NXMOCK as BIN } from './lib/nxmock.mjs';
import { openSession, mcpPost, rpcBody, rpcResult } from './lib/mcp.mjs';

const TOOLS = ['echo', 'add', 'progress', 'sleep', 'fail', 'stats'];

/** Runs fn(mock) against a fresh nxmock, then stops it and asserts a clean exit; the process
 *  is killed whatever happens. */
async function withMock(args, fn, opts = {}) {
  const m = await startMock(args, opts);
  let failure = null;
  try {
    await fn(m);
  } catch (e) {
    failure = e;
  }
  const r = await m.stop({ timeoutMs: 15000 }).catch(() => null);
  await m.kill();
  if (failure) {
    if (r && SANITIZER_MARKERS.some((s) => r.stderr.includes(s)))
      failure.message += `\n\nnxmock stderr (sanitizer report):\n${r.stderr}`;
    throw failure;
  }
  assertCleanExit(r);
}

/** An SDK client connected to <m> over Streamable HTTP (or WebSocket when ws). */
async function connect(m, { ws = false } = {}) {
  const client = new Client({ name: 'nxmock-test', version: '1.0.0' });
  const transport = ws
    ? new WebSocketClientTransport(new URL(`ws://${HOST}:${m.mcpPort}/ws`))
    : new StreamableHTTPClientTransport(new URL(`http://${HOST}:${m.mcpPort}/mcp`));
  await client.connect(transport);
  return {
    client,
    async close() {
      if (!ws) await transport.terminateSession().catch(() => {});
      await client.close().catch(() => {});
    },
  };
}

const text = (r) => r.content.map((c) => c.text).join('\n');

async function stats(client) {
  const r = await client.callTool({ name: 'stats', arguments: {} });
  assert.deepEqual(JSON.parse(text(r)), r.structuredContent, 'stats text and structuredContent agree');
  return r.structuredContent;
}

/** Milliseconds <fn> takes. */
async function timed(fn) {
  const t0 = performance.now();
  const value = await fn();
  return { value, ms: performance.now() - t0 };
}

/** Runs nxmock to completion with <args> (stdin closed); {code, signal, stdout, stderr}. */
function runMock(args, timeoutMs = 10000) {
  return new Promise((resolve, reject) => {
    const child = spawn(BIN, args, { env: nexusEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

test('the catalog and every tool over Streamable HTTP with the SDK client', { timeout: 30000 }, async () => {
  await withMock([], async (m) => {
    const c = await connect(m);
    try {
      assert.equal(c.client.getServerVersion().name, 'nxmock');
      const { tools } = await c.client.listTools();
      for (const name of TOOLS) {
        const t = tools.find((x) => x.name === name);
        assert.ok(t, `${name} missing from ${tools.map((x) => x.name)}`);
        assert.ok(t.description && t.description.length > 10, `${name} has a description`);
        assert.equal(t.inputSchema.type, 'object', `${name} has an inputSchema`);
      }

      const echo = await c.client.callTool({ name: 'echo', arguments: { message: 'héllo\n"x"' } });
      assert.equal(text(echo), 'héllo\n"x"');
      assert.notEqual(echo.isError, true);

      const add = await c.client.callTool({ name: 'add', arguments: { a: 2, b: 40 } });
      assert.equal(text(add), '42');
      assert.deepEqual(add.structuredContent, { sum: 42 });
      const real = await c.client.callTool({ name: 'add', arguments: { a: 0.1, b: 0.2 } });
      assert.equal(text(real), String(0.1 + 0.2), 'printed as JavaScript prints it');
      assert.equal(real.structuredContent.sum, 0.1 + 0.2);

      const seen = [];
      const prog = await c.client.callTool({ name: 'progress', arguments: { steps: 3, ms: 20 } },
        undefined, { onprogress: (p) => seen.push([p.progress, p.total]) });
      assert.equal(text(prog), 'done after 3 steps');
      assert.deepEqual(seen, [[1, 3], [2, 3], [3, 3]]);

      const slept = await timed(() => c.client.callTool({ name: 'sleep', arguments: { ms: 80 } }));
      assert.equal(text(slept.value), 'slept 80 ms');
      assert.ok(slept.ms >= 79, `sleep 80 took ${slept.ms} ms`);

      const failed = await c.client.callTool({ name: 'fail', arguments: { mode: 'isError' } });
      assert.equal(failed.isError, true);
      await assert.rejects(c.client.callTool({ name: 'fail', arguments: { mode: 'error' } }),
        (e) => e.code === -32603 && /nxmock: injected error/.test(e.message));

      const s = await stats(c.client);
      assert.deepEqual(s.tools, { echo: 1, add: 2, progress: 1, sleep: 1, fail: 2, stats: 1 });
      assert.equal(s.calls, 8);
      assert.deepEqual(s.outcomes, { ok: 6, error: 1, isError: 1, reset: 0, hang: 0 });
      assert.equal(s.cancelled, 0);
      assert.equal(s.shards.length, 2);
      assert.equal(s.shards.reduce((a, b) => a + b, 0), 8, 'per-shard calls add up');
    } finally {
      await c.close();
    }
  });
});

test('--error-rate 1: every echo is a JSON-RPC error; sleep and stats are spared', { timeout: 30000 }, async () => {
  await withMock(['--error-rate', '1', '--name', 'broken-backend'], async (m) => {
    const c = await connect(m);
    try {
      assert.equal(c.client.getServerVersion().name, 'broken-backend', '--name is announced');
      for (let i = 0; i < 3; i++) {
        await assert.rejects(c.client.callTool({ name: 'echo', arguments: { message: 'x' } }),
          (e) => e.code === -32603 && /nxmock: injected error/.test(e.message));
      }
      await assert.rejects(c.client.callTool({ name: 'add', arguments: { a: 1, b: 1 } }),
        (e) => e.code === -32603);
      assert.equal(text(await c.client.callTool({ name: 'sleep', arguments: { ms: 0 } })), 'slept 0 ms');
      const s = await stats(c.client);
      assert.equal(s.outcomes.error, 4);
      assert.equal(s.outcomes.ok, 2, 'sleep and stats');
    } finally {
      await c.close();
    }
  });
});

test('--is-error-rate 1: every echo and add is an isError result', { timeout: 30000 }, async () => {
  await withMock(['--is-error-rate', '1'], async (m) => {
    const c = await connect(m);
    try {
      for (const call of [{ name: 'echo', arguments: { message: 'x' } },
        { name: 'add', arguments: { a: 1, b: 2 } }]) {
        const r = await c.client.callTool(call);
        assert.equal(r.isError, true, `${call.name}: ${JSON.stringify(r)}`);
        assert.match(text(r), /nxmock: injected isError result/);
      }
      assert.equal((await stats(c.client)).outcomes.isError, 2);
    } finally {
      await c.close();
    }
  });
});

test('--reset-rate 1: the HTTP request dies with a reset, the server answers the next call', { timeout: 30000 }, async () => {
  await withMock(['--reset-rate', '1'], async (m) => {
    const sid = await openSession(m.mcpPort);
    const call = (name, args, id) => mcpPost(m.mcpPort,
      { jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args } },
      { sid, timeoutMs: 5000 });
    for (let i = 0; i < 2; i++) {
      await assert.rejects(call('echo', { message: 'x' }, 100 + i),
        (e) => e.code === 'ECONNRESET' || /socket hang up/.test(e.message),
        'the connection is reset, no HTTP answer');
    }
    const r = await call('sleep', { ms: 1 }, 200);
    assert.equal(r.status, 200);
    assert.equal(rpcBody(r, 200).result.content[0].text, 'slept 1 ms');
    const s = await rpcResult(m.mcpPort, sid, 'tools/call', { name: 'stats', arguments: {} });
    assert.equal(s.structuredContent.outcomes.reset, 2);
    // The reset call is cancelled as one whose client went away.
    assert.equal(s.structuredContent.cancelled, 2);
    assert.equal((await request(m.restPort, { path: '/health' })).status, 200);

    // Over WebSocket the socket goes; a new connection is served.
    const closed = new Promise((resolve) => {
      const ws = new WebSocketClientTransport(new URL(`ws://${HOST}:${m.mcpPort}/ws`));
      const client = new Client({ name: 'ws-reset', version: '1.0.0' });
      client.onclose = resolve;
      client.connect(ws).then(() => client.callTool({ name: 'echo', arguments: { message: 'x' } }))
        .then(() => resolve('answered'), () => {});
    });
    assert.notEqual(await withTimeout(closed, 5000, 'the WebSocket to close'), 'answered');
    const c = await connect(m, { ws: true });
    try {
      assert.equal(text(await c.client.callTool({ name: 'fail', arguments: { mode: 'isError' } })),
        'nxmock: injected isError result');
      assert.equal((await stats(c.client)).outcomes.reset, 3);
    } finally {
      await c.close();
    }
  });
});

test('--hang-rate 1: a call times out on the client, is cancelled, and the server stays healthy', { timeout: 30000 }, async () => {
  await withMock(['--hang-rate', '1', '--set', 'shutdown.grace=1s'], async (m) => {
    const c = await connect(m);
    try {
      const t = await timed(() => assert.rejects(
        c.client.callTool({ name: 'echo', arguments: { message: 'x' } }, undefined, { timeout: 300 }),
        (e) => e.code === -32001 && /timed out/i.test(e.message)));
      assert.ok(t.ms >= 290 && t.ms < 3000, `timed out after ${t.ms} ms`);
      // The SDK sent notifications/cancelled: the hook ran.
      let s;
      for (let i = 0; i < 40; i++) {
        s = await stats(c.client);
        if (s.cancelled === 1) break;
        await sleep(25);
      }
      assert.equal(s.outcomes.hang, 1);
      assert.equal(s.cancelled, 1, 'the hung call was cancelled');
      assert.equal(text(await c.client.callTool({ name: 'sleep', arguments: { ms: 5 } })), 'slept 5 ms');
    } finally {
      await c.close();
    }
    // A hang still in flight at SIGTERM: the drain ends it and its state is freed (LSan).
    const sid = await openSession(m.mcpPort);
    const pending = mcpPost(m.mcpPort,
      { jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'fail', arguments: { mode: 'hang' } } },
      { sid, timeoutMs: 10000 }).catch((e) => e);
    await sleep(100);
    const r = await m.stop({ timeoutMs: 8000 });
    assertCleanExit(r);
    await pending;
  });
});

test('--latency: fixed:100 delays echo by 100 ms; latency_ms and sleep override it', { timeout: 30000 }, async () => {
  await withMock(['--latency', 'fixed:100'], async (m) => {
    const c = await connect(m);
    try {
      for (let i = 0; i < 3; i++) {
        const t = await timed(() => c.client.callTool({ name: 'echo', arguments: { message: 'x' } }));
        assert.equal(text(t.value), 'x');
        assert.ok(t.ms >= 100, `echo took ${t.ms} ms`);
      }
      const add = await timed(() => c.client.callTool({ name: 'add', arguments: { a: 1, b: 1 } }));
      assert.ok(add.ms >= 100, `add took ${add.ms} ms`);
      const fast = await timed(() => c.client.callTool({ name: 'echo', arguments: { message: 'y', latency_ms: 0 } }));
      assert.equal(text(fast.value), 'y');
      assert.ok(fast.ms < 90, `latency_ms 0 wins: ${fast.ms} ms`);
      const slept = await timed(() => c.client.callTool({ name: 'sleep', arguments: { ms: 0 } }));
      assert.ok(slept.ms < 90, `sleep ignores --latency: ${slept.ms} ms`);
    } finally {
      await c.close();
    }
  });
  await withMock(['--latency', 'uniform:30:60'], async (m) => {
    const c = await connect(m);
    try {
      const runs = await Promise.all(Array.from({ length: 8 }, (_, i) =>
        timed(() => c.client.callTool({ name: 'echo', arguments: { message: String(i) } }))));
      for (const t of runs) assert.ok(t.ms >= 30, `uniform:30:60 answered in ${t.ms} ms`);
    } finally {
      await c.close();
    }
  });
});

test('a seeded single-shard run repeats its fault pattern; rates are roughly honoured', { timeout: 60000 }, async () => {
  const pattern = async () => {
    let out = '';
    await withMock(['--seed', '42', '--error-rate', '0.3', '--is-error-rate', '0.3'], async (m) => {
      const c = await connect(m);
      try {
        for (let i = 0; i < 60; i++) {
          try {
            const r = await c.client.callTool({ name: 'echo', arguments: { message: 'x' } });
            out += r.isError ? 'i' : 'o';
          } catch (e) {
            assert.equal(e.code, -32603);
            out += 'e';
          }
        }
      } finally {
        await c.close();
      }
    }, { shards: 1 });
    return out;
  };
  const a = await pattern();
  const b = await pattern();
  assert.equal(a, b, 'the same seed gives the same outcomes');
  for (const [ch, what] of [['e', 'errors'], ['i', 'isError results'], ['o', 'successes']]) {
    const n = a.split(ch).length - 1;
    assert.ok(n >= 6 && n <= 36, `${n} ${what} of 60 at rate ~0.3-0.4: ${a}`);
  }
});

test('stdio (`nxmock --stdio`) with the SDK client', { timeout: 30000 }, async () => {
  const transport = new StdioClientTransport({
    command: BIN, args: ['--stdio', '--name', 'stdio-mock'], env: nexusEnv(), stderr: 'pipe',
  });
  let stderr = '';
  transport.stderr.on('data', (d) => (stderr += d));
  const client = new Client({ name: 'nxmock-stdio', version: '1.0.0' });
  await client.connect(transport);
  try {
    assert.equal(client.getServerVersion().name, 'stdio-mock');
    const { tools } = await client.listTools();
    for (const name of TOOLS) assert.ok(tools.some((t) => t.name === name), `${name} listed`);
    assert.equal(text(await client.callTool({ name: 'echo', arguments: { message: 'over stdio' } })),
      'over stdio');
    assert.deepEqual((await client.callTool({ name: 'add', arguments: { a: -1, b: 1.5 } })).structuredContent,
      { sum: 0.5 });
    const seen = [];
    const [prog, slept] = await Promise.all([
      // latency_ms keeps the answer out of the last progress line's read: the SDK handles
      // notifications a microtask late, after a response that came in the same chunk.
      client.callTool({ name: 'progress', arguments: { steps: 2, ms: 10, latency_ms: 30 } }, undefined,
        { onprogress: (p) => seen.push(p.progress) }),
      client.callTool({ name: 'sleep', arguments: { ms: 30 } }),
    ]);
    assert.equal(text(prog), 'done after 2 steps');
    assert.deepEqual(seen, [1, 2]);
    assert.equal(text(slept), 'slept 30 ms');
    const s = await stats(client);
    assert.equal(s.calls, 5);
    assert.deepEqual(s.shards, [5]);
  } finally {
    await client.close();
  }
  await sleep(200);
  assertNoSanitizerReport(stderr, 'nxmock --stdio');
});

/** Speaks raw newline-delimited JSON-RPC to `nxmock mcp <args>`: send(msg), next() -> the next
 *  message, exit -> {code, signal}. */
function rawStdio(args) {
  const child = spawn(BIN, ['mcp', ...args], { env: nexusEnv(), stdio: ['pipe', 'pipe', 'pipe'] });
  const s = { child, stderr: '', lines: [], waiters: [] };
  let buf = '';
  child.stdout.setEncoding('utf8').on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      s.lines.push(JSON.parse(buf.slice(0, i)));
      buf = buf.slice(i + 1);
      s.waiters.splice(0).forEach((w) => w());
    }
  });
  child.stderr.setEncoding('utf8').on('data', (d) => (s.stderr += d));
  child.stdin.on('error', () => {}); // EPIPE once it has exited
  s.exit = new Promise((resolve) => child.on('close', (code, signal) => {
    s.waiters.splice(0).forEach((w) => w());
    resolve({ code, signal });
  }));
  s.send = (msg) => child.stdin.write(JSON.stringify(msg) + '\n');
  s.next = () => withTimeout(new Promise((resolve) => {
    const check = () => (s.lines.length ? resolve(s.lines.shift()) : s.waiters.push(check));
    check();
  }), 5000, `a message from nxmock mcp; stderr:\n${s.stderr}`);
  s.kill = () => child.kill('SIGKILL');
  s.init = async () => {
    s.send({ jsonrpc: '2.0', id: 0, method: 'initialize',
      params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } });
    assert.equal((await s.next()).id, 0);
    s.send({ jsonrpc: '2.0', method: 'notifications/initialized' });
  };
  return s;
}

const toolCall = (id, name, args) => ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args } });

test('--crash-after 2 on stdio: two calls are answered, the third ends the process with status 3', { timeout: 30000 }, async () => {
  const s = rawStdio(['--crash-after', '2']);
  try {
    await s.init();
    for (const id of [1, 2]) {
      s.send(toolCall(id, 'echo', { message: `m${id}` }));
      const r = await s.next();
      assert.equal(r.id, id);
      assert.equal(r.result.content[0].text, `m${id}`);
    }
    s.send(toolCall(3, 'echo', { message: 'm3' }));
    const e = await withTimeout(s.exit, 5000, 'nxmock to exit');
    assert.deepEqual(e, { code: 3, signal: null });
    assert.equal(s.lines.length, 0, 'the third call was not answered');
    assert.match(s.stderr, /--crash-after/);
  } finally {
    s.kill();
  }
});

test('a reset on stdio exits with status 3 (no connection to reset)', { timeout: 30000 }, async () => {
  const s = rawStdio(['--is-error-rate', '1']);
  try {
    await s.init();
    s.send(toolCall(1, 'echo', { message: 'x' }));
    assert.equal((await s.next()).result.isError, true);
    s.send(toolCall(2, 'fail', { mode: 'reset' }));
    assert.deepEqual(await withTimeout(s.exit, 5000, 'nxmock to exit'), { code: 3, signal: null });
    assert.equal(s.lines.length, 0);
  } finally {
    s.kill();
  }
});

test('bad flag values exit 2 with a message naming the flag', { timeout: 60000 }, async () => {
  const bad = [
    ['--latency', 'bogus'], ['--latency', 'fixed:-1'], ['--latency', 'fixed:abc'],
    ['--latency', 'uniform:50:10'], ['--latency', 'uniform:1'], ['--latency', 'exp:0'],
    ['--latency', 'lognormal:10:5'], ['--latency', 'fixed:700000'], ['--latency', 'fixed:1:2'],
    ['--latency', 'fixed:5:'], ['--latency', 'uniform::5'], ['--latency', ''],
    ['--error-rate', '1.5'], ['--is-error-rate', '-0.1'], ['--reset-rate', 'x'],
    ['--hang-rate', 'nan'], ['--hang-rate', ''], ['--seed', '-1'], ['--seed', '12x'],
    ['--crash-after', '2.5'], ['--name', ''],
  ];
  for (const [flag, value] of bad) {
    const r = await runMock([flag, value, '--port', '0', '--no-mcp']);
    assert.equal(r.code, 2, `${flag} ${JSON.stringify(value)}: exit ${r.code}\n${r.stderr}`);
    assert.ok(r.stderr.includes(flag), `${flag} ${JSON.stringify(value)}: ${r.stderr}`);
    assertNoSanitizerReport(r.stderr, `nxmock ${flag}`);
  }
  const missing = await runMock(['--latency']);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /--latency/);
  const help = await runMock(['--help']);
  assert.equal(help.code, 0);
  for (const f of ['--latency', '--error-rate', '--is-error-rate', '--reset-rate', '--hang-rate',
    '--seed', '--crash-after', '--name'])
    assert.ok(help.stdout.includes(f), `--help lists ${f}`);
});
