// Where a dispute stands and what may happen next, as pure functions of its on-chain record, the
// chain time and the head block (the views render these; the tests check them without a DOM).
//
// DisputeCourt v3: AwaitingDraw → Voting → (Appealable →) Resolved. Round 0 is drawn K auditors;
// with an appeal period its ruling can be appealed once for 2× the bond, and a fresh panel of
// 2K+1 (none from round 0) gives the final ruling. A draw must happen within 256 blocks of its
// draw block (blockhash), or the round lapses.
import type { DisputeInfo, Outcome } from './chainData';

/** blockhash() only sees the latest 256 blocks. */
export const BLOCKHASH_WINDOW = 256n;

export function outcomeWords(o: Outcome): string {
  return { Pending: 'pending', Faulty: 'faulty', Honest: 'honest', NoQuorum: 'no quorum', Lapsed: 'lapsed' }[o] ?? String(o);
}

export interface StepView {
  label: string;
  state: 'done' | 'now' | 'todo' | 'skipped';
}

function happened(d: DisputeInfo, kind: 'drawn' | 'ruled', round: number): boolean {
  return d.timeline.some((e) => e.kind === kind && Number(e.args.round ?? 0) === round
    && (kind === 'drawn' || Number(e.args.appealDeadline ?? 0) > 0));
}

/** Does this dispute have an appeal window (its parameters have an appeal period, or it ruled with one)? */
export function hasAppealWindow(d: DisputeInfo): boolean {
  return (d.params?.appealPeriod ?? 0) > 0 || d.appealDeadline > 0 || d.round > 0;
}

/** The stepper: opened, drawn, voting, [appeal window], [appeal panel, appeal voting], resolved. */
export function disputeSteps(d: DisputeInfo): StepView[] {
  const labels = ['Opened', 'Auditors drawn', 'Voting'];
  if (hasAppealWindow(d)) labels.push('Appeal window');
  if (d.round > 0) labels.push('Appeal panel drawn', 'Appeal voting');
  labels.push('Resolved');
  if (d.stage === 'Resolved') {
    const reached: Record<string, boolean> = {
      'Opened': true, 'Auditors drawn': happened(d, 'drawn', 0), 'Voting': happened(d, 'drawn', 0),
      'Appeal window': happened(d, 'ruled', 0), 'Appeal panel drawn': happened(d, 'drawn', 1),
      'Appeal voting': happened(d, 'drawn', 1), 'Resolved': true,
    };
    return labels.map((label) => ({ label, state: reached[label] ? 'done' : 'skipped' }));
  }
  const current = d.round === 0
    ? { AwaitingDraw: 'Auditors drawn', Voting: 'Voting', Appealable: 'Appeal window' }[d.stage as string]
    : { AwaitingDraw: 'Appeal panel drawn', Voting: 'Appeal voting' }[d.stage as string];
  const at = current ? labels.indexOf(current) : 0;
  return labels.map((label, i) => ({ label, state: i < at ? 'done' : i === at ? 'now' : 'todo' }));
}

export type NextStep =
  /** Waiting for, or ready for, this round's draw (anyone may call drawAuditors). */
  | { kind: 'draw'; round: number; drawBlock: bigint; head: bigint; ready: boolean; lapsed: boolean; lastDrawBlock: bigint }
  | { kind: 'commit'; round: number; committed: number; drawn: number; deadline: number }
  | { kind: 'reveal'; round: number; revealed: number; drawn: number; faulty: number; honest: number; abstain: number; deadline: number }
  /** Voting is over: anyone may call resolve (round 0 with an appeal period opens the appeal window). */
  | { kind: 'resolve'; round: number; opensAppeal: boolean }
  /** The first ruling can be appealed until `deadline` for `appealBond` (a panel of `panel`). */
  | { kind: 'appeal'; ruling: Outcome; deadline: number; appealBond: bigint; panel: number | null }
  /** The appeal window closed with no appeal: anyone may resolve, settling on the first ruling. */
  | { kind: 'settle'; ruling: Outcome; deadline: number };

/** What the dispute waits for now (null once resolved). `now` is chain time in seconds; the next
 *  transaction lands in block head + 1, and a simulation runs at the head. */
export function nextStep(d: DisputeInfo, now: number, head: bigint): NextStep | null {
  switch (d.stage) {
    case 'AwaitingDraw': {
      const lastDrawBlock = d.drawBlock + BLOCKHASH_WINDOW;
      return { kind: 'draw', round: d.round, drawBlock: d.drawBlock, head, ready: head > d.drawBlock, lapsed: head + 1n > lastDrawBlock, lastDrawBlock };
    }
    case 'Voting': {
      const revealed = d.faultyVotes + d.honestVotes + d.abstainVotes;
      if (now > d.revealDeadline || revealed >= d.drawnCount) {
        return { kind: 'resolve', round: d.round, opensAppeal: d.round === 0 && (d.params?.appealPeriod ?? 0) > 0 };
      }
      if (now > d.commitDeadline || d.committedCount >= d.drawnCount) {
        return { kind: 'reveal', round: d.round, revealed, drawn: d.drawnCount, faulty: d.faultyVotes, honest: d.honestVotes, abstain: d.abstainVotes, deadline: d.revealDeadline };
      }
      return { kind: 'commit', round: d.round, committed: d.committedCount, drawn: d.drawnCount, deadline: d.commitDeadline };
    }
    case 'Appealable':
      if (now > d.appealDeadline) return { kind: 'settle', ruling: d.firstRuling, deadline: d.appealDeadline };
      return {
        kind: 'appeal', ruling: d.firstRuling, deadline: d.appealDeadline, appealBond: appealBondFor(d),
        panel: d.params ? 2 * d.params.auditorsPerDispute + 1 : null,
      };
    default:
      return null;
  }
}

/** Twice the challenger's bond: the most DisputeCourt.appeal can ask (appealPrice is twice the smaller of the
 *  posted and the now-required bond; the appeal button reads it when sending). */
export function appealBondFor(d: DisputeInfo): bigint {
  return 2n * d.bond;
}

export type AppealResult =
  | 'upheld' // the appeal panel ruled as the first round: the appeal bond goes to the coherent auditors
  | 'overturned' // the final ruling differs from the first: the appeal bond is refunded
  | 'unheard' // too few eligible auditors for the appeal panel: the first ruling stands, the bond is refunded
  | 'forfeited'; // the appeal round was never drawn in time: the first ruling stands, the bond goes to the treasury

/** How an appeal ended (null: no appeal, or not settled yet). */
export function appealResult(d: DisputeInfo): AppealResult | null {
  if (d.stage !== 'Resolved' || !d.timeline.some((e) => e.kind === 'appealed')) return null;
  if (/^0x0{40}$/i.test(d.appellant)) return 'forfeited';
  if (d.drawnCount === 0) return 'unheard';
  return d.outcome === d.firstRuling && d.outcome !== 'NoQuorum' ? 'upheld' : 'overturned';
}
