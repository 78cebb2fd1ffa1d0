// Payments: every server's declared price, credit limit and earnings next to its span; the
// protocol fee and the audit pool; and for the connected wallet its deposit and its lanes (one per
// server it pays), with deposit, allocate, withdraw and reclaim, and for an operator withdrawing,
// spending and pricing its earnings and redeeming its daemon's voucher book (PaymentEscrow, AuditFeePayer).
import { formatEther, type Address } from 'viem';
import type { Ctx, View } from '../app';
import type { ServerInfo } from '../chainData';
import { PaymentEscrowAbi } from '../contracts';
import { fill, h } from '../dom';
import { formatAmount, formatDuration, formatSpan, formatTimestamp } from '../format';
import {
  checkDeposit, checkReclaim, checkSpendEarned, checkTerms, checkWithdrawDeposit, formatBps, formatPrice, laneState, laneStateWords,
  newLaneIndex, paymentContracts, planAllocation, pricePerToken, readPayments, type Lane, type PayReader, type PaymentBook, type PaymentContracts,
} from '../payments';
import { phaseText, type TxEntry, type TxRequest } from '../tx';
import {
  checkBookFor, checkPlan, parseVoucherBook, planRedeem, readVoucherRows, redeemArgs, redeemResult, rowProblem,
  type RedeemResult, type VoucherBook, type VoucherReader, type VoucherRow,
} from '../vouchers';
import { addr, badge, empty, stat, you } from './common';

const STATUS_TONE = { Active: 'ok', Inactive: 'warn', Left: 'muted', None: 'muted' } as const;

export function paymentsView(ctx: Ctx): View {
  const el = h('section', { class: 'view payments' });
  const pc = paymentContracts(ctx.deployment);
  if (!pc) {
    fill(el, h('h1', null, 'Payments'),
      h('div', { id: 'payments-missing' }, empty('Payments are not deployed here',
        `This deployment file names no PaymentEscrow, so nobody pays or earns on “${ctx.deployment.network}” yet. The rest of the UI works as usual; redeploy with python -m pollen.deploy (it deploys PaymentEscrow and AuditFeePayer) to use pay-per-use.`)));
    return { el, update() {} };
  }
  const page = new PaymentsPage(ctx, pc);
  fill(el, h('h1', null, 'Payments'),
    h('p', { class: 'lede' }, 'Clients deposit, set part of it aside for each server they use (a lane), and pay per verified step with signed cumulative vouchers that servers redeem in batches. A protocol fee on every redemption funds the audit pool, which pays drawn auditors whatever the verdict.'),
    page.el);
  return { el, update: () => page.update() };
}

/** A status line next to a form button that follows its transaction (or says why it was not sent). */
interface TxStatus { el: HTMLElement; show: (e: TxEntry) => void; say: (text: string, tone?: string) => void }

function txStatus(id: string): TxStatus {
  const el = h('div', { class: 'tx-status', id, 'aria-live': 'polite' });
  return {
    el,
    show(e) {
      el.dataset.phase = e.phase;
      fill(el, h('span', { class: `phase ${e.phase}` }, phaseText(e)),
        e.error ? h('span', { class: 'err' }, ': ', h('strong', { class: 'err-name' }, e.error.name), ' — ', e.error.message) : null);
    },
    say(text, tone = 'failed') {
      el.dataset.phase = tone;
      fill(el, h('span', { class: `phase ${tone}` }, text));
    },
  };
}

class PaymentsPage {
  el: HTMLElement;
  private book: PaymentBook | null = null;
  private readError: string | null = null;
  private reading = false;
  private readAgain = false;
  private seenRevision = -1;
  private account: Address | null = null;
  /** The wallet (account, or state when not connected) the wallet part was built for. */
  private builtFor: string | null = null;
  private live = {
    globals: h('div', { class: 'stats', id: 'payment-globals' }),
    servers: h('div', { id: 'payment-servers' }),
    mine: h('div', { id: 'my-payments' }),
  };
  private walletPanel: WalletPanel | null = null;
  private serversKey = '';
  private laneIndex = newLaneIndex();

  constructor(private ctx: Ctx, private pc: PaymentContracts) {
    this.el = h('div', null,
      h('div', { class: 'card', id: 'protocol-card' }, h('h2', null, 'Protocol fee and audit pool'), this.live.globals,
        h('p', { class: 'hint' }, 'The fee is taken from every redemption into the audit pool; the audit payer credits each coherent auditor of a resolved dispute from it, and what auditors are credited they withdraw below like earnings.')),
      h('div', { class: 'card', id: 'prices-card' }, h('h2', null, 'Servers: prices and earnings'), this.live.servers),
      this.live.mine);
  }

