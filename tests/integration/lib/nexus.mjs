// Helpers for the integration tests: start the real nexus binary on free ports, wait until it
// serves /health, talk to it over raw sockets or node:http, and stop it with SIGTERM while
// checking it exited cleanly (exit code 0, no AddressSanitizer/LeakSanitizer/UBSan report).
//
// Only node built-ins are used. All traffic goes to 127.0.0.1. Every wait is bounded.

import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';
import http from 'node:http';
import assert from 'node:assert/strict';

export const HOST = '127.0.0.1';

/** Path of the nexus binary: $NEXUS_BIN, else the sanitizer build, else the normal build. */
export function nexusBin() {
  if (process.env.NEXUS_BIN) return process.env.NEXUS_BIN;
  const asan = '/work/main/build-asan/nexus';
  return existsSync(asan) ? asan : '/work/main/build/nexus';
}

/** Environment for a nexus child: the sanitizer options of the Makefile unless already set. */
export function nexusEnv(extra = {}) {
  const env = { ...process.env };
  env.ASAN_OPTIONS ??=
    'detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1';
  env.UBSAN_OPTIONS ??= 'halt_on_error=1:print_stacktrace=1';
  // NEXUS_* variables from the caller's shell must not change what a test starts.
  for (const k of Object.keys(env)) if (k.startsWith('NEXUS_') && k !== 'NEXUS_BIN') delete env[k];
  return { ...env, ...extra };
}

export const SANITIZER_MARKERS = ['AddressSanitizer', 'LeakSanitizer', 'runtime error:'];

