import { describe, expect, test } from 'vitest';
import { encodeAbiParameters, encodeEventTopics, getAddress, type Address, type Hex, type Log } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { PaymentEscrowAbi } from '../src/contracts';
import {
  batchFee, checkBookFor, checkPlan, parseVoucherBook, planRedeem, readVoucherRows, redeemArgs, redeemResult, rowProblem,
  VOUCHER_TYPES, voucherDomain, type VoucherReader, type VoucherRow,
} from '../src/vouchers';

const ETH = 10n ** 18n;
// anvil dev accounts #1 and #4 as clients, #2 as the server
const CLIENT_A = privateKeyToAccount('0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d');
const CLIENT_B = privateKeyToAccount('0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a');
const SERVER = getAddress('0x3c44cdddb6a900fa2b585dd299e03d12fa4293bc');
const OTHER = getAddress('0x90f79bf6eb2c4f870365e785982e1f101e93b906');
const ESCROW = getAddress('0xa513e6e4b8f2a923d98304ec87f64353c4d5c853');
const RECEIPTS = `0x${'ab'.repeat(32)}` as Hex;

async function signed(account: typeof CLIENT_A, cumulative: bigint, escrow: Address = ESCROW, client: Address = account.address) {
  const message = { client, server: SERVER, cumulative, receipts: RECEIPTS };
  const signature = await account.signTypedData({ domain: voucherDomain(31337, escrow), types: VOUCHER_TYPES, primaryType: 'Voucher', message });
  return { ...message, cumulative: cumulative.toString(), signature };
}

async function bookJson(over: Record<string, unknown> = {}) {
  return {
    server: SERVER.toLowerCase(), chainId: 31337, escrow: ESCROW.toLowerCase(),
    vouchers: { [CLIENT_A.address]: await signed(CLIENT_A, ETH / 10n), [CLIENT_B.address]: await signed(CLIENT_B, 3n * ETH) },
    ...over,
  };
}

/** An escrow stub: lanes by client, redeemable computed as the contract does. */
function escrow(lanes: Record<string, { amount: bigint; redeemed: bigint }>): VoucherReader {
  return {
    async readContract({ functionName, args }) {
      const lane = lanes[(args![0] as string)] ?? { amount: 0n, redeemed: 0n };
      if (functionName === 'laneOf') return { ...lane, reclaimAmount: 0n, reclaimAt: 0n };
      const owed = (args![2] as bigint) > lane.redeemed ? (args![2] as bigint) - lane.redeemed : 0n;
      return owed < lane.amount ? owed : lane.amount;
    },
  };
}