  update(): void {
    const me = you(this.ctx) as Address | null;
    const key = me ?? this.ctx.wallet.state.kind;
    if (key !== this.builtFor) {
      this.builtFor = key;
      this.account = me;
      this.walletPanel = me ? new WalletPanel(this.ctx, this.pc, me, () => this.book, () => void this.read()) : null;
      if (this.book) this.book = { ...this.book, wallet: null }; // the old wallet's part no longer applies
      fill(this.live.mine, this.walletPanel ? this.walletPanel.el : this.notConnected());
      void this.read();
    }
    if (this.seenRevision !== this.ctx.data.revision) {
      this.seenRevision = this.ctx.data.revision;
      void this.read();
    }
    this.walletPanel?.tick();
  }

  private notConnected(): HTMLElement {
    const s = this.ctx.wallet.state;
    if (s.kind === 'no-wallet') return empty('No wallet in this browser', 'Install MetaMask (or another EIP-1193 wallet), then reload to deposit, pay servers and withdraw earnings.');
    return h('div', { class: 'card', id: 'payments-not-connected' },
      h('h2', null, 'My payments'),
      h('p', { class: 'hint' }, 'Connect your wallet to see your deposit and lanes, to deposit and allocate to servers, and (as an operator) to withdraw or spend your earnings and set your price.'),
      h('button', { class: 'primary', disabled: s.kind === 'connecting', onclick: () => this.ctx.wallet.connect().catch(() => {}) }, 'Connect wallet'));
  }

  /** Re-read the escrow at the latest indexed block; a request mid-read runs once more after it. */
  private async read(): Promise<void> {
    if (this.reading) {
      this.readAgain = true;
      return;
    }
    const { data } = this.ctx;
    if (data.latestBlock === null) return;
    this.reading = true;
    try {
      do {
        this.readAgain = false;
        const servers = [...data.servers.values()].filter((s) => s.status !== 'None').map((s) => s.operator);
        const account = this.account;
        const book = await readPayments(this.ctx.client as unknown as PayReader, this.pc, servers, account,
          this.ctx.deployment.deployedAtBlock, data.latestBlock!, this.laneIndex);
        if (account === this.account) this.book = book;
        this.readError = null;
      } while (this.readAgain);
    } catch (err) {
      this.readError = `Cannot read the PaymentEscrow at ${this.pc.escrow}: ${this.ctx.explain(err).message.split('\n')[0]}`;
    } finally {
      this.reading = false;
    }
    this.render();
  }

  private render(): void {
    const sym = this.ctx.chain.symbol;
    const b = this.book;
    if (!b) {
      fill(this.live.globals, h('span', { class: this.readError ? 'err' : 'muted' }, this.readError ?? 'Reading the escrow…'));
      return;
    }
    const g = b.globals;
    fill(this.live.globals,
      stat('protocol fee on redemptions', formatBps(g.feeBps), 'stat-fee'),
      stat('audit pool', formatAmount(g.auditPool, sym), 'stat-audit-pool'),
      stat('paid per audit', g.feePerAudit === null ? (this.pc.feePayer ? '—' : 'no audit payer') : formatAmount(g.feePerAudit, sym), 'stat-fee-per-audit'),
      stat('reclaim delay', formatDuration(g.reclaimDelay), 'stat-reclaim-delay'),
      stat('deposited by clients', formatAmount(g.totalDeposits, sym), 'stat-total-deposits'),
      stat('earned, not withdrawn', formatAmount(g.totalEarned, sym), 'stat-total-earned'),
      this.readError ? h('span', { class: 'err' }, this.readError) : null);
    this.renderServers(b);
    this.walletPanel?.render();
  }

