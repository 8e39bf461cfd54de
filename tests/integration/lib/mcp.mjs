// Helpers for MCP over raw HTTP shared by the integration tests: POST /mcp with the right
// headers, SSE body parsing, sessions, JSON-RPC assertions.
import assert from 'node:assert/strict';
import http from 'node:http';
import { request, HOST } from './nexus.mjs';

export const ACCEPT = 'application/json, text/event-stream';
export const PV = '2025-11-25'; // newest legacy-era revision: the default negotiated by nexus
export const SESSION_RE = /^[0-9a-f]{34}$/;

let nextId = 1;
/** A fresh JSON-RPC id. */
export function newId() {
  return nextId++;
}

// ---------------------------------------------------------------------------------------------
// Raw HTTP helpers (node:http, one connection per request: agent false)


/**
 * POSTs one JSON-RPC message (object, or a string sent as is) to /mcp. Default headers:
 * Content-Type application/json, Accept (both types), MCP-Protocol-Version PV; headers given as
 * null are left out. sid adds Mcp-Session-Id.
 */
export async function mcpPost(port, msg, { sid = null, headers = {}, timeoutMs = 10000 } = {}) {
  const h = {
    'content-type': 'application/json',
    accept: ACCEPT,
    'mcp-protocol-version': PV,
    ...(sid ? { 'mcp-session-id': sid } : {}),
    ...headers,
  };
  for (const k of Object.keys(h)) if (h[k] === null || h[k] === undefined) delete h[k];
  const body = typeof msg === 'string' ? msg : JSON.stringify(msg);
  return request(port, { method: 'POST', path: '/mcp', headers: h, body, timeoutMs });
}

/** SSE events of a text/event-stream body: [{event, id, data}] (data lines joined by \n). */
export function sseEvents(text) {
  const out = [];
  for (const block of text.replace(/\r\n/g, '\n').split('\n\n')) {
    if (block.trim() === '') continue;
    const ev = { event: 'message', id: undefined, data: [] };
    for (const line of block.split('\n')) {
      if (line.startsWith(':')) continue;
      const i = line.indexOf(':');
      const field = i < 0 ? line : line.slice(0, i);
      let value = i < 0 ? '' : line.slice(i + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'data') ev.data.push(value);
      else if (field === 'event') ev.event = value;
      else if (field === 'id') ev.id = value;
    }
    out.push({ ...ev, data: ev.data.join('\n') });
  }
  return out;
}

/**
 * The JSON-RPC message of a POST response: the JSON body (application/json), or the message
 * with the given id from an SSE body (text/event-stream). Both are valid per the spec.
 */
export function rpcBody(r, id = undefined) {
  const ct = String(r.headers['content-type'] ?? '');
  if (/^application\/json/i.test(ct)) {
    try {
      return JSON.parse(r.text);
    } catch {
      assert.fail(`response body is not JSON (status ${r.status}): ${JSON.stringify(r.text)}`);
    }
  }
  if (/^text\/event-stream/i.test(ct)) {
    const msgs = sseEvents(r.text).filter((e) => e.data.trim() !== '').map((e) => JSON.parse(e.data));
    const hit = msgs.find((m) => ('result' in m || 'error' in m) && (id === undefined || m.id === id));
    assert.ok(hit, `no JSON-RPC response with id ${id} in the SSE body: ${r.text}`);
    return hit;
  }
  assert.fail(`unexpected content-type ${JSON.stringify(ct)} (status ${r.status}): ${r.text}`);
}

/** Sends a request (method, params) in session sid; asserts 200 and returns the JSON-RPC body. */
export async function rpc(port, sid, method, params = undefined, opts = {}) {
  const id = nextId++;
  const msg = { jsonrpc: '2.0', id, method, ...(params === undefined ? {} : { params }) };
  const r = await mcpPost(port, msg, { sid, ...opts });
  assert.equal(r.status, 200, `${method}: HTTP ${r.status}: ${r.text}`);
  const body = rpcBody(r, id);
  assert.equal(body.jsonrpc, '2.0', `${method}: ${JSON.stringify(body)}`);
  assert.equal(body.id, id, `${method}: response id: ${JSON.stringify(body)}`);
  return body;
}

/** rpc() that asserts a result (not an error) and returns it. */
export async function rpcResult(port, sid, method, params, opts) {
  const body = await rpc(port, sid, method, params, opts);
  assert.ok(!('error' in body), `${method}: JSON-RPC error: ${JSON.stringify(body)}`);
  assert.equal(typeof body.result, 'object', `${method}: no result: ${JSON.stringify(body)}`);
  return body.result;
}

/** tools/call; returns the result (a tool failure is a result with isError: true). */
export function callTool(port, sid, name, args) {
  return rpcResult(port, sid, 'tools/call', { name, ...(args === undefined ? {} : { arguments: args }) });
}

/** Text of all text content items of a tool result. */
export function toolText(result) {
  assert.ok(Array.isArray(result.content), `tool result without content[]: ${JSON.stringify(result)}`);
  return result.content.filter((c) => c.type === 'text').map((c) => c.text).join('\n');
}

