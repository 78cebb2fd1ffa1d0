// Pay-per-use (PaymentEscrow + AuditFeePayer): what the Payments page reads from the escrow, and
// the pure rules it applies before sending anything: a lane's reclaim state, amount checks in
// plain words, price formatting. The chain enforces all of it again; these only explain early.
import { getAddress, isAddress, type Address } from 'viem';
import { AuditFeePayerAbi, PaymentEscrowAbi } from './contracts';
import type { Deployment } from './deployment';
import { PlainError } from './errors';
import { formatAmount, formatDuration, parseAmount } from './format';

export const UINT128_MAX = (1n << 128n) - 1n;

/** The escrow and its audit payer, when the deployment names them (older ones do not). */
export interface PaymentContracts { escrow: Address; feePayer: Address | null }

export function paymentContracts(d: Deployment): PaymentContracts | null {
  const escrow = d.optional?.PaymentEscrow;
  if (!escrow) return null;
  return { escrow, feePayer: d.optional?.AuditFeePayer ?? null };
}

/** PaymentEscrow.Lane as the UI uses it. */
export interface Lane { amount: bigint; redeemed: bigint; reclaimAmount: bigint; reclaimAt: number }
export interface Terms { price: bigint; creditLimit: bigint }

export interface EscrowGlobals {
  feeBps: number; reclaimDelay: number; auditPool: bigint; totalDeposits: bigint; totalEarned: bigint;
  /** AuditFeePayer.feePerAudit (null when no payer is deployed or it cannot be read). */
  feePerAudit: bigint | null;
}
export interface ServerPay { terms: Terms; earned: bigint }
export interface WalletPay {
  account: Address;
  /** The wallet's native balance (to check a deposit before the wallet does). */
  walletBalance: bigint;
  /** Unallocated deposit: withdrawable at once, or allocated to lanes. */
  deposit: bigint;
  earned: bigint;
  /** Lanes by server (every server the wallet ever allocated to, and every registered one it holds a lane for). */
  lanes: Map<Address, Lane>;
}
export interface PaymentBook {
  globals: EscrowGlobals;
  servers: Map<Address, ServerPay>;
  wallet: WalletPay | null;
}

/** What readPayments needs of a viem PublicClient. */
export interface PayReader {
  readContract(args: { address: Address; abi: unknown; functionName: string; args?: readonly unknown[]; blockNumber?: bigint }): Promise<unknown>;
  getBalance(args: { address: Address; blockNumber?: bigint }): Promise<bigint>;
  getLogs(args: { address: Address; event: unknown; args?: Record<string, unknown>; fromBlock: bigint; toBlock?: bigint }): Promise<Array<{ args: Record<string, unknown> }>>;
}

/** Servers an account allocated to, from its Allocated events up to block `next - 1`; kept between
 *  reads so each read asks only for the new blocks' logs. */
export interface LaneIndex { account: Address | null; servers: Set<Address>; next: bigint }

export const newLaneIndex = (): LaneIndex => ({ account: null, servers: new Set(), next: 0n });

const ALLOCATED_EVENT = PaymentEscrowAbi.find((i) => i.type === 'event' && i.name === 'Allocated')!;
const MAX_LOG_RANGE = 5000n;

/** Read the escrow at one block: its parameters and pool, each server's terms and earnings, and the
 *  wallet's deposit and lanes (servers it allocated to are found from its Allocated events). */
