import { describe, expect, test } from 'vitest';
import type { Address } from 'viem';
import type { CourtParams, DisputeInfo, TimelineEntry, TimelineKind } from '../src/chainData';
import { appealBondFor, appealResult, disputeSteps, nextStep, outcomeWords } from '../src/disputeStatus';

const A = '0x70997970C51812dc3A010C7d01b50e0d17dc79C8' as Address;
const ZERO = `0x${'0'.repeat(40)}` as Address;
const params = (appealPeriod: number): CourtParams => ({
  disputeWindow: 86400, maxClockSkew: 300, commitPeriod: 60, revealPeriod: 60, appealPeriod, auditorMinAge: 0,
  drawDelayBlocks: 2, openRevealBlocks: 50, auditorsPerDispute: 3, minPanel: 3, slashBps: 5000, finderBps: 2000,
  auditorBps: 2000, accusedShareBps: 5000, bondBps: 1000, minBond: 10n ** 17n, noRevealPenalty: 0n, incoherencePenalty: 0n,
});
const ev = (kind: TimelineKind, args: Record<string, unknown> = {}, block = 1n): TimelineEntry => ({ kind, block, time: 0, tx: '0x', logIndex: 0, args });

function dispute(patch: Partial<DisputeInfo> = {}): DisputeInfo {
  return {
    id: 1n, accused: A, challenger: A, versionId: 1n, firstBlock: 0, lastBlock: 4, stage: 'AwaitingDraw', outcome: 'Pending',
    bond: 10n ** 17n, drawBlock: 20n, commitDeadline: 0, revealDeadline: 0, drawnCount: 0, committedCount: 0,
    faultyVotes: 0, honestVotes: 0, abstainVotes: 0, evidenceCid: 'bafy', receiptHash: '0x', block: 1, step: 0n, kind: 0,
    firstRuling: 'Pending', round: 0, appellant: ZERO, appealBond: 0n, paramsId: 0, ticketCount: 5, openedAt: 900,
    appealDeadline: 0, incident: `0x${'0'.repeat(64)}`, params: params(0), auditors: [], votes: {}, voteRound: {},
    timeline: [ev('opened')], ...patch,
  };
}
const labels = (d: DisputeInfo) => disputeSteps(d).map((s) => `${s.label}:${s.state}`);

describe('disputeSteps', () => {
  test('without an appeal period: opened, drawn, voting, resolved', () => {
    expect(labels(dispute())).toEqual(['Opened:done', 'Auditors drawn:now', 'Voting:todo', 'Resolved:todo']);
    expect(labels(dispute({ stage: 'Voting' }))).toEqual(['Opened:done', 'Auditors drawn:done', 'Voting:now', 'Resolved:todo']);
  });

  test('with an appeal period the appeal window is a step; an appeal adds its panel', () => {
    const p = params(3600);
    expect(labels(dispute({ params: p, stage: 'Appealable' }))).toEqual(['Opened:done', 'Auditors drawn:done', 'Voting:done', 'Appeal window:now', 'Resolved:todo']);
    expect(labels(dispute({ params: p, stage: 'AwaitingDraw', round: 1 }))).toEqual(
      ['Opened:done', 'Auditors drawn:done', 'Voting:done', 'Appeal window:done', 'Appeal panel drawn:now', 'Appeal voting:todo', 'Resolved:todo']);
  });

  test('a resolved dispute marks the steps it never reached as skipped', () => {
    // lapsed: never drawn
    expect(labels(dispute({ stage: 'Resolved', outcome: 'Lapsed' }))).toEqual(['Opened:done', 'Auditors drawn:skipped', 'Voting:skipped', 'Resolved:done']);
    // ruled, appealed, appeal panel could not be drawn (too few auditors)
    const timeline = [ev('opened'), ev('drawn', { round: 0 }), ev('ruled', { round: 0, appealDeadline: 5000n }), ev('appealed'), ev('resolved')];
    expect(labels(dispute({ params: params(3600), stage: 'Resolved', outcome: 'Faulty', round: 1, timeline }))).toEqual(
      ['Opened:done', 'Auditors drawn:done', 'Voting:done', 'Appeal window:done', 'Appeal panel drawn:skipped', 'Appeal voting:skipped', 'Resolved:done']);
  });
});

