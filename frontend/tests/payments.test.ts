import { describe, expect, test } from 'vitest';
import { encodeErrorResult, getAddress, type Address } from 'viem';
import { PaymentEscrowAbi } from '../src/contracts';
import { parseDeployment } from '../src/deployment';
import { explainRevert, PlainError } from '../src/errors';
import {
  checkDeposit, checkReclaim, checkSpendEarned, checkTerms, checkWithdrawDeposit, formatBps, formatPrice, laneState, laneStateWords,
  newLaneIndex, parseWei, paymentContracts, planAllocation, pricePerToken, readPayments, UINT128_MAX, type Lane, type PayReader,
} from '../src/payments';

const ETH = 10n ** 18n;
const SERVER_A = getAddress('0x3c44cdddb6a900fa2b585dd299e03d12fa4293bc');
const SERVER_B = getAddress('0x90f79bf6eb2c4f870365e785982e1f101e93b906');
const ELSEWHERE = getAddress('0x15d34aaf54267db7d7c367839aaf71a00a2c6a65');
const ME = getAddress('0x70997970c51812dc3a010c7d01b50e0d17dc79c8');

const base = {
  network: 'anvil', chainId: 31337, rpc: 'http://127.0.0.1:8546', deployedAtBlock: 3,
  contracts: {
    StakeVault: '0x5fbdb2315678afecb367f032d93f642f64180aa3', ServerRegistry: '0x9fe46736679d2d9a65f0992f2272de9f3c7fa6e0',
    DisputeCourt: '0xcf7ed3acca5a467e9e704c703e8d87f634fb0fc9', ModelVersionRegistry: '0xe7f1725e7734ce288f8367e1bb143e90bb3f0512',
  } as Record<string, string>,
};

describe('deployment: optional payment contracts', () => {
  test('an older deployment file without them still loads, and says payments are not deployed', () => {
    const d = parseDeployment(base);
    expect(d.optional).toEqual({});
    expect(paymentContracts(d)).toBeNull();
  });
  test('a deployment naming them gives checksummed addresses; the fee payer alone is optional', () => {
    const d = parseDeployment({ ...base, contracts: { ...base.contracts, PaymentEscrow: SERVER_A.toLowerCase(), AuditFeePayer: SERVER_B.toLowerCase() } });
    expect(paymentContracts(d)).toEqual({ escrow: SERVER_A, feePayer: SERVER_B });
    const noPayer = parseDeployment({ ...base, contracts: { ...base.contracts, PaymentEscrow: SERVER_A } });
    expect(paymentContracts(noPayer)).toEqual({ escrow: SERVER_A, feePayer: null });
  });
  test('a malformed optional address is named', () => {
    expect(() => parseDeployment({ ...base, contracts: { ...base.contracts, PaymentEscrow: '0x12' } })).toThrow(/PaymentEscrow/);
  });
});

describe('lane state', () => {
  const lane = (o: Partial<Lane>): Lane => ({ amount: 0n, redeemed: 0n, reclaimAmount: 0n, reclaimAt: 0, ...o });
  test('empty and open lanes', () => {
    expect(laneState(lane({}), 1000)).toEqual({ kind: 'empty' });
    expect(laneState(lane({ redeemed: ETH }), 1000)).toEqual({ kind: 'empty' });
    expect(laneState(lane({ amount: ETH }), 1000)).toEqual({ kind: 'open' });
  });
  test('a reclaim is takeable exactly from reclaimAt on (block.timestamp >= reclaimAt), not a second before', () => {
    const l = lane({ amount: 2n * ETH, reclaimAmount: ETH, reclaimAt: 1300 });
    expect(laneState(l, 1000)).toEqual({ kind: 'announced', takeAt: 1300, secondsLeft: 300, amount: ETH });
    expect(laneState(l, 1299)).toMatchObject({ kind: 'announced', secondsLeft: 1 });
    expect(laneState(l, 1300)).toEqual({ kind: 'takeable', amount: ETH });
    expect(laneState(l, 5000)).toEqual({ kind: 'takeable', amount: ETH });
  });
  test('the taken amount is what is left in the lane when the server redeemed part of it meanwhile', () => {
    const l = lane({ amount: ETH / 4n, redeemed: 3n * ETH / 4n, reclaimAmount: ETH, reclaimAt: 100 });
    expect(laneState(l, 50)).toMatchObject({ kind: 'announced', amount: ETH / 4n });
    expect(laneState(l, 100)).toEqual({ kind: 'takeable', amount: ETH / 4n });
    const drained = lane({ amount: 0n, redeemed: ETH, reclaimAmount: ETH, reclaimAt: 100 });
    expect(laneState(drained, 200)).toEqual({ kind: 'takeable', amount: 0n });
    expect(laneStateWords(laneState(drained, 200), 'ETH')).toMatch(/empty.*only clears/);
  });
  test('words say how long is left and that the server still redeems meanwhile', () => {
    const l = lane({ amount: ETH, reclaimAmount: ETH, reclaimAt: 1000 + 3725 });
    expect(laneStateWords(laneState(l, 1000), 'xDAI')).toBe('reclaim of 1 xDAI takeable in 1h 2m (the server can still redeem until then)');
    expect(laneStateWords(laneState(l, 1000 + 3725), 'xDAI')).toBe('reclaim of 1 xDAI takeable now');
    expect(laneStateWords({ kind: 'open' }, 'ETH')).toMatch(/open/);
  });
});

