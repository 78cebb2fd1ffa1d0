// My account: stake / unstake / withdraw, register or update a server, open a dispute from a
// receipt file (commit, then reveal with the bond), and (as a drawn auditor) commit and reveal votes.
import { isAddress, type Address, type Hex } from 'viem';
import type { Ctx, View } from '../app';
import { fetchServer, type DisputeInfo, type ServerInfo } from '../chainData';
import { outcomeWords } from '../disputeStatus';
import { fill, h } from '../dom';
import { countdown, formatAmount, formatDuration, formatSpan, formatTimestamp, parseAmount, shortAddress } from '../format';
import {
  forgetOpening, loadOpenings, newOpening, openingReceipt, openingState, revealArgs, saveOpening, type OpeningState, type SavedOpening,
} from '../openings';
import { domainMismatch, kindName, parseReceiptFile, type SignedReceipt } from '../receiptFile';
import { phaseText, type TxEntry, type TxRequest } from '../tx';
import { commitmentOf, loadVote, parseFingerprint, parseVoteBackup, randomSalt, saveVote, VERDICT_CODE, type SavedVote, type Verdict } from '../votes';
import { badge, empty, stat } from './common';

interface AccountNumbers {
  balance: bigint; staked: bigint; unbonding: bigint; releaseAt: number; frozen: number; credits: bigint;
}

export function accountView(ctx: Ctx): View {
  const el = h('section', { class: 'view account' });
  let builtFor: string | null = null;
  let panel: AccountPanel | null = null;
  return {
    el,
    update() {
      const s = ctx.wallet.state;
      const key = s.kind === 'connected' ? s.account : s.kind;
      if (key !== builtFor) {
        builtFor = key;
        panel = s.kind === 'connected' ? new AccountPanel(ctx, s.account) : null;
        fill(el, h('h1', null, 'My account'), panel ? panel.el : notConnected(ctx));
      }
      panel?.update();
    },
  };
}

function notConnected(ctx: Ctx): HTMLElement {
  const s = ctx.wallet.state;
  if (s.kind === 'no-wallet') return empty('No wallet in this browser', 'Install MetaMask (or another EIP-1193 wallet), then reload to stake, register, dispute and vote.');
  return h('div', { class: 'empty', id: 'not-connected' },
    h('div', { class: 'empty-title' }, 'Connect your wallet'),
    h('div', { class: 'empty-hint' }, 'Your stake, your server, your disputes and your audit duties appear here once your wallet is connected.'),
    h('button', { class: 'primary', disabled: s.kind === 'connecting', onclick: () => ctx.wallet.connect().catch(() => {}) }, 'Connect wallet'));
}

/** A status line next to a form button that follows its transaction. In a sequence of
 *  transactions, `step` names the one shown, and a confirmed step that is not the last reads as
 *  phase "between" (so "confirmed" always means the whole action is done). */
type TxStatus = {
  el: HTMLElement; show: (e: TxEntry, step?: string, last?: boolean) => void; say: (text: string, tone?: string) => void; clear: () => void;
};

function txStatus(id: string): TxStatus {
  const el = h('div', { class: 'tx-status', id, 'aria-live': 'polite' });
  return {
    el,
    show(e, step, last = true) {
      el.dataset.phase = e.phase === 'confirmed' && !last ? 'between' : e.phase;
      fill(el, step ? h('span', { class: 'step' }, `${step}: `) : null, h('span', { class: `phase ${e.phase}` }, phaseText(e)),
        e.error ? h('span', { class: 'err' }, ': ', h('strong', { class: 'err-name' }, e.error.name), ' — ', e.error.message) : null);
    },
    say(text, tone = 'failed') {
      el.dataset.phase = tone;
      fill(el, h('span', { class: `phase ${tone}` }, text));
    },
    clear() {
      delete el.dataset.phase;
      fill(el);
    },
  };
}

class AccountPanel {
  el: HTMLElement;
  private numbers: AccountNumbers | null = null;
  private reading = false;
  private readAgain = false;
  private server: ServerInfo | null = null;
  private seenRevision = -1;
  private live = {
    stats: h('div', { class: 'stats' }), withdrawHint: h('p', { class: 'hint' }), server: h('div'), audits: h('div'), mine: h('div'),
    bondRule: h('strong', { id: 'bond-amount' }, '…'), openings: h('div', { class: 'openings', id: 'pending-openings' }),
  };
  private mineKey: string | null = null;
  /** Openings this page is committing or revealing right now (no buttons on them meanwhile). */
  private busyOpenings = new Set<Hex>();
  private openingStatus = new Map<Hex, TxStatus>();
  private openingsKey: string | null = null;
  private openingsSeq = 0;
  private auditsKey: string | null = null;
  /** One status line per audited dispute, kept across re-renders while its transaction runs. */
  private voteStatus = new Map<bigint, TxStatus>();
  private serverForm: ServerForm;
  private send = (req: TxRequest) => this.ctx.tx.send(req);