  private renderServers(b: PaymentBook): void {
    const sym = this.ctx.chain.symbol;
    const me = this.account;
    const servers = [...this.ctx.data.servers.values()].filter((s) => s.status !== 'None')
      .sort((x, y) => Number(x.versionId - y.versionId) || x.firstBlock - y.firstBlock || x.operator.localeCompare(y.operator));
    const key = JSON.stringify([me, servers.map((s) => [s.operator, s.versionId.toString(), s.firstBlock, s.lastBlock, s.status]),
      [...b.servers].map(([a, p]) => [a, p.terms.price.toString(), p.terms.creditLimit.toString(), p.earned.toString()])]);
    if (key === this.serversKey) return;
    this.serversKey = key;
    if (!servers.length) {
      fill(this.live.servers, empty('No servers registered yet', 'Operators stake and register under My account, then declare a price here.'));
      return;
    }
    const rows = servers.map((s: ServerInfo) => {
      const p = b.servers.get(s.operator);
      const blocks = s.lastBlock - s.firstBlock;
      return h('tr', { 'data-operator': s.operator },
        h('td', null, addr(s.operator, me)),
        h('td', null, `v${s.versionId} · ${formatSpan(s.firstBlock, s.lastBlock)}`),
        h('td', null, badge(s.status, STATUS_TONE[s.status])),
        h('td', { class: 'num price' }, p ? formatPrice(p.terms.price, sym) : '…'),
        h('td', { class: 'num per-token' }, p ? (p.terms.price === 0n ? 'free' : formatPrice(pricePerToken(p.terms.price, blocks), sym)) : '…'),
        h('td', { class: 'num credit' }, p ? (p.terms.creditLimit === 0n ? 'default' : formatAmount(p.terms.creditLimit, sym)) : '…'),
        h('td', { class: 'num earned' }, p ? formatAmount(p.earned, sym) : '…'));
    });
    fill(this.live.servers,
      h('table', { class: 'servers prices' },
        h('thead', null, h('tr', null, ...['Operator', 'Span', 'Status', 'Price / block / token', 'Per token (span)', 'Credit limit', 'Earned'].map((t) => h('th', null, t)))),
        h('tbody', null, rows)),
      h('p', { class: 'hint' }, 'A price of 0 serves for free. The credit limit is how far a client\'s vouchers may fall behind before the server stops serving its session ("default": one step). Earnings are redeemed vouchers after the fee, not yet withdrawn.'));
  }
}

/** The connected wallet's deposit, lanes and (as an operator) earnings, with their actions. */
class WalletPanel {
  el: HTMLElement;
  private live = {
    stats: h('div', { class: 'stats', id: 'my-payment-stats' }),
    lanes: h('div', { id: 'my-lanes' }),
    serverSelect: h('select', { id: 'allocate-server', 'aria-label': 'Server to allocate to' }),
    earnings: h('div', { id: 'my-earnings' }),
    priceNote: h('p', { class: 'hint', id: 'price-note' }),
  };
  private lanesKey = '';
  private selectKey = '';
  /** Each lane's state cell and reclaim controls, updated every tick (countdowns). */
  private laneRows = new Map<Address, { state: HTMLElement; actions: HTMLElement; kind: string; input: HTMLInputElement; status: TxStatus }>();
  private send = (req: TxRequest) => this.ctx.tx.send(req);
  private escrow: { address: Address; abi: typeof PaymentEscrowAbi };
  private redeemCard: RedeemCard;

  constructor(private ctx: Ctx, pc: PaymentContracts, private account: Address, private book: () => PaymentBook | null,
    private reread: () => void) {
    this.escrow = { address: pc.escrow, abi: PaymentEscrowAbi };
    this.redeemCard = new RedeemCard(ctx, pc, account, () => this.book()?.globals.feeBps ?? null, this.sendAndReread);
    this.el = h('div', { class: 'account-grid' }, this.clientCard(), this.earningsCard(), this.redeemCard.el);
  }

  private sendAndReread = async (req: TxRequest): Promise<TxEntry> => {
    const r = await this.send(req);
    if (r.phase === 'confirmed') this.reread();
    return r;
  };

  /** Run `check` on the form's input; on bad input say why next to the button and send nothing. */
  private checked<T>(st: TxStatus, check: () => T): T | null {
    try {
      return check();
    } catch (e) {
      const x = this.ctx.explain(e);
      st.say(x.message);
      return null;
    }
  }

  private wallet() {
    const b = this.book();
    return b?.wallet && b.wallet.account === this.account ? b.wallet : null;
  }

