// nxmock (bench/nxmock.c), the mock MCP backend, started on free ports for a test.
// The binary: $NXMOCK_BIN, else `nxmock` next to the nexus binary ($NEXUS_BIN or build-asan).
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { Nexus, nexusBin, nexusEnv, request, sleep } from './nexus.mjs';

export const NXMOCK = process.env.NXMOCK_BIN || join(dirname(nexusBin()), 'nxmock');
const LISTEN_RE = /listening: rest ([^\s,]+):(\d+), mcp (\w+) \(([^)]*):(\d+)\)/;

/** Starts nxmock on free ports (later --port/--mcp-port in <args> win) with <args>; resolves
 *  once /health answers 200, with restPort and mcpPort set. */
export async function startMock(args = [], { shards = 2, timeoutMs = 15000 } = {}) {
  const argv = ['--port', '0', '--mcp-port', '0', '--shards', String(shards), ...args];
  const child = spawn(NXMOCK, argv, { env: nexusEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  const m = new Nexus(child, argv);
  const spawnError = new Promise((_, reject) => child.on('error', reject));
  spawnError.catch(() => {});
  try {
    const exitEarly = m._exitPromise.then((e) => {
      throw new Error(`nxmock exited during startup (code ${e.code}):\n${m.stderr}`);
    });
    exitEarly.catch(() => {});
    const line = await Promise.race([
      m.waitForLog((l) => typeof l.msg === 'string' && LISTEN_RE.test(l.msg),
        { timeoutMs, what: 'the "listening" startup line' }),
      exitEarly,
      spawnError,
    ]);
    const hit = LISTEN_RE.exec(line.msg);
    m.restPort = Number(hit[2]);
    m.mcpPort = Number(hit[5]);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const r = await request(m.restPort, { path: '/health', timeoutMs: 2000 }).catch(() => null);
      if (r && r.status === 200) break;
      if (m.exited || Date.now() > deadline) throw new Error(`/health never answered:\n${m.stderr}`);
      await sleep(50);
    }
    return m;
  } catch (e) {
    await m.kill();
    throw e;
  }
}