  constructor(private ctx: Ctx, private account: Address) {
    this.serverForm = new ServerForm(ctx, account, this.send);
    this.el = h('div', { class: 'account-grid' },
      this.stakeCard(),
      h('div', { class: 'card', id: 'server-card' }, h('h2', null, 'My server'), this.live.server, this.serverForm.el),
      this.disputeCard(),
      h('div', { class: 'card', id: 'audits-card' }, h('h2', null, 'My audits'),
        h('p', { class: 'hint' }, 'When your server is drawn as an auditor: recompute the named block from the evidence, commit your verdict (hidden) bound to a fingerprint of what you computed, then reveal it once commits close. If you cannot fetch or use the evidence, abstain. Drawn auditors who never reveal are penalised; abstainers are not.'),
        this.live.audits),
      h('div', { class: 'card', id: 'my-disputes-card' }, h('h2', null, 'Disputes I opened or face'), this.live.mine));
  }

  update(): void {
    if (this.seenRevision !== this.ctx.data.revision) {
      this.seenRevision = this.ctx.data.revision;
      void this.read();
      this.serverForm.refreshVersions();
      this.renderAudits();
      this.renderMine();
      this.renderBondRule();
      void this.renderOpenings();
    }
    this.renderNumbers();
  }

  /** Re-read this account; a request that arrives mid-read runs once more afterwards, so the
   *  last read always starts after the last change. */
  private async read(): Promise<void> {
    if (this.reading) {
      this.readAgain = true;
      return;
    }
    this.reading = true;
    const { client, c } = this.ctx;
    try {
      do {
        this.readAgain = false;
        const [balance, acct, credits, server] = await Promise.all([
          client.getBalance({ address: this.account }),
          client.readContract({ ...c.vault, functionName: 'accountOf', args: [this.account] }),
          client.readContract({ ...c.vault, functionName: 'credits', args: [this.account] }),
          fetchServer(client, c, this.account),
        ]);
        this.numbers = { balance, staked: acct.staked, unbonding: acct.unbonding, releaseAt: Number(acct.releaseAt), frozen: acct.frozenCount, credits };
        this.server = server;
      } while (this.readAgain);
    } catch {
      /* the chain banner already says the RPC is down */
    } finally {
      this.reading = false;
    }
    this.renderNumbers();
    this.renderServer();
  }

  // ------------------------------------------------------------------ stake
  private stakeCard(): HTMLElement {
    const sym = this.ctx.chain.symbol;
    const stakeIn = h('input', { id: 'stake-amount', inputmode: 'decimal', placeholder: `amount in ${sym}` });
    const unstakeIn = h('input', { id: 'unstake-amount', inputmode: 'decimal', placeholder: `amount in ${sym}` });
    const stakeSt = txStatus('stake-status'), unstakeSt = txStatus('unstake-status'), withdrawSt = txStatus('withdraw-status');
    const amountOr = (input: HTMLInputElement, st: ReturnType<typeof txStatus>) => {
      try { return parseAmount(input.value); } catch (e) { st.say((e as Error).message); return null; }
    };
    const { vault } = this.ctx.c;
    return h('div', { class: 'card', id: 'stake-card' },
      h('h2', null, 'Stake'),
      this.live.stats,
      h('form', { class: 'row', onsubmit: async (e: Event) => {
        e.preventDefault();
        const value = amountOr(stakeIn, stakeSt);
        if (value === null) return;
        const r = await this.send({ title: `Stake ${formatAmount(value, sym)}`, ...vault, functionName: 'stake', value, onUpdate: stakeSt.show });
        if (r.phase === 'confirmed') stakeIn.value = '';
      } }, h('label', { for: 'stake-amount' }, 'Add stake'), stakeIn, h('button', { class: 'primary', id: 'stake-btn', type: 'submit' }, 'Stake')),
      stakeSt.el,
      h('form', { class: 'row', onsubmit: async (e: Event) => {
        e.preventDefault();
        const amount = amountOr(unstakeIn, unstakeSt);
        if (amount === null) return;
        const r = await this.send({ title: `Request unstake of ${formatAmount(amount, sym)}`, ...vault, functionName: 'requestUnstake', args: [amount], onUpdate: unstakeSt.show });
        if (r.phase === 'confirmed') unstakeIn.value = '';
      } }, h('label', { for: 'unstake-amount' }, 'Request unstake'), unstakeIn, h('button', { id: 'unstake-btn', type: 'submit' }, 'Request')),
      h('p', { class: 'hint' }, `Unstaked funds unbond for ${formatDuration(this.ctx.data.unbondingPeriod)} (longer than the dispute window) and stay slashable until then.`),
      unstakeSt.el,
      h('div', { class: 'row' },
        h('span', { class: 'label' }, 'Withdraw credits and released stake'),
        h('button', { id: 'withdraw-btn', onclick: () => this.send({ title: 'Withdraw', ...vault, functionName: 'withdraw', onUpdate: withdrawSt.show }) }, 'Withdraw')),
      this.live.withdrawHint,
      withdrawSt.el);
  }

