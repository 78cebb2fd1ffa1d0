// Commit-reveal openings: a dispute is opened in two transactions. `commitOpening(h)` first, with
// h = DisputeCourt.openingCommitment(challenger, hashReceipt(r), evidenceCid, blockIndex, salt);
// then, at least one block later and within the court's openRevealBlocks, `openDispute(r, sig,
// evidenceCid, blockIndex, salt)` with the bond. Someone who sees the reveal in the mempool has no
// commitment of their own, so cannot copy it. Both hashes are computed here, not by calling the
// contract's views: the salt never leaves the browser before the reveal. The salt is kept in
// localStorage (per chain, court and challenger) until the dispute is opened; losing it costs only
// the commitment's gas, so unlike a vote's salt it needs no backup file.
import { encodeAbiParameters, keccak256, toHex, type Address, type Hex } from 'viem';
import type { ReceiptStruct, SignedReceipt } from './receiptFile';
import type { KeyValueStore } from './votes';

/** DisputeCourt.RECEIPT_TYPEHASH's type string (receipt v2). */
export const RECEIPT_TYPE =
  'Receipt(address server,uint256 versionId,uint32 firstBlock,uint32 lastBlock,uint32 term,uint8 kind,bytes32 sessionId,uint64 step,bytes32 inputHash,bytes32 outputHash,bytes32 blocksRoot,uint64 issuedAt)';
const RECEIPT_TYPEHASH = keccak256(toHex(RECEIPT_TYPE));
const RECEIPT_FIELDS = [
  { type: 'bytes32' }, { type: 'address' }, { type: 'uint256' }, { type: 'uint32' }, { type: 'uint32' }, { type: 'uint32' },
  { type: 'uint8' }, { type: 'bytes32' }, { type: 'uint64' }, { type: 'bytes32' }, { type: 'bytes32' }, { type: 'bytes32' },
  { type: 'uint64' },
] as const;

/** The receipt's EIP-712 struct hash, as DisputeCourt.hashReceipt. */
export function hashReceipt(r: ReceiptStruct): Hex {
  return keccak256(encodeAbiParameters(RECEIPT_FIELDS, [
    RECEIPT_TYPEHASH, r.server, r.versionId, r.firstBlock, r.lastBlock, r.term, r.kind, r.sessionId, r.step,
    r.inputHash, r.outputHash, r.blocksRoot, r.issuedAt,
  ]));
}

/** keccak256(abi.encode(challenger, receiptHash, keccak256(bytes(evidenceCid)), blockIndex, salt)),
 *  as DisputeCourt.openingCommitment. */
export function openingCommitment(challenger: Address, receiptHash: Hex, evidenceCid: string, blockIndex: number, salt: Hex): Hex {
  return keccak256(encodeAbiParameters(
    [{ type: 'address' }, { type: 'bytes32' }, { type: 'bytes32' }, { type: 'uint32' }, { type: 'bytes32' }],
    [challenger, receiptHash, keccak256(toHex(evidenceCid)), blockIndex, salt],
  ));
}

/** An opening committed (or about to be) and not yet revealed: everything `openDispute` needs. */
export interface SavedOpening {
  chainId: number;
  court: Address;
  challenger: Address;
  /** The receipt with its integers as decimal strings (JSON has no bigints). */
  receipt: Record<keyof ReceiptStruct, string | number>;
  signature: Hex;
  evidenceCid: string;
  blockIndex: number;
  salt: Hex;
  receiptHash: Hex;
  commitment: Hex;
  savedAt: string;
}

/** A fresh opening for `signed` (not yet saved or committed). */
export function newOpening(
  signed: SignedReceipt, challenger: Address, evidenceCid: string, blockIndex: number, salt: Hex,
  where: { chainId: number; court: Address }, savedAt = new Date().toISOString(),
): SavedOpening {
  const r = signed.receipt;
  const receiptHash = hashReceipt(r);
  return {
    chainId: where.chainId, court: where.court, challenger,
    receipt: {
      server: r.server, versionId: String(r.versionId), firstBlock: r.firstBlock, lastBlock: r.lastBlock, term: r.term,
      kind: r.kind, sessionId: r.sessionId, step: String(r.step), inputHash: r.inputHash, outputHash: r.outputHash,
      blocksRoot: r.blocksRoot, issuedAt: String(r.issuedAt),
    },
    signature: signed.signature, evidenceCid, blockIndex, salt, receiptHash,
    commitment: openingCommitment(challenger, receiptHash, evidenceCid, blockIndex, salt), savedAt,
  };
}

