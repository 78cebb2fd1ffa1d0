/// <reference types="node" />
// scripts/serve.mjs: one deployment file, a folder of them (?network=), or both.
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, test } from 'vitest';
// @ts-expect-error — plain ESM module without types
import { serveUi } from '../scripts/serve.mjs';

const dir = mkdtempSync(join(tmpdir(), 'pollen-serve-'));
const dist = join(dir, 'dist');
const deployments = join(dir, 'deployments');
mkdirSync(dist);
mkdirSync(deployments);
writeFileSync(join(dist, 'index.html'), '<!doctype html>');
writeFileSync(join(deployments, 'demo.json'), JSON.stringify({ network: 'anvil', chainId: 31337 }));
writeFileSync(join(deployments, 'gnosis-chiado.json'), JSON.stringify({ network: 'gnosis-chiado', chainId: 10200 }));
writeFileSync(join(deployments, 'broken.json'), '{');
const single = join(dir, 'one.json');
writeFileSync(single, JSON.stringify({ network: 'gnosis', chainId: 100 }));

const servers: Array<{ close: () => Promise<void> }> = [];
afterAll(async () => { for (const s of servers) await s.close(); });
const start = async (opts: Record<string, string>) => {
  const s = await serveUi({ dist, ...opts });
  servers.push(s);
  const get = async (path: string) => {
    const r = await fetch(new URL(path, s.url));
    return { status: r.status, body: r.ok ? await r.json() : null };
  };
  return get;
};

test('--deployments DIR serves every file under /deployments/ and lists them', async () => {
  const get = await start({ deployments, network: 'demo' });
  expect(await get('/deployments/index.json')).toEqual({ status: 200, body: [
    { name: 'demo', network: 'anvil', chainId: 31337 }, { name: 'gnosis-chiado', network: 'gnosis-chiado', chainId: 10200 },
  ] });
  expect((await get('/deployments/gnosis-chiado.json')).body.chainId).toBe(10200);
  expect((await get('/deployments/gnosis.json')).status).toBe(404);
  expect((await get('/deployments/..%2fone.json')).status).toBe(404);
  expect((await get('/deployment.json')).status).toBe(404);
});

test('--deployment FILE alone keeps serving /deployment.json', async () => {
  const get = await start({ deployment: single });
  expect((await get('/deployment.json')).body.chainId).toBe(100);
  expect((await get('/deployments/index.json')).status).toBe(404);
});

test('a network missing from the folder fails at start, naming the ones there', async () => {
  await expect(serveUi({ dist, deployments, network: 'filecoin' })).rejects.toThrow(
    /no deployment for network "filecoin" in .* \(it has: demo, gnosis-chiado\); deploy it with python -m pollen.deploy --network filecoin/);
  await expect(serveUi({ dist })).rejects.toThrow(/--deployment FILE or --deployments DIR/);
});
