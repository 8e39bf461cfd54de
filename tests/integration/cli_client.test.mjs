// `nexus client`: nexus's MCP client on the command line. It lists and calls the tools of nxmock
// over Streamable HTTP (and legacy HTTP+SSE) and of the conformance fixtures server over stdio,
// answers what servers ask back (elicitation with the schema's defaults, sampling with
// --sample, roots with the working directory), sends --header, and fails the way a command
// should: usage errors exit 2, a JSON-RPC error or an isError result exits 1 with the message
// on stderr, and so does a server that cannot be reached or does not answer, within --timeout.
// Every run exits without a sanitizer report.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { realpathSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { dirname, join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { ListRootsResultSchema } from '@modelcontextprotocol/sdk/types.js';
import { nexusBin, nexusEnv, assertNoSanitizerReport, tempDir, HOST } from './lib/nexus.mjs';
import { startMock } from './lib/nxmock.mjs';

const FIXTURES = process.env.CONFORMANCE_SERVER_BIN ||
  join(dirname(nexusBin()), 'examples', 'conformance_server');
const STDIO = ['--', FIXTURES, '--stdio'];

let mock;
let mockUrl;
let sdkServer;
let sdkUrl;
const sdkHeaders = [];

/** Runs `nexus client <args>`; resolves with {code, stdout, stderr, ms} (killed after
 *  timeoutMs, then timedOut is true). No sanitizer report is allowed. */
function client(args, { timeoutMs = 20000, cwd } = {}) {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const child = spawn(nexusBin(), ['client', ...args],
      { env: nexusEnv(), cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.setEncoding('utf8').on('data', (d) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      assertNoSanitizerReport(stderr, 'nexus client');
      assert.equal(timedOut, false, `nexus client ${args.join(' ')} did not end:\n${stderr}`);
      resolve({ code, signal, stdout, stderr, ms: Date.now() - t0 });
    });
  });
}

/** The text of the first content item of the CallToolResult printed on stdout. */
function resultText(r) {
  const result = JSON.parse(r.stdout);
  return result.content[0].text;
}

/** An MCP server of the official SDK over Streamable HTTP (a session each), in this process:
 *  its tool "roots" asks the client for its roots on the call's stream and returns them. */
async function startSdkServer() {
  const sessions = {};
  const server = http.createServer(async (req, res) => {
    sdkHeaders.push(req.headers);
    let body;
    if (req.method === 'POST') {
      let text = '';
      for await (const chunk of req) text += chunk;
      body = JSON.parse(text);
    }
    let transport = sessions[req.headers['mcp-session-id']];
    if (transport === undefined) {
      if (body?.method !== 'initialize') {
        res.writeHead(404).end();
        return;
      }
      transport = new StreamableHTTPServerTransport({
        sessionIdGenerator: () => randomUUID(),
        onsessioninitialized: (id) => (sessions[id] = transport),
      });
      const mcp = new McpServer({ name: 'sdk-roots', version: '1.0.0' });
      mcp.registerTool('roots', { description: 'Returns the client roots' }, async (extra) => {
        const r = await extra.sendRequest({ method: 'roots/list' }, ListRootsResultSchema);
        return { content: [{ type: 'text', text: JSON.stringify(r) }] };
      });
      await mcp.connect(transport);
    }
    await transport.handleRequest(req, res, body);
  });
  await new Promise((r) => server.listen(0, HOST, r));
  return server;
}

/** A port nothing listens on (bound, then released). */
async function deadPort() {
  const s = net.createServer();
  await new Promise((r) => s.listen(0, HOST, r));
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}

before(async () => {
  mock = await startMock([], { shards: 1 });
  mockUrl = `http://${HOST}:${mock.mcpPort}/mcp`;
  sdkServer = await startSdkServer();
  sdkUrl = `http://${HOST}:${sdkServer.address().port}/mcp`;
});

after(async () => {
  if (mock) await mock.stopAndAssertClean();
  sdkServer?.closeAllConnections();
  await new Promise((r) => (sdkServer ? sdkServer.close(r) : r()));
});

test('list over HTTP prints the tool names exactly as an MCP client sees them', async () => {
  const sdk = new Client({ name: 'direct', version: '1.0.0' });
  await sdk.connect(new StreamableHTTPClientTransport(new URL(mockUrl)));
  const direct = (await sdk.listTools()).tools;
  await sdk.close();
  const r = await client([mockUrl, 'list']);
  assert.equal(r.code, 0, r.stderr);
  // nexus's own tools (the in-process gateway's) never show: only the target's, in its order.
  assert.deepEqual(r.stdout.trim().split('\n'), direct.map((t) => t.name));
  for (const name of ['echo', 'add', 'progress', 'fail']) {
    assert.ok(direct.some((t) => t.name === name), name);
  }

  const j = await client(['list', '--json', mockUrl]);
  assert.equal(j.code, 0, j.stderr);
  assert.deepEqual(JSON.parse(j.stdout).tools, direct, 'list --json must pass the tools verbatim');
});

