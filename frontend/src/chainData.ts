// Everything the views show, read from the chain: the deployment's events since it was deployed
// (fetched incrementally, so the UI is live as events arrive) and the records they point to.
import { parseEventLogs, type Address, type Hex, type PublicClient } from 'viem';
import { allEventsAbi, DISPUTE_STAGE, OUTCOME, SERVER_STATUS, VOTE_STATE, type Contracts } from './contracts';
import type { Deployment } from './deployment';

export interface ModelInfo { id: bigint; owner: Address; name: string }
export interface VersionInfo {
  id: bigint; modelId: bigint; parentId: bigint; supersededBy: bigint; numBlocks: number;
  toleranceMicros: number; deprecated: boolean; publisher: Address; manifestCid: string;
}
export interface AdapterInfo { id: bigint; baseVersionId: bigint; publisher: Address; cid: string; name: string; tags: string }
export interface ServerInfo {
  operator: Address; signer: Address; versionId: bigint; firstBlock: number; lastBlock: number;
  endpoint: string; throughput: number; status: (typeof SERVER_STATUS)[number]; stake: bigint;
}
export type TimelineKind = 'opened' | 'drawn' | 'committed' | 'revealed' | 'ruled' | 'appealed' | 'penalized' | 'resolved';
export interface TimelineEntry {
  kind: TimelineKind; block: bigint; time: number; tx: Hex; logIndex: number;
  args: Record<string, unknown>;
}
export type Stage = (typeof DISPUTE_STAGE)[number];
export type Outcome = (typeof OUTCOME)[number];
export type VoteState = (typeof VOTE_STATE)[number];
export interface DisputeInfo {
  id: bigint; accused: Address; challenger: Address; versionId: bigint; firstBlock: number; lastBlock: number;
  stage: Stage; outcome: Outcome; bond: bigint; drawBlock: bigint;
  commitDeadline: number; revealDeadline: number; drawnCount: number; committedCount: number;
  faultyVotes: number; honestVotes: number; abstainVotes: number; evidenceCid: string; receiptHash: Hex;
  /** The first block the challenger names as faulty (global index), the receipt's step and kind. */
  block: number; step: bigint; kind: number;
  /** Round 0's ruling (Pending until ruled); 1 once appealed; who appealed (zero address: nobody) and their bond. */
  firstRuling: Outcome; round: number; appellant: Address; appealBond: bigint;
  /** The parameter snapshot it runs under, candidate tickets at opening, when it opened (chain time). */
  paramsId: number; ticketCount: number; openedAt: number; appealDeadline: number; incident: Hex;
  /** The dispute's own parameters (snapshotted at opening); null until read. */
  params: CourtParams | null;
  /** Every round's auditors, in draw order; each one's vote state and the round it was drawn in. */
  auditors: Address[]; votes: Record<Address, VoteState>; voteRound: Record<Address, number>;
  timeline: TimelineEntry[];
}
export interface CourtParams {
  disputeWindow: number; maxClockSkew: number; commitPeriod: number; revealPeriod: number;
  /** Seconds a first-round ruling can be appealed (0: no appeal, the ruling is final). */
  appealPeriod: number;
  /** An auditor's server must have been active this long before the opening. */
  auditorMinAge: number;
  drawDelayBlocks: number;
  /** Blocks a committed opening stays revealable. */
  openRevealBlocks: number;
  auditorsPerDispute: number; minPanel: number;
  slashBps: number; finderBps: number; auditorBps: number; accusedShareBps: number;
  /** Bond = bondBps of what the dispute can slash, at least minBond (see bondFor). */
  bondBps: number; minBond: bigint;
  noRevealPenalty: bigint; incoherencePenalty: bigint;
}

/** DisputeCourt.Params as viem decodes it → numbers for durations and counts, bigints for wei. */
export function toCourtParams(p: {
  disputeWindow: bigint; maxClockSkew: bigint; commitPeriod: bigint; revealPeriod: bigint; appealPeriod: bigint;
  auditorMinAge: bigint; drawDelayBlocks: number; openRevealBlocks: number; auditorsPerDispute: number; minPanel: number;
  slashBps: number; finderBps: number; auditorBps: number; accusedShareBps: number; bondBps: number;
  minBond: bigint; noRevealPenalty: bigint; incoherencePenalty: bigint;
}): CourtParams {
  return {
    disputeWindow: Number(p.disputeWindow), maxClockSkew: Number(p.maxClockSkew), commitPeriod: Number(p.commitPeriod),
    revealPeriod: Number(p.revealPeriod), appealPeriod: Number(p.appealPeriod), auditorMinAge: Number(p.auditorMinAge),
    drawDelayBlocks: Number(p.drawDelayBlocks), openRevealBlocks: Number(p.openRevealBlocks),
    auditorsPerDispute: Number(p.auditorsPerDispute), minPanel: Number(p.minPanel),
    slashBps: Number(p.slashBps), finderBps: Number(p.finderBps), auditorBps: Number(p.auditorBps),
    accusedShareBps: Number(p.accusedShareBps), bondBps: Number(p.bondBps),
    minBond: BigInt(p.minBond), noRevealPenalty: BigInt(p.noRevealPenalty), incoherencePenalty: BigInt(p.incoherencePenalty),
  };
}

