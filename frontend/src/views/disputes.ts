// Disputes: one timeline per dispute — opened, auditors drawn, commits, reveals, the ruling, an
// appeal and its panel, the result and the amounts moved — updated live as events arrive. Anyone
// may push a dispute to its next stage, and appeal a first-round ruling within its window.
import type { Ctx, View } from '../app';
import type { DisputeInfo, TimelineEntry } from '../chainData';
import { OUTCOME } from '../contracts';
import { appealResult, disputeSteps, nextStep, outcomeWords } from '../disputeStatus';
import { fill, h } from '../dom';
import { countdown, formatAmount, formatSpan, formatTimestamp } from '../format';
import { kindName } from '../receiptFile';
import { verdictOf } from '../votes';
import { addr, badge, cidLink, empty, you } from './common';

export function disputesView(ctx: Ctx): View {
  const el = h('section', { class: 'view disputes' });
  const body = h('div');
  fill(el, h('h1', null, 'Disputes'),
    h('p', { class: 'lede' }, 'A challenger commits to a server\'s signed receipt, then reveals it a block later, naming the first block it says is faulty and posting a bond scaled to what the dispute can slash. Auditors drawn at random, weighted by stake, recompute that block, commit a hidden vote bound to a fingerprint of what they computed, then reveal it; one who cannot fetch the evidence abstains. A majority of the whole panel must judge, or the bond is returned. Where the court has an appeal period, anyone may appeal the ruling once, for twice the bond: a fresh, larger panel gives the final ruling.'),
    body);
  let rendered = -1, tick = 0;
  return {
    el,
    update() {
      const now = ctx.data.now();
      // Countdowns tick every second, but only disputes in voting or in their appeal window have one.
      const ticking = [...ctx.data.disputes.values()].some((d) => d.stage === 'Voting' || d.stage === 'Appealable');
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

function outcomeBadge(d: DisputeInfo): HTMLElement {
  if (d.stage === 'Appealable') return badge(`ruled ${outcomeWords(d.firstRuling)} — appealable`, 'warn');
  if (d.stage !== 'Resolved') {
    const what = d.stage === 'Voting' ? 'voting' : 'awaiting draw';
    return badge(d.round > 0 ? `appeal: ${what}` : what, 'info');
  }
  switch (d.outcome) {
    case 'Faulty': return badge('server faulty — slashed', 'bad');
    case 'Honest': return badge('server honest', 'ok');
    case 'Lapsed': return badge('lapsed — never drawn in time', 'muted');
    default: return badge('no quorum — bond returned', 'muted');
  }
}

function disputeCard(ctx: Ctx, d: DisputeInfo, now: number): HTMLElement {
  const me = you(ctx);
  const sym = ctx.chain.symbol;
  return h('div', { class: 'card dispute', id: `dispute-${d.id}`, 'data-stage': d.stage, 'data-outcome': d.outcome, 'data-round': String(d.round) },
    h('div', { class: 'card-head' },
      h('h2', null, `Dispute #${d.id}`), outcomeBadge(d),
      h('span', { class: 'muted' }, 'accused '), addr(d.accused, me), h('span', { class: 'muted' }, ' by '), addr(d.challenger, me)),
    h('ol', { class: 'stepper' }, disputeSteps(d).map((s) => h('li', { class: s.state === 'todo' ? '' : s.state }, s.label))),
    h('div', { class: 'facts' },
      h('span', null, `version #${d.versionId} · ${formatSpan(d.firstBlock, d.lastBlock)}`),
      h('span', { class: 'named-block' }, `block ${d.block} named faulty · ${kindName(d.kind)} step ${d.step}`),
      h('span', { class: 'bond' }, 'bond ', formatAmount(d.bond, sym)),
      d.appealBond > 0n ? h('span', { class: 'appeal-bond' }, 'appeal bond ', formatAmount(d.appealBond, sym), ' by ', addr(d.appellant, me)) : null,
      h('span', null, 'evidence ', cidLink(ctx.gateway(), d.evidenceCid))),
    nextStepBox(ctx, d, now),
    appealNote(ctx, d),
    h('ul', { class: 'timeline' }, d.timeline.map((e) => timelineItem(ctx, e, me))));
}

/** What the dispute waits for, and a button to push it when anyone may. */
function nextStepBox(ctx: Ctx, d: DisputeInfo, now: number): HTMLElement | null {
  const head = ctx.data.latestBlock ?? 0n;
  const sym = ctx.chain.symbol;
  const push = (label: string, fn: string, value?: bigint, cls = 'small-btn') => h('button', {
    class: cls, onclick: () => ctx.tx.send({ title: `${label} (dispute #${d.id})`, ...ctx.c.court, functionName: fn, args: [d.id], value }),
  }, label);
  const next = nextStep(d, now, head);
  if (!next) return null;
  const box = (...children: (HTMLElement | string | null)[]) => h('div', { class: 'next', 'data-next': next.kind }, ...children);
  const round = d.round > 0 ? 'the appeal panel' : 'the auditors';
  switch (next.kind) {
    case 'draw':
      if (next.lapsed) {
        return box(`The draw block ${next.drawBlock} left the 256-block window (last chance was block ${next.lastDrawBlock}): `,
          d.round > 0 ? 'the appeal round lapses — the first ruling stands and the appeal bond goes to the treasury. ' : 'the dispute lapses — the bond goes to the treasury. ',
          'Anyone may settle it now. ', push('Settle as lapsed', 'drawAuditors'));
      }
      return next.ready
        ? box('Block ', String(next.drawBlock), ` is mined: anyone may draw ${round} now (before block ${next.lastDrawBlock}, or it lapses). `, push('Draw auditors', 'drawAuditors'))
        : box(`${d.round > 0 ? 'The appeal panel' : 'Auditors'} will be drawn from the hash of block ${next.drawBlock} (now at ${head}).`);
    case 'commit':
      return box(`Commits: ${next.committed} of ${next.drawn}; commit window closes ${countdown(next.deadline, now)}.`);
    case 'reveal':
      return box(`Reveals: ${next.revealed} of ${next.drawn} (${next.faulty} faulty, ${next.honest} honest, ${next.abstain} abstained); reveal window closes ${countdown(next.deadline, now)}.`);
    case 'resolve':
      return box(next.opensAppeal ? 'Voting is over: anyone may resolve it now — the ruling then stays open to appeal for a while. '
        : 'Voting is over: anyone may resolve it now. ', push('Resolve', 'resolve'));
    case 'appeal':
      return box(h('strong', null, `First round ruled ${outcomeWords(next.ruling)}. `),
        h('span', { class: 'appeal-window' }, `Appeal window closes ${countdown(next.deadline, now)} (${formatTimestamp(next.deadline)}). `),
        `Anyone may appeal by posting ${formatAmount(next.appealBond, sym)} (twice the bond): a fresh panel of ${next.panel ?? '2K+1'} auditors, none from the first round, gives the final ruling. The appeal bond is refunded if the final ruling differs, and goes to the auditors if it is upheld. `,
        appealButton(ctx, d, `Appeal (post ${formatAmount(next.appealBond, sym)})`));
    case 'settle':
      return box(`First round ruled ${outcomeWords(next.ruling)}; the appeal window closed at ${formatTimestamp(next.deadline)} with no appeal: anyone may settle it on that ruling now. `, push('Resolve', 'resolve'));
  }
}

/** Appeal for what the court asks at the moment of sending (`appealPrice`: twice the smaller of
 *  the posted and the now-required bond), never more than the label's twice-the-bond. */
function appealButton(ctx: Ctx, d: DisputeInfo, label: string): HTMLElement {
  return h('button', {
    class: 'small-btn appeal-btn',
    onclick: async () => {
      const value = await ctx.client.readContract({ ...ctx.c.court, functionName: 'appealPrice', args: [d.id] });
      await ctx.tx.send({ title: `${label} (dispute #${d.id})`, ...ctx.c.court, functionName: 'appeal', args: [d.id], value });
    },
  }, label);
}

/** How an appeal ended, in words (null without an appeal). */
function appealNote(ctx: Ctx, d: DisputeInfo): HTMLElement | null {
  const result = appealResult(d);
  if (!result) return null;
  const bond = formatAmount(d.appealBond, ctx.chain.symbol);
  const words = {
    upheld: `The appeal panel upheld the first ruling (${outcomeWords(d.firstRuling)}): the appeal bond of ${bond} went to its coherent auditors.`,
    overturned: `The appeal panel ruled ${outcomeWords(d.outcome)}, not ${outcomeWords(d.firstRuling)}: the appeal bond of ${bond} was refunded to the appellant.`,
    unheard: `Too few eligible auditors were left for the appeal panel: the first ruling (${outcomeWords(d.firstRuling)}) stands and the appeal bond of ${bond} was refunded.`,
    forfeited: `The appeal panel was never drawn within the 256-block window: the first ruling (${outcomeWords(d.firstRuling)}) stands and the appeal bond went to the treasury.`,
  }[result];
  return h('div', { class: 'next appeal-result', 'data-appeal': result }, words);
}

/** "block 5 of a backward step 41" from a DisputeOpened event's receipt and named block. */
function openedWhat(a: Record<string, unknown>): string {
  const r = a.receipt as { kind?: number; step?: bigint } | undefined;
  return `block ${String(a.blockIndex)} named faulty${r ? ` (${kindName(Number(r.kind))} step ${String(r.step)})` : ''}`;
}

function outcomeOf(code: unknown): string {
  const o = OUTCOME[Number(code)];
  return o ? outcomeWords(o) : String(code);
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
    case 'drawn': {
      const auditors = a.auditors as string[];
      const appeal = Number(a.round ?? 0) > 0;
      title = `${auditors.length} ${appeal ? 'appeal ' : ''}auditor${auditors.length === 1 ? '' : 's'} drawn`;
      detail = [h('span', { class: 'addrs' }, auditors.map((x) => addr(x, me))), ` · commit by ${formatTimestamp(a.commitDeadline as bigint)}, reveal by ${formatTimestamp(a.revealDeadline as bigint)}`];
      break;
    }
    case 'committed':
      title = 'Vote committed';
      detail = [addr(a.auditor as string, me), ' (hidden until revealed)'];
      break;
    case 'revealed': {
      const verdict = verdictOf(a.verdict as number) ?? `verdict ${String(a.verdict)}`;
      title = `Vote revealed: ${verdict === 'abstain' ? 'abstained (could not judge)' : verdict}`;
      detail = [addr(a.auditor as string, me), ' · fingerprint ', h('span', { class: 'mono', title: String(a.fingerprint) }, `${String(a.fingerprint).slice(0, 12)}…`)];
      break;
    }
    case 'ruled': {
      const appeal = Number(a.round ?? 0) > 0;
      const deadline = Number(a.appealDeadline ?? 0);
      title = `${appeal ? 'Appeal panel ruled' : 'Ruled'}: ${outcomeOf(a.ruling)}`;
      detail = [deadline > 0 ? `appealable until ${formatTimestamp(deadline)}` : appeal ? 'final ruling' : 'final (no appeal period)'];
      break;
    }
    case 'appealed':
      title = 'Appealed';
      detail = ['by ', addr(a.appellant as string, me), ` · appeal bond ${formatAmount(a.appealBond as bigint, sym)} · appeal panel drawn at block ${a.drawBlock}`];
      break;
    case 'penalized':
      title = a.incoherent ? 'Auditor penalised for voting (or abstaining) against the ruling' : 'Auditor penalised for not revealing';
      detail = [addr(a.auditor as string, me), ` · ${formatAmount(a.amount as bigint, sym)}`];
      break;
    case 'resolved': {
      const outcome = outcomeOf(a.outcome);
      title = `Resolved: ${outcome}`;
      detail = [[
        (a.slashed as bigint) > 0n ? `slashed ${formatAmount(a.slashed as bigint, sym)}` : null,
        (a.challengerCredit as bigint) > 0n ? `challenger credited ${formatAmount(a.challengerCredit as bigint, sym)}` : null,
        (a.accusedCredit as bigint) > 0n ? `accused credited ${formatAmount(a.accusedCredit as bigint, sym)}` : null,
        (a.perAuditorCredit as bigint) > 0n ? `each coherent auditor credited ${formatAmount(a.perAuditorCredit as bigint, sym)}` : null,
        Number(a.outcome) === OUTCOME.indexOf('Lapsed') ? 'the bond went to the treasury' : null,
      ].filter(Boolean).join(' · ') || 'no amounts moved'];
      break;
    }
  }
  return h('li', { class: `tl ${e.kind}`, 'data-kind': e.kind },
    h('div', { class: 'tl-title' }, title, h('span', { class: 'tl-time muted' }, ` block ${e.block} · ${formatTimestamp(e.time)}`)),
    h('div', { class: 'tl-detail' }, ...detail));
}