export async function readPayments(client: PayReader, pc: PaymentContracts, servers: Address[], account: Address | null,
  fromBlock: bigint, blockNumber: bigint, index?: LaneIndex): Promise<PaymentBook> {
  const read = (functionName: string, args: readonly unknown[] = []) =>
    client.readContract({ address: pc.escrow, abi: PaymentEscrowAbi, functionName, args, blockNumber });
  const [feeBps, reclaimDelay, auditPool, totalDeposits, totalEarned, feePerAudit] = await Promise.all([
    read('feeBps'), read('reclaimDelay'), read('auditPool'), read('totalDeposits'), read('totalEarned'),
    pc.feePayer
      ? client.readContract({ address: pc.feePayer, abi: AuditFeePayerAbi, functionName: 'feePerAudit', args: [], blockNumber }).catch(() => null)
      : Promise.resolve(null),
  ]);
  const globals: EscrowGlobals = {
    feeBps: Number(feeBps), reclaimDelay: Number(reclaimDelay), auditPool: auditPool as bigint,
    totalDeposits: totalDeposits as bigint, totalEarned: totalEarned as bigint, feePerAudit: feePerAudit as bigint | null,
  };
  const serverPay = new Map<Address, ServerPay>();
  await Promise.all(servers.map(async (s) => {
    const [t, e] = await Promise.all([read('termsOf', [s]), read('earned', [s])]);
    const terms = t as { price: bigint; creditLimit: bigint };
    serverPay.set(s, { terms: { price: terms.price, creditLimit: terms.creditLimit }, earned: e as bigint });
  }));
  let wallet: WalletPay | null = null;
  if (account) {
    // Only blocks not scanned yet for this account are asked for (a long-lived chain is not rescanned every block).
    const reuse = index && index.account === account && index.next >= fromBlock;
    const allocatedTo = new Set<Address>(reuse ? index.servers : []);
    const start = reuse ? index.next : fromBlock;
    for (let from = start; from <= blockNumber; from += MAX_LOG_RANGE) {
      const to = from + MAX_LOG_RANGE - 1n < blockNumber ? from + MAX_LOG_RANGE - 1n : blockNumber;
      const logs = await client.getLogs({ address: pc.escrow, event: ALLOCATED_EVENT, args: { client: account }, fromBlock: from, toBlock: to });
      for (const l of logs) allocatedTo.add(getAddress(l.args.server as string));
    }
    if (index) {
      index.account = account;
      index.servers = allocatedTo;
      index.next = blockNumber + 1n > start ? blockNumber + 1n : start;
    }
    const candidates = [...new Set<Address>([...servers, ...allocatedTo])];
    const [walletBalance, deposit, earned, lanes] = await Promise.all([
      client.getBalance({ address: account, blockNumber }),
      read('balanceOf', [account]),
      read('earned', [account]),
      Promise.all(candidates.map(async (s) => [s, toLane(await read('laneOf', [account, s]))] as const)),
    ]);
    wallet = {
      account, walletBalance, deposit: deposit as bigint, earned: earned as bigint,
      lanes: new Map(lanes.filter(([s, l]) => allocatedTo.has(s) || !laneIsBlank(l))),
    };
  }
  return { globals, servers: serverPay, wallet };
}

export function toLane(raw: unknown): Lane {
  const l = raw as { amount: bigint; redeemed: bigint; reclaimAmount: bigint; reclaimAt: bigint | number };
  return { amount: BigInt(l.amount), redeemed: BigInt(l.redeemed), reclaimAmount: BigInt(l.reclaimAmount), reclaimAt: Number(l.reclaimAt) };
}

const laneIsBlank = (l: Lane) => l.amount === 0n && l.redeemed === 0n && l.reclaimAmount === 0n;

// ------------------------------------------------------------------ lane state

export type LaneState =
  | { kind: 'empty' } // nothing set aside, nothing announced
  | { kind: 'open' } // set aside, no reclaim announced: the server's vouchers can take it
  | { kind: 'announced'; takeAt: number; secondsLeft: number; amount: bigint } // waiting out the delay
  | { kind: 'takeable'; amount: bigint }; // reclaim() now sends `amount` (may be 0: it only clears the announcement)

/** Where a lane stands at chain time `now` (seconds). The escrow takes, at reclaim time, the
 *  announced amount or what is left in the lane if less; it accepts reclaim() once
 *  block.timestamp >= reclaimAt. */
