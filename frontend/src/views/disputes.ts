// Disputes: one timeline per dispute — opened, auditors drawn, commits, reveals, result and the
// amounts moved — updated live as events arrive. Anyone may push a dispute to its next stage.
import type { Ctx, View } from '../app';
import type { DisputeInfo, TimelineEntry } from '../chainData';
import { fill, h } from '../dom';
import { countdown, formatAmount, formatSpan, formatTimestamp } from '../format';
import { kindName } from '../receiptFile';
import { verdictOf } from '../votes';
import { addr, badge, cidLink, empty, you } from './common';

const STEPS = ['Opened', 'Auditors drawn', 'Voting', 'Resolved'] as const;

export function disputesView(ctx: Ctx): View {
  const el = h('section', { class: 'view disputes' });
  const body = h('div');
  fill(el, h('h1', null, 'Disputes'),
    h('p', { class: 'lede' }, 'A challenger posts a server\'s signed receipt, names the first block it says is faulty, and posts a bond; auditors drawn at random recompute that block, commit a hidden vote bound to a fingerprint of what they computed, then reveal it. An auditor who cannot fetch the evidence abstains. A majority of the whole panel must judge, or the bond is returned.'),
    body);
  let rendered = -1, tick = 0;
  return {
    el,
    update() {
      const now = ctx.data.now();
      // Countdowns tick every second, but only open disputes have one.
      const ticking = [...ctx.data.disputes.values()].some((d) => d.stage === 'Voting');
      if (rendered === ctx.data.revision && (now === tick || !ticking)) return;
      rendered = ctx.data.revision;
      tick = now;
      const list = [...ctx.data.disputes.values()].sort((a, b) => Number(b.id - a.id));
      fill(body, list.length ? list.map((d) => disputeCard(ctx, d, now))
        : ctx.data.latestBlock === null ? h('p', { class: 'muted' }, 'Reading the chain…')
          : empty('No disputes yet', 'Anyone holding a server\'s signed receipt can open one under My account.'));
    },
  };
}

function stageIndex(d: DisputeInfo): number {
  // steps before the returned index are done; the one at it is in progress
  if (d.stage === 'Resolved') return STEPS.length;
  if (d.stage === 'Voting') return 2;
  return 1;
}

function outcomeBadge(d: DisputeInfo): HTMLElement {
  if (d.stage !== 'Resolved') return badge(d.stage === 'Voting' ? 'voting' : 'awaiting draw', 'info');
  return d.outcome === 'Faulty' ? badge('server faulty — slashed', 'bad') : d.outcome === 'Honest' ? badge('server honest', 'ok') : badge('no quorum — bond returned', 'muted');
}

function disputeCard(ctx: Ctx, d: DisputeInfo, now: number): HTMLElement {
  const me = you(ctx);
  const done = stageIndex(d);
  return h('div', { class: 'card dispute', id: `dispute-${d.id}`, 'data-stage': d.stage, 'data-outcome': d.outcome },
    h('div', { class: 'card-head' },
      h('h2', null, `Dispute #${d.id}`), outcomeBadge(d),
      h('span', { class: 'muted' }, 'accused '), addr(d.accused, me), h('span', { class: 'muted' }, ' by '), addr(d.challenger, me)),
    h('ol', { class: 'stepper' }, STEPS.map((s, i) => h('li', { class: i < done ? 'done' : i === done ? 'now' : '' }, s))),
    h('div', { class: 'facts' },
      h('span', null, `version #${d.versionId} · ${formatSpan(d.firstBlock, d.lastBlock)}`),
      h('span', { class: 'named-block' }, `block ${d.block} named faulty · ${kindName(d.kind)} step ${d.step}`),
      h('span', null, 'bond ', formatAmount(d.bond, ctx.chain.symbol)),
      h('span', null, 'evidence ', cidLink(ctx.gateway(), d.evidenceCid))),
    nextStep(ctx, d, now),
    h('ul', { class: 'timeline' }, d.timeline.map((e) => timelineItem(ctx, e, me))));
}