  private renderNumbers(): void {
    const n = this.numbers;
    const sym = this.ctx.chain.symbol;
    if (!n) {
      fill(this.live.stats, h('span', { class: 'muted' }, 'Reading your account…'));
      return;
    }
    const now = this.ctx.data.now();
    const released = n.unbonding > 0n && now >= n.releaseAt;
    fill(this.live.stats,
      stat('in your wallet', formatAmount(n.balance, sym, 2), 'stat-balance'),
      stat('active stake', formatAmount(n.staked, sym), 'stat-staked'),
      stat('unbonding', n.unbonding > 0n ? h('span', null, formatAmount(n.unbonding, sym), h('small', { class: 'countdown', id: 'unbond-countdown' }, released ? ' released' : ` ${countdown(n.releaseAt, now)}`)) : formatAmount(0n, sym), 'stat-unbonding'),
      stat('credits to withdraw', formatAmount(n.credits, sym), 'stat-credits'),
      n.frozen ? stat('frozen', badge(`${n.frozen} unsettled dispute${n.frozen > 1 ? 's' : ''}`, 'bad'), 'stat-frozen') : null);
    const parts: string[] = [];
    if (n.credits > 0n) parts.push(`${formatAmount(n.credits, sym)} of credits`);
    if (n.unbonding > 0n) {
      if (n.frozen) parts.push(`unbonding stake stays locked while a dispute you face or audit is unsettled`);
      else if (released) parts.push(`${formatAmount(n.unbonding, sym)} of released stake`);
      else parts.push(`${formatAmount(n.unbonding, sym)} unbonding, withdrawable ${countdown(n.releaseAt, now)} (${formatTimestamp(n.releaseAt)})`);
    }
    this.live.withdrawHint.textContent = parts.length ? `Withdrawable: ${parts.join('; ')}.` : 'Nothing to withdraw right now.';
  }

  private renderServer(): void {
    const s = this.server;
    if (!s || s.status === 'None') {
      fill(this.live.server, h('p', { class: 'muted', id: 'server-state' }, `No server registered. Stake at least ${formatAmount(this.ctx.data.minStake, this.ctx.chain.symbol)}, then register below.`));
    } else {
      const tone = s.status === 'Active' ? 'ok' : s.status === 'Inactive' ? 'warn' : 'muted';
      fill(this.live.server, h('p', { id: 'server-state' }, badge(s.status, tone), ` version #${s.versionId} · ${formatSpan(s.firstBlock, s.lastBlock)} · ${s.endpoint} · ${s.throughput} tok/s · signer ${shortAddress(s.signer)}`,
        s.status === 'Inactive' ? h('div', { class: 'hint' }, 'Your stake fell under the minimum: stake more, then register again.') : null));
    }
    this.serverForm.setMode(s?.status === 'Active');
  }

  // ------------------------------------------------------------------ open a dispute (commit, then reveal)
  private disputeCard(): HTMLElement {
    const { ctx } = this;
    const file = h('input', { type: 'file', id: 'receipt-file', accept: '.json,application/json' });
    const preview = h('div', { class: 'receipt-preview' });
    const cid = h('input', { id: 'evidence-cid', placeholder: 'bafy… (evidence bundle on IPFS)', size: 40 });
    // Not type=number with min/max: the browser would block the submit silently; we say why instead.
    const blockIn = h('input', { id: 'faulty-block', inputmode: 'numeric', placeholder: 'first faulty block', size: 8 }) as HTMLInputElement;
    const st = txStatus('dispute-status');
    let signed: SignedReceipt | null = null;
    let busy = false;
    file.addEventListener('change', async () => {
      signed = null;
      fill(preview);
      const f = file.files?.[0];
      if (!f) return;
      try {
        const parsed = parseReceiptFile(await f.text());
        const problem = domainMismatch(parsed, ctx.deployment.chainId, ctx.c.court.address);
        if (problem) throw new Error(problem);
        signed = parsed;
        const r = parsed.receipt;
        blockIn.placeholder = `${r.firstBlock}–${r.lastBlock - 1}`;
        if (blockIn.value === '') blockIn.value = String(r.firstBlock);
        const left = Number(r.issuedAt) + (ctx.data.court?.disputeWindow ?? 0) - ctx.data.now();
        const bond = h('dd', { id: 'receipt-bond' }, 'reading…');
        fill(preview, h('dl', null,
          h('dt', null, 'Server'), h('dd', { class: 'mono' }, r.server),
          h('dt', null, 'Served'), h('dd', null, `version #${r.versionId} · ${formatSpan(r.firstBlock, r.lastBlock)} · ${kindName(r.kind)} step ${r.step} · registry term ${r.term}`),
          h('dt', null, 'Issued'), h('dd', null, formatTimestamp(r.issuedAt)),
          h('dt', null, 'Dispute window'), h('dd', null, left > 0 ? `closes in ${formatDuration(left)}` : badge('closed', 'bad')),
          h('dt', null, 'Bond'), bond));
        st.clear();
        void this.showBond(r.server, bond);
      } catch (e) {
        st.say((e as Error).message);
      }
    });
    const submit = async (e: Event) => {
      e.preventDefault();
      if (busy) return;
      st.clear(); // a refusal from the previous attempt must not read as this attempt's outcome
      if (!signed) { st.say('Choose a receipt file first (the JSON your Pollen client saved).'); return; }
      if (cid.value.trim().length < 8) { st.say('Enter the CID of the evidence bundle you uploaded to IPFS.'); return; }
      if (!ctx.data.court) { st.say('Still reading the court parameters; try again in a second.'); return; }
      const r = signed.receipt;
      const block = Number(blockIn.value.trim());
      if (!/^\d+$/.test(blockIn.value.trim()) || !Number.isInteger(block) || block < r.firstBlock || block >= r.lastBlock) {
        st.say(`Name the first faulty block: a block of the receipt's span, ${r.firstBlock} to ${r.lastBlock - 1}.`);
        return;
      }
      try {
        const signer = await ctx.client.readContract({ ...ctx.c.court, functionName: 'recoverSigner', args: [r, signed.signature] });
        const registered = await ctx.client.readContract({ ...ctx.c.registry, functionName: 'signedFor', args: [r.server, signer, BigInt(r.versionId), r.firstBlock, r.lastBlock, r.issuedAt, BigInt(r.term)] });
        if (!registered) {
          st.say(`The key that signed this receipt (${shortAddress(signer)}) was not registered by ${shortAddress(r.server)} for that span in term ${r.term} at ${formatTimestamp(r.issuedAt)}: the court would reject it.`);
          return;
        }
      } catch (err) {
        const x = ctx.explain(err);
        st.say(`${x.name} — ${x.message}`);
        return;
      }
      const opening = newOpening(signed, this.account, cid.value.trim(), block, randomSalt(),
        { chainId: ctx.deployment.chainId, court: ctx.c.court.address });
      busy = true;
      try {
        await this.commitAndReveal(opening, st);
      } finally {
        busy = false;
      }
    };
    return h('div', { class: 'card', id: 'dispute-card' },
      h('h2', null, 'Open a dispute'),
      h('p', { class: 'hint' }, 'Dispute a server\'s output: choose the signed receipt file your client saved, name the first block of its span you say is faulty, and give the CID of the evidence bundle (receipt, input history, claimed output). ',
        'Opening takes two transactions: a hidden commitment first, then — from the next block on — the reveal with the bond, so nobody can copy your dispute from the mempool. ',
        'The bond is ', this.live.bondRule, `; you get it back plus a finder's reward if auditors find the server faulty, and lose it if they find it honest.`),
      h('form', { onsubmit: submit },
        h('div', { class: 'row' }, h('label', { for: 'receipt-file' }, 'Receipt file'), file),
        preview,
        h('div', { class: 'row' }, h('label', { for: 'faulty-block' }, 'Faulty block'), blockIn),
        h('div', { class: 'row' }, h('label', { for: 'evidence-cid' }, 'Evidence CID'), cid),
        h('button', { class: 'primary', id: 'open-dispute-btn', type: 'submit' }, 'Open dispute')),
      st.el,
      h('p', { class: 'hint muted' }, `The salt of a commitment is kept in this browser until the dispute is opened; without it the commitment cannot be revealed (you would only lose its gas, and can start again).`),
      this.live.openings);
  }

