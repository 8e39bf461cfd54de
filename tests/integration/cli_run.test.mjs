// `nexus run` and `nexus workflows`: the workflow commands of the CLI channel, against a real
// nexus with workflows on the debug tools (debug_echo, debug_sleep). A run prints its result
// (or with --json the whole record), --no-wait prints an id the REST API knows, and every way
// to fail has its own exit status: 1 the workflow failed (the step named on stderr), 2 bad
// parameters, 3 no such workflow or not offered to the CLI (while REST may run it), 4 no
// server, 5 --timeout (the execution is cancelled), 130 Ctrl-C (cancelled too). A stand-in
// server speaking the /events contract checks the live progress lines and the fallback to
// polling, whichever of the two the real server offers today. No sanitizer report anywhere.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import {
  nexusBin, nexusEnv, assertNoSanitizerReport, startNexus, request, tempDir, waitFor, HOST,
} from './lib/nexus.mjs';

const CONFIG = `
debug_routes: true
workflows:
  - name: hello
    description: Says hello
    input: {type: object, properties: {who: {type: string}}, required: [who]}
    steps:
      - {id: greet, call: debug_echo, with: {message: "hello \${{ input.who }}"}}
    output: {text: "\${{ steps.greet.result }}"}
  - name: slow
    description: Sleeps
    steps:
      - {id: nap, call: debug_sleep, with: {ms: 20000}}
  - name: broken
    steps:
      - {id: first, call: debug_echo, with: {message: "fine"}}
      - {id: second, call: debug_echo, with: {}}
  - name: apionly
    channels: [api]
    steps:
      - {id: greet, call: debug_echo, with: {message: "hi"}}
  - name: clionly
    channels: [cli]
    steps:
      - {id: greet, call: debug_echo, with: {message: "hi from the cli"}}
`;

let nx;
let url;
const tmp = tempDir();

before(async () => {
  writeFileSync(tmp.path('nexus.yaml'), CONFIG);
  nx = await startNexus({ config: tmp.path('nexus.yaml'), shards: 2 });
  url = `http://${HOST}:${nx.restPort}`;
});

after(async () => {
  if (nx) await nx.stopAndAssertClean();
  tmp.remove();
});

/** Spawns `nexus <args>` against <server> (default: the test's nexus via --server). */
function spawnCli(args, { server = url, env = {} } = {}) {
  const argv = server ? [...args, '--server', server] : args;
  const child = spawn(nexusBin(), argv, { env: nexusEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  const out = { stdout: '', stderr: '' };
  child.stdout.setEncoding('utf8').on('data', (d) => (out.stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d) => (out.stderr += d));
  return { child, out };
}

/** Waits for the spawned command; {code, signal, stdout, stderr, ms}. Killed after timeoutMs. */
function finish({ child, out }, { timeoutMs = 20000, what = 'nexus' } = {}) {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    let timedOut = false;
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
      try {
        assertNoSanitizerReport(out.stderr, what);
        assert.equal(timedOut, false, `${what} did not end:\n${out.stderr}`);
      } catch (e) {
        reject(e);
        return;
      }
      resolve({ code, signal, stdout: out.stdout, stderr: out.stderr, ms: Date.now() - t0 });
    });
  });
}

const cli = (args, opts = {}) => finish(spawnCli(args, opts), { ...opts, what: args.join(' ') });

async function execution(id, port = nx.restPort) {
  const r = await request(port, { path: `/api/executions/${id}` });
  return { status: r.status, data: r.status === 200 ? r.json() : null };
}

/** A port nothing listens on. */
async function closedPort() {
  const s = net.createServer();
  await new Promise((r) => s.listen(0, HOST, r));
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}

test('nexus workflows prints a table of name, channels, steps and description', async () => {
  const r = await cli(['workflows']);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  assert.match(lines[0], /^NAME\s+CHANNELS\s+STEPS\s+DESCRIPTION$/);
  assert.match(r.stdout, /^hello\s+api,mcp,cli\s+1\s+Says hello$/m);
  assert.match(r.stdout, /^broken\s+api,mcp,cli\s+2\s*$/m);
  assert.match(r.stdout, /^apionly\s+api\s+1\s*$/m);
  assert.match(r.stdout, /^clionly\s+cli\s+1\s*$/m);
  assert.equal(lines.length, 6, r.stdout);
});

