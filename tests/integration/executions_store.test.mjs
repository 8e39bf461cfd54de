// The execution store's bounds: executions.max_stored caps the records (running ones
// included): the oldest ended record makes room, and with only running ones left a new
// execution gets 503 + Retry-After; executions.keep expires ended records.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { withNexus, request, sleep, tempDir, waitFor } from './lib/nexus.mjs';

const CONFIG = `
debug_routes: true
executions:
  max_stored: 3
  keep: 1s
workflows:
  - name: nap
    input: {type: object, properties: {ms: {type: integer}}, required: [ms]}
    steps:
      - {id: z, call: debug_sleep, with: {ms: "\${{ input.ms }}"}}
`;

async function start(nx, ms) {
  const r = await request(nx.restPort, {
    method: 'POST', path: '/api/executions',
    body: JSON.stringify({ workflow: 'nap', inputs: { ms } }),
    headers: { 'content-type': 'application/json' },
  });
  return { status: r.status, headers: r.headers, data: JSON.parse(r.text) };
}

const get = (nx, id) => request(nx.restPort, { path: `/api/executions/${id}` });

test('max_stored and keep bound the execution store', async () => {
  const dir = tempDir();
  const config = dir.path('store.yaml');
  fs.writeFileSync(config, CONFIG);
  await withNexus({ config, debugRoutes: true, shards: 2 }, async (nx) => {
    const quick = await start(nx, 0);
    assert.equal(quick.status, 202);
    await waitFor('the quick run to end', async () =>
      (await get(nx, quick.data.id)).json().status === 'succeeded');
    const long = [];
    for (let i = 0; i < 3; i++) {
      const r = await start(nx, 3000);
      assert.equal(r.status, 202, `run ${i}: the ended record makes room for the third`);
      long.push(r.data.id);
    }
    assert.equal((await get(nx, quick.data.id)).status, 404, 'the ended record was evicted');
    const full = await start(nx, 10);
    assert.equal(full.status, 503);
    assert.ok(Number(full.headers['retry-after']) >= 1);
    for (const id of long) {
      const d = await request(nx.restPort, { method: 'DELETE', path: `/api/executions/${id}` });
      assert.equal(d.status, 202);
    }
    await waitFor('all cancelled', async () => {
      for (const id of long) if ((await get(nx, id)).json().status !== 'cancelled') return false;
      return true;
    });
    const again = await start(nx, 0);
    assert.equal(again.status, 202, 'ended records make room again');
    await sleep(1300);
    // A later start sweeps what expired.
    const last = await start(nx, 0);
    assert.equal(last.status, 202);
    for (const id of long) assert.equal((await get(nx, id)).status, 404, 'expired after keep');
  });
  dir.remove();
});
