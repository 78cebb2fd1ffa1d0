// The Payments page in a real headless Chromium against a real anvil and deployment: a server
// declares a price, the browser's wallet deposits and allocates lanes through the page, the server
// redeems a voucher the wallet signed, and the lane, earnings, fee and audit pool follow; then a
// lane is reclaimed after its delay; the operator redeems its voucher book from the page. Also: a deployment without the escrow still loads and says so.
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import type { Page } from 'playwright-core';
import { createPublicClient, createWalletClient, getAddress, http, parseEther, parseGwei, type Address, type Hex } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { PaymentEscrowAbi } from '../src/generated/contracts';
import { formatAmount } from '../src/format';
import { VOUCHER_TYPES, voucherDomain } from '../src/vouchers';
import { ARTIFACTS, FRONTEND, WALLET_KEY, chromiumMissing, startStack, type Stack } from './harness';
import { TestWallet } from './wallet';
// @ts-expect-error — plain ESM module without types
import { serveUi } from '../scripts/serve.mjs';

// anvil's dev accounts #2 and #3: operators the chain driver registered on version 1 (spans [0,4) and [0,6)).
const OP2_KEY = '0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a' as const;
const OP3 = getAddress('0x90f79bf6eb2c4f870365e785982e1f101e93b906');
const VOUCHER_DOMAIN = (escrow: Address) => voucherDomain(31337, escrow);

const missing = chromiumMissing();
if (missing) console.warn(`SKIPPING browser tests: ${missing}`);