test('nexus workflows --json prints the server\'s list', async () => {
  const r = await cli(['workflows', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const body = JSON.parse(r.stdout);
  assert.equal(body.count, 5);
  const hello = body.workflows.find((w) => w.name === 'hello');
  assert.deepEqual(hello.channels, ['api', 'mcp', 'cli']);
  assert.equal(hello.steps[0].id, 'greet');
  assert.deepEqual(hello.input_schema.required, ['who']);
});

test('nexus run prints the result as JSON and exits 0, quietly when stderr is no terminal',
  async () => {
    const r = await cli(['run', 'hello', '--parameters', '{"who":"x"}']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { text: 'hello x' });
    assert.equal(r.stderr, '');
  });

test('nexus run --json prints the execution record with its steps; NEXUS_URL names the server',
  async () => {
    const r = await cli(['run', 'hello', '--json', '--parameters={"who":"y"}'],
      { server: null, env: { NEXUS_URL: url } });
    assert.equal(r.code, 0, r.stderr);
    const rec = JSON.parse(r.stdout);
    assert.equal(rec.workflow, 'hello');
    assert.equal(rec.status, 'succeeded');
    assert.deepEqual(rec.result, { text: 'hello y' });
    assert.deepEqual(rec.inputs, { who: 'y' });
    assert.equal(rec.steps.length, 1);
    assert.equal(rec.steps[0].id, 'greet');
    assert.equal(rec.steps[0].status, 'succeeded');
    assert.match(rec.id, /^x-/);
    assert.equal((await execution(rec.id)).data.status, 'succeeded');
  });

test('--parameters @file reads the inputs from a file; -v shows a line per step', async () => {
  writeFileSync(tmp.path('params.json'), '{"who": "file"}');
  const r = await cli(['run', 'hello', '--parameters', `@${tmp.path('params.json')}`, '-v']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), { text: 'hello file' });
  assert.match(r.stderr, /^✓ greet\s+\d+ ms$/m);
});

test('--no-wait prints an execution id that GET /api/executions/{id} knows', async () => {
  const r = await cli(['run', 'hello', '--no-wait', '--parameters', '{"who":"later"}']);
  assert.equal(r.code, 0, r.stderr);
  const id = r.stdout.trim();
  assert.match(id, /^x-[0-9a-f]+$/);
  const rec = await waitFor('the execution to end', async () => {
    const e = await execution(id);
    assert.equal(e.status, 200);
    return e.data.status !== 'running' && e.data;
  });
  assert.equal(rec.status, 'succeeded');
  assert.deepEqual(rec.result, { text: 'hello later' });

  const j = await cli(['run', 'hello', '--no-wait', '--json', '--parameters', '{"who":"j"}']);
  assert.equal(j.code, 0, j.stderr);
  const body = JSON.parse(j.stdout);
  assert.match(body.id, /^x-/);
  assert.equal(body.links.self, `/api/executions/${body.id}`);
  assert.equal((await execution(body.id)).status, 200);
});

test('parameters that are not a JSON object, or do not fit the schema, exit 2', async () => {
  const before = (await request(nx.restPort, { path: '/api/executions' })).json().count;
  for (const p of ['{"who":', '[1]', '"x"', `@${tmp.path('missing.json')}`]) {
    const r = await cli(['run', 'hello', '--parameters', p]);
    assert.equal(r.code, 2, `--parameters ${p}: ${r.stderr}`);
    assert.match(r.stderr, /--parameters|missing\.json/);
    assert.equal(r.stdout, '');
  }
  writeFileSync(tmp.path('bad.json'), '{"who": }');
  const f = await cli(['run', 'hello', '--parameters', `@${tmp.path('bad.json')}`]);
  assert.equal(f.code, 2, f.stderr);
  assert.match(f.stderr, /not valid JSON/);
  // Checked locally: nothing reached the server.
  assert.equal((await request(nx.restPort, { path: '/api/executions' })).json().count, before);

  const s = await cli(['run', 'hello', '--parameters', '{"who": 5}']);
  assert.equal(s.code, 2, s.stderr);
  assert.match(s.stderr, /input schema/);
  assert.match(s.stderr, /\/who/);

  const u = await cli(['run']);
  assert.equal(u.code, 2);
  const o = await cli(['run', 'hello', '--bogus']);
  assert.equal(o.code, 2);
  assert.match(o.stderr, /--bogus/);
});

test('an unknown workflow exits 3', async () => {
  const r = await cli(['run', 'no-such-flow']);
  assert.equal(r.code, 3, r.stderr);
  assert.match(r.stderr, /no-such-flow/);
  assert.match(r.stderr, /no such workflow/);
});

test('a failing workflow exits 1 and names the failing step', async () => {
  const r = await cli(['run', 'broken', '-v']);
  assert.equal(r.code, 1, r.stderr);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /^✓ first\s+\d+ ms$/m);
  assert.match(r.stderr, /^✗ second\s+failed: .*message/m);
  assert.match(r.stderr, /workflow broken failed at step second: .*message.*\(execution x-/);

  const j = await cli(['run', 'broken', '--json']);
  assert.equal(j.code, 1);
  const rec = JSON.parse(j.stdout);
  assert.equal(rec.status, 'failed');
  assert.equal(rec.steps.find((s) => s.id === 'second').status, 'failed');
  assert.match(j.stderr, /failed at step second/);
});

test('a server that cannot be reached exits 4', async () => {
  const port = await closedPort();
  const r = await cli(['run', 'hello', '--parameters', '{"who":"x"}'],
    { server: `http://${HOST}:${port}` });
  assert.equal(r.code, 4, r.stderr);
  assert.match(r.stderr, /cannot reach the server/);
  const w = await cli(['workflows'], { server: `http://${HOST}:${port}` });
  assert.equal(w.code, 4, w.stderr);
  const bad = await cli(['workflows'], { server: 'ftp://x' });
  assert.equal(bad.code, 2, bad.stderr);
});

test('--timeout cancels the execution and exits 5', async () => {
  const r = await cli(['run', 'slow', '--timeout', '400ms']);
  assert.equal(r.code, 5, r.stderr);
  assert.ok(r.ms < 5000, `took ${r.ms} ms`);
  const id = /execution (x-[0-9a-f]+)/.exec(r.stderr)?.[1];
  assert.ok(id, r.stderr);
  assert.match(r.stderr, /timed out/);
  const rec = await waitFor('the execution to end', async () => {
    const e = await execution(id);
    return e.data.status !== 'running' && e.data;
  });
  assert.equal(rec.status, 'cancelled');
});

test('a workflow limited to channels [api] is refused to nexus run (3) and runs over REST',
  async () => {
    const r = await cli(['run', 'apionly']);
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /may not be started from this channel/);

    const body = JSON.stringify({ workflow: 'apionly', wait: true });
    const rest = await request(nx.restPort,
      { method: 'POST', path: '/api/executions', body, headers: { 'content-type': 'application/json' } });
    assert.equal(rest.status, 200, rest.text);
    assert.equal(rest.json().status, 'succeeded');
    const sync = await request(nx.restPort, { method: 'POST', path: '/api/workflows/apionly' });
    assert.equal(sync.status, 200, sync.text);

    // The header is what tells the CLI apart, on both routes.
    const asCli = await request(nx.restPort, {
      method: 'POST', path: '/api/workflows/apionly', headers: { 'X-Nexus-Channel': 'cli' },
    });
    assert.equal(asCli.status, 404, asCli.text);
    const onlyCli = await request(nx.restPort, { method: 'POST', path: '/api/workflows/clionly' });
    assert.equal(onlyCli.status, 404, onlyCli.text);
    const c = await cli(['run', 'clionly']);
    assert.equal(c.code, 0, c.stderr);
    assert.equal(JSON.parse(c.stdout), 'hi from the cli');
  });