describe('amounts typed by people', () => {
  test('a deposit cannot exceed the wallet', () => {
    expect(checkDeposit('1.5', 2n * ETH, 'ETH')).toBe(15n * ETH / 10n);
    expect(() => checkDeposit('3', 2n * ETH, 'ETH')).toThrow(/wallet holds 2 ETH, less than the 3 ETH/);
    expect(() => checkDeposit('0', 2n * ETH, 'ETH')).toThrow(/more than zero/);
    expect(() => checkDeposit('one', 2n * ETH, 'ETH')).toThrow(/not an amount/);
    expect(() => checkDeposit('3', ETH, 'ETH')).toThrow(PlainError);
    expect(() => checkDeposit('3', ETH, 'ETH')).toThrow(expect.objectContaining({ code: 'InsufficientBalance' }));
  });
  test('withdrawing the unallocated deposit is bounded by it', () => {
    expect(checkWithdrawDeposit('1', ETH, 'ETH')).toBe(ETH);
    expect(() => checkWithdrawDeposit('1.000000000000000001', ETH, 'ETH')).toThrow(/unallocated deposit is 1 ETH/);
  });
  test('an allocation takes the deposit first and tops up the rest from the wallet', () => {
    expect(planAllocation(SERVER_A.toLowerCase(), '0.5', ETH, 0n, 'ETH')).toEqual({ server: SERVER_A, amount: ETH / 2n, fromDeposit: ETH / 2n, value: 0n });
    expect(planAllocation(SERVER_A, '1.5', ETH, ETH, 'ETH')).toEqual({ server: SERVER_A, amount: 3n * ETH / 2n, fromDeposit: ETH, value: ETH / 2n });
    expect(planAllocation(SERVER_A, '2', 0n, 5n * ETH, 'ETH')).toMatchObject({ fromDeposit: 0n, value: 2n * ETH });
    expect(() => planAllocation(SERVER_A, '3', ETH, ETH, 'ETH')).toThrow(/needs 2 ETH more.*wallet holds only 1 ETH/);
  });
  test('an allocation needs a real, active server', () => {
    const active = new Set([SERVER_A.toLowerCase()]);
    expect(planAllocation(SERVER_A, '1', ETH, 0n, 'ETH', active).server).toBe(SERVER_A);
    expect(() => planAllocation(SERVER_B, '1', ETH, 0n, 'ETH', active)).toThrow(/not an active server/);
    expect(() => planAllocation('', '1', ETH, 0n, 'ETH')).toThrow(/not a server address/);
    expect(() => planAllocation('0x1234', '1', ETH, 0n, 'ETH')).toThrow(/not a server address/);
  });
  test('a reclaim is at most the lane', () => {
    const lane = { amount: ETH, redeemed: 0n, reclaimAmount: 0n, reclaimAt: 0 };
    expect(checkReclaim('1', lane, 'ETH')).toBe(ETH);
    expect(() => checkReclaim('2', lane, 'ETH')).toThrow(/lane holds 1 ETH/);
    expect(() => checkReclaim('1', { ...lane, amount: 0n }, 'ETH')).toThrow(/holds nothing/);
  });
  test('spending earnings is bounded by them', () => {
    expect(checkSpendEarned('0.25', ETH, 'ETH')).toBe(ETH / 4n);
    expect(() => checkSpendEarned('2', ETH, 'ETH')).toThrow(/earned 1 ETH/);
  });
});

