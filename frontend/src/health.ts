// Live health of a version's servers, as `pollen health --json` reports it through the UI
// server's GET /api/health. Pure functions, unit-tested; the Swarm view draws their result.

export interface LiveServer {
  address: string;
  operator: string;
  span: [number, number] | null; // what the server says it serves, [first, last)
  rttMs: number | null; // null: unreachable
  throughput: number;
  load: number;
  sessions: number;
  freeCacheTokens: number;
  problems: string[]; // mismatches with the registry
  up: boolean; // reachable and consistent with the registry
}

export interface LiveHealth {
  servers: LiveServer[];
  numBlocks: number;
  coverage: Array<[number, number, number]>; // [start, end, live servers] runs
}

const num = (v: unknown, what: string): number => {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`${what} is not a number`);
  return v;
};

function parseServer(raw: unknown, i: number): LiveServer {
  if (!raw || typeof raw !== 'object') throw new Error(`server ${i} is not an object`);
  const s = raw as Record<string, unknown>;
  if (typeof s.address !== 'string') throw new Error(`server ${i} has no address`);
  let span: [number, number] | null = null;
  if (s.span != null) {
    if (!Array.isArray(s.span) || s.span.length !== 2) throw new Error(`server ${i} has a bad span`);
    span = [num(s.span[0], `server ${i} span`), num(s.span[1], `server ${i} span`)];
  }
  const rttMs = s.rtt_ms == null ? null : num(s.rtt_ms, `server ${i} rtt_ms`);
  const problems = Array.isArray(s.problems) ? s.problems.map(String) : [];
  return {
    address: s.address,
    operator: typeof s.operator === 'string' ? s.operator : '',
    span,
    rttMs,
    throughput: num(s.throughput ?? 0, `server ${i} throughput`),
    load: num(s.load ?? 0, `server ${i} load`),
    sessions: num(s.sessions ?? 0, `server ${i} sessions`),
    freeCacheTokens: num(s.free_cache_tokens ?? 0, `server ${i} free_cache_tokens`),
    problems,
    up: rttMs !== null && problems.length === 0,
  };
}

/** Parse the endpoint's body (text); throws an Error saying what is wrong with it. */
export function parseHealth(text: string): LiveHealth {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new Error(`the health probe answered something that is not JSON: ${text.slice(0, 120)}`);
  }
  if (!raw || typeof raw !== 'object' || !Array.isArray((raw as { servers?: unknown }).servers)) {
    throw new Error('the health probe answered JSON without a "servers" list');
  }
  const r = raw as { servers: unknown[]; num_blocks?: unknown; coverage?: unknown };
  const servers = r.servers.map(parseServer);
  const numBlocks = num(r.num_blocks ?? 0, 'num_blocks');
  const coverage = Array.isArray(r.coverage)
    ? r.coverage.map((run, i) => {
        if (!Array.isArray(run) || run.length !== 3) throw new Error(`coverage run ${i} is not [start, end, count]`);
        return [num(run[0], 'coverage'), num(run[1], 'coverage'), num(run[2], 'coverage')] as [number, number, number];
      })
    : [];
  return { servers, numBlocks, coverage };
}

/** The [first, last) runs of blocks no live server covers. */
export function liveGaps(h: LiveHealth): Array<[number, number]> {
  if (h.numBlocks <= 0) return [];
  const gaps: Array<[number, number]> = [];
  for (const [start, end, count] of h.coverage) {
    if (count > 0) continue;
    const last = gaps[gaps.length - 1];
    if (last && last[1] === start) last[1] = end;
    else gaps.push([start, end]);
  }
  return gaps;
}

export interface RegistryRow {
  endpoint: string;
  operator: string;
}

/** The live probe for each registry row (by endpoint, then operator), or null when not probed. */
export function matchLive<R extends RegistryRow>(rows: R[], h: LiveHealth): Array<{ row: R; live: LiveServer | null }> {
  return rows.map((row) => {
    const byAddr = h.servers.find((s) => s.address === row.endpoint);
    const byOp = h.servers.find((s) => s.operator && s.operator.toLowerCase() === row.operator.toLowerCase());
    return { row, live: byAddr ?? byOp ?? null };
  });
}

/** The UI server's probe URL for a version, for a page opened with `search`; throws when the page
 *  reads a deployment from elsewhere (?deployment=URL), which the UI server cannot probe for. */
export function healthUrl(versionId: bigint, source: { url: string; network?: string }): string {
  if (source.network) return `./api/health?version=${versionId}&network=${encodeURIComponent(source.network)}`;
  if (source.url === './deployment.json') return `./api/health?version=${versionId}`;
  throw new Error('Live probes run through the UI server for its own deployments: open the page with ?network=NAME, or serve this deployment with `pollen ui`.');
}

/** The probe's answer for a version, parsed; throws an Error that says what to do. */
export async function fetchHealth(url: string, fetcher: typeof fetch = fetch): Promise<LiveHealth> {
  let response: Response;
  try {
    response = await fetcher(url, { cache: 'no-store' });
  } catch {
    throw new Error('Cannot reach the UI server for a live probe: is `pollen ui` (or make ui) still running?');
  }
  const text = await response.text();
  if (!response.ok) throw new Error(`Live probe failed (HTTP ${response.status}): ${text.slice(0, 400)}`);
  return parseHealth(text);
}