test('Ctrl-C while following cancels the execution and exits 130', async () => {
  const p = spawnCli(['run', 'slow', '-v']);
  await waitFor('the run to start', () => /execution (x-[0-9a-f]+)/.test(p.out.stderr));
  const id = /execution (x-[0-9a-f]+)/.exec(p.out.stderr)[1];
  await new Promise((r) => setTimeout(r, 300));
  const t0 = Date.now();
  p.child.kill('SIGINT');
  const r = await finish(p, { what: 'nexus run slow' });
  assert.equal(r.code, 130, r.stderr);
  assert.equal(r.signal, null);
  assert.ok(Date.now() - t0 < 3000, `took ${Date.now() - t0} ms after SIGINT`);
  assert.match(r.stderr, /interrupted; cancelled execution/);
  const rec = await waitFor('the execution to end', async () => {
    const e = await execution(id);
    return e.data.status !== 'running' && e.data;
  });
  assert.equal(rec.status, 'cancelled');
});

// ---- a stand-in server speaking the REST and /events contract ----

/** Serves one execution of a two-step workflow "pipe": with <events>, GET /events streams its
 *  steps (fetch, then save from the cache) and the end; without, /events is 404 and the record
 *  moves on with each GET. Records every request's X-Nexus-Channel header. */
async function startStandIn({ events }) {
  const id = 'x-0123456789abcdef01234567';
  const seen = { channels: [], gets: 0, deletes: 0, eventsAsked: 0 };
  const steps = [
    { id: 'fetch', kind: 'call', status: 'pending', attempts: 0, cached: false, duration_ms: 0, runs: 0 },
    { id: 'save', kind: 'call', status: 'pending', attempts: 0, cached: false, duration_ms: 0, runs: 0 },
  ];
  const done = { fetch: { status: 'succeeded', attempts: 1, cached: false, duration_ms: 12, runs: 1 },
    save: { status: 'succeeded', attempts: 0, cached: true, duration_ms: 0, runs: 1 } };
  const rec = { id, workflow: 'pipe', status: 'running', started_at: new Date().toISOString(),
    duration_ms: 0, inputs: {}, steps };
  const finishStep = (i) => Object.assign(steps[i], done[steps[i].id]);
  const end = () => {
    rec.status = 'succeeded';
    rec.result = { saved: true };
  };
  const server = http.createServer((req, res) => {
    seen.channels.push(req.headers['x-nexus-channel']);
    const json = (status, body) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.method === 'POST' && req.url === '/api/executions') {
      req.resume();
      req.on('end', () => json(202, { id, workflow: 'pipe', status: 'running',
        links: { self: `/api/executions/${id}`, events: `/events?execution=${id}` } }));
      return;
    }
    if (req.method === 'GET' && req.url === `/api/executions/${id}`) {
      seen.gets++;
      if (!events && seen.gets === 2) finishStep(0);
      if (!events && seen.gets === 3) {
        finishStep(1);
        end();
      }
      json(200, rec);
      return;
    }
    if (req.method === 'GET' && req.url === `/events?execution=${id}`) {
      seen.eventsAsked++;
      if (!events) {
        json(404, { error: { code: 404, message: 'no route' } });
        return;
      }
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' });
      res.write(': hello\n\n');
      let n = 0;
      const send = (type, data) => res.write(`event: ${type}\nid: ${++n}\ndata: ${JSON.stringify(
        { execution: id, workflow: 'pipe', ...data })}\n\n`);
      setTimeout(() => {
        send('step.started', { step: 'fetch', kind: 'call' });
        finishStep(0);
        send('step.finished', { step: 'fetch', kind: 'call', ...done.fetch });
        // Another execution's events on the same stream are not ours.
        res.write(`event: step.finished\ndata: ${JSON.stringify({ execution: 'x-other',
          step: 'intruder', status: 'failed', error: { message: 'not mine' } })}\n\n`);
      }, 150);
      setTimeout(() => {
        finishStep(1);
        // Split mid-event: the parser must join the pieces.
        const text = `event: step.finished\ndata: ${JSON.stringify(
          { execution: id, step: 'save', kind: 'call', ...done.save })}\n\n`;
        res.write(text.slice(0, 17));
        setTimeout(() => {
          res.write(text.slice(17));
          end();
          send('execution.finished', { status: 'succeeded', result: rec.result });
        }, 50);
      }, 300);
      req.on('close', () => res.end());
      return;
    }
    if (req.method === 'DELETE') seen.deletes++;
    json(404, { error: { code: 404, message: 'no route' } });
  });
  await new Promise((r) => server.listen(0, HOST, r));
  return {
    url: `http://${HOST}:${server.address().port}`,
    seen,
    close: () => new Promise((r) => {
      server.closeAllConnections();
      server.close(r);
    }),
  };
}

