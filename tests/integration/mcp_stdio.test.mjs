// `nexus mcp`: the MCP catalog over stdio, as desktop clients spawn it. The official SDK's
// StdioClientTransport drives it; raw line tests check the framing rules (one JSON message per
// line, errors in-band, blank lines ignored, over-long lines refused), that stdout carries only
// JSON-RPC, and that end of input ends the process cleanly.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { nexusBin, nexusEnv, assertNoSanitizerReport } from './lib/nexus.mjs';

test('the official SDK client talks to nexus over stdio', async () => {
  const transport = new StdioClientTransport({
    command: nexusBin(),
    args: ['mcp', '--debug-routes'],
    env: nexusEnv(),
    stderr: 'pipe',
  });
  let stderr = '';
  transport.stderr.on('data', (d) => (stderr += d));
  const client = new Client({ name: 'stdio-test', version: '1.0.0' });
  await client.connect(transport);
  try {
    assert.equal(client.getServerVersion().name, 'nexus');
    const tools = await client.listTools();
    const names = tools.tools.map((t) => t.name);
    for (const n of ['health_check', 'get_server_metrics', 'get_available_tools', 'debug_echo'])
      assert.ok(names.includes(n), `${n} missing from ${names}`);
    const echo = await client.callTool({ name: 'debug_echo', arguments: { message: 'line\nbreak ✓' } });
    assert.equal(echo.content[0].text, 'line\nbreak ✓', 'a newline inside a string stays escaped on the wire');
    const [slow, fast] = await Promise.all([
      client.callTool({ name: 'debug_sleep', arguments: { ms: 150 } }),
      client.callTool({ name: 'debug_echo', arguments: { message: 'fast' } }),
    ]);
    assert.equal(slow.content[0].text, 'slept 150 ms');
    assert.equal(fast.content[0].text, 'fast');
    const bad = await client.callTool({ name: 'debug_sleep', arguments: { ms: -1 } });
    assert.equal(bad.isError, true);
    await client.ping();
  } finally {
    await client.close();
  }
  await new Promise((r) => setTimeout(r, 200));
  assertNoSanitizerReport(stderr);
});

/** Runs `nexus mcp` with <input> on stdin; resolves with stdout lines, stderr and exit code. */
function runStdio(input, args = ['mcp', '--debug-routes'], { holdMs = 0 } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(nexusBin(), args, { env: nexusEnv(), stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`nexus mcp did not exit after end of input\n${err}`));
    }, 10000);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ lines: out.split('\n').filter((l) => l.length), raw: out, err, code, signal });
    });
    if (holdMs > 0) {
      child.stdin.write(input);
      setTimeout(() => child.stdin.end(), holdMs);
    } else {
      child.stdin.end(input);
    }
  });
}

const init = JSON.stringify({
  jsonrpc: '2.0', id: 1, method: 'initialize',
  params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
});

test('framing: errors in-band, blank lines ignored, stdout is only JSON-RPC, EOF exits 0', async () => {
  const input = [
    init,
    '',
    '   ',
    '{broken',
    JSON.stringify({ jsonrpc: '2.0', id: 'p', method: 'ping' }),
    JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }),
    JSON.stringify({ jsonrpc: '2.0', id: 9, method: 'nope' }),
  ].join('\n') + '\n';
  const r = await runStdio(input);
  assert.equal(r.code, 0, r.err);
  assertNoSanitizerReport(r.err);
  const msgs = r.lines.map((l) => JSON.parse(l)); // every stdout line is JSON
  assert.equal(msgs.length, 4, `expected 4 answers, got ${r.raw}`);
  assert.equal(msgs[0].id, 1);
  assert.equal(msgs[1].error.code, -32700);
  assert.equal(msgs[1].id, null);
  assert.deepEqual(msgs[2], { jsonrpc: '2.0', id: 'p', result: {} });
  assert.equal(msgs[3].error.code, -32601);
  assert.match(r.err, /serving MCP on stdio/, 'logs go to stderr');
});

test('a line over mcp.max_message is refused and the next line still works', async () => {
  const big = JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'ping', params: { pad: 'x'.repeat(5000) } });
  const input = [init, big, JSON.stringify({ jsonrpc: '2.0', id: 3, method: 'ping' })].join('\n');
  // The last line has no newline: end of input still delivers it.
  const r = await runStdio(input, ['mcp', '--set', 'mcp.max_message=2KiB']);
  assert.equal(r.code, 0, r.err);
  assertNoSanitizerReport(r.err);
  const msgs = r.lines.map((l) => JSON.parse(l));
  assert.equal(msgs.length, 3, r.raw);
  assert.equal(msgs[1].error.code, -32600);
  assert.match(msgs[1].error.message, /max_message/);
  assert.deepEqual(msgs[2].result, {});
});

test('end of input cancels running calls and exits at once', async () => {
  const t0 = Date.now();
  const r = await runStdio(
    init + '\n' + JSON.stringify({ jsonrpc: '2.0', id: 5, method: 'tools/call', params: { name: 'debug_sleep', arguments: { ms: 8000 } } }) + '\n',
  );
  assert.equal(r.code, 0, r.err);
  assert.ok(Date.now() - t0 < 4000, 'a pending 8 s call must not hold the exit');
  assertNoSanitizerReport(r.err);
});

test('notifications/cancelled stops a call: no answer for it, the others still come', async () => {
  const r = await runStdio(
    [
      init,
      JSON.stringify({ jsonrpc: '2.0', id: 5, method: 'tools/call', params: { name: 'debug_sleep', arguments: { ms: 300 } } }),
      JSON.stringify({ jsonrpc: '2.0', id: 6, method: 'tools/call', params: { name: 'debug_sleep', arguments: { ms: 200 } } }),
      JSON.stringify({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 5 } }),
    ].join('\n') + '\n',
    ['mcp', '--debug-routes'],
    { holdMs: 600 },
  );
  assert.equal(r.code, 0, r.err);
  assertNoSanitizerReport(r.err);
  const ids = r.lines.map((l) => JSON.parse(l).id);
  assert.deepEqual(ids, [1, 6], `answers: ${r.raw}`);
});
