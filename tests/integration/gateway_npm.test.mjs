// The official SDK client through nexus to real third-party MCP servers on stdio: the npm
// packages @modelcontextprotocol/server-everything and @modelcontextprotocol/server-memory, both
// spawned and supervised by nexus (two shards, so each backend is owned by one shard and calls
// from clients on the other shard cross). The client lists the federated catalog (tools
// prefixed everything__* and memory__*, resources with their own URIs, prompts prefixed), calls
// tools on each backend, receives the long-running tool's progress, cancels a long call and
// finds nexus healthy afterwards, over Streamable HTTP, WebSocket and legacy HTTP+SSE. nexus
// then exits cleanly (exit code 0, no sanitizer report) and takes its backends with it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { WebSocketClientTransport } from '@modelcontextprotocol/sdk/client/websocket.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { startNexus, getJson, sleep, tempDir, HOST } from './lib/nexus.mjs';

const require = createRequire(import.meta.url);
const pkgDir = (name) => path.dirname(require.resolve(`${name}/package.json`));
const EVERYTHING_DIR = pkgDir('@modelcontextprotocol/server-everything');
const MEMORY_DIR = pkgDir('@modelcontextprotocol/server-memory');
const EVERYTHING = path.join(EVERYTHING_DIR, 'dist', 'index.js');
const MEMORY = path.join(MEMORY_DIR, 'dist', 'index.js');
const LONG_OP = 'everything__trigger-long-running-operation';

let nx;
let dir;
let memoryFile;
before(async () => {
  dir = tempDir();
  memoryFile = dir.path('memory.jsonl');
  const config = dir.path('gateway_npm.yaml');
  fs.writeFileSync(config, [
    'servers:',
    '  - name: everything',
    '    transport: stdio',
    `    command: ${JSON.stringify(process.execPath)}`,
    `    args: [${JSON.stringify(EVERYTHING)}, "stdio"]`,
    '    restart: {base: 200ms, cap: 2s}',
    '    timeouts: {call: 20s, deadline: 30s}',
    '    shutdown: {term_after: 1s, kill_after: 1s}',
    '  - name: memory',
    '    transport: stdio',
    `    command: ${JSON.stringify(process.execPath)}`,
    `    args: [${JSON.stringify(MEMORY)}]`,
    `    env: {MEMORY_FILE_PATH: ${JSON.stringify(memoryFile)}}`,
    '    restart: {base: 200ms, cap: 2s}',
    '    timeouts: {call: 10s, deadline: 20s}',
    '    shutdown: {term_after: 1s, kill_after: 1s}',
    '',
  ].join('\n'));
  nx = await startNexus({ shards: 2, config });
  // Node starts slowly under load: wait until both servers have announced their catalogs.
  let h;
  for (let i = 0; i < 300; i++) {
    h = (await getJson(nx.restPort, '/health')).data.backends;
    if (h.everything?.state === 'ready' && h.memory?.state === 'ready' &&
      h.everything.tools > 0 && h.memory.tools > 0 && h.everything.prompts > 0) break;
    await sleep(100);
  }
  assert.equal(h.everything?.state, 'ready', `everything never became ready: ${JSON.stringify(h)}\n${nx.stderr}`);
  assert.equal(h.memory?.state, 'ready', `memory never became ready: ${JSON.stringify(h)}\n${nx.stderr}`);
});
after(async () => {
  if (nx) await nx.kill();
});

async function connect(kind = 'streamable') {
  const client = new Client({ name: `gateway-npm-${kind}`, version: '1.0.0' });
  const transport =
    kind === 'ws' ? new WebSocketClientTransport(new URL(`ws://${HOST}:${nx.mcpPort}/ws`))
      : kind === 'sse' ? new SSEClientTransport(new URL(`http://${HOST}:${nx.mcpPort}/sse`))
        : new StreamableHTTPClientTransport(new URL(`http://${HOST}:${nx.mcpPort}/mcp`));
  await client.connect(transport);
  return {
    client,
    transport,
    async close() {
      if (kind === 'streamable') await transport.terminateSession();
      await client.close();
    },
  };
}

/** Runs fn(client, transport) on a fresh connection of <kind> and closes it, also when fn throws. */
async function withClient(fn, kind = 'streamable') {
  const c = await connect(kind);
  try {
    return await fn(c.client, c.transport);
  } finally {
    await c.close().catch(() => {});
  }
}