export function initMsg(protocolVersion = PV) {
  return {
    jsonrpc: '2.0',
    id: nextId++,
    method: 'initialize',
    params: { protocolVersion, capabilities: {}, clientInfo: { name: 'nexus-it-raw', version: '1.0.0' } },
  };
}

/** initialize + notifications/initialized; returns the session id. */
export async function openSession(port, { protocolVersion = PV } = {}) {
  const r = await mcpPost(port, initMsg(protocolVersion), { headers: { 'mcp-protocol-version': null } });
  assert.equal(r.status, 200, `initialize: HTTP ${r.status}: ${r.text}`);
  const sid = r.headers['mcp-session-id'];
  assert.match(String(sid), SESSION_RE, `Mcp-Session-Id of the initialize response: ${sid}`);
  const n = await mcpPost(port, { jsonrpc: '2.0', method: 'notifications/initialized' },
    { sid, headers: { 'mcp-protocol-version': protocolVersion } });
  assert.equal(n.status, 202, `notifications/initialized: HTTP ${n.status}: ${n.text}`);
  return sid;
}

/** A JSON-RPC error body: {jsonrpc: "2.0", error: {code: integer, message: string}}. */
export function assertRpcError(body, code, what) {
  assert.equal(body.jsonrpc, '2.0', `${what}: ${JSON.stringify(body)}`);
  assert.ok(!('result' in body), `${what}: has a result: ${JSON.stringify(body)}`);
  assert.equal(typeof body.error, 'object', `${what}: no error object: ${JSON.stringify(body)}`);
  assert.ok(Number.isInteger(body.error.code), `${what}: error.code: ${JSON.stringify(body)}`);
  if (code !== undefined) assert.equal(body.error.code, code, `${what}: error.code: ${JSON.stringify(body)}`);
  assert.equal(typeof body.error.message, 'string', `${what}: error.message: ${JSON.stringify(body)}`);
}

/** The raw bytes of a POST /mcp carrying tools/call <name>(<args>) in session sid. */
export function rawToolCall(sid, id, name, args) {
  const body = JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args } });
  return `POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n` +
    `Accept: ${ACCEPT}\r\nMcp-Session-Id: ${sid}\r\nMCP-Protocol-Version: ${PV}\r\n` +
    `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
}


/**
 * Opens an HTTP request whose answer is read as it arrives (an event stream). Resolves once the
 * head is in: {status, headers, next(timeoutMs) -> the next SSE event {event, id, data} or the
 * whole body when not an event stream, text() -> everything received so far, close()}.
 */
export function openStream(port, { method = 'GET', path = '/mcp', headers = {}, body = null } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: HOST, port, method, path, headers, agent: false }, (res) => {
      let buf = '';
      let all = '';
      let ended = false;
      const waiters = [];
      const wake = () => { while (waiters.length) waiters.shift()(); };
      res.setEncoding('utf8');
      res.on('data', (c) => { buf += c; all += c; wake(); });
      res.on('end', () => { ended = true; wake(); });
      res.on('error', () => { ended = true; wake(); });
      const takeEvent = () => {
        const norm = buf.replace(/\r\n/g, '\n');
        const i = norm.indexOf('\n\n');
        if (i < 0) return null;
        buf = norm.slice(i + 2);
        return sseEvents(norm.slice(0, i + 2))[0] ?? { event: 'message', id: undefined, data: '' };
      };
      resolve({
        status: res.statusCode,
        headers: res.headers,
        text: () => all,
        ended: () => ended,
        async next(timeoutMs = 5000) {
          const deadline = Date.now() + timeoutMs;
          for (;;) {
            const ev = takeEvent();
            if (ev) return ev;
            if (ended) throw new Error(`stream ended; received: ${JSON.stringify(all)}`);
            const left = deadline - Date.now();
            if (left <= 0) throw new Error(`no event within ${timeoutMs} ms; received: ${JSON.stringify(all)}`);
            await new Promise((r) => { waiters.push(r); setTimeout(r, left); });
          }
        },
        async end(timeoutMs = 5000) {
          const deadline = Date.now() + timeoutMs;
          while (!ended && Date.now() < deadline)
            await new Promise((r) => { waiters.push(r); setTimeout(r, deadline - Date.now()); });
          return ended;
        },
        close() { req.destroy(); },
      });
    });
    req.on('error', reject);
    if (body !== null) req.write(body);
    req.end();
  });
}

/** POST /mcp as a stream (see openStream) for message <msg> in session <sid>. */
export function postStream(port, msg, sid, headers = {}) {
  return openStream(port, {
    method: 'POST',
    headers: {
      'content-type': 'application/json', accept: ACCEPT, 'mcp-protocol-version': PV,
      ...(sid ? { 'mcp-session-id': sid } : {}), ...headers,
    },
    body: JSON.stringify(msg),
  });
}
