// Soak of the gateway's failure path: nexus (2 shards) in front of one nxmock stdio backend
// takes SOAK_MS of concurrent tools/call load from LOOPS client loops (each its own MCP session
// over Streamable HTTP, keep-alive), while the backend process is killed with SIGKILL every
// 2-3 s and nexus restarts it. Every request must get a well-formed JSON-RPC answer (a result
// with content, or an error object with an integer code and a string message) before its
// deadline: none hangs (each fetch carries an AbortSignal past the worst legitimate answer
// time), none is lost (sent == answered). Calls succeed again after every restart, /health
// counts one restart per kill and consistent calls/failures, nothing stays in flight, the RSS of
// nexus does not grow without bound, and nexus exits cleanly on SIGTERM.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { startNexus, nexusBin, getJson, sleep, tempDir, HOST } from './lib/nexus.mjs';
import { openSession, ACCEPT, PV, sseEvents } from './lib/mcp.mjs';

const SOAK_MS = 30000; // load duration
const LOOPS = 16; // concurrent client loops, one session and one request in flight each
const KILL_MIN_MS = 2000; // the backend is killed every KILL_MIN_MS..KILL_MAX_MS
const KILL_MAX_MS = 3000;
const LAST_KILL_BEFORE_END_MS = 3000; // room to see the backend serve after the last kill
const CALL_MS = 500; // per-try timeout (timeouts.call)
const DEADLINE_MS = 2000; // overall deadline of a call, retries included (timeouts.deadline)
// nexus answers every call by its deadline (a timer per call ends whatever try is under way).
// MARGIN_MS covers the sanitizer build and a loaded 2-CPU machine; a request still open after
// ANSWER_BOUND_MS is a hang, and its fetch is aborted so that the test sees it as one.
const MARGIN_MS = 1500;
const ANSWER_BOUND_MS = DEADLINE_MS + MARGIN_MS;
// Memory. A sanitizer build parks freed blocks in a quarantine (256 MiB by default) before it
// reuses them, so under load its RSS climbs by the quarantine size whether or not anything
// leaks: this test gives nexus a small one. The quarantine and the allocator's pools fill
// within the first seconds; after RSS_EARLY_MS the RSS should stay flat. RSS_GROWTH_KIB is many
// times the growth seen after that point (a few MiB: the quarantine filling up, allocator
// noise) and far below what a per-request leak adds: over the ~10k requests of the last 25 s,
// state kept at ~3 KiB a request (a call record with its arguments, a session, a catalog
// copy) exceeds it. Smaller leaks of unreachable memory are LeakSanitizer's job at exit.
const ASAN_QUARANTINE_MB = 4;
const RSS_EARLY_MS = 5000;
const RSS_GROWTH_KIB = 32 * 1024;

const NXMOCK = path.join(path.dirname(nexusBin()), 'nxmock');

let nx = null;
after(async () => {
  if (nx) await nx.kill();
});

function rssKib(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : 0;
}

/** The JSON-RPC message of a POST answer (JSON body or SSE body), or null if there is none. */
function rpcMessage(contentType, text, id) {
  if (/^application\/json/i.test(contentType)) return JSON.parse(text);
  if (/^text\/event-stream/i.test(contentType)) {
    return sseEvents(text).filter((e) => e.data.trim() !== '').map((e) => JSON.parse(e.data))
      .find((m) => m.id === id && ('result' in m || 'error' in m)) ?? null;
  }
  return null;
}

/** Why msg is not a well-formed answer to request id, or '' when it is. */
function malformed(msg, id) {
  if (msg === null || typeof msg !== 'object') return 'no JSON-RPC message';
  if (msg.jsonrpc !== '2.0') return 'jsonrpc is not "2.0"';
  if (msg.id !== id) return `id ${JSON.stringify(msg.id)} instead of ${id}`;
  if ('result' in msg === 'error' in msg) return 'not exactly one of result and error';
  if ('error' in msg) {
    const e = msg.error;
    if (e === null || typeof e !== 'object') return 'error is not an object';
    if (!Number.isInteger(e.code)) return 'error.code is not an integer';
    if (typeof e.message !== 'string') return 'error.message is not a string';
    return '';
  }
  if (!Array.isArray(msg.result?.content)) return 'result without content[]';
  return '';
}