const DISPUTE_EVENTS: Record<string, TimelineKind> = {
  DisputeOpened: 'opened', AuditorsDrawn: 'drawn', VoteCommitted: 'committed', VoteRevealed: 'revealed',
  RoundRuled: 'ruled', Appealed: 'appealed', AuditorPenalized: 'penalized', DisputeResolved: 'resolved',
};
const MAX_LOG_RANGE = 5000n;

export class ChainData {
  models = new Map<bigint, ModelInfo>();
  versions = new Map<bigint, VersionInfo>();
  adapters = new Map<bigint, AdapterInfo>();
  servers = new Map<Address, ServerInfo>();
  disputes = new Map<bigint, DisputeInfo>();
  minStake = 0n;
  unbondingPeriod = 0;
  /** The court's current parameters (those a dispute opened now runs under). */
  court: CourtParams | null = null;
  /** Parameter snapshots by id (immutable once written), read as disputes refer to them. */
  paramsById = new Map<number, CourtParams>();
  latestBlock: bigint | null = null;
  /** Chain time of the latest block and the local clock when we saw it (for countdowns). */
  private chainTime = 0;
  private seenAt = 0;
  error: string | null = null;
  private listeners = new Set<() => void>();
  private blockTimes = new Map<bigint, number>();
  private busy = false;
  private headRescanned = false;
  private at: bigint | undefined = undefined;
  private seenLogs = new Set<string>();
  private timer: ReturnType<typeof setInterval> | null = null;

  constructor(readonly client: PublicClient, readonly deployment: Deployment, readonly c: Contracts) {}

