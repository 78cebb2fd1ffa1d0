import { describe, expect, test } from 'vitest';
import { encodeAbiParameters, encodeEventTopics, type Abi, type AbiEvent, type Address, type Hex, type PublicClient } from 'viem';
import { ChainData } from '../src/chainData';
import { contractsOf } from '../src/contracts';
import { parseDeployment } from '../src/deployment';
import { DisputeCourtAbi, ModelVersionRegistryAbi } from '../src/generated/contracts';

const deployment = parseDeployment({
  network: 'test', chainId: 31337, rpc: 'http://127.0.0.1:1', deployedAtBlock: 2,
  contracts: {
    StakeVault: '0x5fbdb2315678afecb367f032d93f642f64180aa3', ServerRegistry: '0x9fe46736679d2d9a65f0992f2272de9f3c7fa6e0',
    DisputeCourt: '0xcf7ed3acca5a467e9e704c703e8d87f634fb0fc9', ModelVersionRegistry: '0xe7f1725e7734ce288f8367e1bb143e90bb3f0512',
  },
});
const A = '0x70997970C51812dc3A010C7d01b50e0d17dc79C8' as Address;
const B = '0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC' as Address;

/** A raw log as a node returns it, encoded from the real ABI. */
function log(abi: Abi, eventName: string, args: Record<string, unknown>, block: number, logIndex = 0) {
  const event = abi.find((i) => i.type === 'event' && i.name === eventName) as AbiEvent;
  const topics = encodeEventTopics({ abi: [event], eventName, args } as Parameters<typeof encodeEventTopics>[0]);
  const plain = event.inputs.filter((i) => !i.indexed);
  const address = abi === DisputeCourtAbi ? deployment.contracts.DisputeCourt : deployment.contracts.ModelVersionRegistry;
  return {
    address, topics, data: encodeAbiParameters(plain, plain.map((i) => args[i.name!])) as Hex,
    blockNumber: BigInt(block), logIndex, transactionHash: `0x${String(block).padStart(64, '0')}` as Hex,
    transactionIndex: 0, blockHash: `0x${'1'.repeat(64)}` as Hex, removed: false,
  };
}

const receipt = {
  server: B, versionId: 1n, firstBlock: 0, lastBlock: 4, term: 0, kind: 2, sessionId: `0x${'0'.repeat(64)}`, step: 5n,
  inputHash: `0x${'0'.repeat(64)}`, outputHash: `0x${'0'.repeat(64)}`, blocksRoot: `0x${'0'.repeat(64)}`, issuedAt: 100n,
};

const PARAMS = {
  disputeWindow: 600n, maxClockSkew: 0n, commitPeriod: 60n, revealPeriod: 60n, appealPeriod: 0n, auditorMinAge: 0n,
  drawDelayBlocks: 2, openRevealBlocks: 50, auditorsPerDispute: 3, minPanel: 3, slashBps: 5000, finderBps: 2000,
  auditorBps: 2000, accusedShareBps: 5000, bondBps: 1000, minBond: 10n ** 17n, noRevealPenalty: 5n * 10n ** 16n,
  incoherencePenalty: 2n * 10n ** 16n,
};
const DISPUTE = {
  accused: B, versionId: 1n, stage: 2, outcome: 0, firstRuling: 0, round: 0, challenger: A, bond: 10n ** 17n,
  appellant: `0x${'0'.repeat(40)}`, appealBond: 0n, paramsId: 1, ticketCount: 4, block: 2, firstBlock: 0, lastBlock: 4, kind: 2,
  drawnCount: 1, committedCount: 0, faultyVotes: 0, honestVotes: 0, abstainVotes: 0, step: 5n, openedAt: 1006n, drawBlock: 8n,
  commitDeadline: 2000n, revealDeadline: 2060n, appealDeadline: 0n, incident: `0x${'cd'.repeat(32)}`,
};

function fakeClient(state: { head: bigint; logs: ReturnType<typeof log>[]; dispute?: Record<string, unknown> }) {
  const ranges: Array<[bigint, bigint]> = [];
  const reads: string[] = [];
  const client = {
    getBlockNumber: async () => state.head,
    getBlock: async ({ blockNumber }: { blockNumber: bigint }) => ({ timestamp: 1_000n + blockNumber }),
    getLogs: async ({ fromBlock, toBlock }: { fromBlock: bigint; toBlock: bigint }) => {
      ranges.push([fromBlock, toBlock]);
      return state.logs.filter((l) => l.blockNumber >= fromBlock && l.blockNumber <= toBlock);
    },
    readContract: async ({ functionName, args }: { functionName: string; args?: unknown[] }) => {
      reads.push(`${functionName}(${(args ?? []).join(',')})`);
      switch (functionName) {
        case 'minStake': return 10n ** 18n;
        case 'unbondingPeriod': return 3600n;
        case 'params': return PARAMS;
        case 'paramsOf': return { ...PARAMS, appealPeriod: 3600n };
        case 'getModel': return { owner: A, name: 'm' };
        case 'getVersion': return { modelId: 1n, parentId: 0n, supersededBy: 0n, numBlocks: 8, toleranceMicros: 10_000, deprecated: false, publisher: A, manifestCid: 'bafyversion' };
        case 'getDispute': return { ...DISPUTE, ...state.dispute };
        case 'auditorsOf': return [A];
        case 'voteOf': return { commitment: `0x${'0'.repeat(64)}`, state: 1, round: 0, fingerprint: `0x${'0'.repeat(64)}` };
        default: throw new Error(`unexpected read ${functionName}`);
      }
    },
  };
  return { client: client as unknown as PublicClient, ranges, reads };
}