test('load through backend kills and restarts: every request answered, well-formed, in time', { timeout: 90000 }, async (t) => {
  const dir = tempDir();
  const config = dir.path('soak.yaml');
  fs.writeFileSync(config, [
    'servers:',
    '  - name: mock',
    '    transport: stdio',
    `    command: ${JSON.stringify(NXMOCK)}`,
    '    args: ["--stdio", "--log-level", "warn"]',
    '    restart: {base: 50ms, cap: 200ms}',
    `    timeouts: {call: ${CALL_MS}ms, deadline: ${DEADLINE_MS}ms}`,
    '    retry: {attempts: 5, base: 50ms, cap: 300ms}',
    // A short open state, so that the breaker (which a kill can trip) lets calls through
    // again soon after each restart.
    '    breaker: {open_for: 300ms}',
    '',
  ].join('\n'));
  const asan = process.env.ASAN_OPTIONS ??
    'detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1';
  nx = await startNexus({
    shards: 2, config, env: { ASAN_OPTIONS: `${asan}:quarantine_size_mb=${ASAN_QUARANTINE_MB}` },
  });
  const health = async () => (await getJson(nx.restPort, '/health')).data.backends.mock;
  let h0;
  for (let i = 0; i < 100; i++) {
    h0 = await health();
    if (h0?.state === 'ready' && h0.tools > 0) break;
    await sleep(100);
  }
  assert.equal(h0?.state, 'ready', `the backend never came up: ${JSON.stringify(h0)}`);

  const url = `http://${HOST}:${nx.mcpPort}/mcp`;
  const sessions = await Promise.all(Array.from({ length: LOOPS }, () => openSession(nx.mcpPort)));

  const t0 = Date.now();
  const stopAt = t0 + SOAK_MS;
  const stats = { sent: 0, ok: 0, rpcErrors: 0, hung: 0, transport: 0, bad: 0, maxMs: 0 };
  const errorKinds = new Map(); // error message (numbers stripped) -> count
  const badSamples = [];
  const successTimes = []; // ms since t0 of every successful answer
  let rssEarly = 0;
  const rssSeries = []; // KiB, one a second from RSS_EARLY_MS on

  async function one(sid, id, name, args) {
    const body = JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args } });
    const started = Date.now();
    stats.sent++;
    let res;
    let text;
    try {
      res = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: ACCEPT, 'mcp-protocol-version': PV, 'mcp-session-id': sid },
        body,
        signal: AbortSignal.timeout(ANSWER_BOUND_MS),
      });
      text = await res.text();
    } catch (e) {
      if (e.name === 'TimeoutError' || e.name === 'AbortError') {
        stats.hung++;
        if (badSamples.length < 5) badSamples.push(`request ${id} (${name}) unanswered after ${ANSWER_BOUND_MS} ms`);
      } else {
        stats.transport++;
        if (badSamples.length < 5) badSamples.push(`request ${id} (${name}): ${e.cause?.code ?? ''} ${e.message}`);
      }
      return;
    }
    const ms = Date.now() - started;
    stats.maxMs = Math.max(stats.maxMs, ms);
    let msg = null;
    let why;
    try {
      msg = res.status === 200 ? rpcMessage(String(res.headers.get('content-type')), text, id) : null;
      why = res.status === 200 ? malformed(msg, id) : `HTTP ${res.status}`;
    } catch (e) {
      why = `unparsable body (${e.message})`;
    }
    if (why) {
      stats.bad++;
      if (badSamples.length < 5) badSamples.push(`request ${id} (${name}): ${why}: ${text.slice(0, 300)}`);
      return;
    }
    if ('error' in msg) {
      stats.rpcErrors++;
      const k = `${msg.error.code} ${msg.error.message.replace(/\d+/g, 'N')}`;
      errorKinds.set(k, (errorKinds.get(k) ?? 0) + 1);
      return;
    }
    const want = name === 'mock__echo' ? args.message : `slept ${args.ms} ms`;
    if (msg.result.content[0]?.text !== want) {
      stats.bad++;
      if (badSamples.length < 5) badSamples.push(`request ${id} (${name}): wrong result ${text.slice(0, 300)}`);
      return;
    }
    stats.ok++;
    successTimes.push(Date.now() - t0);
  }

  // Mostly inline echoes; one call in four sleeps 20-100 ms at the backend, so that every kill
  // finds calls in flight inside the backend, not only in the pipes.
  async function loop(k) {
    for (let i = 0; Date.now() < stopAt; i++) {
      const id = k * 1e6 + i + 1;
      if (i % 4 === 3) await one(sessions[k], id, 'mock__sleep', { ms: 20 + ((i * 7 + k) % 81) });
      else await one(sessions[k], id, 'mock__echo', { message: `loop ${k} call ${i}` });
    }
  }

  // The killer: every 2-3 s, SIGKILL to the backend's pid from /health, and only after
  // checking that it is nexus's own nxmock child.
  const kills = [];
  const vanished = []; // backend processes that were gone before we could kill them
  async function killer() {
    let next = t0 + KILL_MIN_MS + Math.random() * (KILL_MAX_MS - KILL_MIN_MS);
    while (next < stopAt - LAST_KILL_BEFORE_END_MS) {
      await sleep(Math.max(0, next - Date.now()));
      let b;
      let victim = 0;
      // Wait (bounded) until the previous restart has finished and the process is there.
      for (let i = 0; i < 40 && victim === 0; i++) {
        b = await health();
        if (b.state !== 'ready' || !(b.pid > 0)) {
          await sleep(50);
          continue;
        }
        let status;
        let cmd;
        try {
          status = fs.readFileSync(`/proc/${b.pid}/status`, 'utf8');
          cmd = fs.readFileSync(`/proc/${b.pid}/cmdline`, 'utf8');
        } catch (e) {
          // Not ours to kill: it exited by itself (or nexus stopped it) after /health named it.
          if (!vanished.some((v) => v.pid === b.pid)) {
            vanished.push({ at: Date.now() - t0, pid: b.pid, why: e.code, health: b });
          }
          await sleep(50);
          continue;
        }
        assert.match(status, new RegExp(`\\nPPid:\\s+${nx.pid}\\n`), `pid ${b.pid} is not a child of nexus`);
        assert.ok(cmd.includes('nxmock'), `pid ${b.pid} is not nxmock: ${cmd}`);
        victim = b.pid;
      }
      if (victim === 0) assert.fail(`the backend did not come back: ${JSON.stringify(b)}`);
      process.kill(victim, 'SIGKILL');
      kills.push({ at: Date.now() - t0, pid: victim });
      next = Date.now() + KILL_MIN_MS + Math.random() * (KILL_MAX_MS - KILL_MIN_MS);
    }
  }

  // RSS: once the load has run RSS_EARLY_MS (allocator pools, session tables, the sanitizer's
  // quarantine have filled), then every second until the end.
  async function sampler() {
    await sleep(RSS_EARLY_MS);
    rssEarly = rssKib(nx.pid);
    while (Date.now() < stopAt) {
      rssSeries.push(rssKib(nx.pid));
      await sleep(1000);
    }
  }

  await Promise.all([...sessions.map((_, k) => loop(k)), killer(), sampler()]);
  const rssEnd = rssKib(nx.pid);
  rssSeries.push(rssEnd);

  // The backend is back and nothing is left in flight.
  let h1;
  for (let i = 0; i < 60; i++) {
    h1 = await health();
    if (h1.state === 'ready' && h1.in_flight === 0) break;
    await sleep(50);
  }

  const errs = [...errorKinds].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${n}× ${k}`);
  t.diagnostic(`${stats.sent} requests in ${SOAK_MS} ms: ${stats.ok} ok, ${stats.rpcErrors} JSON-RPC errors, ` +
    `${stats.hung} hung, ${stats.transport} transport errors, ${stats.bad} malformed; slowest answer ${stats.maxMs} ms`);
  t.diagnostic(`errors: ${errs.join('; ') || 'none'}`);
  t.diagnostic(`${kills.length} kills at ${kills.map((k) => k.at).join(', ')} ms`);
  // A backend that died without our help is not a lost request, but it is worth a look.
  const backendLog = nx.stderr.split('\n').filter((l) => /"backend [^"]*: (?!restarting)/.test(l));
  for (const v of vanished) {
    t.diagnostic(`backend pid ${v.pid} was gone (${v.why}) at ${v.at} ms before we killed it; ` +
      `/health said ${JSON.stringify(v.health)}`);
  }
  if (vanished.length > 0) t.diagnostic(`nexus log about the backend:\n${backendLog.slice(-40).join('\n')}`);
  t.diagnostic(`/health before ${JSON.stringify(h0)}`);
  t.diagnostic(`/health after  ${JSON.stringify(h1)}`);
  t.diagnostic(`nexus RSS (KiB): ${rssEarly} after ${RSS_EARLY_MS} ms, then ${rssSeries.join(' ')}`);

  // Every request answered, well-formed, in time.
  assert.deepEqual(badSamples, [], 'requests without a well-formed answer');
  assert.equal(stats.hung, 0, `requests unanswered after ${ANSWER_BOUND_MS} ms`);
  assert.equal(stats.transport, 0, 'requests that failed at the HTTP level');
  assert.equal(stats.bad, 0, 'malformed answers');
  assert.equal(stats.ok + stats.rpcErrors, stats.sent, 'sent == answered');
  assert.ok(stats.maxMs <= ANSWER_BOUND_MS, `slowest answer ${stats.maxMs} ms`);
  assert.ok(stats.ok > stats.sent / 2, `most calls succeed (${stats.ok} of ${stats.sent})`);

  // The kills happened, each was one restart, and the backend served after every one of them.
  assert.ok(kills.length >= Math.floor((SOAK_MS - LAST_KILL_BEFORE_END_MS) / KILL_MAX_MS),
    `only ${kills.length} kills`);
  // One restart per kill, and none otherwise but for backends that died on their own.
  assert.ok(h1.restarts - h0.restarts >= kills.length &&
    h1.restarts - h0.restarts <= kills.length + vanished.length,
  `${h1.restarts - h0.restarts} restarts for ${kills.length} kills (${vanished.length} died by themselves)`);
  assert.equal(h1.state, 'ready');
  assert.notEqual(h1.pid, h0.pid);
  for (let i = 0; i < kills.length; i++) {
    const from = kills[i].at;
    const to = i + 1 < kills.length ? kills[i + 1].at : SOAK_MS;
    assert.ok(successTimes.some((s) => s > from && s < to),
      `no successful call between the kill at ${from} ms and ${i + 1 < kills.length ? 'the next' : 'the end'} (${to} ms)`);
  }

  // /health counters agree with what the clients saw: each success was one try that reached
  // the backend; each try that reached it either succeeded or counted as a failure.
  assert.equal(h1.in_flight, 0, 'no call left in flight');
  assert.ok(h1.calls - h0.calls >= stats.ok, `backend calls ${h1.calls - h0.calls} < successes ${stats.ok}`);
  assert.ok(h1.calls - h0.calls <= stats.ok + (h1.failures - h0.failures),
    `backend calls ${h1.calls - h0.calls} > successes ${stats.ok} + failures ${h1.failures - h0.failures}`);

  // Memory: flat once warm (see RSS_GROWTH_KIB).
  assert.ok(rssEnd - rssEarly <= RSS_GROWTH_KIB,
    `nexus RSS grew from ${rssEarly} KiB (after ${RSS_EARLY_MS} ms) to ${rssEnd} KiB at the end`);

  await nx.stopAndAssertClean();
  nx = null;
  dir.remove();
});