describe.skipIf(!!missing)('Payments page in Chromium against anvil', () => {
  let stack: Stack;
  let page: Page;
  let wallet: TestWallet;
  let me: Address;
  let escrow: Address;
  const op2 = privateKeyToAccount(OP2_KEY);
  const chain = { id: 31337, name: 'anvil', nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 }, rpcUrls: { default: { http: [''] } } };
  const pub = () => createPublicClient({ transport: http(stack.rpc) });
  const esc = <T>(functionName: string, args: readonly unknown[] = []) =>
    pub().readContract({ address: escrow, abi: PaymentEscrowAbi, functionName, args } as never) as Promise<T>;
  const shot = async (name: string) => {
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
  };
  const settle = async (statusId: string) => {
    const sel = `[id="${statusId}"]`;
    await page.waitForSelector(`${sel}[data-phase="confirmed"], ${sel}[data-phase="failed"]`, { timeout: 30_000 });
    return page.$eval(sel, (el) => ({ phase: (el as HTMLElement).dataset.phase, text: el.textContent ?? '' }));
  };
  const textIs = (selector: string, prefix: string) =>
    page.waitForFunction(([s, p]) => document.querySelector(s)?.textContent?.startsWith(p), [selector, prefix], { timeout: 15_000 });

  beforeAll(async () => {
    stack = await startStack();
    const dep = JSON.parse(await readFile(stack.deploymentFile, 'utf8'));
    escrow = getAddress(dep.contracts.PaymentEscrow);
    wallet = new TestWallet({ privateKey: WALLET_KEY, rpc: stack.rpc, chainId: 31337 });
    me = wallet.account.address;
    page = await (await stack.browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
    page.on('pageerror', (e) => console.error('page error:', e.message));
    await wallet.install(page);
    await page.goto(`${stack.url}#/payments`);
  });

  afterEach(async (ctx) => {
    if (ctx.task.result?.state !== 'fail' || !page) return;
    await page.screenshot({ path: join(ARTIFACTS, `FAILED-payments-${ctx.task.name.replace(/[^a-z0-9]+/gi, '-').slice(0, 50)}.png`), fullPage: true }).catch(() => {});
  });

  afterAll(async () => {
    await stack?.stop();
  });

  test('a server\'s declared price and credit limit show next to its span; fee and audit pool show', async () => {
    const op = createWalletClient({ account: op2, chain, transport: http(stack.rpc) });
    const hash = await op.writeContract({ address: escrow, abi: PaymentEscrowAbi, functionName: 'setPrice', args: [parseGwei('1'), parseEther('0.01')] });
    await pub().waitForTransactionReceipt({ hash });
    const row = `#payment-servers tr[data-operator="${op2.address}"]`;
    await page.waitForFunction((s) => document.querySelector(`${s} .price`)?.textContent === '1 gwei', row, { timeout: 15_000 });
    expect(await page.textContent(row)).toContain('blocks 0–3');
    expect(await page.textContent(`${row} .per-token`)).toBe('4 gwei'); // 4 blocks x 1 gwei
    expect(await page.textContent(`${row} .credit`)).toBe('0.01 ETH');
    expect(await page.textContent(`#payment-servers tr[data-operator="${OP3}"] .price`)).toBe('free');
    const feeBps = await esc<number>('feeBps');
    expect(await page.textContent('#stat-fee')).toContain(`${Number((feeBps / 100).toFixed(2))} %`);
    expect(await page.textContent('#stat-audit-pool')).toContain('0 ETH');
    await page.waitForSelector('#payments-not-connected');
  });

  test('deposit (a rejected and a too-large one first), then allocate to two servers and see the lanes', async () => {
    await page.click('#connect');
    await page.waitForSelector('#stat-deposit');
    await textIs('#stat-deposit', '0 ETH');

    await page.fill('#deposit-amount', '1000000');
    await page.click('#deposit-btn');
    expect(await settle('deposit-status')).toMatchObject({ phase: 'failed' });
    expect(await page.textContent('#deposit-status')).toMatch(/Your wallet holds .* less than the 1,000,000 ETH/);
    expect(wallet.calls).not.toContain('eth_sendTransaction');

    wallet.rejectNext = true;
    await page.fill('#deposit-amount', '1');
    await page.click('#deposit-btn');
    expect((await settle('deposit-status')).text).toContain('Rejected — You rejected the request in your wallet. Nothing was sent.');
    expect(await esc<bigint>('balanceOf', [me])).toBe(0n);

    await page.click('#deposit-btn');
    expect((await settle('deposit-status')).phase).toBe('confirmed');
    expect(await esc<bigint>('balanceOf', [me])).toBe(parseEther('1'));
    await textIs('#stat-deposit', '1 ETH');

    await page.selectOption('#allocate-server', op2.address);
    await page.fill('#allocate-amount', '0.4');
    await page.click('#allocate-btn');
    expect((await settle('allocate-status')).phase).toBe('confirmed');
    const lane2 = `#my-lanes tr[data-server="${op2.address}"]`;
    await page.waitForSelector(lane2);
    expect(await page.textContent(`${lane2} .lane-amount`)).toBe('0.4 ETH');
    expect(await page.textContent(`${lane2} .lane-state`)).toMatch(/^open/);
    await textIs('#stat-deposit', '0.6 ETH');

    // More than the deposit: the shortfall (0.2) is sent from the wallet in the same transaction.
    await page.selectOption('#allocate-server', OP3);
    await page.fill('#allocate-amount', '0.8');
    await page.click('#allocate-btn');
    expect((await settle('allocate-status')).phase).toBe('confirmed');
    await page.waitForSelector(`#my-lanes tr[data-server="${OP3}"]`);
    expect(await page.textContent(`#my-lanes tr[data-server="${OP3}"] .lane-amount`)).toBe('0.8 ETH');
    await textIs('#stat-deposit', '0 ETH');
    await textIs('#stat-in-lanes', '1.2 ETH');
    const lane = await esc<{ amount: bigint }>('laneOf', [me, OP3]);
    expect(lane.amount).toBe(parseEther('0.8'));

    // Withdrawing more than the (now empty) unallocated deposit is refused before the wallet.
    const sent = wallet.calls.filter((m) => m === 'eth_sendTransaction').length;
    await page.fill('#withdraw-deposit-amount', '0.1');
    await page.click('#withdraw-deposit-btn');
    expect((await settle('withdraw-deposit-status')).text).toMatch(/unallocated deposit is 0 ETH/);
    expect(wallet.calls.filter((m) => m === 'eth_sendTransaction').length).toBe(sent);
    await shot('payments-lanes');
  });

  test('a server redeems a voucher the wallet signed: the lane, its earnings and the audit pool follow', async () => {
    const cumulative = parseEther('0.1');
    const receipts = `0x${'ab'.repeat(32)}` as Hex;
    const voucher = { client: me, server: op2.address, cumulative, receipts };
    const signature = await wallet.account.signTypedData({
      domain: { name: 'PollenPaymentEscrow', version: '1', chainId: 31337, verifyingContract: escrow },
      types: { Voucher: [{ name: 'client', type: 'address' }, { name: 'server', type: 'address' }, { name: 'cumulative', type: 'uint256' }, { name: 'receipts', type: 'bytes32' }] },
      primaryType: 'Voucher', message: voucher,
    });
    const op = createWalletClient({ account: op2, chain, transport: http(stack.rpc) });
    const hash = await op.writeContract({ address: escrow, abi: PaymentEscrowAbi, functionName: 'redeem', args: [[voucher], [signature], 1000] });
    expect((await pub().waitForTransactionReceipt({ hash })).status).toBe('success');
    const feeBps = BigInt(await esc<number>('feeBps'));
    const fee = cumulative * feeBps / 10_000n;
    const lane2 = `#my-lanes tr[data-server="${op2.address}"]`;
    await page.waitForFunction((s) => document.querySelector(`${s} .lane-redeemed`)?.textContent === '0.1 ETH', lane2, { timeout: 15_000 });
    expect(await page.textContent(`${lane2} .lane-amount`)).toBe('0.3 ETH');
    await page.waitForFunction(([s, t]) => document.querySelector(`#payment-servers tr[data-operator="${s}"] .earned`)?.textContent === t,
      [op2.address, formatAmount(cumulative - fee, 'ETH')] as const, { timeout: 15_000 });
    await textIs('#stat-audit-pool', formatAmount(fee, 'ETH'));
    await textIs('#stat-redeemed', '0.1 ETH');
    expect(await esc<bigint>('earned', [op2.address])).toBe(cumulative - fee);
  });

  test('the operator loads its voucher book on the page: a forged voucher is flagged, the rest is redeemed in one batch', async () => {
    const cumulative = parseEther('0.25'); // 0.1 of it was redeemed above: 0.15 is owed, the lane holds 0.3
    const voucher = { client: me, server: op2.address, cumulative, receipts: `0x${'cd'.repeat(32)}` as Hex };
    const forged = { ...voucher, client: OP3 }; // "signed" by the wallet for someone else's lane
    const sign = (message: typeof voucher) => wallet.account.signTypedData({ domain: VOUCHER_DOMAIN(escrow), types: VOUCHER_TYPES, primaryType: 'Voucher', message });
    const entry = async (v: typeof voucher) => ({ ...v, cumulative: v.cumulative.toString(), signature: await sign(v) });
    const book = { server: op2.address, chainId: 31337, escrow, vouchers: { [me]: await entry(voucher), [OP3]: await entry(forged) } };
    const bookFile = join(stack.workDir, 'vouchers.json');
    await writeFile(bookFile, JSON.stringify(book));

    const opWallet = new TestWallet({ privateKey: OP2_KEY, rpc: stack.rpc, chainId: 31337 });
    const opPage = await page.context().browser()!.newPage({ viewport: { width: 1280, height: 900 } });
    try {
      await opWallet.install(opPage);
      await opPage.goto(`${stack.url}#/payments`);
      await opPage.click('#connect');
      await opPage.waitForSelector('#redeem-card:not([hidden])', { timeout: 15_000 });
      // Pasted JSON for another server is refused with both addresses named.
      await opPage.fill('#voucher-paste', JSON.stringify({ ...book, server: me, vouchers: {} }));
      await opPage.click('#voucher-load-btn');
      await opPage.waitForFunction((t) => document.querySelector('#voucher-book-status')?.textContent?.includes(t), `This book is for ${me}, your wallet is ${op2.address}`);

      await opPage.setInputFiles('#voucher-file', bookFile);
      await opPage.waitForSelector(`#voucher-table tr[data-client="${OP3}"]`, { timeout: 15_000 });
      expect(await opPage.textContent(`#voucher-table tr[data-client="${OP3}"] .v-note`)).toMatch(/^bad signature: signed by 0x/);
      const mine = `#voucher-table tr[data-client="${me}"]`;
      expect(await opPage.textContent(`${mine} .v-cumulative`)).toBe('0.25 ETH');
      expect(await opPage.textContent(`${mine} .v-redeemed`)).toBe('0.1 ETH');
      expect(await opPage.textContent(`${mine} .v-redeemable`)).toBe('0.15 ETH');
      const feeBps = BigInt(await esc<number>('feeBps'));
      const gross = parseEther('0.15');
      const fee = gross * feeBps / 10_000n;
      expect(await opPage.textContent('#redeem-net')).toBe(formatAmount(gross - fee, 'ETH'));

      const earnedBefore = await esc<bigint>('earned', [op2.address]);
      await opPage.click('#redeem-btn');
      await opPage.waitForSelector('#redeem-status[data-phase="confirmed"], #redeem-status[data-phase="failed"]', { timeout: 30_000 });
      expect(await opPage.getAttribute('#redeem-status', 'data-phase')).toBe('confirmed');
      await opPage.waitForSelector('#redeem-gross', { timeout: 15_000 });
      expect(await opPage.textContent('#redeem-gross')).toContain('0.15 ETH');
      expect(await opPage.textContent('#redeem-fee')).toContain(formatAmount(fee, 'ETH'));
      expect(await esc<bigint>('earned', [op2.address])).toBe(earnedBefore + gross - fee);
      await opPage.waitForFunction((t) => document.querySelector('#stat-my-earned')?.textContent?.startsWith(t), formatAmount(earnedBefore + gross - fee, 'ETH'), { timeout: 15_000 });
      await opPage.waitForFunction((s) => document.querySelector(`${s} .v-note`)?.textContent === 'already redeemed', mine, { timeout: 15_000 });

      // Nothing is left to redeem: refused before the wallet.
      const sent = opWallet.calls.filter((m) => m === 'eth_sendTransaction').length;
      await opPage.click('#redeem-btn');
      await opPage.waitForFunction(() => document.querySelector('#redeem-status')?.textContent?.includes('pay nothing more'), null, { timeout: 15_000 });
      expect(opWallet.calls.filter((m) => m === 'eth_sendTransaction').length).toBe(sent);
      await opPage.evaluate(() => window.scrollTo(0, 0));
      await opPage.screenshot({ path: join(ARTIFACTS, 'payments-redeemed.png'), fullPage: true });
    } finally {
      await opPage.close();
    }
  });

  test('announce a reclaim, wait out the delay, and take the lane back', async () => {
    const lane3 = `#my-lanes tr[data-server="${OP3}"]`;
    await page.fill(`${lane3} input.reclaim-amount`, '2');
    await page.click(`${lane3} .announce-btn`);
    expect((await settle(`reclaim-status-${OP3}`)).text).toMatch(/lane holds 0.8 ETH/);

    await page.fill(`${lane3} input.reclaim-amount`, '0.5');
    await page.click(`${lane3} .announce-btn`);
    expect((await settle(`reclaim-status-${OP3}`)).phase).toBe('confirmed');
    await page.waitForSelector(`${lane3} .lane-state[data-state="announced"]`);
    expect(await page.textContent(`${lane3} .lane-state`)).toMatch(/reclaim of 0.5 ETH takeable in \d+m/);
    expect(await page.$(`${lane3} .reclaim-btn`)).toBeNull(); // not before the delay
    await shot('payments-reclaim-announced');

    const delay = Number(await esc<bigint>('reclaimDelay'));
    await pub().request({ method: 'evm_increaseTime' as never, params: [delay + 5] as never });
    await pub().request({ method: 'evm_mine' as never, params: [] as never });
    await page.waitForSelector(`${lane3} .lane-state[data-state="takeable"]`, { timeout: 15_000 });
    const before = await pub().getBalance({ address: me });
    await page.click(`${lane3} .reclaim-btn`);
    expect((await settle(`reclaim-status-${OP3}`)).phase).toBe('confirmed');
    await page.waitForFunction((s) => document.querySelector(`${s} .lane-amount`)?.textContent === '0.3 ETH', lane3, { timeout: 15_000 });
    expect(await page.textContent(`${lane3} .lane-state`)).toMatch(/^open/);
    const after = await pub().getBalance({ address: me });
    expect(after - before > parseEther('0.49')).toBe(true); // 0.5 back, less gas
    expect((await esc<{ amount: bigint }>('laneOf', [me, OP3])).amount).toBe(parseEther('0.3'));
    await shot('payments-reclaimed');
  });

  test('setting a price needs an active server; a deployment without the escrow says payments are not deployed', async () => {
    await page.fill('#price-input', '2 gwei');
    await page.click('#set-price-btn');
    expect((await settle('set-price-status')).text).toMatch(/Only an active registered server can declare a price/);

    const dep = JSON.parse(await readFile(stack.deploymentFile, 'utf8'));
    delete dep.contracts.PaymentEscrow;
    delete dep.contracts.AuditFeePayer;
    const oldFile = join(stack.workDir, 'deployment-without-escrow.json');
    await writeFile(oldFile, JSON.stringify(dep));
    const server = await serveUi({ dist: join(FRONTEND, 'dist'), deployment: oldFile });
    try {
      const bare = await stack.browser.newPage();
      await bare.goto(`${server.url}#/payments`);
      await bare.waitForSelector('#payments-missing');
      expect(await bare.textContent('#payments-missing')).toContain('Payments are not deployed here');
      await bare.goto(`${server.url}#/swarm`);
      await bare.waitForSelector('[data-version="1"] svg.coverage'); // the rest still works
      await bare.close();
    } finally {
      await server.close();
    }
  });
});