describe('voucher book: parsing', () => {
  test('a good book parses with checksummed addresses and wei amounts, and passes for its server', async () => {
    const book = parseVoucherBook(JSON.stringify(await bookJson()));
    expect(book).toMatchObject({ server: SERVER, chainId: 31337, escrow: ESCROW });
    expect(book.vouchers.map((v) => [v.client, v.cumulative])).toEqual([[CLIENT_A.address, ETH / 10n], [CLIENT_B.address, 3n * ETH]]);
    expect(() => checkBookFor(book, SERVER.toLowerCase() as Address, 31337, ESCROW)).not.toThrow();
  });
  test('not JSON, not a book, no chain id', async () => {
    expect(() => parseVoucherBook('{nope')).toThrow(/not JSON.*voucher book/);
    expect(() => parseVoucherBook('[]')).toThrow(/not a voucher book/);
    expect(() => parseVoucherBook('{"server": "0x00"}')).toThrow(/no "vouchers" object/);
    expect(() => parseVoucherBook(JSON.stringify(({ ...{ vouchers: {} }, server: SERVER, escrow: ESCROW })))).toThrow(/no valid "chainId"/);
    expect(() => parseVoucherBook(JSON.stringify(({ vouchers: {}, chainId: 1, server: '0x12', escrow: ESCROW })))).toThrow(/book's "server" is not an address/);
  });
  test('a malformed voucher is named by its number and what is wrong with it', async () => {
    const j = await bookJson();
    const second = (patch: Record<string, unknown>) => JSON.stringify({ ...j, vouchers: { ...j.vouchers, [CLIENT_B.address]: { ...j.vouchers[CLIENT_B.address], ...patch } } });
    expect(() => parseVoucherBook(second({ cumulative: '1.5' }))).toThrow(/^Voucher 2 .*cumulative amount is not a whole number/);
    expect(() => parseVoucherBook(second({ cumulative: '-1' }))).toThrow(/Voucher 2/);
    expect(() => parseVoucherBook(second({ receipts: '0xab' }))).toThrow(/Voucher 2 .*receipts hash must be 32 bytes/);
    expect(() => parseVoucherBook(second({ signature: 'zz' }))).toThrow(/Voucher 2 .*signature must be 65 bytes/);
    expect(() => parseVoucherBook(second({ client: 'nobody' }))).toThrow(/Voucher 2 .*client is not an address/);
    expect(() => parseVoucherBook(second({ client: CLIENT_A.address }))).toThrow(/Voucher 2 .*another key than its client/);
    expect(() => parseVoucherBook(second({ server: OTHER }))).toThrow(new RegExp(`Voucher 2 .*made out to ${OTHER}, not to the book's server`));
    expect(() => parseVoucherBook(JSON.stringify({ ...j, vouchers: { [CLIENT_A.address]: 7 } }))).toThrow(/Voucher 1 .*not an object/);
  });
  test('a book for another server, chain or escrow is refused with both sides named', async () => {
    const book = parseVoucherBook(JSON.stringify(await bookJson()));
    expect(() => checkBookFor(book, OTHER, 31337, ESCROW)).toThrow(`This book is for ${SERVER}, your wallet is ${OTHER}`);
    expect(() => checkBookFor(book, SERVER, 100, ESCROW)).toThrow(/signed for chain 31337, but this UI shows chain 100/);
    expect(() => checkBookFor(book, SERVER, 31337, OTHER)).toThrow(new RegExp(`PaymentEscrow at ${ESCROW}, not this deployment's \\(${OTHER}\\)`));
    expect(() => checkBookFor(book, OTHER, 31337, ESCROW)).toThrow(expect.objectContaining({ code: 'WrongServer' }));
  });
});

describe('voucher book: what it pays now', () => {
  test('rows read the lane and redeemable; the plan sends what pays, with the fee on the batch', async () => {
    const book = parseVoucherBook(JSON.stringify(await bookJson()));
    const rows = await readVoucherRows(escrow({
      [CLIENT_A.address]: { amount: ETH, redeemed: ETH / 20n }, // owes 0.05
      [CLIENT_B.address]: { amount: ETH, redeemed: 0n }, // owes 3, lane holds 1
    }), book);
    expect(rows.map((r) => [r.signer, r.redeemed, r.redeemable])).toEqual([[CLIENT_A.address, ETH / 20n, ETH / 20n], [CLIENT_B.address, 0n, ETH]]);
    const plan = checkPlan(planRedeem(rows, 250), rows);
    expect(plan).toMatchObject({ gross: 21n * ETH / 20n, fee: batchFee(21n * ETH / 20n, 250), left: 0 });
    expect(plan.net).toBe(plan.gross - plan.fee);
    expect(batchFee(10_001n, 250)).toBe(250n); // floored, as the escrow does
    const [vouchers, sigs, maxFee] = redeemArgs(plan, 250);
    expect(vouchers[1]).toEqual({ client: CLIENT_B.address, server: SERVER, cumulative: 3n * ETH, receipts: RECEIPTS });
    expect(sigs).toEqual(book.vouchers.map((v) => v.signature));
    expect(maxFee).toBe(250);
  });
  test('a voucher not signed by its client is flagged and left out of the batch', async () => {
    const j = await bookJson();
    const forged = { ...j.vouchers[CLIENT_B.address], signature: (await signed(CLIENT_A, 3n * ETH, ESCROW, CLIENT_B.address)).signature };
    const otherEscrow = { ...j.vouchers[CLIENT_A.address], signature: (await signed(CLIENT_A, ETH / 10n, OTHER)).signature };
    const book = parseVoucherBook(JSON.stringify({ ...j, vouchers: { [CLIENT_A.address]: otherEscrow, [CLIENT_B.address]: forged } }));
    const rows = await readVoucherRows(escrow({ [CLIENT_A.address]: { amount: ETH, redeemed: 0n }, [CLIENT_B.address]: { amount: ETH, redeemed: 0n } }), book);
    expect(rows[1].signer).toBe(CLIENT_A.address);
    expect(rowProblem(rows[1])).toBe(`bad signature: signed by ${CLIENT_A.address}, not by the client`);
    expect(rowProblem(rows[0])).toMatch(/^bad signature/);
    expect(planRedeem(rows, 0)).toMatchObject({ gross: 0n, left: 2 });
    expect(() => checkPlan(planRedeem(rows, 0), rows)).toThrow(/No voucher in this book is signed by its client/);
    const garbage: VoucherRow = { ...rows[0], signer: null };
    expect(rowProblem(garbage)).toBe('bad signature: it does not recover');
  });
  test('nothing redeemable: already redeemed or empty lanes are skipped, and an all-empty batch is refused', async () => {
    const book = parseVoucherBook(JSON.stringify(await bookJson()));
    const rows = await readVoucherRows(escrow({ [CLIENT_A.address]: { amount: ETH, redeemed: ETH / 10n }, [CLIENT_B.address]: { amount: 0n, redeemed: ETH } }), book);
    expect(rows.map(rowProblem)).toEqual(['already redeemed', 'the lane is empty']);
    expect(() => checkPlan(planRedeem(rows, 250), rows)).toThrow(expect.objectContaining({ code: 'NothingToRedeem', message: expect.stringMatching(/pay nothing more/) }));
    const empty = parseVoucherBook(JSON.stringify({ ...(await bookJson()), vouchers: {} }));
    expect(() => checkPlan(planRedeem([], 250), [])).toThrow(/holds no vouchers yet/);
    expect(empty.vouchers).toEqual([]);
  });
  test('the result is read from the BatchRedeemed event', () => {
    const topics = encodeEventTopics({ abi: PaymentEscrowAbi, eventName: 'BatchRedeemed', args: { server: SERVER } });
    const data = encodeAbiParameters([{ type: 'uint256' }, { type: 'uint256' }, { type: 'uint256' }], [2n, ETH, ETH / 40n]);
    const log = { address: ESCROW, topics, data, blockNumber: 1n, logIndex: 0, transactionIndex: 0, transactionHash: RECEIPTS, blockHash: RECEIPTS, removed: false } as unknown as Log;
    expect(redeemResult([log])).toEqual({ vouchers: 2n, gross: ETH, fee: ETH / 40n, net: ETH - ETH / 40n });
    expect(redeemResult([])).toBeNull();
  });
});