test('list and call over WebSocket (ws:// URL)', async () => {
  const wsUrl = `ws://${HOST}:${mock.mcpPort}/ws`;
  const l = await client([wsUrl, 'list']);
  assert.equal(l.code, 0, l.stderr);
  assert.ok(l.stdout.split('\n').includes('echo'), l.stdout);
  const r = await client(['--transport', 'ws', wsUrl, 'call', 'add', '--args', '{"a":4,"b":5}']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout).structuredContent, { sum: 9 });
});

test('call over HTTP prints the CallToolResult and exits 0', async () => {
  const r = await client([mockUrl, 'call', 'add', '--args', '{"a":2,"b":3}']);
  assert.equal(r.code, 0, r.stderr);
  const result = JSON.parse(r.stdout);
  assert.deepEqual(result.structuredContent, { sum: 5 });
  assert.notEqual(result.isError, true);
});

test('--transport sse speaks legacy HTTP+SSE (the URL is the event stream)', async () => {
  const sse = `http://${HOST}:${mock.mcpPort}/sse`;
  const r = await client(['--transport', 'sse', sse, 'call', 'add', '--args', '{"a":40,"b":2}']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout).structuredContent, { sum: 42 });
});

test('progress notifications of the call go to stderr', async () => {
  const r = await client([mockUrl, 'call', 'progress', '--args', '{"steps":3,"ms":20}']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(resultText(r), /done after 3 steps/);
  const lines = r.stderr.split('\n').filter((l) => l.startsWith('progress: '));
  assert.equal(lines.length, 3, r.stderr);
});

test('SIGINT during a call cancels it at the server and exits 1 at once', async () => {
  const stats = async () => {
    const sdk = new Client({ name: 'stats', version: '1.0.0' });
    await sdk.connect(new StreamableHTTPClientTransport(new URL(mockUrl)));
    const r = await sdk.callTool({ name: 'stats', arguments: {} });
    await sdk.close();
    return r.structuredContent;
  };
  const before = await stats();
  const child = spawn(nexusBin(), ['client', mockUrl, 'call', 'sleep', '--args', '{"ms":20000}'],
    { env: nexusEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d));
  const exited = new Promise((resolve) => child.on('close', (code) => resolve(code)));
  for (let i = 0; i < 200 && (await stats()).tools.sleep === before.tools.sleep; i++) {
    await new Promise((r) => setTimeout(r, 50)); // until the call is under way at the server
  }
  const t0 = Date.now();
  child.kill('SIGINT');
  const code = await Promise.race([exited, new Promise((r) => setTimeout(() => r('hung'), 10000))]);
  if (code === 'hung') child.kill('SIGKILL');
  assertNoSanitizerReport(stderr, 'nexus client');
  assert.equal(code, 1, stderr);
  // Not the drain's grace period (2 s) and then some: the call was cancelled, not waited for.
  assert.ok(Date.now() - t0 < 2000, `took ${Date.now() - t0} ms to stop`);
  assert.match(stderr, /interrupted: the call was cancelled/);
  for (let i = 0; i < 50 && (await stats()).cancelled === before.cancelled; i++) {
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.equal((await stats()).cancelled, before.cancelled + 1,
    'the server never heard the cancellation');
});

test('an isError result is printed and exits 1', async () => {
  const r = await client([mockUrl, 'call', 'fail', '--args', '{"mode":"isError"}']);
  assert.equal(r.code, 1, r.stderr);
  assert.equal(JSON.parse(r.stdout).isError, true);
  assert.match(r.stderr, /the tool reported an error/);
});

test('a JSON-RPC error exits 1 with its message on stderr', async () => {
  const r = await client([mockUrl, 'call', 'fail', '--args', '{"mode":"error"}']);
  assert.equal(r.code, 1, r.stderr);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /nexus client: nxmock: injected error \(JSON-RPC error -\d+\)/);
});

test('an unknown tool exits 1 with the JSON-RPC error naming it', async () => {
  const r = await client([mockUrl, 'call', 'no_such_tool']);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /Unknown tool: no_such_tool \(JSON-RPC error -32602\)/);
  assert.doesNotMatch(r.stderr, /target__/, 'the gateway\'s internal name leaked');
});

test('list and call over stdio (--transport stdio -- COMMAND)', async () => {
  const l = await client(['--transport', 'stdio', 'list', ...STDIO]);
  assert.equal(l.code, 0, l.stderr);
  const names = l.stdout.trim().split('\n');
  for (const n of ['test_simple_text', 'test_elicitation_sep1034_defaults', 'test_sampling']) {
    assert.ok(names.includes(n), `${n} missing from:\n${l.stdout}`);
  }
  const c = await client(['call', 'test_simple_text', ...STDIO]); // stdio implied by --
  assert.equal(c.code, 0, c.stderr);
  assert.equal(resultText(c), 'This is a simple text response for testing.');
});