  /** The bond rule in words, from the court's current parameters. */
  private renderBondRule(): void {
    const p = this.ctx.data.court;
    if (!p) return;
    this.live.bondRule.textContent = `${p.bondBps / 100} % of what the dispute can slash (${p.slashBps / 100} % of the accused's stake), at least ${formatAmount(p.minBond, this.ctx.chain.symbol)}`;
  }

  /** The bond a dispute against `accused` requires now, with what it can slash. */
  private async showBond(accused: Address, el: HTMLElement): Promise<void> {
    const { ctx } = this;
    try {
      const [bond, slashable] = await Promise.all([
        ctx.client.readContract({ ...ctx.c.court, functionName: 'bondFor', args: [accused] }),
        ctx.client.readContract({ ...ctx.c.vault, functionName: 'slashableOf', args: [accused] }),
      ]);
      const p = ctx.data.court;
      const canSlash = p ? slashable * BigInt(p.slashBps) / 10_000n : null;
      fill(el, h('strong', null, formatAmount(bond, ctx.chain.symbol)),
        canSlash !== null ? ` (this dispute can slash ${formatAmount(canSlash, ctx.chain.symbol)} of the accused's ${formatAmount(slashable, ctx.chain.symbol)} slashable stake)` : null);
    } catch (err) {
      const x = ctx.explain(err);
      fill(el, h('span', { class: 'warn-text' }, `cannot read the bond: ${x.message}`));
    }
  }

  /** Commit an opening, wait for the next block, reveal it with the bond. The opening (its salt)
   *  is saved before anything is sent and forgotten once the dispute is opened. */
  private async commitAndReveal(o: SavedOpening, st: TxStatus): Promise<void> {
    const { ctx } = this;
    this.busyOpenings.add(o.commitment);
    try {
      saveOpening(localStorage, o);
      const against = shortAddress(openingReceipt(o).server);
      const c = await this.send({
        title: `Commit to a dispute against ${against}`, ...ctx.c.court, functionName: 'commitOpening', args: [o.commitment],
        onUpdate: (e) => st.show(e, 'Step 1 of 2 — commit', false),
      });
      if (c.phase !== 'confirmed') {
        if (!c.hash) forgetOpening(localStorage, o); // never sent: nothing to reveal
        return;
      }
      st.say(`Step 1 of 2 done: committed in block ${c.block}. Waiting for the next block to reveal…`, 'between');
      if (!(await this.waitForBlockAfter(c.block!))) {
        st.say('No new block for a long time: reveal this opening from "Pending openings" below once the chain moves on.', 'between');
        return;
      }
      await this.reveal(o, st, 'Step 2 of 2 — reveal and post the bond');
    } finally {
      this.busyOpenings.delete(o.commitment);
      void this.renderOpenings();
    }
  }