describe('prices', () => {
  test('parseWei reads units, defaults and bounds', () => {
    expect(parseWei('150', 'wei', 'ETH')).toBe(150n);
    expect(parseWei('2 gwei', 'wei', 'ETH')).toBe(2_000_000_000n);
    expect(parseWei('1.5GWEI', 'wei', 'ETH')).toBe(1_500_000_000n);
    expect(parseWei('0.01 xdai', 'wei', 'xDAI')).toBe(ETH / 100n);
    expect(parseWei('0.01', 'eth', 'xDAI')).toBe(ETH / 100n);
    expect(parseWei('0', 'wei', 'ETH')).toBe(0n);
    expect(() => parseWei('1.5', 'wei', 'ETH', 'The price')).toThrow(/The price in wei must be a whole number/);
    expect(() => parseWei('1.0000000001 gwei', 'wei', 'ETH')).toThrow(/more decimals than gwei/);
    expect(() => parseWei('3 dogecoin', 'wei', 'ETH')).toThrow(/not a unit/);
    expect(() => parseWei('-1', 'wei', 'ETH')).toThrow(/not an amount/);
    expect(parseWei(UINT128_MAX.toString(), 'wei', 'ETH')).toBe(UINT128_MAX);
    expect(() => parseWei((UINT128_MAX + 1n).toString(), 'wei', 'ETH')).toThrow(/too large/);
  });
  test('checkTerms: price in wei, credit limit in the chain currency, both may be zero', () => {
    expect(checkTerms('1 gwei', '0.01', 'ETH')).toEqual({ price: 10n ** 9n, creditLimit: ETH / 100n });
    expect(checkTerms('0', '0', 'ETH')).toEqual({ price: 0n, creditLimit: 0n });
    expect(() => checkTerms('', '0', 'ETH')).toThrow(/not an amount/);
  });
  test('formatPrice picks a readable unit and marks rounding', () => {
    expect(formatPrice(0n, 'ETH')).toBe('free');
    expect(formatPrice(150n, 'ETH')).toBe('150 wei');
    expect(formatPrice(2_000_000_000n, 'ETH')).toBe('2 gwei');
    expect(formatPrice(1_500_000_000n, 'ETH')).toBe('1.5 gwei');
    expect(formatPrice(1_234_567_890n, 'ETH')).toBe('≈1.234 gwei');
    expect(formatPrice(5_000_000n, 'ETH')).toBe('0.005 gwei');
    expect(formatPrice(2n * 10n ** 15n, 'xDAI')).toBe('0.002 xDAI');
    expect(pricePerToken(10n ** 9n, 6)).toBe(6n * 10n ** 9n);
    expect(formatBps(250)).toBe('2.5 %');
    expect(formatBps(0)).toBe('0 %');
    expect(formatBps(1000)).toBe('10 %');
  });
});

describe('escrow reverts in plain words', () => {
  const ctx = { symbol: 'ETH' };
  test('custom errors decode from the generated ABI and read as sentences', () => {
    const data = encodeErrorResult({ abi: PaymentEscrowAbi, errorName: 'PaymentEscrow_InsufficientBalance', args: [ETH, 2n * ETH] });
    expect(data.startsWith('0x')).toBe(true);
    expect(explainRevert('PaymentEscrow_InsufficientBalance', [ETH, 2n * ETH], ctx).message).toMatch(/deposit is 1 ETH, less than the 2 ETH/);
    expect(explainRevert('PaymentEscrow_ReclaimLocked', [1_800_000_000n, 1_799_999_000n], ctx).message).toMatch(/2027-01-15 .* UTC on/);
    expect(explainRevert('PaymentEscrow_NotActiveServer', [SERVER_A], ctx).message).toMatch(/not an active server/);
  });
});