  private clientCard(): HTMLElement {
    const sym = this.ctx.chain.symbol;
    const depositIn = h('input', { id: 'deposit-amount', inputmode: 'decimal', placeholder: `amount in ${sym}` });
    const allocateIn = h('input', { id: 'allocate-amount', inputmode: 'decimal', placeholder: `amount in ${sym}` });
    const withdrawIn = h('input', { id: 'withdraw-deposit-amount', inputmode: 'decimal', placeholder: `amount in ${sym}` });
    const depositSt = txStatus('deposit-status'), allocateSt = txStatus('allocate-status'), withdrawSt = txStatus('withdraw-deposit-status');
    const notRead = (st: TxStatus) => { st.say('Still reading your balances from the chain; try again in a moment.'); };
    return h('div', { class: 'card', id: 'client-card' },
      h('h2', null, 'My deposit and lanes'),
      this.live.stats,
      h('form', { class: 'row', onsubmit: async (e: Event) => {
        e.preventDefault();
        const w = this.wallet();
        if (!w) return notRead(depositSt);
        const value = this.checked(depositSt, () => checkDeposit(depositIn.value, w.walletBalance, sym));
        if (value === null) return;
        const r = await this.sendAndReread({ title: `Deposit ${formatAmount(value, sym)}`, ...this.escrow, functionName: 'deposit', value, onUpdate: depositSt.show });
        if (r.phase === 'confirmed') depositIn.value = '';
      } }, h('label', { for: 'deposit-amount' }, 'Deposit'), depositIn, h('button', { class: 'primary', id: 'deposit-btn', type: 'submit' }, 'Deposit')),
      depositSt.el,
      h('form', { class: 'row', onsubmit: async (e: Event) => {
        e.preventDefault();
        const w = this.wallet();
        if (!w) return notRead(allocateSt);
        const active = new Set([...this.ctx.data.servers.values()].filter((s) => s.status === 'Active').map((s) => s.operator.toLowerCase()));
        const plan = this.checked(allocateSt, () => planAllocation(this.live.serverSelect.value, allocateIn.value, w.deposit, w.walletBalance, sym, active));
        if (plan === null) return;
        const title = plan.value > 0n
          ? `Deposit ${formatAmount(plan.value, sym)} and allocate ${formatAmount(plan.amount, sym)} to ${plan.server.slice(0, 8)}…`
          : `Allocate ${formatAmount(plan.amount, sym)} to ${plan.server.slice(0, 8)}…`;
        const r = await this.sendAndReread({
          title, ...this.escrow, functionName: 'allocate', args: [[plan.server], [plan.amount]], value: plan.value || undefined, onUpdate: allocateSt.show,
        });
        if (r.phase === 'confirmed') allocateIn.value = '';
      } }, h('label', { for: 'allocate-server' }, 'Allocate to'), this.live.serverSelect, allocateIn,
        h('button', { id: 'allocate-btn', type: 'submit' }, 'Allocate')),
      h('p', { class: 'hint' }, 'Only that server\'s vouchers can take a lane. What your unallocated deposit lacks is sent from your wallet in the same transaction.'),
      allocateSt.el,
      h('form', { class: 'row', onsubmit: async (e: Event) => {
        e.preventDefault();
        const w = this.wallet();
        if (!w) return notRead(withdrawSt);
        const amount = this.checked(withdrawSt, () => checkWithdrawDeposit(withdrawIn.value, w.deposit, sym));
        if (amount === null) return;
        const r = await this.sendAndReread({ title: `Withdraw ${formatAmount(amount, sym)} of deposit`, ...this.escrow, functionName: 'withdrawDeposit', args: [amount], onUpdate: withdrawSt.show });
        if (r.phase === 'confirmed') withdrawIn.value = '';
      } }, h('label', { for: 'withdraw-deposit-amount' }, 'Withdraw unallocated'), withdrawIn, h('button', { id: 'withdraw-deposit-btn', type: 'submit' }, 'Withdraw')),
      withdrawSt.el,
      h('h3', null, 'Lanes'),
      this.live.lanes);
  }

