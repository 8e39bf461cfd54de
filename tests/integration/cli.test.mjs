// The command line: --version, --help, bad flags, check-config, environment errors, and the
// JSON log format of a running server.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import {
  runNexus, tempDir, withNexus, startNexus, assertCleanExit, assertNoSanitizerReport, request,
} from './lib/nexus.mjs';

const tmp = tempDir();

test('--version prints "nexus X.Y.Z" and exits 0', async () => {
  const r = await runNexus(['--version']);
  assertNoSanitizerReport(r.stderr);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^nexus \d+\.\d+\.\d+\n$/);
});

test('--help prints usage and exits 0', async () => {
  const r = await runNexus(['--help']);
  assertNoSanitizerReport(r.stderr);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /Usage/);
  for (const flag of ['--config', '--port', '--shards', '--set', 'check-config', '--version']) {
    assert.ok(r.stdout.includes(flag), `--help does not mention ${flag}`);
  }
});

test('an unknown flag exits 2 and names the flag', async () => {
  const r = await runNexus(['--port', '0', '--mcp-port', '0', '--frobnicate']);
  assertNoSanitizerReport(r.stderr);
  assert.equal(r.timedOut, false, 'nexus started serving instead of rejecting the flag');
  assert.equal(r.code, 2, `exit code ${r.code}; stderr: ${r.stderr}`);
  assert.match(r.stderr, /--frobnicate/);
});

test('a flag without its value exits 2', async () => {
  const r = await runNexus(['--port']);
  assertNoSanitizerReport(r.stderr);
  assert.equal(r.timedOut, false);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /--port/);
});

test('--set with an unknown key exits 2 and names the key', async () => {
  const r = await runNexus(['--port', '0', '--mcp-port', '0', '--set', 'http.max_bodyy=1KiB']);
  assertNoSanitizerReport(r.stderr);
  assert.equal(r.timedOut, false, 'nexus started serving with an unknown --set key');
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /http\.max_bodyy/);
});

test('--set with a bad size value exits 2 and names the key', async () => {
  const r = await runNexus(['--port', '0', '--mcp-port', '0', '--set', 'http.max_body=lots']);
  assertNoSanitizerReport(r.stderr);
  assert.equal(r.timedOut, false, 'nexus started serving with http.max_body=lots');
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /http\.max_body/);
});

test('check-config accepts a good file: exit 0, "configuration OK"', async () => {
  const file = tmp.path('good.yaml');
  writeFileSync(file, [
    'server:',
    '  host: 127.0.0.1',
    '  port: 8080',
    '  shards: 2',
    'log:',
    '  level: info',
    'http:',
    '  max_body: 1KiB',
    '  header_timeout: 250ms',
    '  body_timeout: 2s',
    'shutdown:',
    '  grace: 5s',
    '',
  ].join('\n'));
  const r = await runNexus(['check-config', file]);
  assertNoSanitizerReport(r.stderr);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout + r.stderr, /configuration OK/);
});

test('check-config accepts the shipped examples/nexus.yaml', async () => {
  const file = new URL('../../examples/nexus.yaml', import.meta.url).pathname;
  const r = await runNexus(['check-config', file]);
  assertNoSanitizerReport(r.stderr);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout + r.stderr, /configuration OK/);
});

test('check-config rejects an unknown key: exit 2, file:line and the key', async () => {
  const file = tmp.path('bad.yaml');
  writeFileSync(file, 'server:\n  prot: 80\n');
  const r = await runNexus(['check-config', file]);
  assertNoSanitizerReport(r.stderr);
  assert.equal(r.code, 2, `exit ${r.code}; stdout ${r.stdout}; stderr ${r.stderr}`);
  assert.ok(r.stderr.includes('bad.yaml:2'), `stderr lacks "bad.yaml:2": ${r.stderr}`);
  assert.ok(r.stderr.includes('server.prot'), `stderr lacks "server.prot": ${r.stderr}`);
  assert.match(r.stderr, /unknown key/);
  assert.doesNotMatch(r.stdout, /configuration OK/);
});

