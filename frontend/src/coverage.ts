// Block coverage of one model version: which servers cover which blocks, and how thickly.
// Pure functions, unit-tested; the Swarm view draws their result.

export interface SpanServer {
  operator: string;
  firstBlock: number; // inclusive
  lastBlock: number; // exclusive
  throughput: number; // declared tokens/s
  active: boolean;
}

export interface BlockCoverage {
  block: number;
  servers: number; // active servers covering it
  throughput: number; // sum of their declared throughput
}

export interface Coverage {
  numBlocks: number;
  blocks: BlockCoverage[];
  gaps: Array<[number, number]>; // uncovered runs, [first, last)
  minServers: number; // the thinnest block's server count
  complete: boolean; // every block covered by at least one active server
  lanes: SpanServer[][]; // active servers packed into rows without overlap, for drawing
}

export function computeCoverage(numBlocks: number, servers: SpanServer[]): Coverage {
  const active = servers.filter(
    (s) => s.active && s.firstBlock < s.lastBlock && s.firstBlock < numBlocks,
  );
  const blocks: BlockCoverage[] = Array.from({ length: numBlocks }, (_, block) => ({
    block,
    servers: 0,
    throughput: 0,
  }));
  for (const s of active) {
    for (let b = Math.max(0, s.firstBlock); b < Math.min(numBlocks, s.lastBlock); b++) {
      blocks[b].servers += 1;
      blocks[b].throughput += s.throughput;
    }
  }
  const gaps: Array<[number, number]> = [];
  for (let b = 0; b < numBlocks; b++) {
    if (blocks[b].servers !== 0) continue;
    const last = gaps[gaps.length - 1];
    if (last && last[1] === b) last[1] = b + 1;
    else gaps.push([b, b + 1]);
  }
  const minServers = numBlocks ? Math.min(...blocks.map((b) => b.servers)) : 0;
  return { numBlocks, blocks, gaps, minServers, complete: numBlocks > 0 && gaps.length === 0, lanes: packLanes(active) };
}

/** Greedy interval packing: longest-first within start order, each server in the first lane it fits. */
export function packLanes(servers: SpanServer[]): SpanServer[][] {
  const sorted = [...servers].sort(
    (a, b) => a.firstBlock - b.firstBlock || b.lastBlock - a.lastBlock || a.operator.localeCompare(b.operator),
  );
  const lanes: SpanServer[][] = [];
  const ends: number[] = [];
  for (const s of sorted) {
    const i = ends.findIndex((end) => end <= s.firstBlock);
    if (i === -1) {
      lanes.push([s]);
      ends.push(s.lastBlock);
    } else {
      lanes[i].push(s);
      ends[i] = s.lastBlock;
    }
  }
  return lanes;
}

/** Colour class for a block by how many servers cover it (0 = gap). */
export function thicknessClass(servers: number): string {
  if (servers === 0) return 'cov-0';
  if (servers === 1) return 'cov-1';
  if (servers === 2) return 'cov-2';
  return 'cov-3';
}
