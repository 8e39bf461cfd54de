// nxload (bench/nxload.c), the load generator of the benches: its paired mode (--alt-path,
// --alt-body-file), in which every connection alternates two requests and reports their
// latencies apart, and its --gap between an answer and the next request, are what
// bench/pipeline.sh reads its fan-out overhead with. Checked against a small HTTP server whose
// two paths answer at different speeds.
//
// The binary: $NXLOAD_BIN, else `nxload` next to the nexus binary ($NEXUS_BIN or build-asan).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { dirname, join } from 'node:path';
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { nexusBin, nexusEnv, HOST } from './lib/nexus.mjs';

const NXLOAD = process.env.NXLOAD_BIN || join(dirname(nexusBin()), 'nxload');
const SLOW_MS = 15;

/** Runs nxload with <args>; resolves {code, stdout, stderr}. */
function runNxload(args, timeoutMs = 20000) {
  return new Promise((resolve, reject) => {
    const child = spawn(NXLOAD, args, { env: nexusEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** A server on a free port: /fast answers at once, /slow after SLOW_MS; it notes every
 *  request's path and body in <seen>. Resolves {port, seen, close}. */
async function startServer() {
  const seen = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => { body += d; });
    req.on('end', () => {
      seen.push({ path: req.url, body, at: performance.now() });
      const answer = () => { res.writeHead(200, { 'Content-Length': 2 }); res.end('ok'); };
      if (req.url === '/slow') setTimeout(answer, SLOW_MS);
      else answer();
    });
  });
  await new Promise((r) => server.listen(0, HOST, r));
  return { port: server.address().port, seen, close: () => new Promise((r) => server.close(r)) };
}

test('--alt-path alternates two requests on each connection and reports them apart', async () => {
  const srv = await startServer();
  const dir = mkdtempSync(join(tmpdir(), 'nxload-'));
  try {
    writeFileSync(join(dir, 'a.json'), '{"which":"a"}');
    writeFileSync(join(dir, 'b.json'), '{"which":"b"}');
    const r = await runNxload(['-c', '1', '-d', '1s', '--json', '--body-file', join(dir, 'a.json'),
      '--alt-path', '/slow', '--alt-body-file', join(dir, 'b.json'),
      `http://${HOST}:${srv.port}/fast`]);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.ok(out.requests >= 10, `main requests: ${out.requests}`);
    assert.ok(Math.abs(out.requests - out.alt.requests) <= 1,
      `the two alternate: ${out.requests} vs ${out.alt.requests}`);
    assert.ok(out.latency_us.p50 < SLOW_MS * 1000,
      `the main request is the fast one: p50 ${out.latency_us.p50} us`);
    assert.ok(out.alt.p50 >= SLOW_MS * 1000,
      `the alternate is the slow one: p50 ${out.alt.p50} us`);
    assert.ok(out.alt.mean >= SLOW_MS * 1000 && out.latency_us.mean < out.alt.mean);
    // On the wire: strictly alternating, each path with its own body.
    assert.ok(srv.seen.length >= 20);
    srv.seen.forEach((s, i) => {
      const want = i % 2 === 0 ? { path: '/fast', body: '{"which":"a"}' }
        : { path: '/slow', body: '{"which":"b"}' };
      assert.deepEqual({ path: s.path, body: s.body }, want, `request ${i}`);
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await srv.close();
  }
});

test('--alt-path without --alt-body-file sends the same body to both paths', async () => {
  const srv = await startServer();
  try {
    const r = await runNxload(['-c', '2', '-n', '20', '--json', '-b', 'same',
      '--alt-path', '/other', `http://${HOST}:${srv.port}/fast`]);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.equal(out.requests + out.alt.requests, 20);
    assert.ok(srv.seen.every((s) => s.body === 'same'));
    assert.equal(srv.seen.filter((s) => s.path === '/other').length, out.alt.requests);
  } finally {
    await srv.close();
  }
});

test('--gap makes each connection wait after every answer before its next request', async () => {
  const srv = await startServer();
  try {
    const GAP_MS = 20;
    const r = await runNxload(['-c', '1', '-d', '1s', '--json', '--gap', `${GAP_MS}ms`,
      `http://${HOST}:${srv.port}/fast`]);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    // Without the gap an instant answer makes thousands of requests a second.
    assert.ok(out.requests >= 10 && out.requests <= 1000 / GAP_MS + 2,
      `requests in 1 s with a ${GAP_MS} ms gap: ${out.requests}`);
    for (let i = 1; i < srv.seen.length; i++) {
      const apart = srv.seen[i].at - srv.seen[i - 1].at;
      assert.ok(apart >= GAP_MS - 1, `requests ${i - 1} and ${i} came ${apart.toFixed(2)} ms apart`);
    }
  } finally {
    await srv.close();
  }
});

test('--alt-path is refused where requests cannot alternate one by one', async () => {
  for (const extra of [['-p', '2'], ['-R', '100']]) {
    const r = await runNxload(['-c', '1', '-d', '1s', ...extra, '--alt-path', '/slow',
      `http://${HOST}:1/fast`]);
    assert.equal(r.code, 2, `${extra.join(' ')}: exit ${r.code}`);
    assert.match(r.stderr, /--alt-path\/--alt-body-file need a closed loop/);
  }
  const open = await runNxload(['-R', '100', '--gap', '1ms', `http://${HOST}:1/fast`]);
  assert.equal(open.code, 2);
  assert.match(open.stderr, /--gap is for the closed loop/);
  const bad = await runNxload(['--alt-path', 'no-slash', `http://${HOST}:1/fast`]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--alt-path: expected a path starting with \//);
});