  /** openDispute for a committed opening, with the bond read just before. */
  private async reveal(o: SavedOpening, st: TxStatus, step: string): Promise<TxEntry | null> {
    const { ctx } = this;
    const r = openingReceipt(o);
    let bond: bigint;
    try {
      bond = await ctx.client.readContract({ ...ctx.c.court, functionName: 'bondFor', args: [r.server] });
    } catch (err) {
      const x = ctx.explain(err);
      st.say(`${x.name} — ${x.message}`);
      return null;
    }
    const e = await this.send({
      title: `Open dispute against ${shortAddress(r.server)} (bond ${formatAmount(bond, ctx.chain.symbol)})`, ...ctx.c.court,
      functionName: 'openDispute', args: revealArgs(o), value: bond, onUpdate: (x) => st.show(x, step),
    });
    if (e.phase === 'confirmed') forgetOpening(localStorage, o);
    return e;
  }

  /** Resolves true once a block after `n` is mined (false after ten minutes without one). */
  private async waitForBlockAfter(n: bigint): Promise<boolean> {
    const until = Date.now() + 10 * 60_000;
    while (Date.now() < until) {
      try {
        if ((await this.ctx.client.getBlockNumber({ cacheTime: 0 })) > n) return true;
      } catch { /* the chain banner says the RPC is down; keep waiting */ }
      await new Promise((ok) => setTimeout(ok, 500));
    }
    return false;
  }

  /** Openings saved in this browser and not yet revealed, with where each stands on chain. */
  private async renderOpenings(): Promise<void> {
    const { ctx, account } = this;
    const seq = ++this.openingsSeq;
    const saved = loadOpenings(localStorage, ctx.deployment.chainId, ctx.c.court.address, account);
    const head = ctx.data.latestBlock ?? 0n;
    const revealBlocks = ctx.data.court?.openRevealBlocks ?? 0;
    let states: OpeningState[];
    try {
      states = await Promise.all(saved.map(async (o) => openingState(
        await ctx.client.readContract({ ...ctx.c.court, functionName: 'openingCommitted', args: [o.commitment], blockNumber: ctx.data.latestBlock ?? undefined }),
        head, revealBlocks)));
    } catch {
      return; // the chain banner says the RPC is down
    }
    if (seq !== this.openingsSeq) return; // a newer render is under way
    // An opening whose commitment is gone and whose dispute is on chain was revealed: forget it.
    const rows: Array<[SavedOpening, OpeningState]> = [];
    saved.forEach((o, i) => {
      const revealed = states[i].kind === 'uncommitted' && [...ctx.data.disputes.values()].some((d) =>
        d.challenger.toLowerCase() === account.toLowerCase() && d.receiptHash.toLowerCase() === o.receiptHash.toLowerCase()
        && d.block === o.blockIndex && d.evidenceCid === o.evidenceCid);
      if (revealed && !this.busyOpenings.has(o.commitment)) forgetOpening(localStorage, o);
      else rows.push([o, states[i]]);
    });
    const key = rows.map(([o, s]) => `${o.commitment}:${s.kind}:${this.busyOpenings.has(o.commitment)}`).join('|');
    if (key === this.openingsKey) return;
    this.openingsKey = key;
    fill(this.live.openings, rows.length
      ? [h('h3', null, 'Pending openings'), ...rows.map(([o, s]) => this.openingItem(o, s))]
      : null);
  }

  private openingItem(o: SavedOpening, s: OpeningState): HTMLElement {
    const short = o.commitment.slice(2, 10);
    let st = this.openingStatus.get(o.commitment);
    if (!st) {
      st = txStatus(`opening-status-${short}`);
      this.openingStatus.set(o.commitment, st);
    }
    const status = st;
    const r = openingReceipt(o);
    const busy = this.busyOpenings.has(o.commitment);
    const discard = h('button', { type: 'button', class: 'small-btn', id: `discard-opening-${short}`, onclick: () => {
      forgetOpening(localStorage, o);
      void this.renderOpenings();
    } }, 'Discard');
    const run = (fn: () => Promise<unknown>) => async () => {
      this.busyOpenings.add(o.commitment);
      void this.renderOpenings();
      try { await fn(); } finally { this.busyOpenings.delete(o.commitment); void this.renderOpenings(); }
    };
    let state: (HTMLElement | string)[];
    switch (s.kind) {
      case 'waiting':
        state = [`Committed in block ${s.committedBlock}; it can be revealed from block ${s.revealFrom} to ${s.revealUntil}.`];
        break;
      case 'ready':
        state = [`Committed in block ${s.committedBlock}; reveal it by block ${s.revealUntil}. `,
          busy ? '' : h('button', { type: 'button', class: 'primary small-btn', id: `reveal-opening-${short}`, onclick: run(() => this.reveal(o, status, 'Reveal and post the bond')) }, 'Open dispute now')];
        break;
      case 'expired':
        state = [`Committed in block ${s.committedBlock}, but it expired after block ${s.revealUntil}: discard it and open the dispute again. `, busy ? '' : discard];
        break;
      case 'uncommitted':
        state = busy ? ['Committing…'] : ['Not on chain: the commitment was never mined. ',
          h('button', { type: 'button', class: 'small-btn', id: `recommit-opening-${short}`, onclick: run(() => this.commitAndReveal(o, status)) }, 'Commit again'), discard];
        break;
    }
    return h('div', { class: 'opening', id: `opening-${short}`, 'data-state': s.kind },
      h('div', null, h('strong', null, `Against ${shortAddress(r.server)}`), ` · ${formatSpan(r.firstBlock, r.lastBlock)} · block ${o.blockIndex} named faulty · ${kindName(r.kind)} step ${r.step}`),
      h('div', { class: 'row' }, ...state),
      status.el);
  }