test('elicitation is accepted with the requested schema\'s defaults (SEP-1034)', async () => {
  const r = await client(['call', 'test_elicitation_sep1034_defaults', ...STDIO]);
  assert.equal(r.code, 0, r.stderr);
  const text = resultText(r);
  assert.match(text, /^Elicitation completed: action=accept, content=/);
  const content = JSON.parse(text.replace(/^[^{]*/, ''));
  assert.deepEqual(content,
    { name: 'John Doe', age: 30, score: 95.5, status: 'active', verified: true });
  assert.match(r.stderr, /^elicitation: /m);
});

test('elicitation without defaults: declined, filled by --elicit, or --elicit-action', async () => {
  const args = ['call', 'test_elicitation', '--args', '{"message":"Who are you?"}'];
  const declined = await client([...args, ...STDIO]);
  assert.equal(declined.code, 0, declined.stderr);
  assert.match(resultText(declined), /action=decline/);
  assert.match(declined.stderr, /required field "username" has no default/);

  const given = await client([...args, '--elicit', '{"username":"ada","email":"ada@example.com"}',
    ...STDIO]);
  assert.equal(given.code, 0, given.stderr);
  assert.match(resultText(given),
    /action=accept, content=\{"username":"ada","email":"ada@example.com"\}/);

  const cancelled = await client([...args, '--elicit-action', 'cancel', ...STDIO]);
  assert.equal(cancelled.code, 0, cancelled.stderr);
  assert.match(resultText(cancelled), /action=cancel/);
});

test('sampling is refused unless --sample gives the reply', async () => {
  const args = ['call', 'test_sampling', '--args', '{"prompt":"Say hi"}'];
  const refused = await client([...args, ...STDIO]);
  assert.match(refused.stderr, /sampling: refused/);
  assert.match(resultText(refused), /no language model/);
  const r = await client([...args, '--sample', 'Hi there', ...STDIO]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(resultText(r), 'LLM response: Hi there');
});

test('roots/list gets the working directory; --header goes with every request', async () => {
  const dir = tempDir();
  const r = await client([sdkUrl, 'call', 'roots', '-H', 'X-Test: yes'], { cwd: dir.dir });
  assert.equal(r.code, 0, r.stderr);
  const roots = JSON.parse(resultText(r)).roots;
  assert.equal(roots.length, 1);
  assert.equal(decodeURIComponent(roots[0].uri), `file://${realpathSync(dir.dir)}`);
  const posts = sdkHeaders.filter((h) => h['content-type'] === 'application/json');
  assert.ok(posts.length >= 3, 'initialize, initialized, tools/list, tools/call were posted');
  assert.ok(posts.every((h) => h['x-test'] === 'yes'), JSON.stringify(posts));
});

test('usage errors exit 2 with a message', async () => {
  const cases = [
    [[], /no command; expected list or call/],
    [[mockUrl], /no command/],
    [[mockUrl, 'frobnicate'], /unknown command 'frobnicate'/],
    [[mockUrl, 'call'], /call needs a TOOL/],
    [[mockUrl, 'call', 'add', '--args', '[1,2]'], /--args must be a JSON object/],
    [[mockUrl, 'call', 'add', '--args', '{"a":'], /--args is not valid JSON/],
    [[mockUrl, 'list', '--bogus'], /unknown option '--bogus'/],
    [['list', 'localhost:3000'], /'localhost:3000' is not a URL/],
    [['list'], /no server URL/],
    [['--transport', 'stdio', 'list'], /needs the server's command after --/],
    [[mockUrl, 'list', '--timeout', 'soon'], /--timeout/],
    [['https://example.com/mcp', 'list'], /needs TLS/],
  ];
  for (const [args, re] of cases) {
    const r = await client(args);
    assert.equal(r.code, 2, `${args.join(' ')}: exit ${r.code}\n${r.stderr}`);
    assert.match(r.stderr, re, args.join(' '));
    assert.equal(r.stdout, '');
  }
  const help = await client(['--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /Usage:[\s\S]*nexus client \[options\] URL call TOOL/);
});

test('an unreachable server exits 1 with a clear message, well within the timeout', async () => {
  const url = `http://${HOST}:${await deadPort()}/mcp`;
  const r = await client([url, 'list', '--timeout', '5s']);
  assert.equal(r.code, 1, r.stderr);
  assert.ok(r.stderr.includes(`nexus client: cannot connect to ${url}: `), r.stderr);
  assert.ok(r.ms < 5000, `took ${r.ms} ms`);

  const missing = await client(['list', '--', '/nonexistent/mcp-server']);
  assert.equal(missing.code, 1, missing.stderr);
  assert.match(missing.stderr, /cannot connect to \/nonexistent\/mcp-server/);
});

test('a server that never answers exits 1 once --timeout has passed', async () => {
  const sockets = new Set();
  const silent = net.createServer((s) => sockets.add(s)); // accepts, reads, never answers
  await new Promise((r) => silent.listen(0, HOST, r));
  try {
    const url = `http://${HOST}:${silent.address().port}/mcp`;
    const r = await client([url, 'list', '--timeout', '800ms']);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /no answer from .* within 800 ms/);
    assert.ok(r.ms >= 800 && r.ms < 8000, `took ${r.ms} ms`);
  } finally {
    for (const s of sockets) s.destroy();
    await new Promise((r) => silent.close(r));
  }
});