test('with /events, each finished step shows once as it happens (✓, ↺ cached)', async () => {
  const s = await startStandIn({ events: true });
  try {
    const r = await cli(['run', 'pipe', '-v'], { server: s.url });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { saved: true });
    assert.match(r.stderr, /following \/events\?execution=/);
    assert.doesNotMatch(r.stderr, /polling/);
    assert.match(r.stderr, /^✓ fetch\s+12 ms$/m);
    assert.match(r.stderr, /^↺ save\s+cached$/m);
    assert.equal(r.stderr.match(/fetch/g).length, 1, r.stderr);
    assert.doesNotMatch(r.stderr, /intruder/);
    assert.equal(s.seen.eventsAsked, 1);
    assert.ok(s.seen.gets <= 3, `${s.seen.gets} record reads`);
    assert.ok(s.seen.channels.every((c) => c === 'cli'), `X-Nexus-Channel: ${s.seen.channels}`);
    assert.equal(s.seen.deletes, 0);
  } finally {
    await s.close();
  }
});

test('without /events (404), the run is followed by polling the record', async () => {
  const s = await startStandIn({ events: false });
  try {
    const r = await cli(['run', 'pipe', '-v', '--json'], { server: s.url });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).status, 'succeeded');
    assert.match(r.stderr, /answered HTTP 404\); polling/);
    assert.match(r.stderr, /^✓ fetch\s+12 ms$/m);
    assert.match(r.stderr, /^↺ save\s+cached$/m);
    assert.equal(s.seen.gets, 3);
    assert.ok(r.ms >= 350, `three reads 200 ms apart took ${r.ms} ms`);
  } finally {
    await s.close();
  }
});