  // ------------------------------------------------------------------ audits (commit-reveal)
  private renderAudits(): void {
    const me = this.account;
    const mine = [...this.ctx.data.disputes.values()].filter((d) => d.auditors.some((a) => a.toLowerCase() === me.toLowerCase()));
    const key = mine.map((d) => `${d.id}:${d.stage}:${d.round}:${d.outcome}:${d.votes[me]}:${d.committedCount}:${d.params ? 1 : 0}`).join('|');
    if (key === this.auditsKey) return;
    this.auditsKey = key;
    fill(this.live.audits, mine.length ? mine.sort((a, b) => Number(b.id - a.id)).map((d) => this.auditItem(d))
      : h('p', { class: 'muted', id: 'no-audits' }, 'You have not been drawn as an auditor.'));
  }

  private auditItem(d: DisputeInfo): HTMLElement {
    const { ctx, account } = this;
    const sym = ctx.chain.symbol;
    const state = d.votes[account] ?? 'None';
    const myRound = d.voteRound[account] ?? 0;
    let st = this.voteStatus.get(d.id);
    if (!st) {
      st = txStatus(`vote-status-${d.id}`);
      this.voteStatus.set(d.id, st);
    }
    const saved = loadVote(localStorage, ctx.deployment.chainId, ctx.c.court.address, d.id, account);
    const words: Record<string, string> = { None: 'not drawn', Drawn: 'drawn: commit your vote', Committed: 'committed', RevealedHonest: 'revealed: honest', RevealedFaulty: 'revealed: faulty', RevealedAbstain: 'revealed: abstained' };
    const voting = d.stage === 'Voting' && myRound === d.round; // my round is the one voting now
    const badgeText = !voting && (state === 'Drawn' || state === 'Committed') ? 'not revealed' : words[state] ?? state;
    const head = h('div', { class: 'audit-head' }, h('strong', null, `Dispute #${d.id}`),
      ` · accused ${shortAddress(d.accused)} · ${formatSpan(d.firstBlock, d.lastBlock)} · block ${d.block} named faulty (${kindName(d.kind)} step ${d.step})${myRound > 0 ? ' · appeal panel' : ''} · `,
      badge(badgeText, state.startsWith('Revealed') ? 'ok' : voting ? 'info' : 'warn'));
    const box = h('div', { class: 'audit', id: `audit-${d.id}` }, head);
    const verdict = state === 'RevealedFaulty' ? 'Faulty' : state === 'RevealedHonest' ? 'Honest' : state === 'RevealedAbstain' ? 'Abstain' : null;
    if (d.stage === 'Resolved') {
      const p = d.params;
      const decided = d.outcome === 'Faulty' || d.outcome === 'Honest';
      const penalty = (wei: bigint | undefined) => (wei ? ` (${formatAmount(wei, sym)})` : '');
      box.append(h('p', { class: 'muted' }, `Resolved: ${outcomeWords(d.outcome)}. `,
        verdict === null ? `You did not reveal a vote: penalised${penalty(p?.noRevealPenalty)}.`
          : verdict === 'Abstain' ? 'You abstained: neither penalised nor paid.'
            : !decided ? 'No verdict carried, so nobody is paid or penalised for theirs.'
              : verdict === d.outcome ? 'You voted with the majority, as the final ruling: your share is under Stake → credits.'
                : `You voted against the final ruling: penalised${penalty(p?.incoherencePenalty)}.`));
      return box;
    }
    if (!voting) {
      // Between rounds, or an appeal panel voting after my round: nothing to send now.
      const what = d.stage === 'Appealable'
        ? `The first round ruled ${outcomeWords(d.firstRuling)}; it can be appealed until ${formatTimestamp(d.appealDeadline)}.`
        : d.round > myRound ? 'The ruling was appealed: a fresh panel gives the final ruling.' : 'Waiting for the next stage.';
      const mineSays = verdict === null ? ' You did not reveal a vote in your round, so you will be penalised when it settles.'
        : verdict === 'Abstain' ? ' You abstained.'
          : ` You revealed ${verdict.toLowerCase()}: if the final ruling differs you are penalised; if it agrees you share the pool.`;
      box.append(h('p', { class: 'muted' }, what, mineSays), st.el);
      return box;
    }
    if (state === 'Drawn') {
      const label: Record<Verdict, string> = {
        honest: ' Honest — the named block\'s output matches within tolerance',
        faulty: ' Faulty — the named block\'s output differs beyond tolerance',
        abstain: ' Abstain — I could not fetch or use the evidence (not penalised, not paid)',
      };
      const verdictIn = (v: Verdict) => h('label', { class: 'radio' }, h('input', { type: 'radio', name: `verdict-${d.id}`, value: v, checked: v === 'honest' }), label[v]);
      const fpIn = h('input', { id: `fingerprint-${d.id}`, class: 'mono', placeholder: '0x… (empty = zero hash)', size: 68 }) as HTMLInputElement;
      const status = st;
      const form = h('form', { onsubmit: async (e: Event) => {
        e.preventDefault();
        const chosen = (form.querySelector(`input[name="verdict-${d.id}"]:checked`) as HTMLInputElement).value as Verdict;
        if (!(chosen in VERDICT_CODE)) { status.say('Choose a verdict.'); return; }
        let fingerprint;
        try { fingerprint = parseFingerprint(fpIn.value); } catch (err) { status.say((err as Error).message); return; }
        const salt = randomSalt();
        const vote: SavedVote = {
          disputeId: String(d.id), auditor: account, verdict: chosen, fingerprint, salt,
          commitment: commitmentOf(d.id, account, chosen, fingerprint, salt),
          court: ctx.c.court.address, chainId: ctx.deployment.chainId, savedAt: new Date().toISOString(),
        };
        saveVote(localStorage, vote); // kept before sending, so a crash after signing cannot lose it
        box.append(backupBox(vote));
        await this.send({ title: `Commit vote on dispute #${d.id}`, ...ctx.c.court, functionName: 'commitVote', args: [d.id, vote.commitment], onUpdate: status.show });
      } }, verdictIn('honest'), verdictIn('faulty'), verdictIn('abstain'),
        h('div', { class: 'row' }, h('label', { for: `fingerprint-${d.id}` }, 'Fingerprint'), fpIn),
        h('p', { class: 'hint' }, 'The fingerprint binds your vote to what you computed: the hash your Pollen auditor reports for the named block. For a manual vote leave it empty: the zero hash is used (it is revealed with your vote).'),
        d.params ? h('p', { class: 'hint' }, `Penalties: ${formatAmount(d.params.noRevealPenalty, sym)} if you never reveal, ${formatAmount(d.params.incoherencePenalty, sym)} if you reveal the verdict opposite to the final ruling. Your stake stays frozen until the dispute settles.`) : null,
        h('button', { class: 'primary', type: 'submit', id: `commit-${d.id}` }, 'Commit vote'));
      box.append(form, st.el);
    } else if (state === 'Committed') {
      const backupIn = h('input', { type: 'file', accept: '.json', id: `backup-${d.id}` });
      const status = st;
      const reveal = async (vote: SavedVote) => {
        await this.send({ title: `Reveal vote on dispute #${d.id}`, ...ctx.c.court, functionName: 'revealVote', args: [d.id, VERDICT_CODE[vote.verdict], vote.fingerprint, vote.salt], onUpdate: status.show });
      };
      box.append(
        saved ? h('p', null, `Your committed verdict: `, h('strong', null, saved.verdict), ` with fingerprint `, h('span', { class: 'mono' }, `${saved.fingerprint.slice(0, 12)}…`), ` (salt saved in this browser).`, backupBox(saved))
          : h('p', { class: 'warn-text' }, 'This browser has no saved salt for this vote: load the backup file you downloaded when committing.'),
        h('div', { class: 'row' },
          h('button', { class: 'primary', id: `reveal-${d.id}`, onclick: () => saved ? reveal(saved) : status.say('Load your vote backup first.') }, 'Reveal vote'),
          h('label', { for: `backup-${d.id}`, class: 'small' }, 'or reveal from a backup file '), backupIn),
        st.el);
      backupIn.addEventListener('change', async () => {
        try {
          const v = parseVoteBackup(await backupIn.files![0].text());
          if (v.disputeId !== String(d.id)) throw new Error(`That backup is for dispute #${v.disputeId}, not #${d.id}.`);
          await reveal(v);
        } catch (e) { status.say((e as Error).message); }
      });
    } else {
      box.append(h('p', { class: 'muted' }, 'Your vote is revealed. Credits or penalties follow once the dispute settles (after its appeal window, if it has one).'), st.el);
    }
    return box;
  }