/** Fails when the text holds a sanitizer report; the message quotes the report. */
export function assertNoSanitizerReport(stderr, what = 'nexus') {
  for (const m of SANITIZER_MARKERS) {
    const i = stderr.indexOf(m);
    if (i >= 0) {
      assert.fail(`${what} stderr contains a sanitizer report ("${m}"):\n` +
        stderr.slice(Math.max(0, i - 200), i + 4000));
    }
  }
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls fn() every 50 ms until it returns something truthy (returned), failing after <ms>. */
export async function waitFor(what, fn, ms = 10000) {
  const until = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** Resolves with the value of <p>, or rejects after <ms> with <what> in the message. */
export function withTimeout(p, ms, what) {
  let timer;
  return Promise.race([
    p,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** A temporary directory removed when the process exits (or by calling .remove()). */
export function tempDir() {
  const dir = mkdtempSync(join(tmpdir(), 'nexus-it-'));
  const remove = () => rmSync(dir, { recursive: true, force: true });
  process.once('exit', remove);
  return { dir, remove, path: (name) => join(dir, name) };
}

/**
 * Runs nexus to completion (for --version, check-config, bad flags). The child is killed with
 * SIGKILL after timeoutMs, and the result says so (timedOut: true).
 */
export function runNexus(args, { env = {}, timeoutMs = 10000 } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(nexusBin(), args, { env: nexusEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
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
      resolve({ code, signal, stdout, stderr, timedOut });
    });
  });
}

const LISTEN_RE = /listening: rest ([^\s,]+):(\d+), mcp (\w+) \(([^)]*):(\d+)\)/;

/**
 * A running nexus. Use start() to create one; stop() sends SIGTERM and returns
 * {code, signal, stderr, ms}; stopAndAssertClean() also asserts a clean exit.
 */
export class Nexus {
  constructor(child, args) {
    this.child = child;
    this.args = args;
    this.pid = child.pid;
    this.stderr = '';
    this.stdout = '';
    this.exited = null; // {code, signal} once the process is gone
    this.restPort = 0;
    this.mcpPort = 0;
    this._lineWaiters = [];
    this._exitPromise = new Promise((resolve) => {
      child.on('exit', (code, signal) => {
        this.exited = { code, signal, at: Date.now() };
        resolve(this.exited);
      });
    });
    // 'close' fires once stdio is drained too: await it so stderr is complete.
    this._closePromise = new Promise((resolve) => child.on('close', resolve));
    child.stdout.setEncoding('utf8').on('data', (d) => (this.stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d) => {
      this.stderr += d;
      this._checkLineWaiters();
    });
  }

  /** Parsed JSON log lines seen so far (lines that are not JSON are returned as {raw}). */
  logLines() {
    return this.stderr.split('\n').filter((l) => l.trim() !== '').map((l) => {
      try {
        return JSON.parse(l);
      } catch {
        return { raw: l };
      }
    });
  }

  _checkLineWaiters() {
    const lines = this.logLines();
    this._lineWaiters = this._lineWaiters.filter((w) => {
      const hit = lines.slice(w.from).find((l) => w.pred(l));
      if (hit) {
        w.resolve(hit);
        return false;
      }
      return true;
    });
  }

  /** Number of log lines so far: pass it as <from> to waitForLog to see only newer lines. */
  logCount() {
    return this.logLines().length;
  }

  /** Waits for a log line (parsed JSON) matching pred, at index >= from. */
  waitForLog(pred, { from = 0, timeoutMs = 5000, what = 'log line' } = {}) {
    let w;
    const p = new Promise((resolve) => {
      w = { pred, from, resolve };
      this._lineWaiters.push(w);
    });
    this._checkLineWaiters();
    return withTimeout(p, timeoutMs, `${what}; stderr so far:\n${this.stderr}`).finally(() => {
      this._lineWaiters = this._lineWaiters.filter((x) => x !== w);
    });
  }

  /** Sends a signal; no-op once the process has exited. */
  signal(sig) {
    if (this.exited === null) this.child.kill(sig);
  }

  /** Resolves with {code, signal, at} when the process exits (rejects after timeoutMs). */
  waitExit(timeoutMs = 15000) {
    return withTimeout(this._exitPromise, timeoutMs, `nexus pid ${this.pid} to exit`);
  }

  /**
   * Sends SIGTERM (unless already exited) and waits for exit. If it does not exit within
   * timeoutMs it is killed with SIGKILL and the result has killed: true.
   */
  async stop({ timeoutMs = 15000 } = {}) {
    const t0 = Date.now();
    let killed = false;
    if (this.exited === null) {
      this.child.kill('SIGTERM');
      try {
        await this.waitExit(timeoutMs);
      } catch {
        killed = true;
        this.child.kill('SIGKILL');
        await this._exitPromise;
      }
    }
    await withTimeout(this._closePromise, 5000, 'nexus stdio to close').catch(() => {});
    return { ...this.exited, killed, ms: Date.now() - t0, stderr: this.stderr };
  }

  /** Stops with SIGTERM and asserts exit code 0 and no sanitizer report. */
  async stopAndAssertClean({ timeoutMs = 15000 } = {}) {
    const r = await this.stop({ timeoutMs });
    assertCleanExit(r);
    return r;
  }

  /** Last resort for after() hooks: SIGKILL if still running, wait until gone. */
  async kill() {
    if (this.exited === null) {
      this.child.kill('SIGKILL');
      await withTimeout(this._exitPromise, 10000, 'nexus to die').catch(() => {});
    }
  }
}

/** Asserts the result of Nexus.stop(): exited by itself with status 0, no sanitizer report. */
export function assertCleanExit(r) {
  assertNoSanitizerReport(r.stderr);
  assert.equal(r.killed, false,
    `nexus did not exit within the timeout after SIGTERM and was killed\n${tail(r.stderr)}`);
  assert.equal(r.signal, null, `nexus died of signal ${r.signal}\n${tail(r.stderr)}`);
  assert.equal(r.code, 0, `nexus exit code ${r.code} (expected 0)\n${tail(r.stderr)}`);
}

function tail(s, n = 3000) {
  return s.length > n ? '…' + s.slice(-n) : s;
}

/**
 * Starts nexus on free ports (--port 0 --mcp-port 0), reads the bound ports from the startup
 * log line and waits until GET /health answers 200.
 *   shards: --shards N (default 2); debugRoutes: --debug-routes; config: --config FILE;
 *   set: {key: value} -> --set key=value; args: extra arguments; env: extra environment;
 *   fdLimit: raise the fd limit of nexus to this (via bash ulimit) before exec.
 */
export async function startNexus({
  shards = 2,
  debugRoutes = false,
  config = null,
  set = {},
  args = [],
  env = {},
  fdLimit = 0,
  timeoutMs = 15000,
} = {}) {
  const argv = ['--port', '0', '--mcp-port', '0', '--shards', String(shards)];
  if (config) argv.push('--config', config);
  if (debugRoutes) argv.push('--debug-routes');
  for (const [k, v] of Object.entries(set)) argv.push('--set', `${k}=${v}`);
  argv.push(...args);

  let child;
  if (fdLimit > 0) {
    // exec keeps the pid: signals go to nexus itself, not to a shell.
    const script = `ulimit -n ${fdLimit} 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$@"`;
    child = spawn('bash', ['-c', script, 'bash', nexusBin(), ...argv],
      { env: nexusEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  } else {
    child = spawn(nexusBin(), argv, { env: nexusEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  }
  const nx = new Nexus(child, argv);
  const spawnError = new Promise((_, reject) => child.on('error', reject));
  spawnError.catch(() => {});
  try {
    const exitEarly = nx._exitPromise.then((e) => {
      throw new Error(`nexus exited during startup (code ${e.code}, signal ${e.signal}):\n` +
        nx.stderr);
    });
    exitEarly.catch(() => {});
    const line = await Promise.race([
      nx.waitForLog((l) => typeof l.msg === 'string' && LISTEN_RE.test(l.msg),
        { timeoutMs, what: 'the "listening" startup line' }),
      exitEarly,
      spawnError,
    ]);
    const m = LISTEN_RE.exec(line.msg);
    nx.restHost = m[1];
    nx.restPort = Number(m[2]);
    nx.mcpState = m[3];
    nx.mcpPort = Number(m[5]);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        const r = await request(nx.restPort, { path: '/health', timeoutMs: 2000 });
        if (r.status === 200) break;
      } catch { /* not yet */ }
      if (nx.exited) throw new Error(`nexus exited during startup:\n${nx.stderr}`);
      if (Date.now() > deadline) throw new Error(`/health never answered 200:\n${nx.stderr}`);
      await sleep(50);
    }
    return nx;
  } catch (e) {
    await nx.kill();
    throw e;
  }
}

/**
 * Runs fn(nx) against a fresh nexus, then stops it with SIGTERM and asserts a clean exit. The
 * server is stopped even when fn throws (fn's error wins; a sanitizer report is appended).
 */
export async function withNexus(opts, fn) {
  const nx = await startNexus(opts);
  let result;
  try {
    result = await fn(nx);
  } catch (e) {
    const r = await nx.stop().catch(() => null);
    if (r && SANITIZER_MARKERS.some((m) => r.stderr.includes(m))) {
      e.message += `\n\nnexus stderr (sanitizer report):\n${r.stderr}`;
    }
    await nx.kill();
    throw e;
  }
  await nx.stopAndAssertClean();
  return result;
}

// ---------------------------------------------------------------------------------------------
// HTTP over node:http (one request per connection, agent: false)

/**
 * One request with node:http. Returns {status, headers, body (Buffer), text, json()}.
 * headers are lower-cased as node:http gives them.
 */
export function request(port, { method = 'GET', path = '/', headers = {}, body = null,
  timeoutMs = 10000, host = HOST } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host, port, method, path, headers, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const b = Buffer.concat(chunks);
        resolve({
          status: res.statusCode,
          headers: res.headers,
          body: b,
          text: b.toString('utf8'),
          json: () => JSON.parse(b.toString('utf8')),
        });
      });
      res.on('error', reject);
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`${method} ${path}: timeout`)));
    req.on('error', reject);
    if (body !== null) req.write(body);
    req.end();
  });
}

