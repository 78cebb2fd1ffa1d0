// An operator's voucher book (the JSON its daemon keeps, pollen/payments.py VoucherBook._save):
//   {"server": "0x…", "chainId": 31337, "escrow": "0x…",
//    "vouchers": {"<client>": {client, server, cumulative: "<wei>", receipts: "0x<32 bytes>", signature: "0x<65 bytes>"}}}
// Parsing and checking it, what each voucher pays now, and the one redeem batch sent for it.
import { getAddress, isAddress, isHex, parseEventLogs, recoverTypedDataAddress, type Address, type Hex, type Log } from 'viem';
import { PaymentEscrowAbi } from './contracts';
import { PlainError } from './errors';

export interface BookVoucher { client: Address; server: Address; cumulative: bigint; receipts: Hex; signature: Hex }
export interface VoucherBook { server: Address; chainId: number; escrow: Address; vouchers: BookVoucher[] }

/** The escrow's EIP-712 domain and Voucher type (pollen/payments.py PaymentDomain, VOUCHER_TYPE). */
export const VOUCHER_TYPES = {
  Voucher: [
    { name: 'client', type: 'address' }, { name: 'server', type: 'address' },
    { name: 'cumulative', type: 'uint256' }, { name: 'receipts', type: 'bytes32' },
  ],
} as const;
export const voucherDomain = (chainId: number, escrow: Address) =>
  ({ name: 'PollenPaymentEscrow', version: '1', chainId, verifyingContract: escrow }) as const;

const UINT256_MAX = (1n << 256n) - 1n;
const bad = (message: string) => new PlainError('BadVoucherBook', message);

function address(value: unknown, what: string): Address {
  if (typeof value !== 'string' || !isAddress(value, { strict: false })) throw bad(`${what} is not an address (0x followed by 40 hex digits).`);
  return getAddress(value);
}

function hexOf(value: unknown, bytes: number, what: string): Hex {
  if (typeof value !== 'string' || !isHex(value) || value.length !== 2 + 2 * bytes) throw bad(`${what} must be ${bytes} bytes of hex (0x + ${2 * bytes} hex digits).`);
  return value.toLowerCase() as Hex;
}

function wei(value: unknown, what: string): bigint {
  if ((typeof value !== 'string' || !/^\d+$/.test(value)) && !(typeof value === 'number' && Number.isSafeInteger(value) && value >= 0)) {
    throw bad(`${what} is not a whole number of wei (a decimal string like "1000000000").`);
  }
  const n = BigInt(value);
  if (n > UINT256_MAX) throw bad(`${what} is larger than a uint256.`);
  return n;
}

/** Voucher number `n` (from 1) filed under `key`. */
function parseVoucher(key: string, raw: unknown, n: number): BookVoucher {
  const where = `Voucher ${n} (under "${key}")`;
  if (!raw || typeof raw !== 'object') throw bad(`${where} is not an object with client, server, cumulative, receipts and signature.`);
  const r = raw as Record<string, unknown>;
  const v: BookVoucher = {
    client: address(r.client, `${where}: its client`),
    server: address(r.server, `${where}: its server`),
    cumulative: wei(r.cumulative, `${where}: its cumulative amount`),
    receipts: hexOf(r.receipts, 32, `${where}: its receipts hash`),
    signature: hexOf(r.signature, 65, `${where}: its signature`),
  };
  if (!isAddress(key, { strict: false }) || getAddress(key) !== v.client) throw bad(`${where} is filed under another key than its client ${v.client}: the book is damaged.`);
  return v;
}

/** Parse a voucher book's text; every error names what is wrong and where. */
export function parseVoucherBook(text: string): VoucherBook {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw bad('This is not JSON. Choose the voucher book your Pollen daemon writes (its vouchers JSON file), or paste its contents.');
  }
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw bad('This JSON is not a voucher book: expected an object with server, chainId, escrow and vouchers.');
  const b = raw as Record<string, unknown>;
  if (!b.vouchers || typeof b.vouchers !== 'object' || Array.isArray(b.vouchers)) throw bad('This JSON has no "vouchers" object: it is not a voucher book.');
  const chainId = Number(b.chainId);
  if (!Number.isSafeInteger(chainId) || chainId <= 0) throw bad('The book has no valid "chainId".');
  const server = address(b.server, 'The book\'s "server"');
  const vouchers = Object.entries(b.vouchers as Record<string, unknown>).map(([k, v], i) => parseVoucher(k, v, i + 1));
  vouchers.forEach((v, i) => {
    if (v.server !== server) throw bad(`Voucher ${i + 1} (client ${v.client}) is made out to ${v.server}, not to the book's server ${server}.`);
  });
  return { server, chainId, escrow: address(b.escrow, 'The book\'s "escrow"'), vouchers };
}

/** Refuse a book the connected wallet cannot redeem here: another server, chain or escrow. */
export function checkBookFor(book: VoucherBook, account: Address, chainId: number, escrow: Address): void {
  if (book.server !== getAddress(account)) {
    throw new PlainError('WrongServer', `This book is for ${book.server}, your wallet is ${getAddress(account)}: only the server a voucher is made out to can redeem it. Switch to that account in your wallet, or choose your own server's book.`);
  }
  if (book.chainId !== chainId) {
    throw new PlainError('WrongChain', `This book's vouchers were signed for chain ${book.chainId}, but this UI shows chain ${chainId}. Open the UI of that deployment.`);
  }
  if (book.escrow !== getAddress(escrow)) {
    throw new PlainError('WrongEscrow', `This book's vouchers were signed for the PaymentEscrow at ${book.escrow}, not this deployment's (${getAddress(escrow)}): the escrow would refuse them.`);
  }
}