  private earningsCard(): HTMLElement {
    const sym = this.ctx.chain.symbol;
    const spendIn = h('input', { id: 'spend-earned-amount', inputmode: 'decimal', placeholder: `amount in ${sym}` });
    const priceIn = h('input', { id: 'price-input', placeholder: 'wei per block per token, e.g. 2 gwei' });
    const creditIn = h('input', { id: 'credit-input', placeholder: `credit limit in ${sym} (0 = default)` });
    const withdrawSt = txStatus('withdraw-earned-status'), spendSt = txStatus('spend-earned-status'), priceSt = txStatus('set-price-status');
    return h('div', { class: 'card', id: 'earnings-card' },
      h('h2', null, 'My earnings (operators and auditors)'),
      this.live.earnings,
      h('div', { class: 'row' },
        h('span', { class: 'label' }, 'Withdraw all earnings'),
        h('button', { id: 'withdraw-earned-btn', onclick: async () => {
          const w = this.wallet();
          if (w && w.earned === 0n) return withdrawSt.say('You have no earnings or audit credits to withdraw yet.');
          await this.sendAndReread({ title: 'Withdraw earnings', ...this.escrow, functionName: 'withdraw', onUpdate: withdrawSt.show });
        } }, 'Withdraw')),
      withdrawSt.el,
      h('form', { class: 'row', onsubmit: async (e: Event) => {
        e.preventDefault();
        const w = this.wallet();
        if (!w) return spendSt.say('Still reading your balances from the chain; try again in a moment.');
        const amount = this.checked(spendSt, () => checkSpendEarned(spendIn.value, w.earned, sym));
        if (amount === null) return;
        const r = await this.sendAndReread({ title: `Spend ${formatAmount(amount, sym)} of earnings as deposit`, ...this.escrow, functionName: 'spendEarned', args: [amount], onUpdate: spendSt.show });
        if (r.phase === 'confirmed') spendIn.value = '';
      } }, h('label', { for: 'spend-earned-amount' }, 'Spend as deposit'), spendIn, h('button', { id: 'spend-earned-btn', type: 'submit' }, 'Move')),
      h('p', { class: 'hint' }, 'Moves earnings into your unallocated deposit, to pay other servers as a client.'),
      spendSt.el,
      h('h3', null, 'My server\'s price'),
      h('form', { onsubmit: async (e: Event) => {
        e.preventDefault();
        const me = this.ctx.data.servers.get(this.account);
        if (!me || me.status !== 'Active') {
          return priceSt.say('Only an active registered server can declare a price: register your server under My account first.');
        }
        const t = this.checked(priceSt, () => checkTerms(priceIn.value, creditIn.value || '0', sym));
        if (t === null) return;
        await this.sendAndReread({
          title: `Set price ${formatPrice(t.price, sym)} / block / token`, ...this.escrow, functionName: 'setPrice', args: [t.price, t.creditLimit], onUpdate: priceSt.show,
        });
      } },
      h('div', { class: 'row' }, h('label', { for: 'price-input' }, 'Price'), priceIn),
      h('div', { class: 'row' }, h('label', { for: 'credit-input' }, 'Credit limit'), creditIn,
        h('button', { id: 'set-price-btn', type: 'submit' }, 'Set price'))),
      this.live.priceNote,
      priceSt.el);
  }

  /** Re-render what the latest read says (called after every read). */
  render(): void {
    const w = this.wallet();
    const sym = this.ctx.chain.symbol;
    this.renderSelect();
    this.redeemCard.render();
    if (!w) {
      fill(this.live.stats, h('span', { class: 'muted' }, 'Reading your deposit…'));
      return;
    }
    const inLanes = [...w.lanes.values()].reduce((t, l) => t + l.amount, 0n);
    fill(this.live.stats,
      stat('in your wallet', formatAmount(w.walletBalance, sym), 'stat-wallet-balance'),
      stat('unallocated deposit', formatAmount(w.deposit, sym), 'stat-deposit'),
      stat('in lanes', formatAmount(inLanes, sym), 'stat-in-lanes'),
      stat('paid to servers', formatAmount([...w.lanes.values()].reduce((t, l) => t + l.redeemed, 0n), sym), 'stat-redeemed'));
    fill(this.live.earnings, h('div', { class: 'stats' }, stat('earned, withdrawable', formatAmount(w.earned, sym), 'stat-my-earned')));
    const server = this.ctx.data.servers.get(this.account);
    const terms = this.book()?.servers.get(this.account)?.terms;
    this.live.priceNote.textContent = !server || server.status === 'None'
      ? 'This account has no registered server: register one under My account to declare a price.'
      : server.status !== 'Active'
        ? `Your server is ${server.status.toLowerCase()}: only an active server can set a price or redeem.`
        : `Now: ${terms ? formatPrice(terms.price, sym) : '…'} per block per token${terms && terms.price ? ` (${formatPrice(pricePerToken(terms.price, server.lastBlock - server.firstBlock), sym)} per token through ${formatSpan(server.firstBlock, server.lastBlock)})` : ''}, credit limit ${terms ? (terms.creditLimit ? formatAmount(terms.creditLimit, sym) : 'default') : '…'}. A price is typed in wei unless a unit is given (wei, gwei, ${sym}).`;
    this.renderLanes(w.lanes);
  }