describe('nextStep', () => {
  test('the draw: waits for its block, then anyone may draw until the blockhash window passes', () => {
    const d = dispute({ drawBlock: 20n });
    expect(nextStep(d, 0, 20n)).toMatchObject({ kind: 'draw', ready: false, lapsed: false, lastDrawBlock: 276n });
    expect(nextStep(d, 0, 21n)).toMatchObject({ kind: 'draw', ready: true, lapsed: false });
    expect(nextStep(d, 0, 275n)).toMatchObject({ kind: 'draw', ready: true, lapsed: false });
    expect(nextStep(d, 0, 276n)).toMatchObject({ kind: 'draw', ready: true, lapsed: true });
  });

  test('voting: commits, then reveals (once all committed or the commit deadline passed), then resolve', () => {
    const v = dispute({ stage: 'Voting', drawnCount: 3, committedCount: 1, commitDeadline: 1000, revealDeadline: 1060 });
    expect(nextStep(v, 999, 30n)).toMatchObject({ kind: 'commit', committed: 1, drawn: 3, deadline: 1000 });
    expect(nextStep(v, 1001, 30n)).toMatchObject({ kind: 'reveal', revealed: 0, deadline: 1060 });
    expect(nextStep({ ...v, committedCount: 3 }, 999, 30n)).toMatchObject({ kind: 'reveal' });
    expect(nextStep({ ...v, faultyVotes: 2, abstainVotes: 1 }, 999, 30n)).toEqual({ kind: 'resolve', round: 0, opensAppeal: false });
    expect(nextStep(v, 1061, 30n)).toEqual({ kind: 'resolve', round: 0, opensAppeal: false });
    // with an appeal period, round 0's resolve opens the window; the appeal round's is final
    expect(nextStep({ ...v, params: params(600) }, 1061, 30n)).toEqual({ kind: 'resolve', round: 0, opensAppeal: true });
    expect(nextStep({ ...v, params: params(600), round: 1 }, 1061, 30n)).toEqual({ kind: 'resolve', round: 1, opensAppeal: false });
  });

  test('the appeal window: appeal for twice the bond until the deadline, then settle on the first ruling', () => {
    const d = dispute({ stage: 'Appealable', firstRuling: 'Faulty', appealDeadline: 2000, params: params(600), bond: 101n });
    expect(appealBondFor(d)).toBe(202n);
    expect(nextStep(d, 2000, 40n)).toEqual({ kind: 'appeal', ruling: 'Faulty', deadline: 2000, appealBond: 202n, panel: 7 });
    expect(nextStep(d, 2001, 40n)).toEqual({ kind: 'settle', ruling: 'Faulty', deadline: 2000 });
    expect(nextStep(dispute({ stage: 'Resolved', outcome: 'Honest' }), 0, 0n)).toBeNull();
  });
});

test('appealResult', () => {
  const appealed = [ev('opened'), ev('appealed'), ev('resolved')];
  const base = dispute({ stage: 'Resolved', round: 1, firstRuling: 'Faulty', appellant: A, appealBond: 2n, timeline: appealed });
  expect(appealResult(dispute({ stage: 'Resolved', outcome: 'Faulty' }))).toBeNull(); // never appealed
  expect(appealResult({ ...base, stage: 'Voting' })).toBeNull(); // not settled yet
  expect(appealResult({ ...base, outcome: 'Faulty', drawnCount: 7 })).toBe('upheld');
  expect(appealResult({ ...base, outcome: 'Honest', drawnCount: 7 })).toBe('overturned');
  expect(appealResult({ ...base, outcome: 'NoQuorum', drawnCount: 7 })).toBe('overturned');
  expect(appealResult({ ...base, outcome: 'Faulty', drawnCount: 0 })).toBe('unheard');
  expect(appealResult({ ...base, outcome: 'Faulty', appellant: ZERO })).toBe('forfeited');
  expect(['Pending', 'Faulty', 'Honest', 'NoQuorum', 'Lapsed'].map((o) => outcomeWords(o as DisputeInfo['outcome'])))
    .toEqual(['pending', 'faulty', 'honest', 'no quorum', 'lapsed']);
});
