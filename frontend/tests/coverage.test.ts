import { describe, expect, test } from 'vitest';
import { computeCoverage, packLanes, thicknessClass, type SpanServer } from '../src/coverage';

const s = (operator: string, firstBlock: number, lastBlock: number, throughput = 10, active = true): SpanServer =>
  ({ operator, firstBlock, lastBlock, throughput, active });

describe('computeCoverage', () => {
  test('counts servers and sums throughput per block', () => {
    const c = computeCoverage(8, [s('a', 0, 4, 20), s('b', 0, 6, 30), s('c', 2, 8, 40), s('d', 4, 8, 50)]);
    expect(c.blocks.map((b) => b.servers)).toEqual([2, 2, 3, 3, 3, 3, 2, 2]);
    expect(c.blocks.map((b) => b.throughput)).toEqual([50, 50, 90, 90, 120, 120, 90, 90]);
    expect(c.complete).toBe(true);
    expect(c.minServers).toBe(2);
    expect(c.gaps).toEqual([]);
  });

  test('reports uncovered runs as gaps and ignores inactive servers', () => {
    const c = computeCoverage(10, [s('a', 0, 3), s('b', 5, 6), s('x', 0, 10, 10, false)]);
    expect(c.gaps).toEqual([[3, 5], [6, 10]]);
    expect(c.complete).toBe(false);
    expect(c.minServers).toBe(0);
    expect(c.lanes.flat().map((x) => x.operator)).not.toContain('x');
  });

  test('clips spans that run past the version and skips empty ones', () => {
    const c = computeCoverage(4, [s('a', 2, 9), s('b', 3, 3), s('c', 7, 9)]);
    expect(c.blocks.map((b) => b.servers)).toEqual([0, 0, 1, 1]);
    expect(c.gaps).toEqual([[0, 2]]);
  });

  test('a version with no blocks is not complete', () => {
    expect(computeCoverage(0, []).complete).toBe(false);
  });
});

describe('packLanes', () => {
  test('puts non-overlapping spans in one lane and overlapping ones in new lanes', () => {
    const lanes = packLanes([s('a', 0, 4), s('b', 4, 8), s('c', 2, 6), s('d', 0, 2)]);
    for (const lane of lanes) {
      for (let i = 1; i < lane.length; i++) expect(lane[i].firstBlock).toBeGreaterThanOrEqual(lane[i - 1].lastBlock);
    }
    expect(lanes.flat()).toHaveLength(4);
    expect(lanes).toHaveLength(2);
  });
});

test('thicknessClass buckets server counts', () => {
  expect([0, 1, 2, 3, 7].map(thicknessClass)).toEqual(['cov-0', 'cov-1', 'cov-2', 'cov-3', 'cov-3']);
});