  private renderMine(): void {
    const me = this.account.toLowerCase();
    const now = this.ctx.data.now();
    const list = [...this.ctx.data.disputes.values()].filter((d) => d.challenger.toLowerCase() === me || d.accused.toLowerCase() === me)
      .sort((a, b) => Number(b.id - a.id));
    const where = (d: DisputeInfo) => d.stage === 'Resolved' ? outcomeWords(d.outcome)
      : d.stage === 'Appealable' ? `ruled ${outcomeWords(d.firstRuling)}, ${now > d.appealDeadline ? 'appeal window closed' : `appealable until ${formatTimestamp(d.appealDeadline)}`} (on the Disputes page)`
        : `${d.round > 0 ? 'appeal: ' : ''}${d.stage === 'AwaitingDraw' ? 'awaiting draw' : 'voting'}`;
    const key = list.map((d) => `${d.id}:${where(d)}`).join('|');
    if (key === this.mineKey) return;
    this.mineKey = key;
    fill(this.live.mine, list.length ? h('ul', { class: 'plain' }, list.map((d) => h('li', { 'data-dispute': String(d.id) },
      h('a', { href: `#/disputes`, onclick: () => setTimeout(() => document.getElementById(`dispute-${d.id}`)?.scrollIntoView(), 50) }, `Dispute #${d.id}`),
      d.challenger.toLowerCase() === me ? ` — you challenged ${shortAddress(d.accused)}` : ` — ${shortAddress(d.challenger)} challenged you`,
      ' · ', where(d))))
      : h('p', { class: 'muted' }, 'None.'));
  }
}