/** What the dispute waits for, and a button to push it when anyone may. */
function nextStep(ctx: Ctx, d: DisputeInfo, now: number): HTMLElement | null {
  const head = ctx.data.latestBlock ?? 0n;
  const push = (label: string, fn: string) => h('button', {
    class: 'small-btn', onclick: () => ctx.tx.send({ title: `${label} (dispute #${d.id})`, ...ctx.c.court, functionName: fn, args: [d.id] }),
  }, label);
  if (d.stage === 'AwaitingDraw') {
    return head > d.drawBlock
      ? h('div', { class: 'next' }, 'Block ', String(d.drawBlock), ' is mined: anyone may draw the auditors now. ', push('Draw auditors', 'drawAuditors'))
      : h('div', { class: 'next' }, `Auditors are drawn from the hash of block ${d.drawBlock} (now at ${head}).`);
  }
  if (d.stage === 'Voting') {
    const revealed = d.faultyVotes + d.honestVotes + d.abstainVotes;
    const resolvable = now > d.revealDeadline || revealed >= d.drawnCount;
    if (resolvable) return h('div', { class: 'next' }, 'Voting is over: anyone may resolve it now. ', push('Resolve', 'resolve'));
    const revealOpen = now > d.commitDeadline || d.committedCount >= d.drawnCount;
    return h('div', { class: 'next' }, revealOpen
      ? `Reveals: ${revealed} of ${d.drawnCount} (${d.faultyVotes} faulty, ${d.honestVotes} honest, ${d.abstainVotes} abstained); reveal window closes ${countdown(d.revealDeadline, now)}.`
      : `Commits: ${d.committedCount} of ${d.drawnCount}; commit window closes ${countdown(d.commitDeadline, now)}.`);
  }
  return null;
}

/** "block 5 of a backward step 41" from a DisputeOpened event's receipt and named block. */
function openedWhat(a: Record<string, unknown>): string {
  const r = a.receipt as { kind?: number; step?: bigint } | undefined;
  return `block ${String(a.blockIndex)} named faulty${r ? ` (${kindName(Number(r.kind))} step ${String(r.step)})` : ''}`;
}

function timelineItem(ctx: Ctx, e: TimelineEntry, me: string | null): HTMLElement {
  const a = e.args;
  const sym = ctx.chain.symbol;
  let title: string;
  let detail: (HTMLElement | string | null)[] = [];
  switch (e.kind) {
    case 'opened':
      title = 'Dispute opened';
      detail = ['receipt ', h('span', { class: 'mono' }, `${String(a.receiptHash).slice(0, 12)}…`), ` · ${openedWhat(a)} · bond ${formatAmount(a.bond as bigint, sym)} · draw at block ${a.drawBlock}`];
      break;
    case 'rescheduled':
      title = 'Draw rescheduled';
      detail = [`the draw block left the 256-block window; new draw block ${a.drawBlock}`];
      break;
    case 'drawn': {
      const auditors = a.auditors as string[];
      title = `${auditors.length} auditor${auditors.length === 1 ? '' : 's'} drawn`;
      detail = [h('span', { class: 'addrs' }, auditors.map((x) => addr(x, me))), ` · commit by ${formatTimestamp(a.commitDeadline as bigint)}, reveal by ${formatTimestamp(a.revealDeadline as bigint)}`];
      break;
    }
    case 'committed':
      title = 'Vote committed';
      detail = [addr(a.auditor as string, me), ' (hidden until revealed)'];
      break;
    case 'revealed':
      const verdict = verdictOf(a.verdict as number) ?? `verdict ${String(a.verdict)}`;
      title = `Vote revealed: ${verdict === 'abstain' ? 'abstained (could not judge)' : verdict}`;
      detail = [addr(a.auditor as string, me), ' · fingerprint ', h('span', { class: 'mono', title: String(a.fingerprint) }, `${String(a.fingerprint).slice(0, 12)}…`)];
      break;
    case 'penalized':
      title = 'Auditor penalised for not revealing';
      detail = [addr(a.auditor as string, me), ` · ${formatAmount(a.amount as bigint, sym)}`];
      break;
    case 'resolved': {
      const outcome = ['pending', 'faulty', 'honest', 'no quorum'][Number(a.outcome)] ?? String(a.outcome);
      title = `Resolved: ${outcome}`;
      detail = [[
        (a.slashed as bigint) > 0n ? `slashed ${formatAmount(a.slashed as bigint, sym)}` : null,
        (a.challengerCredit as bigint) > 0n ? `challenger credited ${formatAmount(a.challengerCredit as bigint, sym)}` : null,
        (a.accusedCredit as bigint) > 0n ? `accused credited ${formatAmount(a.accusedCredit as bigint, sym)}` : null,
        (a.perAuditorCredit as bigint) > 0n ? `each majority auditor credited ${formatAmount(a.perAuditorCredit as bigint, sym)}` : null,
      ].filter(Boolean).join(' · ') || 'no amounts moved'];
      break;
    }
  }
  return h('li', { class: `tl ${e.kind}`, 'data-kind': e.kind },
    h('div', { class: 'tl-title' }, title, h('span', { class: 'tl-time muted' }, ` block ${e.block} · ${formatTimestamp(e.time)}`)),
    h('div', { class: 'tl-detail' }, ...detail));
}