export async function getJson(port, path) {
  const r = await request(port, { path });
  assert.match(String(r.headers['content-type']), /^application\/json/, `${path} content-type`);
  return { ...r, data: JSON.parse(r.text) };
}

// ---------------------------------------------------------------------------------------------
// Raw sockets

/** Parses one HTTP/1.x response at the start of buf. Returns null when incomplete. */
export function parseResponse(buf, { headOnly = false, eof = false } = {}) {
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0) return null;
  const head = buf.subarray(0, end).toString('latin1');
  const lines = head.split('\r\n');
  const m = /^HTTP\/(\d\.\d) (\d{3})(?: (.*))?$/.exec(lines[0]);
  if (!m) throw new Error(`malformed status line: ${JSON.stringify(lines[0])}`);
  const headers = {};
  const headerList = [];
  for (const l of lines.slice(1)) {
    const i = l.indexOf(':');
    if (i <= 0) throw new Error(`malformed header line: ${JSON.stringify(l)}`);
    const name = l.slice(0, i).trim().toLowerCase();
    const value = l.slice(i + 1).trim();
    headerList.push([name, value]);
    headers[name] = name in headers ? `${headers[name]}, ${value}` : value;
  }
  const status = Number(m[2]);
  const start = end + 4;
  let body = Buffer.alloc(0);
  let consumed = start;
  if (headOnly || status < 200 || status === 204 || status === 304) {
    // no body
  } else if (headers['transfer-encoding'] && /chunked/i.test(headers['transfer-encoding'])) {
    const parts = [];
    let p = start;
    for (;;) {
      const le = buf.indexOf('\r\n', p);
      if (le < 0) return null;
      const size = parseInt(buf.subarray(p, le).toString('latin1'), 16);
      if (Number.isNaN(size)) throw new Error('bad chunk size in response');
      p = le + 2;
      if (size === 0) {
        const te = buf.indexOf('\r\n\r\n', p - 2);
        if (te < 0) return null;
        p = te + 4;
        break;
      }
      if (buf.length < p + size + 2) return null;
      parts.push(buf.subarray(p, p + size));
      p += size + 2;
    }
    body = Buffer.concat(parts);
    consumed = p;
  } else if (headers['content-length'] !== undefined) {
    const n = Number(headers['content-length']);
    if (buf.length < start + n) return null;
    body = buf.subarray(start, start + n);
    consumed = start + n;
  } else {
    if (!eof) return null; // body delimited by close
    body = buf.subarray(start);
    consumed = buf.length;
  }
  const text = body.toString('utf8');
  return {
    version: m[1],
    status,
    reason: m[3] ?? '',
    headers,
    headerList,
    head,
    body: Buffer.from(body),
    text,
    json: () => JSON.parse(text),
    consumed,
  };
}