/** The receipt struct of a saved opening, as `openDispute` takes it. */
export function openingReceipt(o: SavedOpening): ReceiptStruct {
  const r = o.receipt;
  return {
    server: r.server as Address, versionId: BigInt(r.versionId), firstBlock: Number(r.firstBlock), lastBlock: Number(r.lastBlock),
    term: Number(r.term), kind: Number(r.kind), sessionId: r.sessionId as Hex, step: BigInt(r.step),
    inputHash: r.inputHash as Hex, outputHash: r.outputHash as Hex, blocksRoot: r.blocksRoot as Hex, issuedAt: BigInt(r.issuedAt),
  };
}

/** `openDispute`'s arguments for a saved opening (the bond goes as the transaction's value). */
export function revealArgs(o: SavedOpening): readonly [ReceiptStruct, Hex, string, number, Hex] {
  return [openingReceipt(o), o.signature, o.evidenceCid, o.blockIndex, o.salt];
}

export function openingsKey(chainId: number, court: Address, challenger: Address): string {
  return `pollen.openings.${chainId}.${court.toLowerCase()}.${challenger.toLowerCase()}`;
}

const HEX32 = /^0x[0-9a-fA-F]{64}$/;

function isOpening(o: SavedOpening): boolean {
  return !!o && typeof o === 'object' && typeof o.salt === 'string' && HEX32.test(o.salt)
    && typeof o.commitment === 'string' && HEX32.test(o.commitment) && typeof o.evidenceCid === 'string'
    && Number.isInteger(o.blockIndex) && !!o.receipt && typeof o.signature === 'string';
}

/** The account's openings not yet revealed, oldest first. */
export function loadOpenings(store: KeyValueStore, chainId: number, court: Address, challenger: Address): SavedOpening[] {
  const text = store.getItem(openingsKey(chainId, court, challenger));
  if (!text) return [];
  try {
    const list = JSON.parse(text);
    return Array.isArray(list) ? list.filter(isOpening) : [];
  } catch {
    return [];
  }
}

function write(store: KeyValueStore, o: { chainId: number; court: Address; challenger: Address }, list: SavedOpening[]): void {
  const key = openingsKey(o.chainId, o.court, o.challenger);
  if (list.length === 0 && store.removeItem) store.removeItem(key);
  else store.setItem(key, JSON.stringify(list));
}

/** Keep an opening (before its commitment is sent, so a crash after signing cannot lose the salt). */
export function saveOpening(store: KeyValueStore, o: SavedOpening): void {
  const list = loadOpenings(store, o.chainId, o.court, o.challenger).filter((x) => x.commitment !== o.commitment);
  write(store, o, [...list, o]);
}

/** Forget an opening (revealed, expired or never committed). */
export function forgetOpening(store: KeyValueStore, o: SavedOpening): void {
  write(store, o, loadOpenings(store, o.chainId, o.court, o.challenger).filter((x) => x.commitment !== o.commitment));
}

/** Block and time an opening was committed at, from DisputeCourt.openingCommitted (0: none, or consumed). */
export function unpackCommitted(packed: bigint): { block: bigint; time: number } | null {
  if (packed === 0n) return null;
  return { block: packed >> 64n, time: Number(packed & ((1n << 64n) - 1n)) };
}

export type OpeningState =
  | { kind: 'waiting'; committedBlock: bigint; revealFrom: bigint; revealUntil: bigint } // wait for the next block
  | { kind: 'ready'; committedBlock: bigint; revealUntil: bigint } // openDispute can go now
  | { kind: 'expired'; committedBlock: bigint; revealUntil: bigint } // past openRevealBlocks: commit again
  | { kind: 'uncommitted' }; // no such commitment on chain (never mined, or already revealed)

/** Where a saved opening stands, given its on-chain record, the head block and openRevealBlocks.
 *  The next transaction lands in block head + 1: revealable while committedBlock < head + 1 ≤
 *  committedBlock + openRevealBlocks. */
export function openingState(packed: bigint, head: bigint, openRevealBlocks: number): OpeningState {
  const c = unpackCommitted(packed);
  if (!c) return { kind: 'uncommitted' };
  const revealUntil = c.block + BigInt(openRevealBlocks);
  if (head + 1n > revealUntil) return { kind: 'expired', committedBlock: c.block, revealUntil };
  if (head <= c.block) return { kind: 'waiting', committedBlock: c.block, revealFrom: c.block + 1n, revealUntil };
  return { kind: 'ready', committedBlock: c.block, revealUntil };
}