/** Every item of a paginated list method, following nextCursor (bounded). */
async function listAll(fn, key) {
  const out = [];
  let cursor;
  for (let page = 0; page < 100; page++) {
    const res = await fn(cursor ? { cursor } : {});
    out.push(...res[key]);
    cursor = res.nextCursor;
    if (!cursor) return out;
  }
  assert.fail(`${key}: more than 100 pages`);
}

const text = (r) => r.content.filter((c) => c.type === 'text').map((c) => c.text).join('\n');

async function backends() {
  return (await getJson(nx.restPort, '/health')).data.backends;
}

test('the federated catalog: native tools, everything__*, memory__*', { timeout: 20000 }, async () => {
  await withClient(async (client) => {
    const tools = await listAll((p) => client.listTools(p), 'tools');
    const names = tools.map((t) => t.name);
    for (const n of ['health_check', 'get_server_metrics', 'get_available_tools',
      'everything__echo', 'everything__get-sum', LONG_OP,
      'memory__create_entities', 'memory__read_graph', 'memory__search_nodes', 'memory__open_nodes'])
      assert.ok(names.includes(n), `${n} missing from ${names}`);
    assert.ok(!names.includes('echo') && !names.includes('read_graph'), 'prefixed: no bare names');
    assert.equal(new Set(names).size, names.length, 'no tool twice');
    // Every backend tool carries the prefix of its server, and the counts match /health.
    const h = await backends();
    assert.equal(names.filter((n) => n.startsWith('everything__')).length, h.everything.tools);
    assert.equal(names.filter((n) => n.startsWith('memory__')).length, h.memory.tools);
    // Schemas pass through: the long-running tool declares duration and steps.
    const lr = tools.find((t) => t.name === LONG_OP);
    assert.ok(lr.inputSchema.properties.duration && lr.inputSchema.properties.steps);
    const ce = tools.find((t) => t.name === 'memory__create_entities');
    assert.equal(ce.inputSchema.properties.entities.type, 'array');
  });
});

test('tools of each backend answer: echo and get-sum, memory create then search and read', { timeout: 30000 }, async () => {
  await withClient(async (client) => {
    const echo = await client.callTool({ name: 'everything__echo', arguments: { message: 'hello ✓' } });
    assert.equal(text(echo), 'Echo: hello ✓');
    const sum = await client.callTool({ name: 'everything__get-sum', arguments: { a: 2, b: 40 } });
    assert.match(text(sum), /The sum of 2 and 40 is 42\./);

    const entity = `nexus-entity-${process.pid}-${Date.now()}`;
    const created = await client.callTool({
      name: 'memory__create_entities',
      arguments: { entities: [{ name: entity, entityType: 'test', observations: ['created through nexus'] }] },
    });
    assert.ok(!created.isError, JSON.stringify(created));
    assert.equal(created.structuredContent.entities[0].name, entity);
    const found = await client.callTool({ name: 'memory__search_nodes', arguments: { query: entity } });
    assert.deepEqual(found.structuredContent.entities.map((e) => e.name), [entity]);
    assert.deepEqual(found.structuredContent.entities[0].observations, ['created through nexus']);
    const graph = await client.callTool({ name: 'memory__read_graph', arguments: {} });
    assert.ok(graph.structuredContent.entities.some((e) => e.name === entity));
    // The backend got its environment from the config: the graph lives in the temp file.
    assert.ok(fs.readFileSync(memoryFile, 'utf8').includes(entity), 'MEMORY_FILE_PATH was used');
    assert.ok(!fs.existsSync(path.join(MEMORY_DIR, 'dist', 'memory.jsonl')), 'nothing written into node_modules');

    // A tool's own failure comes back as it was (isError or a JSON-RPC error, as the SDK sends it).
    const bad = await client.callTool({ name: 'everything__get-sum', arguments: { a: 'x', b: 1 } })
      .then((r) => ({ r }), (e) => ({ e }));
    assert.ok(bad.r?.isError === true || bad.e, `a bad argument is refused: ${JSON.stringify(bad)}`);
  });
});