describe('ChainData', () => {
  test('fetches events incrementally and re-reads only what they touched', async () => {
    const state: Parameters<typeof fakeClient>[0] = { head: 5n, logs: [
      log(ModelVersionRegistryAbi as Abi, 'ModelCreated', { modelId: 1n, owner: A, name: 'm' }, 3),
      log(ModelVersionRegistryAbi as Abi, 'VersionPublished', { versionId: 1n, modelId: 1n, parentId: 0n, publisher: A, manifestCid: 'bafyversion', numBlocks: 8, toleranceMicros: 10_000 }, 4),
    ] };
    const { client, ranges, reads } = fakeClient(state);
    const data = new ChainData(client, deployment, contractsOf(deployment));
    await data.refresh();
    expect(ranges).toEqual([[2n, 5n]]);
    expect(data.versions.get(1n)?.manifestCid).toBe('bafyversion');
    expect(data.models.get(1n)?.name).toBe('m');
    expect(data.court).toMatchObject({ minBond: 10n ** 17n, bondBps: 1000, openRevealBlocks: 50, appealPeriod: 0, minPanel: 3, incoherencePenalty: 2n * 10n ** 16n });

    // Same head: scanned once more (logs can lag the block number), without re-reading
    // anything already seen; after that, no query at all.
    reads.length = 0;
    const revision = data.revision;
    await data.refresh();
    expect(ranges).toEqual([[2n, 5n], [5n, 5n]]);
    expect(reads).toEqual([]);
    expect(data.revision).toBe(revision);
    await data.refresh();
    expect(ranges).toHaveLength(2);

    // A dispute opens and its auditors are drawn: only the new blocks are queried, and the
    // timeline keeps chain order even when the logs arrive out of order.
    state.head = 9n;
    state.logs.push(
      log(DisputeCourtAbi as Abi, 'AuditorsDrawn', { disputeId: 1n, round: 0, auditors: [A], commitDeadline: 2000n, revealDeadline: 2060n }, 9),
      log(DisputeCourtAbi as Abi, 'DisputeOpened', { disputeId: 1n, accused: B, challenger: A, receiptHash: `0x${'ab'.repeat(32)}`, receipt, evidenceCid: 'bafyevidence', blockIndex: 2, bond: 10n ** 17n, drawBlock: 8n }, 6),
    );
    await data.refresh();
    expect(ranges[2]).toEqual([5n, 9n]);
    expect(reads).not.toContain('getVersion(1)');
    const d = data.disputes.get(1n)!;
    expect(d.timeline.map((e) => e.kind)).toEqual(['opened', 'drawn']);
    expect(d.timeline.map((e) => e.time)).toEqual([1006, 1009]);
    expect(d.evidenceCid).toBe('bafyevidence');
    expect([d.block, d.step, d.kind, d.abstainVotes]).toEqual([2, 5n, 2, 0]);
    expect(d.timeline[0].args.blockIndex).toBe(2);
    expect(d.stage).toBe('Voting');
    expect(d.votes[A]).toBe('Drawn');
    expect(d.voteRound[A]).toBe(0);
    // the dispute's own parameter snapshot, read once per snapshot id
    expect(d.params?.appealPeriod).toBe(3600);
    expect([d.paramsId, d.ticketCount, d.openedAt, d.round, d.appealBond]).toEqual([1, 4, 1006, 0, 0n]);
    expect(reads.filter((r) => r.startsWith('paramsOf'))).toEqual(['paramsOf(1)']);

    // It is ruled (appeal window), then appealed: both land on its timeline, the record follows.
    state.head = 12n;
    state.dispute = { stage: 3, firstRuling: 1, appealDeadline: 5000n };
    state.logs.push(log(DisputeCourtAbi as Abi, 'RoundRuled', { disputeId: 1n, round: 0, ruling: 1, appealDeadline: 5000n }, 11));
    await data.refresh();
    expect(data.disputes.get(1n)).toMatchObject({ stage: 'Appealable', firstRuling: 'Faulty', appealDeadline: 5000 });
    state.head = 14n;
    state.dispute = { stage: 1, firstRuling: 1, round: 1, appellant: B, appealBond: 2n * 10n ** 17n, drawBlock: 16n, appealDeadline: 5000n };
    state.logs.push(log(DisputeCourtAbi as Abi, 'Appealed', { disputeId: 1n, appellant: B, appealBond: 2n * 10n ** 17n, drawBlock: 16n }, 13));
    await data.refresh();
    const appealed = data.disputes.get(1n)!;
    expect(appealed.timeline.map((e) => e.kind)).toEqual(['opened', 'drawn', 'ruled', 'appealed']);
    expect(appealed).toMatchObject({ stage: 'AwaitingDraw', round: 1, appellant: B, appealBond: 2n * 10n ** 17n, drawBlock: 16n });
    expect(reads.filter((r) => r.startsWith('paramsOf'))).toEqual(['paramsOf(1)']);
  });

  test('splits a long history into bounded log queries', async () => {
    const { client, ranges } = fakeClient({ head: 12_001n, logs: [] });
    await new ChainData(client, deployment, contractsOf(deployment)).refresh();
    expect(ranges).toEqual([[2n, 5001n], [5002n, 10001n], [10002n, 12001n]]);
  });

  test('an unreachable RPC becomes a plain-words error, and clears when it answers again', async () => {
    const { client } = fakeClient({ head: 3n, logs: [] });
    const broken = { ...client, getBlockNumber: async () => { throw new Error('fetch failed'); } } as unknown as PublicClient;
    const data = new ChainData(broken, deployment, contractsOf(deployment));
    await data.refresh();
    expect(data.error).toMatch(/Cannot read the chain at http:\/\/127\.0\.0\.1:1: fetch failed\. Is the node running\?/);
    (data as unknown as { client: PublicClient }).client = client;
    await data.refresh();
    expect(data.error).toBeNull();
  });
});