export function laneState(lane: Lane, now: number): LaneState {
  if (lane.reclaimAmount === 0n) return lane.amount === 0n ? { kind: 'empty' } : { kind: 'open' };
  const amount = lane.reclaimAmount < lane.amount ? lane.reclaimAmount : lane.amount;
  if (now >= lane.reclaimAt) return { kind: 'takeable', amount };
  return { kind: 'announced', takeAt: lane.reclaimAt, secondsLeft: lane.reclaimAt - now, amount };
}

/** The lane's state in words, for its row. */
export function laneStateWords(s: LaneState, symbol: string): string {
  switch (s.kind) {
    case 'empty': return 'empty';
    case 'open': return 'open: the server can redeem vouchers from it';
    case 'announced': return `reclaim of ${formatAmount(s.amount, symbol)} takeable in ${formatDuration(s.secondsLeft)} (the server can still redeem until then)`;
    case 'takeable': return s.amount === 0n
      ? 'reclaim due, but the lane is empty: reclaiming only clears the announcement'
      : `reclaim of ${formatAmount(s.amount, symbol)} takeable now`;
  }
}

// ------------------------------------------------------------------ amounts typed by people

/** A deposit: positive, and no more than the wallet holds (gas comes on top). */
export function checkDeposit(text: string, walletBalance: bigint, symbol: string): bigint {
  const amount = parseAmount(text);
  if (amount > walletBalance) {
    throw new PlainError('InsufficientBalance', `Your wallet holds ${formatAmount(walletBalance, symbol)}, less than the ${formatAmount(amount, symbol)} you want to deposit (plus gas). Enter a smaller amount.`);
  }
  return amount;
}

/** A withdrawal of unallocated deposit: positive, at most the unallocated balance. */
export function checkWithdrawDeposit(text: string, deposit: bigint, symbol: string): bigint {
  const amount = parseAmount(text);
  if (amount > deposit) {
    throw new PlainError('InsufficientBalance', `Your unallocated deposit is ${formatAmount(deposit, symbol)}; you cannot withdraw ${formatAmount(amount, symbol)}. Money in lanes comes back by announcing a reclaim.`);
  }
  return amount;
}

export interface AllocationPlan {
  server: Address;
  amount: bigint;
  /** Taken from the unallocated deposit. */
  fromDeposit: bigint;
  /** Sent with the transaction (deposited first, then allocated) when the deposit is short. */
  value: bigint;
}

/** Allocate `text` to `server`: from the unallocated deposit, topped up from the wallet (sent
 *  with allocate(), which deposits it first) when the deposit is short. */
export function planAllocation(serverText: string, text: string, deposit: bigint, walletBalance: bigint, symbol: string,
  knownServers?: ReadonlySet<string>): AllocationPlan {
  const s = serverText.trim();
  if (!isAddress(s, { strict: false })) throw new PlainError('BadAddress', `"${serverText}" is not a server address: pick a server from the list (0x followed by 40 hex digits).`);
  const server = getAddress(s);
  if (knownServers && !knownServers.has(server.toLowerCase())) {
    throw new PlainError('NotActiveServer', `${server} is not an active server in the registry: only an active server can redeem from a lane. Pick one from the list.`);
  }
  const amount = parseAmount(text);
  const fromDeposit = amount < deposit ? amount : deposit;
  const value = amount - fromDeposit;
  if (value > walletBalance) {
    throw new PlainError('InsufficientBalance', `Allocating ${formatAmount(amount, symbol)} needs ${formatAmount(value, symbol)} more than your unallocated deposit (${formatAmount(deposit, symbol)}), and your wallet holds only ${formatAmount(walletBalance, symbol)}. Enter a smaller amount.`);
  }
  return { server, amount, fromDeposit, value };
}