  private renderSelect(): void {
    const active = [...this.ctx.data.servers.values()].filter((s) => s.status === 'Active')
      .sort((a, b) => Number(a.versionId - b.versionId) || a.firstBlock - b.firstBlock);
    const prices = this.book()?.servers;
    const key = JSON.stringify(active.map((s) => [s.operator, s.firstBlock, s.lastBlock, prices?.get(s.operator)?.terms.price.toString()]));
    if (key === this.selectKey) return;
    this.selectKey = key;
    const chosen = this.live.serverSelect.value;
    const sym = this.ctx.chain.symbol;
    fill(this.live.serverSelect,
      active.length ? null : h('option', { value: '' }, 'no active server'),
      active.map((s) => {
        const p = prices?.get(s.operator)?.terms.price;
        return h('option', { value: s.operator, selected: s.operator === chosen },
          `${s.operator.slice(0, 8)}… · v${s.versionId} ${formatSpan(s.firstBlock, s.lastBlock)} · ${p === undefined ? '…' : formatPrice(p, sym)}`);
      }));
  }

  private renderLanes(lanes: Map<Address, Lane>): void {
    const sym = this.ctx.chain.symbol;
    const key = JSON.stringify([...lanes].map(([s, l]) => [s, l.amount.toString(), l.redeemed.toString(), l.reclaimAmount.toString(), l.reclaimAt]));
    if (key === this.lanesKey) {
      this.tick();
      return;
    }
    this.lanesKey = key;
    if (!lanes.size) {
      this.laneRows.clear();
      fill(this.live.lanes, h('p', { class: 'muted', id: 'no-lanes' }, 'No lanes yet: allocate part of your deposit to a server above.'));
      return;
    }
    const old = this.laneRows;
    this.laneRows = new Map();
    const rows = [...lanes].map(([server, lane]) => {
      const prev = old.get(server);
      const input = prev?.input ?? h('input', { class: 'reclaim-amount', inputmode: 'decimal', placeholder: `amount in ${sym}`, 'aria-label': 'Amount to reclaim' });
      const status = prev?.status ?? txStatus(`reclaim-status-${server}`);
      const state = h('td', { class: 'lane-state', style: { minWidth: '11rem' } });
      const actions = h('div', { class: 'lane-actions' });
      this.laneRows.set(server, { state, actions, kind: '', input, status });
      const reg = this.ctx.data.servers.get(server);
      return h('tr', { 'data-server': server },
        h('td', null, addr(server, this.account), reg ? h('div', { class: 'muted small' }, `v${reg.versionId} · ${formatSpan(reg.firstBlock, reg.lastBlock)} · ${reg.status.toLowerCase()}`) : h('div', { class: 'muted small' }, 'not a registered server')),
        h('td', { class: 'num lane-amount' }, formatAmount(lane.amount, sym)),
        h('td', { class: 'num lane-redeemed' }, formatAmount(lane.redeemed, sym)),
        state,
        h('td', null, actions, status.el));
    });
    fill(this.live.lanes,
      h('table', { class: 'lanes' },
        h('thead', null, h('tr', null, ...['Server', 'In lane', 'Redeemed by it', 'State', 'Reclaim'].map((t) => h('th', null, t)))),
        h('tbody', null, rows)),
      h('p', { class: 'hint' }, `A lane comes back in two steps: announce a reclaim, then take it after the reclaim delay (${formatDuration(this.book()?.globals.reclaimDelay ?? 0)}). The server keeps redeeming vouchers it holds until then, so it is never cheated of one.`));
    this.tick();
  }

  /** Countdowns and the reclaim controls, which change with chain time, not only with the chain. */
  tick(): void {
    const w = this.wallet();
    if (!w) return;
    const sym = this.ctx.chain.symbol;
    const now = this.ctx.data.now();
    for (const [server, row] of this.laneRows) {
      const lane = w.lanes.get(server);
      if (!lane) continue;
      const s = laneState(lane, now);
      row.state.dataset.state = s.kind;
      row.state.textContent = laneStateWords(s, sym);
      if (s.kind === 'announced') row.state.title = `takeable from ${formatTimestamp(s.takeAt)}`;
      if (row.kind === s.kind) continue;
      row.kind = s.kind;
      fill(row.actions, this.laneActions(server, lane, s.kind, row.input, row.status));
    }
  }