/**
 * A raw TCP connection with a read buffer. readResponse() parses responses one at a time (in
 * order), waitClose() resolves when the peer has closed (EOF or reset).
 */
export class RawConn {
  static open(port, { host = HOST, timeoutMs = 5000 } = {}) {
    return new Promise((resolve, reject) => {
      const sock = net.connect({ host, port });
      const timer = setTimeout(() => {
        sock.destroy();
        reject(new Error(`connect to ${host}:${port} timed out`));
      }, timeoutMs);
      sock.once('connect', () => {
        clearTimeout(timer);
        sock.removeListener('error', reject);
        resolve(new RawConn(sock));
      });
      sock.once('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
    });
  }

  constructor(sock) {
    this.sock = sock;
    this.buf = Buffer.alloc(0);
    this.closed = false; // peer closed (EOF) or socket gone
    this.error = null;
    this._waiters = new Set();
    sock.setNoDelay(true);
    sock.on('data', (d) => {
      this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
      this._wake();
    });
    sock.on('end', () => {
      this.closed = true;
      this._wake();
    });
    sock.on('close', () => {
      this.closed = true;
      this._wake();
    });
    sock.on('error', (e) => {
      this.error = e;
      this.closed = true;
      this._wake();
    });
  }

  _wake() {
    for (const w of [...this._waiters]) w();
  }

  /** Waits until cond() returns a truthy value (checked on every event). */
  _until(cond, timeoutMs, what) {
    return new Promise((resolve, reject) => {
      let timer;
      const check = () => {
        let v;
        try {
          v = cond();
        } catch (e) {
          this._waiters.delete(check);
          clearTimeout(timer);
          reject(e);
          return;
        }
        if (v) {
          this._waiters.delete(check);
          clearTimeout(timer);
          resolve(v);
        }
      };
      timer = setTimeout(() => {
        this._waiters.delete(check);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; ` +
          `buffered: ${JSON.stringify(this.buf.subarray(0, 600).toString('latin1'))}` +
          `${this.closed ? ' (connection closed)' : ''}`));
      }, timeoutMs);
      this._waiters.add(check);
      check();
    });
  }

  write(data) {
    return new Promise((resolve, reject) => {
      if (this.sock.destroyed) {
        reject(new Error('write on a connection the server closed; it had sent: ' +
          JSON.stringify(this.buf.subarray(0, 600).toString('latin1'))));
        return;
      }
      this.sock.write(data, (err) => (err ? reject(err) : resolve()));
    });
  }

  /** Reads the next complete response. headOnly: the response has no body (HEAD). */
  async readResponse({ headOnly = false, timeoutMs = 5000 } = {}) {
    const r = await this._until(() => {
      const p = parseResponse(this.buf, { headOnly, eof: this.closed });
      if (p) return p;
      if (this.closed) {
        throw new Error(`connection closed before a complete response; got ` +
          `${JSON.stringify(this.buf.subarray(0, 600).toString('latin1'))}` +
          `${this.error ? ` (${this.error.code || this.error.message})` : ''}`);
      }
      return null;
    }, timeoutMs, 'a response');
    this.buf = this.buf.subarray(r.consumed);
    return r;
  }

  /** Reads n responses in order. */
  async readResponses(n, opts = {}) {
    const out = [];
    for (let i = 0; i < n; i++) out.push(await this.readResponse(opts));
    return out;
  }

  /** Waits until at least n bytes are buffered; returns them without consuming. */
  waitBytes(n, timeoutMs = 5000) {
    return this._until(() => (this.buf.length >= n ? this.buf : null), timeoutMs,
      `${n} bytes`);
  }

  /** Waits until buf contains str (latin1); returns the buffer, does not consume. */
  waitFor(str, timeoutMs = 5000) {
    return this._until(() => (this.buf.indexOf(str) >= 0 ? this.buf : null), timeoutMs,
      JSON.stringify(str));
  }

  /** Resolves when the peer closed the connection (EOF or error); rejects after timeoutMs. */
  waitClose(timeoutMs = 5000) {
    return this._until(() => this.closed, timeoutMs, 'the server to close the connection');
  }

  /** Sends a request and reads its response. */
  async roundTrip(data, opts = {}) {
    await this.write(data);
    return this.readResponse(opts);
  }

  end() {
    this.sock.end();
  }

  destroy() {
    this.sock.destroy();
  }
}

/** A GET request head for raw sockets. */
export function get(path, { host = 'x', headers = '', version = '1.1', method = 'GET' } = {}) {
  return `${method} ${path} HTTP/${version}\r\nHost: ${host}\r\n${headers}\r\n`;
}

/** A request with a Content-Length body for raw sockets. */
export function post(path, body, { contentType = 'application/octet-stream', headers = '' } = {}) {
  const b = Buffer.isBuffer(body) ? body : Buffer.from(body);
  return Buffer.concat([
    Buffer.from(`POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: ${contentType}\r\n` +
      `Content-Length: ${b.length}\r\n${headers}\r\n`),
    b,
  ]);
}

/** Sends raw bytes on a fresh connection and returns the first response and the connection. */
export async function rawOnce(port, data, opts = {}) {
  const c = await RawConn.open(port);
  try {
    await c.write(data);
    const r = await c.readResponse(opts);
    return { r, c };
  } catch (e) {
    c.destroy();
    throw e;
  }
}

/** Asserts a JSON error response: status, application/json, {"error":{"code","message"}}. */
export function assertJsonError(r, status) {
  assert.equal(r.status, status, `expected ${status}, got ${r.status}: ${r.text}`);
  assert.match(String(r.headers['content-type']), /^application\/json/,
    `error content-type: ${r.headers['content-type']}`);
  let body;
  try {
    body = JSON.parse(r.text);
  } catch {
    assert.fail(`error body is not JSON: ${JSON.stringify(r.text)}`);
  }
  assert.equal(typeof body.error, 'object', `error body: ${r.text}`);
  assert.equal(body.error.code, status, `error.code in ${r.text}`);
  assert.equal(typeof body.error.message, 'string');
  assert.ok(body.error.message.length > 0, 'error.message is empty');
  return body;
}

/** Sums the samples of a Prometheus metric whose labels match every key of <labels>. */
export function promSum(text, name, labels = {}) {
  let sum = 0;
  let found = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || line.trim() === '') continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const ls = parseLabels(m[3] ?? '');
    if (Object.entries(labels).every(([k, v]) => ls[k] === v)) {
      sum += Number(m[4]);
      found++;
    }
  }
  return { sum, found };
}

export function parseLabels(s) {
  const out = {};
  const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
  let m;
  while ((m = re.exec(s)) !== null) out[m[1]] = m[2].replace(/\\(.)/g, '$1');
  return out;
}
