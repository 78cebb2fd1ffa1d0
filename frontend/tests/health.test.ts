import { expect, test } from 'vitest';
import { fetchHealth, healthUrl, liveGaps, matchLive, parseHealth } from '../src/health';

const body = JSON.stringify({
  servers: [
    { address: '127.0.0.1:5001', operator: '0xAa', span: [0, 4], num_blocks: 8, rtt_ms: 1.5, throughput: 10,
      load: 0.25, sessions: 2, free_cache_tokens: 100, problems: [] },
    { address: '127.0.0.1:5002', operator: '0xbb', span: null, num_blocks: 0, rtt_ms: null, throughput: 0,
      load: 0, sessions: 0, free_cache_tokens: 0, problems: ['unreachable: connection refused'] },
  ],
  num_blocks: 8,
  coverage: [[0, 4, 1], [4, 6, 0], [6, 8, 0]],
});

test('parseHealth reads the probe and marks reachable consistent servers up', () => {
  const h = parseHealth(body);
  expect(h.numBlocks).toBe(8);
  expect(h.servers[0]).toMatchObject({ address: '127.0.0.1:5001', span: [0, 4], rttMs: 1.5, load: 0.25, sessions: 2, up: true });
  expect(h.servers[1]).toMatchObject({ span: null, rttMs: null, up: false });
});

test('a reachable server with registry mismatches is not up', () => {
  const h = parseHealth(JSON.stringify({ servers: [{ address: 'a:1', rtt_ms: 2, problems: ['span 0-2, registry says 0-4'] }], num_blocks: 4, coverage: [[0, 4, 0]] }));
  expect(h.servers[0].up).toBe(false);
});

test('liveGaps merges adjacent uncovered runs', () => {
  expect(liveGaps(parseHealth(body))).toEqual([[4, 8]]);
  expect(liveGaps({ servers: [], numBlocks: 0, coverage: [] })).toEqual([]);
});

test('bad JSON gets a clear message, not a crash', () => {
  expect(() => parseHealth('<html>oops')).toThrow(/not JSON/);
  expect(() => parseHealth('{"x":1}')).toThrow(/"servers"/);
  expect(() => parseHealth('{"servers":[{"rtt_ms":1}]}')).toThrow(/no address/);
  expect(() => parseHealth('{"servers":[{"address":"a","rtt_ms":"fast"}]}')).toThrow(/rtt_ms is not a number/);
  expect(() => parseHealth('{"servers":[],"coverage":[[0,1]]}')).toThrow(/coverage run 0/);
});

test('matchLive pairs registry rows with probes by endpoint, then operator', () => {
  const h = parseHealth(body);
  const m = matchLive([{ endpoint: '127.0.0.1:5001', operator: '0x1' }, { endpoint: 'x:1', operator: '0xBB' }, { endpoint: 'y:1', operator: '0xcc' }], h);
  expect(m.map((x) => x.live?.address ?? null)).toEqual(['127.0.0.1:5001', '127.0.0.1:5002', null]);
});

test('healthUrl names the page network, or the default deployment; a foreign deployment cannot be probed', () => {
  expect(healthUrl(3n, { url: './deployments/demo.json', network: 'demo' })).toBe('./api/health?version=3&network=demo');
  expect(healthUrl(1n, { url: './deployment.json' })).toBe('./api/health?version=1');
  expect(() => healthUrl(1n, { url: 'https://elsewhere/d.json' })).toThrow(/\?network=NAME/);
});

test('fetchHealth passes the server error text on and parses a good answer', async () => {
  const answer = (status: number, text: string) => (async () => new Response(text, { status })) as unknown as typeof fetch;
  await expect(fetchHealth('./api/health?version=1', answer(501, 'live health is off: start ...'))).rejects.toThrow(/HTTP 501\): live health is off/);
  expect((await fetchHealth('./api/health?version=1', answer(200, body))).numBlocks).toBe(8);
  const down = (async () => { throw new TypeError('fetch failed'); }) as unknown as typeof fetch;
  await expect(fetchHealth('./x', down)).rejects.toThrow(/still running/);
});