describe('readPayments', () => {
  const escrow = getAddress('0x0000000000000000000000000000000000000e5c');
  const payer = getAddress('0x0000000000000000000000000000000000000a0d');
  const lanes: Record<string, Lane> = {
    [SERVER_A]: { amount: 2n * ETH, redeemed: ETH, reclaimAmount: 0n, reclaimAt: 0 },
    [ELSEWHERE]: { amount: ETH, redeemed: 0n, reclaimAmount: ETH, reclaimAt: 99 },
  };
  const calls: Array<{ fn: string; block?: bigint }> = [];
  const logRanges: Array<[bigint, bigint | undefined]> = [];
  const reader: PayReader = {
    async readContract({ address, functionName, args, blockNumber }) {
      calls.push({ fn: functionName, block: blockNumber });
      if (address === payer) return 10n ** 15n;
      switch (functionName) {
        case 'feeBps': return 200;
        case 'reclaimDelay': return 300n;
        case 'auditPool': return 7n;
        case 'totalDeposits': return 5n * ETH;
        case 'totalEarned': return ETH;
        case 'termsOf': return { price: args![0] === SERVER_A ? 10n ** 9n : 0n, creditLimit: 0n };
        case 'earned': return args![0] === SERVER_A ? ETH : 0n;
        case 'balanceOf': return 3n * ETH;
        case 'laneOf': {
          const l = lanes[args![1] as string] ?? { amount: 0n, redeemed: 0n, reclaimAmount: 0n, reclaimAt: 0 };
          return { ...l, reclaimAt: BigInt(l.reclaimAt) };
        }
      }
      throw new Error(`unexpected ${functionName}`);
    },
    async getBalance() { return 9n * ETH; },
    async getLogs({ args, fromBlock, toBlock }) {
      logRanges.push([fromBlock, toBlock]);
      expect(args).toEqual({ client: ME });
      return fromBlock === 0n ? [{ args: { client: ME, server: ELSEWHERE.toLowerCase() } }] : [];
    },
  };

  test('reads globals, each server, and the wallet lanes at one block; finds lanes of unregistered servers by their events', async () => {
    const book = await readPayments(reader, { escrow, feePayer: payer }, [SERVER_A, SERVER_B], ME, 0n, 12_000n);
    expect(book.globals).toEqual({ feeBps: 200, reclaimDelay: 300, auditPool: 7n, totalDeposits: 5n * ETH, totalEarned: ETH, feePerAudit: 10n ** 15n });
    expect(book.servers.get(SERVER_A)).toEqual({ terms: { price: 10n ** 9n, creditLimit: 0n }, earned: ETH });
    expect(book.servers.get(SERVER_B)?.earned).toBe(0n);
    expect(book.wallet?.deposit).toBe(3n * ETH);
    expect(book.wallet?.walletBalance).toBe(9n * ETH);
    // SERVER_B's lane is blank and never allocated to: not listed.
    expect([...book.wallet!.lanes.keys()].sort()).toEqual([SERVER_A, ELSEWHERE].sort());
    expect(book.wallet!.lanes.get(ELSEWHERE)).toEqual({ amount: ETH, redeemed: 0n, reclaimAmount: ETH, reclaimAt: 99 });
    expect(calls.every((c) => c.block === 12_000n)).toBe(true);
    // logs are fetched in bounded ranges that cover [0, 12000] exactly
    expect(logRanges).toEqual([[0n, 4999n], [5000n, 9999n], [10000n, 12000n]]);
  });

  test('with a lane index, later reads ask only for the new blocks, and a new account starts over', async () => {
    const index = newLaneIndex();
    logRanges.length = 0;
    const first = await readPayments(reader, { escrow, feePayer: payer }, [SERVER_A], ME, 0n, 6000n, index);
    expect(logRanges).toEqual([[0n, 4999n], [5000n, 6000n]]);
    expect(index).toMatchObject({ account: ME, next: 6001n });
    logRanges.length = 0;
    const second = await readPayments(reader, { escrow, feePayer: payer }, [SERVER_A], ME, 0n, 6003n, index);
    expect(logRanges).toEqual([[6001n, 6003n]]);
    // the lane found in block 0's events is still listed without rescanning
    expect([...second.wallet!.lanes.keys()].sort()).toEqual([...first.wallet!.lanes.keys()].sort());
    expect(second.wallet!.lanes.has(ELSEWHERE)).toBe(true);
    logRanges.length = 0;
    await readPayments(reader, { escrow, feePayer: payer }, [SERVER_A], ME, 0n, 6003n, index); // same head: nothing to scan
    expect(logRanges).toEqual([]);
    const other = getAddress('0x976ea74026e726554db657fa54763abd0c3a0aa9');
    const otherReader: PayReader = { ...reader, getLogs: async (a) => { logRanges.push([a.fromBlock, a.toBlock]); return []; } };
    const book = await readPayments(otherReader, { escrow, feePayer: payer }, [SERVER_A], other, 0n, 6003n, index);
    expect(logRanges).toEqual([[0n, 4999n], [5000n, 6003n]]);
    expect(book.wallet!.lanes.has(ELSEWHERE)).toBe(false);
  });

  test('without a wallet or an audit payer it reads only the public parts', async () => {
    const book = await readPayments(reader, { escrow, feePayer: null }, [SERVER_A], null as Address | null, 0n, 10n);
    expect(book.wallet).toBeNull();
    expect(book.globals.feePerAudit).toBeNull();
  });
});
