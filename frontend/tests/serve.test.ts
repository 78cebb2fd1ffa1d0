/// <reference types="node" />
// scripts/serve.mjs: one deployment file, a folder of them (?network=), or both; /api/health.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, test } from 'vitest';
// @ts-expect-error — plain ESM module without types
import { parseHealthCmd, serveUi } from '../scripts/serve.mjs';

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

// A stand-in for `pollen health` (the real one runs in the browser tests): what it does depends
// on the version id; every call appends its argv to calls.log.
const fakeHealth = join(dir, 'fake-health.mjs');
const callsLog = join(dir, 'calls.log');
writeFileSync(fakeHealth, `
import { appendFileSync } from 'node:fs';
const args = process.argv.slice(2);
appendFileSync(${JSON.stringify(callsLog)}, JSON.stringify(args) + '\\n');
const version = args[args.indexOf('--version-id') + 1];
const json = JSON.stringify({ servers: [], num_blocks: 4, coverage: [[0, 4, 0]], args });
if (version === '1') { console.log(json); }
else if (version === '2') { console.log(json); process.exit(1); }
else if (version === '3') { console.error('Traceback ...\\nChainError: cannot reach the RPC at http://x'); process.exit(2); }
else if (version === '4') { setTimeout(() => console.log(json), 5000); }
else { console.log('not json'); }
`);
const calls = () => (existsSync(callsLog) ? readFileSync(callsLog, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l)) : []);

const startHealth = async (opts: Record<string, unknown>) => {
  const s = await serveUi({ dist, deployments, deployment: single, healthCmd: [process.execPath, fakeHealth], healthTimeoutMs: 1500, ...opts });
  servers.push(s);
  return async (query: string) => {
    const r = await fetch(new URL(`/api/health?${query}`, s.url));
    return { status: r.status, text: await r.text() };
  };
};

test('/api/health runs the probe for the page deployment and answers its JSON, also when it exits 1', async () => {
  const get = await startHealth({});
  const ok = await get('version=1&network=gnosis-chiado');
  expect(ok.status).toBe(200);
  expect(JSON.parse(ok.text).args).toEqual(['--deployment', join(deployments, 'gnosis-chiado.json'), '--version-id', '1', '--json']);
  const gaps = await get('version=2');
  expect(gaps.status).toBe(200); // exit 1 = some block has no live server: still an answer
  expect(JSON.parse(gaps.text).args.slice(0, 2)).toEqual(['--deployment', single]);
});

test('/api/health refuses bad input before running anything, and says why a probe failed', async () => {
  const get = await startHealth({});
  const before = calls().length;
  expect(await get('version=1;rm')).toMatchObject({ status: 400, text: expect.stringMatching(/model version id/) });
  expect(await get('version=1&network=..%2fx')).toMatchObject({ status: 400, text: expect.stringMatching(/not a network name/) });
  expect(await get('version=1&network=filecoin')).toMatchObject({ status: 400, text: expect.stringMatching(/no deployment for network "filecoin"/) });
  expect(calls().length).toBe(before);
  expect(await get('version=3')).toMatchObject({ status: 502, text: expect.stringMatching(/exit 2\): Traceback ...\nChainError: cannot reach the RPC/) });
  expect(await get('version=5')).toMatchObject({ status: 502, text: expect.stringMatching(/no JSON\): not json/) });
  expect(await get('version=4')).toMatchObject({ status: 504, text: expect.stringMatching(/ran past 1.5 s/) });
});

test('/api/health shares one probe among concurrent requests and caches the answer briefly', async () => {
  const get = await startHealth({});
  const count = () => calls().filter((a) => a[1] === join(deployments, 'gnosis-chiado.json') && a[3] === '2').length;
  const before = count();
  const answers = await Promise.all([1, 2, 3, 4].map(() => get('version=2&network=gnosis-chiado')));
  expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200]);
  await get('version=2&network=gnosis-chiado');
  expect(count() - before).toBe(1);
});

test('/api/health runs at most two probes at once; more answer 503 at once', async () => {
  const get = await startHealth({});
  const slow = ['version=4', 'version=4&network=demo', 'version=4&network=gnosis-chiado'];
  const first = slow.slice(0, 2).map((q) => get(q));
  await new Promise((r) => setTimeout(r, 100)); // both probes have started
  expect(await get(slow[2])).toMatchObject({ status: 503, text: expect.stringMatching(/2 health probes are running/) });
  expect((await Promise.all(first)).map((a) => a.status)).toEqual([504, 504]);
});

test('/api/health without --health-cmd says how to turn it on', async () => {
  const s = await serveUi({ dist, deployment: single });
  servers.push(s);
  const r = await fetch(new URL('/api/health?version=1', s.url));
  expect(r.status).toBe(501);
  expect(await r.text()).toMatch(/--health-cmd/);
});

test('a bad --health-timeout-ms fails at start', async () => {
  await expect(serveUi({ dist, deployment: single, healthCmd: ['x'], healthTimeoutMs: Number('soon') })).rejects.toThrow(/--health-timeout-ms must be a positive number/);
});

test('--health-cmd must be a JSON list of strings', () => {
  expect(parseHealthCmd(undefined)).toBeUndefined();
  expect(parseHealthCmd('["python", "-m", "pollen.cli", "health"]')).toEqual(['python', '-m', 'pollen.cli', 'health']);
  expect(() => parseHealthCmd('python -m pollen.cli health')).toThrow(/JSON list of strings/);
  expect(() => parseHealthCmd('[]')).toThrow(/non-empty/);
  expect(() => parseHealthCmd('["python", 3]')).toThrow(/non-empty/);
});