test('calls reach both backends, each owned by another shard, from concurrent sessions', { timeout: 30000 }, async () => {
  // Each backend process is owned by one shard; with one on each, every session (it lives on
  // the shard that created it) calls one of them across shards.
  const h0 = await backends();
  const owner = (b) => b.instances?.[0]?.shard;
  if (owner(h0.everything) !== undefined)
    assert.notEqual(owner(h0.everything), owner(h0.memory), `owners: ${JSON.stringify(h0)}`);
  await Promise.all([0, 1, 2, 3, 4, 5].map((i) => withClient(async (client) => {
    const e = await client.callTool({ name: 'everything__echo', arguments: { message: `c${i}` } });
    assert.equal(text(e), `Echo: c${i}`);
    const g = await client.callTool({ name: 'memory__open_nodes', arguments: { names: ['nobody'] } });
    assert.deepEqual(g.structuredContent.entities, []);
  })));
  const h = await backends();
  assert.ok(h.everything.calls >= h0.everything.calls + 6 && h.memory.calls >= h0.memory.calls + 6);
  assert.equal(h.everything.failures, 0);
  assert.equal(h.memory.failures, 0);
});

test('progress of the long-running tool arrives in order with its total', { timeout: 30000 }, async () => {
  await withClient(async (client) => {
    const seen = [];
    const r = await client.callTool({ name: LONG_OP, arguments: { duration: 1, steps: 4 } }, undefined,
      { onprogress: (p) => seen.push(p), timeout: 20000 });
    assert.match(text(r), /Long running operation completed\. Duration: 1 seconds, Steps: 4\./);
    assert.deepEqual(seen.map((p) => p.progress), [1, 2, 3, 4], JSON.stringify(seen));
    assert.ok(seen.every((p) => p.total === 4), `total 4 on every notification: ${JSON.stringify(seen)}`);
  });
});

test('a long call cancelled with an AbortController rejects promptly; nexus stays healthy', { timeout: 30000 }, async () => {
  await withClient(async (client) => {
    const ac = new AbortController();
    const progress = [];
    const t0 = Date.now();
    const call = client.callTool({ name: LONG_OP, arguments: { duration: 20, steps: 20 } }, undefined,
      { signal: ac.signal, onprogress: (p) => progress.push(p.progress), timeout: 30000 });
    // Abort once the call is running on the backend (its first progress arrives after 1 s).
    for (let i = 0; i < 60 && progress.length === 0; i++) await sleep(50);
    assert.ok(progress.length > 0, 'the long call reported progress before the abort');
    const abortedAt = Date.now();
    ac.abort('nexus-test-abort');
    await assert.rejects(call, (e) => String(e?.message ?? e).includes('nexus-test-abort'));
    const took = Date.now() - abortedAt;
    assert.ok(took < 1000, `the promise rejected ${took} ms after the abort`);
    assert.ok(Date.now() - t0 < 10000, 'well before the 20 s the tool would run');
    // The same session and a new one keep working while the backend finishes its abandoned work.
    const after = await client.callTool({ name: 'everything__echo', arguments: { message: 'after' } });
    assert.equal(text(after), 'Echo: after');
    await withClient(async (other) => {
      const r = await other.callTool({ name: LONG_OP, arguments: { duration: 0.3, steps: 3 } });
      assert.match(text(r), /Steps: 3\./);
    });
  });
  // The owner of the backend forgot the call (it would run 20 s): nexus told the backend.
  let h;
  for (let i = 0; i < 50; i++) {
    h = await backends();
    const idle = (b) => b.in_flight === 0 && (b.instances ?? []).every((x) => x.outstanding === 0);
    if (h.everything.state === 'ready' && h.memory.state === 'ready' && idle(h.everything)) break;
    await sleep(100);
  }
  assert.equal(h.everything.state, 'ready');
  assert.equal(h.memory.state, 'ready');
  assert.equal(h.everything.in_flight, 0, 'the cancelled call holds no bulkhead slot');
  for (const x of h.everything.instances ?? [])
    assert.equal(x.outstanding, 0, `the backend's owner forgot the cancelled call: ${JSON.stringify(x)}`);
  assert.equal(h.everything.restarts, 0, 'the backend was not restarted');
  assert.equal(h.everything.failures, 0, 'a cancellation is not a backend failure');
  const health = await getJson(nx.restPort, '/health');
  assert.equal(health.status, 200);
  assert.equal(health.data.status, 'ok');
});