test('check-config rejects a bad value: exit 2, file:line and the key', async () => {
  const file = tmp.path('badvalue.yaml');
  writeFileSync(file, 'server:\n  port: 8000\nhttp:\n  max_body: lots\n');
  const r = await runNexus(['check-config', file]);
  assertNoSanitizerReport(r.stderr);
  assert.equal(r.code, 2, r.stderr);
  assert.ok(r.stderr.includes('badvalue.yaml:4'), `stderr lacks "badvalue.yaml:4": ${r.stderr}`);
  assert.ok(r.stderr.includes('http.max_body'), r.stderr);
});

test('check-config on a missing file exits 2', async () => {
  const r = await runNexus(['check-config', tmp.path('does-not-exist.yaml')]);
  assertNoSanitizerReport(r.stderr);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /does-not-exist\.yaml/);
});

test('NEXUS_PORT=notanumber exits 2 naming NEXUS_PORT', async () => {
  const r = await runNexus(['--mcp-port', '0'], { env: { NEXUS_PORT: 'notanumber' }, timeoutMs: 5000 });
  assertNoSanitizerReport(r.stderr);
  assert.equal(r.timedOut, false, 'nexus started serving with NEXUS_PORT=notanumber');
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /NEXUS_PORT/);
});

test('a flag overrides the environment (NEXUS_SHARDS=1 --shards 2)', async () => {
  await withNexus({ shards: 2, env: { NEXUS_SHARDS: '1' } }, async (nx) => {
    const r = await request(nx.restPort, { path: '/health' });
    assert.equal(JSON.parse(r.text).shards, 2);
  });
});

test('--set parses durations and sizes (see /status config)', async () => {
  await withNexus({ shards: 1, set: { 'http.max_body': '1KiB', 'http.header_timeout': '250ms', 'shutdown.grace': '2s' } }, async (nx) => {
    const st = JSON.parse((await request(nx.restPort, { path: '/status' })).text);
    assert.equal(st.config.http.max_body, 1024);
    assert.ok([250, '250ms'].includes(st.config.http.header_timeout), JSON.stringify(st.config.http));
    assert.ok([2000, '2s'].includes(st.config.shutdown.grace), JSON.stringify(st.config.shutdown));
  });
});

test('the environment sets keys: NEXUS_HTTP__MAX_BODY applies', async () => {
  await withNexus({ debugRoutes: true, env: { NEXUS_HTTP__MAX_BODY: '16B' } }, async (nx) => {
    const small = await request(nx.restPort, { method: 'POST', path: '/debug/echo', body: 'x'.repeat(16) });
    assert.equal(small.status, 200);
    const big = await request(nx.restPort, { method: 'POST', path: '/debug/echo', body: 'x'.repeat(17) });
    assert.equal(big.status, 413);
  });
});

test('logs are JSON lines on stderr with time, level and msg', async () => {
  const nx = await startNexus({ shards: 2 });
  const r = await nx.stop();
  assertCleanExit(r);
  const stderr = r.stderr;
  const lines = stderr.split('\n').filter((l) => l.trim() !== '');
  assert.ok(lines.length >= 1, 'no log lines');
  for (const l of lines) {
    let j;
    try {
      j = JSON.parse(l);
    } catch {
      assert.fail(`log line is not JSON: ${l}`);
    }
    assert.match(j.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/, l);
    assert.ok(['debug', 'info', 'warn', 'error'].includes(j.level), l);
    assert.equal(typeof j.msg, 'string', l);
  }
  const start = lines.map((l) => JSON.parse(l)).find((j) => /listening: rest/.test(j.msg));
  assert.ok(start, 'no startup line');
  assert.equal(start.level, 'info');
  assert.match(start.msg, /^nexus \d+\.\d+\.\d+ listening: rest 127\.0\.0\.1:\d+, mcp serving \(127\.0\.0\.1:\d+\); 2 shards, ring \S+/);
});