/** Show the salt and offer a download: without it the vote cannot be revealed. */
function backupBox(vote: SavedVote): HTMLElement {
  const json = JSON.stringify(vote, null, 2);
  const url = URL.createObjectURL(new Blob([json], { type: 'application/json' }));
  return h('div', { class: 'backup', id: `backup-box-${vote.disputeId}` },
    h('div', null, h('strong', null, 'Back up your vote. '), 'Without this salt you cannot reveal and you will be penalised. It is saved in this browser; keep a copy elsewhere too.'),
    h('code', { class: 'mono salt' }, vote.salt),
    h('div', { class: 'row' },
      h('a', { class: 'button', href: url, download: `pollen-vote-dispute-${vote.disputeId}.json` }, 'Download backup'),
      h('button', { type: 'button', onclick: () => navigator.clipboard?.writeText(json) }, 'Copy')));
}

/** Register or update the connected account's server. */
class ServerForm {
  el: HTMLElement;
  private version = h('select', { id: 'srv-version' });
  private fields = {
    signer: h('input', { id: 'srv-signer', size: 42 }),
    endpoint: h('input', { id: 'srv-endpoint', placeholder: 'grpc://203.0.113.7:31330', size: 32 }),
    first: h('input', { id: 'srv-first', type: 'number', min: 0, value: '0' }),
    last: h('input', { id: 'srv-last', type: 'number', min: 1 }),
    throughput: h('input', { id: 'srv-throughput', type: 'number', min: 1, value: '10' }),
  };
  private registerBtn = h('button', { class: 'primary', id: 'register-btn', type: 'submit' }, 'Register server');
  private leaveBtn = h('button', { type: 'button', id: 'leave-btn' }, 'Leave');
  private status = txStatus('server-status');
  private active = false;
  private versionKey = '';

  constructor(private ctx: Ctx, account: Address, private send: (r: TxRequest) => Promise<TxEntry>) {
    this.fields.signer.value = account;
    const f = this.fields;
    const row = (label: string, input: HTMLElement, hint?: string) =>
      h('div', { class: 'row' }, h('label', { for: input.id }, label), input, hint ? h('span', { class: 'hint' }, hint) : null);
    this.leaveBtn.addEventListener('click', () => this.send({ title: 'Leave the swarm', ...ctx.c.registry, functionName: 'leave', onUpdate: this.status.show }));
    this.el = h('form', { class: 'server-form', onsubmit: (e: Event) => { e.preventDefault(); void this.submit(); } },
      row('Model version', this.version),
      h('div', { class: 'row' }, h('label', { for: 'srv-first' }, 'Blocks'), f.first, h('span', null, 'to'), f.last, h('span', { class: 'hint' }, 'first (inclusive) to last (exclusive)')),
      row('Endpoint', f.endpoint),
      row('Signer key', f.signer, 'the hot key on the server that signs receipts (may be your address)'),
      row('Throughput', f.throughput, 'tokens/s you declare'),
      h('div', { class: 'row' }, this.registerBtn, this.leaveBtn),
      this.status.el);
  }

  setMode(active: boolean): void {
    this.active = active;
    this.registerBtn.textContent = active ? 'Update server' : 'Register server';
    this.leaveBtn.hidden = !active;
  }

  refreshVersions(): void {
    const versions = [...this.ctx.data.versions.values()].filter((v) => !v.deprecated).sort((a, b) => Number(a.id - b.id));
    const key = versions.map((v) => v.id).join(',');
    if (key === this.versionKey) return;
    this.versionKey = key;
    const selected = this.version.value;
    fill(this.version, versions.length ? versions.map((v) => h('option', { value: String(v.id), selected: String(v.id) === selected },
      `#${v.id} ${this.ctx.data.models.get(v.modelId)?.name ?? ''} (${v.numBlocks} blocks)`)) : h('option', { value: '' }, 'no active version'));
    if (!this.fields.last.value && versions[0]) this.fields.last.value = String(versions[0].numBlocks);
  }

  private async submit(): Promise<void> {
    const f = this.fields;
    const signer = f.signer.value.trim();
    if (!isAddress(signer)) return this.status.say('The signer must be an address (0x + 40 hex digits).');
    if (!this.version.value) return this.status.say('There is no active model version to serve yet.');
    const nums = [f.first.value, f.last.value, f.throughput.value].map((v) => Number(v));
    if (nums.some((n) => !Number.isInteger(n) || n < 0)) return this.status.say('Blocks and throughput must be whole numbers.');
    const [first, last, throughput] = nums;
    await this.send({
      title: `${this.active ? 'Update' : 'Register'} server for ${formatSpan(first, last)}`,
      ...this.ctx.c.registry, functionName: this.active ? 'update' : 'register',
      args: [signer, f.endpoint.value.trim(), BigInt(this.version.value), first, last, BigInt(throughput)],
      onUpdate: this.status.show,
    });
  }
}
