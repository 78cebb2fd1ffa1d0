// Living benchmarks for the Models page: BenchmarkRegistry's benchmarks and recorded scores, and
// the version lineage (parent → child) they are compared along.
import { getAddress, isAddress, parseAbi, type Address } from 'viem';
import type { AdapterInfo, VersionInfo } from './chainData';
import type { Deployment } from './deployment';

/** The BenchmarkRegistry views the page reads (contracts/BenchmarkRegistry.sol). */
export const BenchmarkRegistryViews = parseAbi([
  'function benchmarksOf(uint64 modelId) view returns (uint64[])',
  'function getBenchmark(uint64 benchmarkId) view returns ((uint64 modelId, bool higherIsBetter, uint64 tolerance, address registrant, string datasetCid, string metric))',
  'function scoreOf(uint8 kind, uint64 subjectId, uint64 benchmarkId) view returns ((int64 value, uint64 requestId, uint64 recordedAt, uint8 reveals))',
]);

export const SCORE_SCALE = 1_000_000n; // scores on chain are the metric x 1e6
export type SubjectKind = 'version' | 'adapter';
const KIND_CODE: Record<SubjectKind, number> = { version: 0, adapter: 1 };

export interface BenchmarkInfo {
  id: bigint; modelId: bigint; metric: string; datasetCid: string; higherIsBetter: boolean; tolerance: bigint;
}
export interface ScoreInfo { value: bigint; requestId: bigint; reveals: number }
export interface ScoreBook {
  /** A model's benchmarks, in registration order. */
  benchmarks: Map<bigint, BenchmarkInfo[]>;
  /** Recorded scores by scoreKey(kind, subject, benchmark); absent = never scored. */
  scores: Map<string, ScoreInfo>;
}

export const scoreKey = (kind: SubjectKind, subjectId: bigint, benchmarkId: bigint): string =>
  `${kind}:${subjectId}:${benchmarkId}`;

/** The registry's address: the deployment's contracts.BenchmarkRegistry (or parameters.benchmarkRegistry). */
export function benchmarkAddress(d: Deployment): Address | null {
  const raw = d.optional?.BenchmarkRegistry ?? d.parameters?.benchmarkRegistry;
  return typeof raw === 'string' && isAddress(raw) ? getAddress(raw) : null;
}

/** What readScores needs of a viem PublicClient. */
export interface Reader {
  readContract(args: { address: Address; abi: typeof BenchmarkRegistryViews; functionName: string; args: readonly unknown[] }): Promise<unknown>;
}

/** Every benchmark of `modelIds` and the scores of the given versions and adapters on them. */
export async function readScores(client: Reader, address: Address, modelIds: bigint[], versions: VersionInfo[],
  adapters: AdapterInfo[]): Promise<ScoreBook> {
  const read = (functionName: string, args: readonly unknown[]) =>
    client.readContract({ address, abi: BenchmarkRegistryViews, functionName, args });
  const book: ScoreBook = { benchmarks: new Map(), scores: new Map() };
  await Promise.all(modelIds.map(async (m) => {
    const ids = (await read('benchmarksOf', [m])) as readonly bigint[];
    const list = await Promise.all(ids.map(async (id) => {
      const b = (await read('getBenchmark', [id])) as Omit<BenchmarkInfo, 'id'> & { registrant: Address };
      return { id, modelId: b.modelId, metric: b.metric, datasetCid: b.datasetCid, higherIsBetter: b.higherIsBetter, tolerance: b.tolerance };
    }));
    book.benchmarks.set(m, list);
  }));
  const modelOf = new Map(versions.map((v) => [v.id, v.modelId]));
  const subjects: Array<[SubjectKind, bigint, bigint | undefined]> = [
    ...versions.map((v) => ['version', v.id, v.modelId] as [SubjectKind, bigint, bigint]),
    ...adapters.map((a) => ['adapter', a.id, modelOf.get(a.baseVersionId)] as [SubjectKind, bigint, bigint | undefined]),
  ];
  await Promise.all(subjects.flatMap(([kind, id, model]) => (model === undefined ? [] : book.benchmarks.get(model) ?? [])
    .map(async (b) => {
      const s = (await read('scoreOf', [KIND_CODE[kind], id, b.id])) as ScoreInfo;
      if (s.requestId !== 0n) book.scores.set(scoreKey(kind, id, b.id), { value: s.value, requestId: s.requestId, reveals: Number(s.reveals) });
    })));
  return book;
}

/** A score (metric x 1e6) as the metric, e.g. -1234567n → "-1.2346". */
export function formatScore(value: bigint, decimals = 4): string {
  const negative = value < 0n;
  const abs = negative ? -value : value;
  const unit = 10n ** BigInt(6 - decimals);
  const rounded = (abs + unit / 2n) / unit; // half up, in units of 10^-decimals
  const scale = 10n ** BigInt(decimals);
  const text = `${rounded / scale}.${(rounded % scale).toString().padStart(decimals, '0')}`;
  return negative && rounded !== 0n ? `-${text}` : text;
}

export type Verdict = 'better' | 'worse' | 'same';

/** How a child's score compares with its parent's on a benchmark (null: one of them unscored). */
export function verdict(b: Pick<BenchmarkInfo, 'higherIsBetter'>, child?: ScoreInfo, parent?: ScoreInfo): Verdict | null {
  if (!child || !parent) return null;
  if (child.value === parent.value) return 'same';
  return (child.value > parent.value) === b.higherIsBetter ? 'better' : 'worse';
}

export interface LineageRow { version: VersionInfo; depth: number; children: bigint[] }

/** A model's versions as a tree in display order: each root (no parent among them), newest
 *  first, followed depth-first by its descendants, newest first. */
export function lineageOrder(versions: VersionInfo[]): LineageRow[] {
  const ids = new Set(versions.map((v) => v.id));
  const children = new Map<bigint, VersionInfo[]>();
  const roots: VersionInfo[] = [];
  for (const v of versions) {
    if (v.parentId !== 0n && ids.has(v.parentId) && v.parentId !== v.id) {
      children.set(v.parentId, [...(children.get(v.parentId) ?? []), v]);
    } else roots.push(v);
  }
  const newest = (a: VersionInfo, b: VersionInfo) => Number(b.id - a.id);
  const out: LineageRow[] = [];
  const visit = (v: VersionInfo, depth: number) => {
    const kids = [...(children.get(v.id) ?? [])].sort(newest);
    out.push({ version: v, depth, children: kids.map((k) => k.id) });
    kids.forEach((k) => visit(k, depth + 1));
  };
  roots.sort(newest).forEach((r) => visit(r, 0));
  return out;
}