  private laneActions(server: Address, lane: Lane, kind: string, input: HTMLInputElement, st: TxStatus): HTMLElement[] {
    const sym = this.ctx.chain.symbol;
    const short = `${server.slice(0, 8)}…`;
    const announce = h('form', { class: 'row', onsubmit: async (e: Event) => {
      e.preventDefault();
      const current = this.wallet()?.lanes.get(server) ?? lane;
      const amount = this.checked(st, () => checkReclaim(input.value || formatEther(current.amount), current, sym));
      if (amount === null) return;
      const r = await this.sendAndReread({ title: `Announce reclaim of ${formatAmount(amount, sym)} from ${short}`, ...this.escrow, functionName: 'announceReclaim', args: [server, amount], onUpdate: st.show });
      if (r.phase === 'confirmed') input.value = '';
    } }, input, h('button', { class: 'announce-btn', type: 'submit' }, kind === 'open' || kind === 'empty' ? 'Announce reclaim' : 'Announce again'));
    const reclaim = h('button', { class: 'primary reclaim-btn', onclick: () => this.sendAndReread({ title: `Reclaim from ${short}`, ...this.escrow, functionName: 'reclaim', args: [server], onUpdate: st.show }) }, 'Reclaim now');
    const cancel = h('button', { class: 'link cancel-reclaim-btn', onclick: () => this.sendAndReread({ title: `Cancel reclaim from ${short}`, ...this.escrow, functionName: 'cancelReclaim', args: [server], onUpdate: st.show }) }, 'Cancel reclaim');
    switch (kind) {
      case 'takeable': return [h('div', { class: 'row' }, reclaim, cancel)];
      case 'announced': return [h('div', { class: 'row' }, cancel), announce];
      case 'open': return [announce];
      default: return [h('span', { class: 'muted' }, 'nothing to reclaim')];
    }
  }
}

/** An operator's "Redeem vouchers" card: load its daemon's voucher book (file or pasted JSON), see
 *  what each client's newest voucher pays now, and redeem every one that pays in one batch. */
class RedeemCard {
  el: HTMLElement;
  private fileIn = h('input', { type: 'file', id: 'voucher-file', accept: '.json,application/json', 'aria-label': 'Voucher book file' });
  private pasteIn = h('textarea', { id: 'voucher-paste', rows: 3, style: { flex: '1 1 24rem' }, placeholder: 'or paste the voucher book JSON here' });
  private note = h('p', { class: 'hint', id: 'redeem-note' });
  private table = h('div', { id: 'voucher-table' });
  private result = h('div', { id: 'redeem-result' });
  private loadSt = txStatus('voucher-book-status');
  private st = txStatus('redeem-status');
  private voucherBook: VoucherBook | null = null;
  private rows: VoucherRow[] = [];

  constructor(private ctx: Ctx, private pc: PaymentContracts, private account: Address, private feeBps: () => number | null,
    private send: (req: TxRequest) => Promise<TxEntry>) {
    this.fileIn.addEventListener('change', () => void this.loadFile());
    this.el = h('div', { class: 'card', id: 'redeem-card', hidden: true },
      h('h2', null, 'Redeem vouchers'),
      h('p', { class: 'hint' }, 'Your daemon keeps the newest voucher each client signed in its voucher book (a JSON file). Load it to see what each client owes you now, then redeem them all in one transaction.'),
      h('div', { class: 'row' }, h('label', { for: 'voucher-file' }, 'Voucher book'), this.fileIn),
      h('div', { class: 'row' }, this.pasteIn, h('button', { id: 'voucher-load-btn', onclick: () => void this.load(this.pasteIn.value) }, 'Check')),
      this.loadSt.el, this.note, this.table,
      h('div', { class: 'row' }, h('button', { class: 'primary', id: 'redeem-btn', onclick: () => void this.redeem() }, 'Redeem')),
      this.st.el, this.result);
  }

  /** Shown for a registered server; the note says when it is not active (the escrow would refuse it). */
  render(): void {
    const s = this.ctx.data.servers.get(this.account);
    this.el.hidden = !s || s.status === 'None';
    this.note.textContent = s && s.status !== 'Active' ? `Your server is ${s.status.toLowerCase()}: only an active server can redeem. Re-register under My account first.` : '';
  }

  private async loadFile(): Promise<void> {
    const f = this.fileIn.files?.[0];
    if (f) await this.load(await f.text());
  }