  onChange(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Seconds of chain time now: the latest block's timestamp plus local time since we saw it. */
  now(): number {
    return this.chainTime ? this.chainTime + Math.floor((Date.now() - this.seenAt) / 1000) : Math.floor(Date.now() / 1000);
  }

  start(intervalMs = 1000): void {
    void this.refresh();
    this.timer = setInterval(() => void this.refresh(), intervalMs);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  /** Fetch new events since the last refresh and re-read what they touched. */
  async refresh(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      const latest = await this.client.getBlockNumber({ cacheTime: 0 });
      const sameHead = latest === this.latestBlock;
      if (sameHead && this.headRescanned && !this.error) return;
      const first = this.latestBlock === null;
      // The previous head is scanned once more (a node may answer for a block a moment before
      // its logs are queryable); entries already seen are skipped.
      const from = first ? this.deployment.deployedAtBlock : this.latestBlock!;
      this.at = latest; // every record is read at this block: one consistent snapshot
      const dirty = await this.ingest(from, latest);
      if (first) await this.readParams();
      await this.reread(dirty);
      const block = await this.client.getBlock({ blockNumber: latest });
      this.chainTime = Number(block.timestamp);
      this.seenAt = Date.now();
      const changed = !sameHead || dirty.count > 0 || this.error !== null;
      this.latestBlock = latest;
      this.headRescanned = sameHead;
      this.error = null;
      if (changed) this.emit();
    } catch (err) {
      const msg = `Cannot read the chain at ${this.deployment.rpc}: ${(err as Error).message.split('\n')[0]}. Is the node running? Retrying every second.`;
      if (msg !== this.error) {
        this.error = msg;
        this.emit();
      }
    } finally {
      this.busy = false;
    }
  }

  /** Bumped on every change, so views can skip re-rendering when nothing moved. */
  revision = 0;

  private emit(): void {
    this.revision++;
    for (const fn of this.listeners) fn();
  }

  private async ingest(from: bigint, to: bigint) {
    const dirty = {
      models: new Set<bigint>(), versions: new Set<bigint>(), adapters: new Set<bigint>(),
      servers: new Set<Address>(), disputes: new Set<bigint>(), params: false, count: 0,
    };
    const addresses = Object.values(this.deployment.contracts);
    for (let start = from; start <= to; start += MAX_LOG_RANGE) {
      const end = start + MAX_LOG_RANGE - 1n < to ? start + MAX_LOG_RANGE - 1n : to;
      const logs = await this.client.getLogs({ address: addresses, fromBlock: start, toBlock: end });
      const events = parseEventLogs({ abi: allEventsAbi, logs, strict: false });
      for (const ev of events) {
        const key = `${ev.transactionHash}:${ev.logIndex}`;
        if (this.seenLogs.has(key)) continue;
        this.seenLogs.add(key);
        dirty.count++;
        const args = (ev.args ?? {}) as Record<string, unknown>;
        const name = ev.eventName as string;
        switch (name) {
          case 'ModelCreated': case 'ModelOwnershipTransferred': dirty.models.add(args.modelId as bigint); break;
          case 'VersionPublished': dirty.versions.add(args.versionId as bigint); dirty.models.add(args.modelId as bigint); break;
          case 'VersionDeprecated': dirty.versions.add(args.versionId as bigint); break;
          case 'AdapterPublished': dirty.adapters.add(args.adapterId as bigint); break;
          case 'ServerRegistered': case 'ServerUpdated': case 'ServerDeactivated': case 'ServerLeft':
            dirty.servers.add(args.operator as Address); break;
          case 'Staked': case 'UnstakeRequested': case 'Slashed':
            if (this.servers.has(args.operator as Address)) dirty.servers.add(args.operator as Address);
            break;
          case 'MinStakeChanged': case 'UnbondingPeriodChanged': case 'ParamsChanged': dirty.params = true; break;
        }
        const kind = DISPUTE_EVENTS[name];
        if (kind) {
          const id = args.disputeId as bigint;
          dirty.disputes.add(id);
          const entry: TimelineEntry = {
            kind, block: ev.blockNumber!, time: 0, tx: ev.transactionHash!, logIndex: ev.logIndex!, args,
          };
          this.pendingTimeline.push([id, entry]);
        }
      }
    }
    return dirty;
  }

  private pendingTimeline: Array<[bigint, TimelineEntry]> = [];

  private async blockTime(n: bigint): Promise<number> {
    let t = this.blockTimes.get(n);
    if (t === undefined) {
      t = Number((await this.client.getBlock({ blockNumber: n })).timestamp);
      this.blockTimes.set(n, t);
    }
    return t;
  }

  private async readParams(): Promise<void> {
    const { vault, court } = this.c;
    const [minStake, unbonding, p] = await Promise.all([
      this.client.readContract({ ...vault, functionName: 'minStake', blockNumber: this.at }),
      this.client.readContract({ ...vault, functionName: 'unbondingPeriod', blockNumber: this.at }),
      this.client.readContract({ ...court, functionName: 'params', blockNumber: this.at }),
    ]);
    this.minStake = minStake;
    this.unbondingPeriod = Number(unbonding);
    this.court = toCourtParams(p);
  }

  private async reread(dirty: Awaited<ReturnType<ChainData['ingest']>>): Promise<void> {
    const { client } = this;
    const { versions: mv, court } = this.c;
    if (dirty.params) await this.readParams();
    await Promise.all([
      ...[...dirty.models].map(async (id) => {
        const m = await client.readContract({ ...mv, functionName: 'getModel', args: [id], blockNumber: this.at });
        this.models.set(id, { id, owner: m.owner, name: m.name });
      }),
      ...[...dirty.versions].map(async (id) => {
        const v = await client.readContract({ ...mv, functionName: 'getVersion', args: [id], blockNumber: this.at });
        this.versions.set(id, {
          id, modelId: v.modelId, parentId: v.parentId, supersededBy: v.supersededBy, numBlocks: v.numBlocks,
          toleranceMicros: v.toleranceMicros, deprecated: v.deprecated, publisher: v.publisher, manifestCid: v.manifestCid,
        });
      }),
      ...[...dirty.adapters].map(async (id) => {
        const a = await client.readContract({ ...mv, functionName: 'getAdapter', args: [id], blockNumber: this.at });
        this.adapters.set(id, { id, baseVersionId: a.baseVersionId, publisher: a.publisher, cid: a.cid, name: a.name, tags: a.tags });
      }),
      ...[...dirty.servers].map((op) => this.readServer(op)),
    ]);
    // Timeline entries need their blocks' timestamps; disputes are re-read after them.
    const pending = this.pendingTimeline.splice(0);
    for (const [, e] of pending) e.time = await this.blockTime(e.block);
    await Promise.all([...dirty.disputes].map(async (id) => {
      const [d, auditors] = await Promise.all([
        client.readContract({ ...court, functionName: 'getDispute', args: [id], blockNumber: this.at }),
        client.readContract({ ...court, functionName: 'auditorsOf', args: [id], blockNumber: this.at }),
      ]);
      const paramsId = Number(d.paramsId);
      const [votes] = await Promise.all([
        Promise.all(auditors.map((a) => client.readContract({ ...court, functionName: 'voteOf', args: [id, a], blockNumber: this.at }))),
        this.paramsById.has(paramsId) ? null : client.readContract({ ...court, functionName: 'paramsOf', args: [id], blockNumber: this.at })
          .then((p) => { this.paramsById.set(paramsId, toCourtParams(p)); }),
      ]);
      const prev = this.disputes.get(id);
      const timeline = [...(prev?.timeline ?? []), ...pending.filter(([pid]) => pid === id).map(([, e]) => e)]
        .sort((a, b) => Number(a.block - b.block) || a.logIndex - b.logIndex);
      const opened = timeline.find((e) => e.kind === 'opened');
      this.disputes.set(id, {
        id, accused: d.accused, challenger: d.challenger, versionId: BigInt(d.versionId), firstBlock: d.firstBlock, lastBlock: d.lastBlock,
        stage: DISPUTE_STAGE[d.stage] ?? 'None', outcome: OUTCOME[d.outcome] ?? 'Pending', bond: BigInt(d.bond), drawBlock: BigInt(d.drawBlock),
        commitDeadline: Number(d.commitDeadline), revealDeadline: Number(d.revealDeadline), drawnCount: d.drawnCount,
        committedCount: d.committedCount, faultyVotes: d.faultyVotes, honestVotes: d.honestVotes, abstainVotes: d.abstainVotes,
        block: d.block, step: BigInt(d.step), kind: d.kind,
        firstRuling: OUTCOME[d.firstRuling] ?? 'Pending', round: d.round, appellant: d.appellant, appealBond: BigInt(d.appealBond),
        paramsId, ticketCount: Number(d.ticketCount), openedAt: Number(d.openedAt), appealDeadline: Number(d.appealDeadline),
        incident: d.incident, params: this.paramsById.get(paramsId) ?? null,
        evidenceCid: (opened?.args.evidenceCid as string) ?? '', receiptHash: (opened?.args.receiptHash as Hex) ?? '0x',
        auditors: [...auditors],
        votes: Object.fromEntries(auditors.map((a, i) => [a, VOTE_STATE[votes[i].state] ?? 'None'])),
        voteRound: Object.fromEntries(auditors.map((a, i) => [a, Number(votes[i].round)])),
        timeline,
      });
    }));
    // A dispute touches the stakes of the accused and the auditors.
    const touched = new Set<Address>();
    for (const id of dirty.disputes) {
      const d = this.disputes.get(id)!;
      for (const a of [d.accused, ...d.auditors]) if (this.servers.has(a) && !dirty.servers.has(a)) touched.add(a);
    }
    await Promise.all([...touched].map((op) => this.readServer(op)));
  }

  /** Only the indexer writes the shared map, one refresh at a time, so no stale read lands last. */
  private async readServer(operator: Address): Promise<void> {
    this.servers.set(operator, await fetchServer(this.client, this.c, operator, this.at));
  }

  /** Disputes (any stage) against an operator. */
  disputesAgainst(operator: Address): DisputeInfo[] {
    return [...this.disputes.values()].filter((d) => d.accused.toLowerCase() === operator.toLowerCase());
  }
}

/** The auditors drawn for the dispute's current round (earlier rounds' auditors keep their votes). */
export function roundAuditors(d: DisputeInfo): Address[] {
  return d.auditors.filter((a) => (d.voteRound[a] ?? 0) === d.round);
}

/** One server's record, current term and active stake. */
export async function fetchServer(client: PublicClient, c: Contracts, operator: Address, blockNumber?: bigint): Promise<ServerInfo> {
  const [s, t, stake] = await Promise.all([
    client.readContract({ ...c.registry, functionName: 'getServer', args: [operator], blockNumber }),
    client.readContract({ ...c.registry, functionName: 'currentTerm', args: [operator], blockNumber }),
    client.readContract({ ...c.vault, functionName: 'stakeOf', args: [operator], blockNumber }),
  ]);
  return {
    operator, signer: t.signer, versionId: t.versionId, firstBlock: t.firstBlock, lastBlock: t.lastBlock,
    endpoint: s.endpoint, throughput: Number(s.throughput), status: SERVER_STATUS[s.status], stake,
  };
}