/** An announced reclaim: positive, at most what the lane holds. */
export function checkReclaim(text: string, lane: Lane, symbol: string): bigint {
  if (lane.amount === 0n) throw new PlainError('EmptyLane', 'This lane holds nothing: there is nothing to reclaim.');
  const amount = parseAmount(text);
  if (amount > lane.amount) {
    throw new PlainError('InsufficientBalance', `This lane holds ${formatAmount(lane.amount, symbol)}; you cannot reclaim ${formatAmount(amount, symbol)}.`);
  }
  return amount;
}

/** Earnings moved into the deposit (spendEarned): positive, at most what was earned. */
export function checkSpendEarned(text: string, earned: bigint, symbol: string): bigint {
  const amount = parseAmount(text);
  if (amount > earned) {
    throw new PlainError('InsufficientEarned', `You have earned ${formatAmount(earned, symbol)}; you cannot spend ${formatAmount(amount, symbol)}. Enter a smaller amount.`);
  }
  return amount;
}

// ------------------------------------------------------------------ prices

const UNIT_EXP: Record<string, number> = { wei: 0, gwei: 9, eth: 18 };

/** A non-negative wei amount typed with an optional unit: "1000" (in `defaultUnit`), "2 gwei",
 *  "150 wei", "0.001 ETH" (or the chain's symbol, e.g. xDAI). Fits in a uint128. */
export function parseWei(text: string, defaultUnit: 'wei' | 'gwei' | 'eth', symbol: string, what = 'The amount'): bigint {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  if (!m) throw new PlainError('BadAmount', `"${text}" is not an amount: type a number, optionally with a unit (wei, gwei or ${symbol}), like "2 gwei".`);
  const unitText = m[2].toLowerCase();
  const unit = unitText === '' ? defaultUnit : unitText === symbol.toLowerCase() || unitText === 'ether' ? 'eth' : unitText;
  const exp = UNIT_EXP[unit];
  if (exp === undefined) throw new PlainError('BadUnit', `"${m[2]}" is not a unit here: use wei, gwei or ${symbol}.`);
  const [whole, frac = ''] = m[1].split('.');
  if (frac.length > exp) {
    throw new PlainError('BadAmount', exp === 0 ? `${what} in wei must be a whole number.` : `${what} has more decimals than ${unit === 'eth' ? symbol : unit} allows (${exp}).`);
  }
  const wei = BigInt(whole) * 10n ** BigInt(exp) + BigInt(frac.padEnd(exp, '0') || '0');
  if (wei > UINT128_MAX) throw new PlainError('BadAmount', `${what} is too large (at most 2^128 − 1 wei).`);
  return wei;
}

/** A server's price input: wei per block per token (default unit wei) and credit limit (default
 *  unit the chain's currency); both may be 0 (free; the daemon's default credit). */
export function checkTerms(priceText: string, creditText: string, symbol: string): Terms {
  return {
    price: parseWei(priceText, 'wei', symbol, 'The price'),
    creditLimit: parseWei(creditText, 'eth', symbol, 'The credit limit'),
  };
}

/** Wei per block per token in a unit that reads well: "free", "150 wei", "2 gwei", "≈1.234 gwei", "0.002 xDAI" (the chain's symbol). */
export function formatPrice(wei: bigint, symbol: string): string {
  if (wei === 0n) return 'free';
  if (wei < 10n ** 6n) return `${wei} wei`;
  if (wei < 10n ** 15n) {
    const digits = (wei % 10n ** 9n).toString().padStart(9, '0');
    const frac = digits.slice(0, 3).replace(/0+$/, '');
    const approx = /[1-9]/.test(digits.slice(3));
    return `${approx ? '≈' : ''}${wei / 10n ** 9n}${frac ? `.${frac}` : ''} gwei`;
  }
  return formatAmount(wei, symbol, 6);
}

/** What a token through a server's whole span costs: price × blocks. */
export function pricePerToken(price: bigint, blocks: number): bigint {
  return price * BigInt(Math.max(0, blocks));
}

/** Basis points as a percentage: 250 → "2.5 %". */
export function formatBps(bps: number): string {
  return `${Number((bps / 100).toFixed(2))} %`;
}