  /** Parse and check a book, then read what each voucher pays now. */
  private async load(text: string): Promise<void> {
    fill(this.result);
    try {
      const book = parseVoucherBook(text);
      checkBookFor(book, this.account, this.ctx.chain.id, this.pc.escrow);
      this.voucherBook = book;
      await this.refresh();
      this.loadSt.say(`Loaded ${book.vouchers.length} voucher${book.vouchers.length === 1 ? '' : 's'} for ${book.server}.`, 'confirmed');
    } catch (e) {
      this.voucherBook = null;
      this.rows = [];
      fill(this.table);
      const x = this.ctx.explain(e);
      this.loadSt.say(x.message);
    }
  }

  private async refresh(): Promise<void> {
    if (!this.voucherBook) return;
    this.rows = await readVoucherRows(this.ctx.client as unknown as VoucherReader, this.voucherBook);
    this.renderTable();
  }

  private renderTable(): void {
    const sym = this.ctx.chain.symbol;
    const fee = this.feeBps();
    const plan = planRedeem(this.rows, fee ?? 0);
    const rows = this.rows.map((r) => {
      const problem = rowProblem(r);
      return h('tr', { 'data-client': r.voucher.client, class: problem ? 'muted' : null },
        h('td', null, addr(r.voucher.client, this.account)),
        h('td', { class: 'num v-cumulative' }, formatAmount(r.voucher.cumulative, sym)),
        h('td', { class: 'num v-redeemed' }, formatAmount(r.redeemed, sym)),
        h('td', { class: 'num v-redeemable' }, formatAmount(r.redeemable, sym)),
        h('td', { class: problem?.startsWith('bad') ? 'v-note err' : 'v-note' }, problem ?? 'sent'));
    });
    fill(this.table,
      h('table', { class: 'vouchers' },
        h('thead', null, h('tr', null, ...['Client', 'Cumulative', 'Already redeemed', 'Redeemable now', ''].map((t) => h('th', null, t)))),
        h('tbody', null, rows)),
      h('p', { id: 'redeem-total' }, `Redeemable now: ${formatAmount(plan.gross, sym)}; after the ${fee === null ? '…' : formatBps(fee)} fee you earn `,
        h('strong', { id: 'redeem-net' }, formatAmount(plan.net, sym)), plan.left ? ` (${plan.left} voucher${plan.left === 1 ? '' : 's'} left out)` : ''));
  }

  /** Re-read the lanes, then send one batch of the vouchers that pay, at most at the current fee. */
  private async redeem(): Promise<void> {
    const fee = this.feeBps();
    if (!this.voucherBook) return this.st.say('Load your voucher book first (file or pasted JSON above).');
    if (fee === null) return this.st.say('Still reading the protocol fee from the chain; try again in a moment.');
    try {
      await this.refresh();
    } catch (e) {
      return this.st.say(`Cannot read the lanes: ${this.ctx.explain(e).message}`);
    }
    let plan;
    try {
      plan = checkPlan(planRedeem(this.rows, fee), this.rows);
    } catch (e) {
      return this.st.say(this.ctx.explain(e).message);
    }
    const sym = this.ctx.chain.symbol;
    const r = await this.send({
      title: `Redeem ${plan.vouchers.length} voucher${plan.vouchers.length === 1 ? '' : 's'} (${formatAmount(plan.gross, sym)})`,
      address: this.pc.escrow, abi: PaymentEscrowAbi, functionName: 'redeem', args: redeemArgs(plan, fee), onUpdate: this.st.show,
    });
    if (r.phase !== 'confirmed' || !r.hash) return;
    const receipt = await this.ctx.client.getTransactionReceipt({ hash: r.hash });
    this.showResult(redeemResult(receipt.logs));
    await this.refresh().catch(() => {});
  }

  private showResult(res: RedeemResult | null): void {
    const sym = this.ctx.chain.symbol;
    if (!res) return fill(this.result, h('p', { class: 'muted' }, 'Redeemed, but the transaction has no BatchRedeemed event to read the amounts from.'));
    fill(this.result, h('div', { class: 'stats' },
      stat('vouchers redeemed', String(res.vouchers), 'redeem-count'),
      stat('gross', formatAmount(res.gross, sym), 'redeem-gross'),
      stat('fee to the audit pool', formatAmount(res.fee, sym), 'redeem-fee'),
      stat('net, added to your earnings', formatAmount(res.net, sym), 'redeem-net-result')));
  }
}
