import { describe, expect, test } from 'vitest';
import type { Address } from 'viem';
import {
  benchmarkAddress, formatScore, lineageOrder, readScores, scoreKey, verdict, type Reader,
} from '../src/benchmarks';
import type { AdapterInfo, VersionInfo } from '../src/chainData';
import type { Deployment } from '../src/deployment';

const ZERO = '0x0000000000000000000000000000000000000000' as Address;
const REGISTRY = '0x5FbDB2315678afecb367f032d93F642f64180aa3' as Address;

const v = (id: number, parentId = 0, modelId = 1): VersionInfo => ({
  id: BigInt(id), modelId: BigInt(modelId), parentId: BigInt(parentId), supersededBy: 0n, numBlocks: 8,
  toleranceMicros: 10_000, deprecated: false, publisher: ZERO, manifestCid: `bafy${id}`,
});
const adapter = (id: number, base: number): AdapterInfo => ({
  id: BigInt(id), baseVersionId: BigInt(base), publisher: ZERO, cid: `bafyadapter${id}`, name: `a${id}`, tags: '',
});

describe('lineageOrder', () => {
  test('puts each child under its parent, depth-first, newest first', () => {
    const rows = lineageOrder([v(1), v(2, 1), v(3, 1), v(4, 2), v(5)]);
    expect(rows.map((r) => [Number(r.version.id), r.depth])).toEqual([[5, 0], [1, 0], [3, 1], [2, 1], [4, 2]]);
    expect(rows.find((r) => r.version.id === 1n)?.children).toEqual([3n, 2n]);
  });

  test('a version whose parent belongs elsewhere (or is unknown) is a root', () => {
    const rows = lineageOrder([v(7, 3), v(8, 7)]);
    expect(rows.map((r) => [Number(r.version.id), r.depth])).toEqual([[7, 0], [8, 1]]);
  });
});

describe('scores', () => {
  test('formatScore turns metric x 1e6 back into the metric', () => {
    expect(formatScore(-1_234_567n)).toBe('-1.2346');
    expect(formatScore(700_000n)).toBe('0.7000');
    expect(formatScore(0n)).toBe('0.0000');
    expect(formatScore(-40n)).toBe('0.0000');
    expect(formatScore(1_999_950n)).toBe('2.0000');
    expect(formatScore(5n, 6)).toBe('0.000005');
  });

  test('verdict follows the benchmark direction and needs both scores', () => {
    const s = (value: bigint) => ({ value, requestId: 1n, reveals: 3 });
    expect(verdict({ higherIsBetter: true }, s(2n), s(1n))).toBe('better');
    expect(verdict({ higherIsBetter: true }, s(-5n), s(-1n))).toBe('worse');
    expect(verdict({ higherIsBetter: false }, s(-5n), s(-1n))).toBe('better');
    expect(verdict({ higherIsBetter: false }, s(3n), s(3n))).toBe('same');
    expect(verdict({ higherIsBetter: true }, s(3n), undefined)).toBeNull();
    expect(verdict({ higherIsBetter: true }, undefined, s(3n))).toBeNull();
  });
});

describe('benchmarkAddress', () => {
  const d = (contracts: Record<string, string>, parameters: Record<string, unknown> = {}) =>
    ({ network: 'anvil', chainId: 31337, rpc: 'http://x', deployedAtBlock: 0n, contracts, parameters,
       optional: contracts }) as unknown as Deployment;

  test('reads the optional contracts entry, then parameters.benchmarkRegistry, and refuses non-addresses', () => {
    expect(benchmarkAddress(d({ BenchmarkRegistry: REGISTRY.toLowerCase() }))).toBe(REGISTRY);
    expect(benchmarkAddress(d({}, { benchmarkRegistry: REGISTRY }))).toBe(REGISTRY);
    expect(benchmarkAddress(d({ BenchmarkRegistry: 'nope' }))).toBeNull();
    expect(benchmarkAddress(d({}))).toBeNull();
  });
});

describe('readScores', () => {
  // A stand-in for viem's readContract over one BenchmarkRegistry: model 1 has benchmarks 1 and 2;
  // version 1 is scored on both, version 2 on benchmark 1, adapter 1 on benchmark 2.
  const recorded: Record<string, bigint> = { '0:1:1': -1_500_000n, '0:1:2': 400_000n, '0:2:1': -1_200_000n, '1:1:2': 600_000n };
  const calls: string[] = [];
  const client: Reader = {
    async readContract({ address, functionName, args }) {
      expect(address).toBe(REGISTRY);
      calls.push(`${functionName}(${args.join(',')})`);
      if (functionName === 'benchmarksOf') return args[0] === 1n ? [1n, 2n] : [];
      if (functionName === 'getBenchmark') {
        const id = args[0] as bigint;
        return { modelId: 1n, higherIsBetter: true, tolerance: 5000n, registrant: ZERO, datasetCid: `bafydata${id}`, metric: id === 1n ? 'answer_loglik' : 'exact_match' };
      }
      const value = recorded[(args as bigint[] | number[]).join(':')];
      return value === undefined ? { value: 0n, requestId: 0n, recordedAt: 0n, reveals: 0 }
        : { value, requestId: 9n, recordedAt: 1n, reveals: 3 };
    },
  };

  test('collects every benchmark of the models and only the recorded scores', async () => {
    const book = await readScores(client, REGISTRY, [1n, 2n], [v(1), v(2, 1), v(3, 0, 2)], [adapter(1, 1), adapter(2, 99)]);
    expect(book.benchmarks.get(1n)?.map((b) => [b.id, b.metric])).toEqual([[1n, 'answer_loglik'], [2n, 'exact_match']]);
    expect(book.benchmarks.get(2n)).toEqual([]);
    expect([...book.scores.keys()].sort()).toEqual([scoreKey('adapter', 1n, 2n), scoreKey('version', 1n, 1n),
      scoreKey('version', 1n, 2n), scoreKey('version', 2n, 1n)].sort());
    expect(book.scores.get(scoreKey('version', 2n, 1n))).toEqual({ value: -1_200_000n, requestId: 9n, reveals: 3 });
    expect(calls.filter((c) => c.startsWith('scoreOf(1,2,'))).toEqual([]); // adapter 2's base is unknown
    expect(calls.filter((c) => c.startsWith('scoreOf(0,3,'))).toEqual([]); // model 2 has no benchmarks
  });
});