test('resources keep their URIs, templates and prompts come through (prompts prefixed)', { timeout: 30000 }, async () => {
  await withClient(async (client) => {
    const resources = await listAll((p) => client.listResources(p), 'resources');
    const uris = resources.map((r) => r.uri);
    const h = await backends();
    assert.equal(resources.length, h.everything.resources + h.memory.resources, JSON.stringify(uris));
    assert.ok(uris.includes('memory://knowledge-graph'), `memory's resource: ${uris}`);
    const doc = uris.find((u) => u.startsWith('demo://resource/static/document/'));
    assert.ok(doc, `everything's static documents: ${uris}`);
    const read = await client.readResource({ uri: doc });
    assert.equal(read.contents[0].uri, doc);
    assert.ok(read.contents[0].text.length > 0);
    const graph = await client.readResource({ uri: 'memory://knowledge-graph' });
    assert.ok(Array.isArray(JSON.parse(graph.contents[0].text).entities));

    const templates = await listAll((p) => client.listResourceTemplates(p), 'resourceTemplates');
    const tmpl = templates.map((t) => t.uriTemplate);
    assert.ok(tmpl.includes('demo://resource/dynamic/text/{resourceId}'), `templates: ${tmpl}`);
    const dyn = await client.readResource({ uri: 'demo://resource/dynamic/text/3' });
    assert.equal(dyn.contents[0].uri, 'demo://resource/dynamic/text/3');
    assert.match(dyn.contents[0].text, /3/);

    const prompts = await listAll((p) => client.listPrompts(p), 'prompts');
    const pnames = prompts.map((p) => p.name);
    assert.ok(pnames.includes('everything__simple-prompt') && pnames.includes('everything__args-prompt'),
      `prompts: ${pnames}`);
    assert.ok(pnames.every((n) => n.startsWith('everything__')), 'prompts carry the prefix');
    const simple = await client.getPrompt({ name: 'everything__simple-prompt' });
    assert.equal(simple.messages[0].role, 'user');
    assert.ok(simple.messages[0].content.text.length > 0);
    const args = await client.getPrompt({ name: 'everything__args-prompt', arguments: { city: 'Lisbon' } });
    assert.match(JSON.stringify(args.messages), /Lisbon/);
  });
});

for (const kind of ['ws', 'sse']) {
  test(`over ${kind === 'ws' ? 'WebSocket' : 'legacy HTTP+SSE'}: list, call both backends, progress`, { timeout: 30000 }, async () => {
    await withClient(async (client) => {
      const names = (await listAll((p) => client.listTools(p), 'tools')).map((t) => t.name);
      assert.ok(names.includes('everything__echo') && names.includes('memory__search_nodes'), `${names}`);
      const e = await client.callTool({ name: 'everything__echo', arguments: { message: kind } });
      assert.equal(text(e), `Echo: ${kind}`);
      const s = await client.callTool({ name: 'memory__search_nodes', arguments: { query: 'nexus-entity-' } });
      assert.ok(Array.isArray(s.structuredContent.entities));
      const seen = [];
      await client.callTool({ name: LONG_OP, arguments: { duration: 0.6, steps: 3 } }, undefined,
        { onprogress: (p) => seen.push([p.progress, p.total]) });
      // The SDK runs notification handlers a microtask late but responses at once, so when the
      // last progress and the response arrive in one read (EventSource, WebSocket) it may drop
      // that progress: the steps 200 ms before the end must all be there.
      assert.deepEqual(seen.slice(0, 2), [[1, 3], [2, 3]], JSON.stringify(seen));
      assert.ok(seen.length <= 3 && (seen.length === 2 || seen[2][0] === 3), JSON.stringify(seen));
    }, kind);
  });
}

test('nexus stops its backends and exits cleanly', { timeout: 30000 }, async () => {
  const pids = Object.values(await backends()).flatMap((b) =>
    b.instances ? b.instances.map((x) => x.pid) : [b.pid]).filter((p) => p > 0);
  assert.equal(pids.length, 2, `one process per backend: ${pids}`);
  const stopped = await nx.stopAndAssertClean();
  assert.ok(stopped.ms < 8000, `stopped after ${stopped.ms} ms: no client left, so no drain wait`);
  nx = null;
  for (const pid of pids) {
    let alive = true;
    try { process.kill(pid, 0); } catch { alive = false; }
    assert.equal(alive, false, `backend process ${pid} outlived nexus`);
  }
  dir.remove();
});
