// The dApp in a real headless Chromium against a real anvil: one user's journey through the UI
// while a separate Python process (tests/frontend/chain_driver.py) plays everyone else.
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import type { Page } from 'playwright-core';
import { createPublicClient, createWalletClient, http, parseEther, type Address } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { DisputeCourtAbi } from '../src/generated/contracts';
import { ARTIFACTS, OWNER_KEY, WALLET_KEY, chromiumMissing, driver, startStack, steppedDriver, type Stack } from './harness';
import { TestWallet } from './wallet';

const missing = chromiumMissing();
if (missing) console.warn(`SKIPPING browser tests: ${missing}`);

describe.skipIf(!!missing)('Pollen dApp in Chromium against anvil', () => {
  let stack: Stack;
  let page: Page;
  let wallet: TestWallet;
  let me: Address;
  const shot = async (name: string) => {
    await page.evaluate(() => window.scrollTo(0, 0)); // the sticky header stays on top of a full-page shot
    await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
  };
  const go = async (view: string) => {
    await page.evaluate((v) => { location.hash = `#/${v}`; }, view);
    await page.waitForSelector(`body[data-view="${view}"]`);
  };
  const read = async <T>(fn: (c: ReturnType<typeof createPublicClient>, d: Record<string, Address>) => Promise<T>) => {
    const dep = JSON.parse(await (await import('node:fs/promises')).readFile(stack.deploymentFile, 'utf8'));
    return fn(createPublicClient({ transport: http(stack.rpc) }), dep.contracts);
  };
  const vaultRead = (fn: 'stakeOf' | 'credits', a: Address) => read((c, d) => c.readContract({
    address: d.StakeVault, functionName: fn, args: [a],
    abi: [{ type: 'function', name: fn, stateMutability: 'view', inputs: [{ type: 'address' }], outputs: [{ type: 'uint256' }] }],
  }));
  const stakeOf = (a: Address) => vaultRead('stakeOf', a);
  const openingKeys = () => page.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith('pollen.openings.')));
  /** Wait until a form's inline status reaches a final phase; returns it with its text. */
  const settle = async (statusId: string) => {
    await page.waitForSelector(`#${statusId}[data-phase="confirmed"], #${statusId}[data-phase="failed"]`, { timeout: 30_000 });
    return page.$eval(`#${statusId}`, (el) => ({ phase: (el as HTMLElement).dataset.phase, text: el.textContent ?? '' }));
  };

  beforeAll(async () => {
    stack = await startStack();
    // The wallet starts on Gnosis, not on the deployment's anvil chain: the UI must notice.
    wallet = new TestWallet({ privateKey: WALLET_KEY, rpc: stack.rpc, chainId: 31337, startChainId: 100 });
    me = wallet.account.address;
    const context = await stack.browser.newContext({ viewport: { width: 1280, height: 900 } });
    page = await context.newPage();
    page.on('pageerror', (e) => console.error('page error:', e.message));
    await wallet.install(page);
    await page.goto(stack.url);
  });

  // A failing scenario leaves a picture of the page behind, to see what the user would have seen.
  afterEach(async (ctx) => {
    if (ctx.task.result?.state !== 'fail' || !page) return;
    const name = `FAILED-${ctx.task.name.replace(/[^a-z0-9]+/gi, '-').slice(0, 60)}`;
    await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true }).catch(() => {});
  });

  afterAll(async () => {
    await stack?.stop();
  });

  test('the swarm, models and empty disputes show before any wallet is connected', async () => {
    await page.waitForSelector('[data-version="1"] svg.coverage');
    // spans of operators 2..5 on version 1 (8 blocks): [0,4) [0,6) [2,8) [4,8)
    const counts = await page.$$eval('[data-version="1"] svg.coverage .block .count', (els) => els.map((e) => e.textContent));
    expect(counts).toEqual(['2', '2', '3', '3', '3', '3', '2', '2']);
    expect(await page.$$eval('[data-version="1"] table.servers tbody tr', (r) => r.length)).toBe(4);
    expect(await page.textContent('#stat-active')).toContain('4');
    await shot('swarm');

    await go('models');
    await page.waitForSelector('[data-model="1"]');
    const versions = await page.$$eval('[data-model="1"] tr[data-version]', (r) => r.map((e) => e.textContent));
    expect(versions).toHaveLength(2);
    expect(versions.join()).toContain('#1'); // version 2's parent
    expect(await page.textContent('[data-model="2"]')).toContain('deprecated');
    expect(await page.textContent('[data-model="1"]')).toContain('chat-lora-r8');
    const href = await page.getAttribute('[data-model="1"] a.cid', 'href');
    expect(href).toMatch(/^https?:\/\/.+\/ipfs\/bafy/);
    await shot('models');

    await go('disputes');
    await page.waitForSelector('.empty');
    expect(await page.textContent('.view.disputes')).toContain('No disputes yet');
    await shot('disputes-empty');

    // A browser without any wallet can still look, and is told what to install.
    const bare = await stack.browser.newPage();
    await bare.goto(`${stack.url}#/account`);
    await bare.waitForSelector('.banner.info');
    expect(await bare.textContent('.banner.info')).toContain('No wallet found');
    expect(await bare.textContent('.view.account')).toContain('No wallet in this browser');
    // The header names the chain and its currency from viem; ?network= loads deployments/<name>.json.
    expect(await bare.textContent('#network-name')).toBe('Anvil · ETH');
    await bare.waitForSelector('#network-picker option[value="demo"]', { state: 'attached' });
    await bare.goto(`${stack.url}?network=demo#/swarm`);
    await bare.waitForSelector('[data-version="1"] svg.coverage');
    expect(await bare.$eval('#network-picker', (el) => (el as HTMLSelectElement).value)).toBe('demo');
    await bare.goto(`${stack.url}?network=nowhere`);
    expect(await bare.textContent('.fatal')).toContain('No deployment for network "nowhere" (./deployments/nowhere.json, HTTP 404). This server offers: demo.');
    await bare.close();
  });

  test('connect, then switch the wallet from the wrong network to anvil', async () => {
    await go('account');
    await page.waitForSelector('#not-connected');
    await shot('account-not-connected');
    await page.click('#connect');
    await page.waitForSelector('#account-chip');
    expect(await page.getAttribute('#account-chip', 'title')).toBe(me);
    await page.waitForSelector('#wrong-network');
    expect(await page.textContent('#wrong-network')).toMatch(/Gnosis.*Anvil/);
    await shot('account-wrong-network');

    // A network the wallet does not know yet is added first (EIP-3085), then switched to.
    await page.selectOption('select.chain-picker', '10200');
    await expect.poll(() => wallet.chainId).toBe(10200);
    expect(wallet.calls).toContain('wallet_addEthereumChain');
    await page.waitForFunction(() => document.querySelector('#wrong-network')?.textContent?.includes('Chiado'));

    await page.click('#switch-network');
    await page.waitForSelector('#wrong-network', { state: 'detached' });
    expect(wallet.chainId).toBe(31337);
    await page.waitForSelector('#stat-staked');
  });

  test('a reverted transaction shows its custom error name in plain words', async () => {
    const sent = wallet.calls.filter((m) => m === 'eth_sendTransaction').length;
    await page.selectOption('#srv-version', '1');
    await page.fill('#srv-endpoint', 'grpc://127.0.0.1:41000');
    await page.fill('#srv-first', '6');
    await page.fill('#srv-last', '8');
    await page.fill('#srv-throughput', '25');
    await page.click('#register-btn'); // no stake yet
    const r = await settle('server-status');
    expect(r.phase).toBe('failed');
    expect(r.text).toContain('ServerRegistry_InsufficientStake');
    expect(r.text).toMatch(/below the minimum of 1 ETH.*Stake more/);
    await page.waitForSelector('.toast.failed');
    await shot('error-revert');
    // It failed in simulation: nothing reached the wallet.
    expect(wallet.calls.filter((m) => m === 'eth_sendTransaction').length).toBe(sent);
  });

  test('a transaction the user rejects in the wallet says nothing was sent', async () => {
    wallet.rejectNext = true;
    await page.fill('#stake-amount', '3');
    await page.click('#stake-btn');
    const r = await settle('stake-status');
    expect(r.phase).toBe('failed');
    expect(r.text).toContain('Rejected — You rejected the request in your wallet. Nothing was sent.');
    expect(await stakeOf(me)).toBe(0n);
  });

  test('stake through the wallet and see the new stake', async () => {
    await page.fill('#stake-amount', '3');
    await page.click('#stake-btn');
    const r = await settle('stake-status');
    expect(r).toMatchObject({ phase: 'confirmed' });
    expect(wallet.calls).toContain('eth_sendTransaction');
    expect(await stakeOf(me)).toBe(parseEther('3'));
    await page.waitForFunction(() => document.querySelector('#stat-staked')?.textContent?.startsWith('3 ETH'));

    // Part of it goes into unbonding, with a countdown to when it can be withdrawn.
    await page.fill('#unstake-amount', '0.5');
    await page.click('#unstake-btn');
    expect((await settle('unstake-status')).phase).toBe('confirmed');
    await page.waitForFunction(() => document.querySelector('#stat-staked')?.textContent?.startsWith('2.5 ETH'));
    expect(await page.textContent('#stat-unbonding')).toMatch(/^0\.5 ETH in (2d|1d 23h)/);
    expect(await page.textContent('.view.account')).toMatch(/0\.5 ETH unbonding, withdrawable in/);
    expect(await stakeOf(me)).toBe(parseEther('2.5'));
  });

  test('register a server and see it appear in the coverage picture', async () => {
    await page.click('#register-btn');
    expect((await settle('server-status')).phase).toBe('confirmed');
    await page.waitForFunction(() => document.querySelector('#server-state')?.textContent?.includes('Active'));
    await shot('account');
    await go('swarm');
    await page.waitForSelector(`[data-version="1"] svg .span[data-operator="${me}"]`);
    const counts = await page.$$eval('[data-version="1"] svg.coverage .block .count', (els) => els.map((e) => e.textContent));
    expect(counts).toEqual(['2', '2', '3', '3', '3', '3', '3', '3']);
    const row = await page.textContent(`[data-version="1"] tr[data-operator="${me}"]`);
    expect(row).toContain('grpc://127.0.0.1:41000');
    expect(row).toContain('2.5 ETH');
    expect(row).toContain('you');
    await shot('swarm-registered');

    // Updating the span moves the server in the picture (a new registry term).
    await go('account');
    await page.fill('#srv-first', '5');
    await page.click('#register-btn'); // now labelled "Update server"
    expect((await settle('server-status')).phase).toBe('confirmed');
    await go('swarm');
    await page.waitForFunction(() => Array.from(document.querySelectorAll('[data-version="1"] svg.coverage .block .count')).map((e) => e.textContent).join('') === '22333433');
  });

  test('probe the registered servers live: none runs here, so each is down and no block is served live', async () => {
    await go('swarm');
    await page.click('#probe-1');
    await page.waitForSelector('#live-1 table.live-servers, #live-1 .live-error', { timeout: 90_000 });
    const live = await page.textContent('#live-1');
    expect(live).not.toMatch(/Live probe failed/);
    const rows = await page.$$eval('#live-1 tr[data-address]', (els) => els.map((e) => [e.getAttribute('data-address'), e.className, e.textContent]));
    expect(rows.length).toBeGreaterThanOrEqual(3);
    expect(rows.some(([address]) => address?.includes('127.0.0.1:41000'))).toBe(true); // the wallet's own server
    for (const [, cls, text] of rows) {
      expect(cls).toBe('down');
      expect(text).toMatch(/unreachable/);
    }
    expect(live).toMatch(/blocks 0–7 not served live/);
    expect(live).toMatch(/0 of \d+ up/);
    await shot('swarm-live');
  });

  test('open a dispute from a receipt file and watch its timeline advance as another process votes', async () => {
    const receiptFile = join(stack.workDir, 'receipt.json');
    await driver('receipt', stack.deploymentFile, '--server-index', '2', '--out', receiptFile);
    await go('account');
    await page.setInputFiles('#receipt-file', receiptFile);
    await page.waitForSelector('.receipt-preview dl');
    expect(await page.textContent('.receipt-preview')).toMatch(/blocks 0–3/);
    expect(await page.textContent('.receipt-preview')).toMatch(/inference step 3 · registry term 0/);
    expect(await page.inputValue('#faulty-block')).toBe('0'); // defaults to the span's first block
    await page.fill('#faulty-block', '9'); // outside the span: refused before any transaction
    await page.fill('#evidence-cid', 'bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy');
    await page.click('#open-dispute-btn');
    await page.waitForFunction(() => /Name the first faulty block/.test(document.querySelector('#dispute-status')?.textContent ?? ''));
    // The bond is scaled to what the dispute can slash: 10 % of 50 % of the accused's 2 ETH, at least 0.1 ETH.
    expect(await page.textContent('#receipt-bond')).toMatch(/^0\.1 ETH \(this dispute can slash 1 ETH of the accused's 2 ETH/);
    expect(await page.textContent('#bond-amount')).toBe("10 % of what the dispute can slash (50 % of the accused's stake), at least 0.1 ETH");
    await page.fill('#faulty-block', '2');
    await page.fill('#evidence-cid', 'bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy');
    // Opening is commit-reveal: the commitment goes through, then the user rejects the reveal.
    const sentBefore = wallet.calls.filter((m) => m === 'eth_sendTransaction').length;
    wallet.rejectAfter = 1;
    await page.click('#open-dispute-btn');
    const rejected = await settle('dispute-status');
    expect(rejected.phase).toBe('failed');
    expect(rejected.text).toContain('Step 2 of 2 — reveal and post the bond: Failed: Rejected');
    expect(wallet.calls.filter((m) => m === 'eth_sendTransaction').length).toBe(sentBefore + 2);
    // The salt stays in this browser until revealed: the opening waits under "Pending openings".
    expect(await openingKeys()).toHaveLength(1);
    await page.waitForSelector('#pending-openings .opening[data-state="ready"]');
    expect(await page.textContent('#pending-openings')).toMatch(/Against 0x3C44…93BC · blocks 0–3 · block 2 named faulty/);
    await shot('account-opening-pending');
    await page.click('#pending-openings [id^="reveal-opening-"]');
    await page.waitForSelector('#pending-openings .opening', { state: 'detached' });
    expect(await openingKeys()).toEqual([]);

    await go('disputes');
    await page.waitForSelector('#dispute-1 [data-kind="opened"]');
    expect(await page.getAttribute('#dispute-1', 'data-stage')).toBe('AwaitingDraw');
    expect(await page.textContent('#dispute-1 .named-block')).toContain('block 2 named faulty · inference step 3');
    expect(await page.textContent('#dispute-1 [data-kind="opened"]')).toContain('block 2 named faulty');
    const kinds = () => page.$$eval('#dispute-1 .timeline li', (els) => els.map((e) => (e as HTMLElement).dataset.kind));
    const votes = steppedDriver('vote', stack.deploymentFile, '--dispute', '1', '--faulty');
    try {
      expect(await votes.next()).toBe('PHASE drawn');
      await page.waitForSelector('#dispute-1[data-stage="Voting"] [data-kind="drawn"]');
      expect(await page.$$eval('#dispute-1 [data-kind="drawn"] .addr', (e) => e.length)).toBe(3);
      await shot('disputes-drawn');
      for (let i = 1; i <= 3; i++) {
        votes.proceed();
        expect(await votes.next()).toMatch(/^PHASE committed/);
        await expect.poll(async () => (await kinds()).filter((k) => k === 'committed').length, { timeout: 15_000 }).toBe(i);
      }
      await shot('disputes-voting');
      for (let i = 1; i <= 3; i++) {
        votes.proceed();
        expect(await votes.next()).toMatch(/^PHASE revealed/);
        await expect.poll(async () => (await kinds()).filter((k) => k === 'revealed').length, { timeout: 15_000 }).toBe(i);
      }
      votes.proceed();
      expect(await votes.next()).toMatch(/^PHASE resolved faulty/i);
      expect(await votes.done()).toBe(0);
    } finally {
      votes.kill();
    }
    await page.waitForSelector('#dispute-1[data-outcome="Faulty"] [data-kind="resolved"]');
    const resolved = await page.textContent('#dispute-1 [data-kind="resolved"]');
    expect(resolved).toMatch(/slashed 1 ETH/); // 50 % of the accused's 2 ETH
    expect(resolved).toMatch(/challenger credited 0\.3 ETH/); // bond 0.1 + 20 % of 1
    await shot('disputes-resolved');

    // The challenger's credit is withdrawable under My account.
    await go('account');
    await page.waitForFunction(() => document.querySelector('#stat-credits')?.textContent?.startsWith('0.3 ETH'));
    await page.click('#withdraw-btn');
    expect((await settle('withdraw-status')).phase).toBe('confirmed');
    await page.waitForFunction(() => document.querySelector('#stat-credits')?.textContent?.startsWith('0 ETH'));
  });

  test('as a drawn auditor, commit a vote (salt kept and offered as backup), then reveal it', async () => {
    // Operator 3 accuses operator 5; the eligible auditors are exactly us, 2 and 4 (K = 3: the
    // accused and the challenger are never drawn; everyone else is registered and unfrozen).
    const opened = await driver('open', stack.deploymentFile, '--challenger-index', '3', '--accused-index', '5');
    expect(opened).toContain(me);
    await go('account');
    await page.waitForSelector('#audit-2 form');
    expect(await page.textContent('#audit-2')).toContain('zero hash'); // the manual-vote default is explained
    await page.check('input[name="verdict-2"][value="faulty"]');
    await page.fill('#fingerprint-2', `0x${'5e'.repeat(32)}`);
    await page.click('#commit-2');
    expect((await settle('vote-status-2')).phase).toBe('confirmed');
    await page.waitForSelector('#backup-box-2 .salt');
    const saved = await page.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith('pollen.vote.')));
    expect(saved).toHaveLength(1);
    await shot('account-audit-committed');

    const others = steppedDriver('vote', stack.deploymentFile, '--dispute', '2', '--auditors', '2,4', '--faulty', '--no-resolve');
    try {
      expect(await others.next()).toMatch(/^PHASE committed 2/);
      others.proceed();
      expect(await others.next()).toMatch(/^PHASE committed 4/);
      await page.waitForSelector('#reveal-2');
      await page.click('#reveal-2');
      expect((await settle('vote-status-2')).phase).toBe('confirmed');
      for (const line of [/^PHASE revealed 2/, /^PHASE revealed 4/]) {
        others.proceed();
        expect(await others.next()).toMatch(line);
      }
      others.proceed();
      expect(await others.done()).toBe(0);
    } finally {
      others.kill();
    }
    // Everyone revealed: anyone may resolve, here from the Disputes page.
    await go('disputes');
    await page.click('#dispute-2 .next button:has-text("Resolve")');
    await page.waitForSelector('#dispute-2[data-outcome="Faulty"] [data-kind="resolved"]');
    const state = JSON.parse(await driver('state', stack.deploymentFile, '--dispute', '2'));
    expect(state.outcome).toBe('faulty');
    expect(state.votes[me]).toBe(4); // VoteState.RevealedFaulty
    expect(await page.textContent('#dispute-2 .timeline')).toContain('fingerprint 0x5e5e5e5e5e');
    await shot('disputes');
    await go('account');
    await page.waitForFunction(() => !document.querySelector('#stat-credits')?.textContent?.startsWith('0 ETH'));
    expect(await page.textContent('#audit-2')).toContain('You voted with the majority, as the final ruling');
    await shot('account-audit-revealed');
  });

  test('with an appeal period: open a dispute (commit, then reveal), rule it, appeal within the window', async () => {
    // Governance (dev key #0 owns the court on anvil) turns on a 10-minute appeal period; disputes
    // opened from now on run under it, earlier ones keep their snapshot.
    const dep = JSON.parse(await (await import('node:fs/promises')).readFile(stack.deploymentFile, 'utf8'));
    const client = createPublicClient({ transport: http(stack.rpc) });
    const court = { address: dep.contracts.DisputeCourt as Address, abi: DisputeCourtAbi };
    const current = await client.readContract({ ...court, functionName: 'params' });
    const owner = createWalletClient({ account: privateKeyToAccount(OWNER_KEY), transport: http(stack.rpc) });
    const hash = await owner.writeContract({ ...court, functionName: 'setParams', args: [{ ...current, appealPeriod: 600n }], chain: null });
    expect((await client.waitForTransactionReceipt({ hash })).status).toBe('success');

    // We accuse operator 4 from the UI: both transactions in one go this time.
    const receiptFile = join(stack.workDir, 'receipt-4.json');
    await driver('receipt', stack.deploymentFile, '--server-index', '4', '--out', receiptFile);
    await go('account');
    await page.setInputFiles('#receipt-file', receiptFile);
    await page.waitForFunction(() => /^0\.1 ETH/.test(document.querySelector('#receipt-bond')?.textContent ?? ''));
    await page.fill('#faulty-block', '5');
    await page.fill('#evidence-cid', 'bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy');
    await page.click('#open-dispute-btn');
    const done = await settle('dispute-status');
    expect(done).toMatchObject({ phase: 'confirmed' });
    expect(done.text).toContain('Step 2 of 2');
    // the saved opening is forgotten just after the reveal confirms (not in the same tick)
    await page.waitForFunction(() => !Object.keys(localStorage).some((k) => k.startsWith('pollen.openings.')));
    expect(await openingKeys()).toEqual([]);
    const creditsBefore = await vaultRead('credits', me);

    // Operators 2, 3 and 5 are drawn and vote faulty; nobody resolves.
    await driver('vote', stack.deploymentFile, '--dispute', '3', '--faulty', '--no-resolve');
    await go('disputes');
    await page.waitForSelector('#dispute-3[data-stage="Voting"] .next[data-next="resolve"]');
    expect(await page.textContent('#dispute-3 .next')).toContain('stays open to appeal');
    await page.click('#dispute-3 .next button:has-text("Resolve")');

    // Ruled faulty, open to appeal for twice the bond, with the window counting down.
    await page.waitForSelector('#dispute-3[data-stage="Appealable"] .appeal-btn');
    expect(await page.textContent('#dispute-3 .badge')).toBe('ruled faulty — appealable');
    expect(await page.textContent('#dispute-3 .appeal-window')).toMatch(/^Appeal window closes in (10m|9m \d+s)/);
    expect(await page.textContent('#dispute-3 .next')).toContain('a fresh panel of 7 auditors');
    expect(await page.textContent('#dispute-3 [data-kind="ruled"]')).toMatch(/Ruled: faulty.*appealable until/);
    expect(await page.textContent('#dispute-3 .appeal-btn')).toBe('Appeal (post 0.2 ETH)');
    expect(await page.$$eval('#dispute-3 .stepper li', (els) => els.map((e) => `${e.textContent}:${e.className}`)))
      .toEqual(['Opened:done', 'Auditors drawn:done', 'Voting:done', 'Appeal window:now', 'Resolved:']);
    await shot('disputes-appealable');

    // Anyone may appeal (here we do). The appeal panel must exclude the accused, the challenger,
    // the appellant and round 0's auditors: nobody is left, so the first ruling stands and the
    // appeal bond comes back.
    await page.click('#dispute-3 .appeal-btn');
    await page.waitForSelector('#dispute-3[data-stage="AwaitingDraw"][data-round="1"] [data-kind="appealed"]');
    expect(await page.textContent('#dispute-3 [data-kind="appealed"]')).toMatch(/Appealed.*appeal bond 0\.2 ETH/);
    expect(await page.textContent('#dispute-3 .stepper li.now')).toBe('Appeal panel drawn');
    await page.click('#dispute-3 .next button:has-text("Draw auditors")');
    await page.waitForSelector('#dispute-3[data-stage="Resolved"][data-outcome="Faulty"] .appeal-result[data-appeal="unheard"]');
    expect(await page.textContent('#dispute-3 .appeal-result')).toContain('the first ruling (faulty) stands and the appeal bond of 0.2 ETH was refunded');
    await shot('disputes-appeal-unheard');
    const state = JSON.parse(await driver('state', stack.deploymentFile, '--dispute', '3'));
    expect(state).toMatchObject({ outcome: 'faulty', first_ruling: 'faulty', round: 1, appellant: me });
    // bond 0.1 + 20 % of the 1 ETH slashed, and the 0.2 ETH appeal bond back
    expect(await vaultRead('credits', me) - creditsBefore).toBe(parseEther('0.5'));
    await go('account');
    expect(await page.textContent('#my-disputes-card')).toMatch(/Dispute #3 — you challenged 0x15d3…6A65 · faulty/);
  });

  test('when the chain node goes away the page says so', async () => {
    stack.stopNode();
    await page.waitForSelector('.banner.error', { timeout: 15_000 });
    expect(await page.textContent('.banner.error')).toContain(`Cannot read the chain at ${stack.rpc}`);
    expect(await page.textContent('.banner.error')).toContain('Is the node running?');
  });
});
