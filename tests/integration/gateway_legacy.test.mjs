// nexus in front of MCP servers that speak the legacy HTTP+SSE transport (2024-11-05): named
// as such (transport: sse), or found out when a Streamable HTTP attempt is refused (transport:
// http with the server's /sse URL: nexus falls back). Calls and progress cross either way. And
// an unprefixed backend whose tool names clash with nexus's own: nexus keeps its own, the
// backend's are hidden, and no name is listed twice.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { startNexus, getJson, sleep, tempDir, HOST, assertCleanExit } from './lib/nexus.mjs';
import { startMock } from './lib/nxmock.mjs';

let nx;
let mock;
let dir;
let client;

before(async () => {
  mock = await startMock([], { shards: 1 });
  dir = tempDir();
  const config = dir.path('gateway.yaml');
  const base = `http://${HOST}:${mock.mcpPort}`;
  fs.writeFileSync(config, [
    'servers:',
    '  - name: legacy',
    '    transport: sse',
    `    url: ${base}/sse`,
    '  - name: fallback',
    '    transport: http',
    `    url: ${base}/sse`,
    '  - name: flat',
    '    transport: http',
    `    url: ${base}/mcp`,
    '    prefix: false',
    '',
  ].join('\n'));
  nx = await startNexus({ shards: 2, config });
  for (let i = 0; i < 100; i++) {
    const b = (await getJson(nx.restPort, '/health')).data.backends;
    if (['legacy', 'fallback', 'flat'].every((n) => b[n].state === 'ready' && b[n].tools > 0 &&
      b[n].instances.every((x) => x.state === 'ready'))) break;
    await sleep(100);
  }
  client = new Client({ name: 'legacy-test', version: '1.0.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(`http://${HOST}:${nx.mcpPort}/mcp`)));
});

after(async () => {
  if (client) await client.close().catch(() => {});
  if (nx) await nx.kill();
  if (mock) await mock.kill();
});

test('both legacy backends are federated and answer calls', async () => {
  const names = (await client.listTools()).tools.map((t) => t.name);
  for (const n of ['legacy__echo', 'fallback__echo', 'legacy__progress', 'echo'])
    assert.ok(names.includes(n), `${n} in ${names.join(', ')}`);
  for (const n of ['legacy__echo', 'fallback__echo']) {
    const r = await client.callTool({ name: n, arguments: { message: n } });
    assert.equal(r.content[0].text, n);
  }
});

test('progress comes over the legacy event stream', async () => {
  const seen = [];
  const r = await client.callTool({ name: 'legacy__progress', arguments: { steps: 3, ms: 5 } },
    undefined, { onprogress: (p) => seen.push(p.progress) });
  assert.equal(r.isError, undefined);
  assert.deepEqual(seen, [1, 2, 3]);
});

test('an unprefixed backend never shadows nexus: no name is listed twice', async () => {
  const names = (await client.listTools()).tools.map((t) => t.name);
  const dups = names.filter((n, i) => names.indexOf(n) !== i);
  assert.deepEqual(dups, [], `listed twice: ${dups.join(', ')}`);
  // health_check is both nexus's and nxmock's: the call reaches nexus's own.
  const r = await client.callTool({ name: 'health_check', arguments: {} });
  assert.ok(r.structuredContent.shards === 2, 'nexus (2 shards) answered, not nxmock (1 shard)');
  assert.match(nx.stderr, /backend flat: tool health_check is hidden: nexus itself serves one/);
});

test('nexus exits cleanly', async () => {
  await client.close();
  client = null;
  const r = await nx.stop();
  nx = null;
  assertCleanExit(r);
});