/** Who signed the voucher, or null when the signature does not even recover. */
export async function voucherSigner(v: BookVoucher, chainId: number, escrow: Address): Promise<Address | null> {
  try {
    return await recoverTypedDataAddress({
      domain: voucherDomain(chainId, escrow), types: VOUCHER_TYPES, primaryType: 'Voucher',
      message: { client: v.client, server: v.server, cumulative: v.cumulative, receipts: v.receipts }, signature: v.signature,
    });
  } catch {
    return null;
  }
}

/** What one voucher stands at on chain now. */
export interface VoucherRow {
  voucher: BookVoucher;
  /** Recovered signer; the escrow refuses the voucher unless it is the client. */
  signer: Address | null;
  /** Cumulative already redeemed from this client's lane (laneOf). */
  redeemed: bigint;
  /** What redeeming it would pay now, before the fee (redeemable view). */
  redeemable: bigint;
}

export const signedByClient = (r: VoucherRow) => r.signer === r.voucher.client;

/** Why a row is left out of the batch, or null when it is sent. */
export function rowProblem(r: VoucherRow): string | null {
  if (!signedByClient(r)) return r.signer ? `bad signature: signed by ${r.signer}, not by the client` : 'bad signature: it does not recover';
  if (r.redeemable > 0n) return null;
  return r.voucher.cumulative <= r.redeemed ? 'already redeemed' : 'the lane is empty';
}

/** What the escrow's redeem() reads of a viem PublicClient. */
export interface VoucherReader {
  readContract(args: { address: Address; abi: unknown; functionName: string; args?: readonly unknown[] }): Promise<unknown>;
}

/** Each voucher's signer, lane and redeemable amount. */
export async function readVoucherRows(client: VoucherReader, book: VoucherBook): Promise<VoucherRow[]> {
  const read = (functionName: string, args: readonly unknown[]) => client.readContract({ address: book.escrow, abi: PaymentEscrowAbi, functionName, args });
  return Promise.all(book.vouchers.map(async (v) => {
    const [signer, lane, redeemable] = await Promise.all([
      voucherSigner(v, book.chainId, book.escrow),
      read('laneOf', [v.client, v.server]) as Promise<{ redeemed: bigint }>,
      read('redeemable', [v.client, v.server, v.cumulative]) as Promise<bigint>,
    ]);
    return { voucher: v, signer, redeemed: BigInt(lane.redeemed), redeemable: BigInt(redeemable) };
  }));
}

/** The escrow's fee on a batch: floor(gross × feeBps / 10 000), taken once per batch. */
export const batchFee = (gross: bigint, feeBps: number) => gross * BigInt(feeBps) / 10_000n;

export interface RedeemPlan { vouchers: BookVoucher[]; gross: bigint; fee: bigint; net: bigint; left: number }

/** The batch to send: every signed voucher that pays something, and its totals at `feeBps`. */
export function planRedeem(rows: VoucherRow[], feeBps: number): RedeemPlan {
  const send = rows.filter((r) => rowProblem(r) === null);
  const gross = send.reduce((t, r) => t + r.redeemable, 0n);
  const fee = batchFee(gross, feeBps);
  return { vouchers: send.map((r) => r.voucher), gross, fee, net: gross - fee, left: rows.length - send.length };
}

/** Refuse an empty batch before the wallet: the escrow would revert PaymentEscrow_NothingToRedeem. */
export function checkPlan(plan: RedeemPlan, rows: VoucherRow[]): RedeemPlan {
  if (!rows.length) throw new PlainError('NothingToRedeem', 'This book holds no vouchers yet: your daemon writes one when a client first pays.');
  if (plan.gross === 0n) {
    const unsigned = rows.filter((r) => !signedByClient(r)).length;
    throw new PlainError('NothingToRedeem', unsigned === rows.length
      ? 'No voucher in this book is signed by its client, so the escrow would refuse them all.'
      : 'These vouchers pay nothing more: they were redeemed already, or their clients\' lanes are empty. Load the book again once clients have paid more.');
  }
  return plan;
}

/** redeem()'s arguments for a plan. */
export function redeemArgs(plan: RedeemPlan, feeBps: number) {
  const vouchers = plan.vouchers.map(({ client, server, cumulative, receipts }) => ({ client, server, cumulative, receipts }));
  return [vouchers, plan.vouchers.map((v) => v.signature), feeBps] as const;
}

export interface RedeemResult { vouchers: bigint; gross: bigint; fee: bigint; net: bigint }

/** The BatchRedeemed event of a redeem transaction's receipt logs (null if there is none). */
export function redeemResult(logs: Log[]): RedeemResult | null {
  const [e] = parseEventLogs({ abi: PaymentEscrowAbi, eventName: 'BatchRedeemed', logs });
  if (!e) return null;
  const { vouchers, gross, fee } = e.args as { vouchers: bigint; gross: bigint; fee: bigint };
  return { vouchers, gross, fee, net: gross - fee };
}
