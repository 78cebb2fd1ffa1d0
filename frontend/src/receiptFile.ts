// The signed receipt file a Pollen client saves (pollen/receipts.py):
//   {"receipt": {server, version_id, first_block, last_block, term, kind, session_id, step,
//                input_hash, output_hash, blocks_root, issued_at}, "signature": "0x…",
//    "domain": {"chainId": …, "court": "0x…"}}
import { getAddress, isAddress, isHex, type Address, type Hex } from 'viem';

export interface ReceiptStruct {
  server: Address;
  versionId: bigint;
  firstBlock: number;
  lastBlock: number;
  term: number; // the server's ServerRegistry term index the receipt falls in
  kind: number; // 0 inference step, 1 forward, 2 backward
  sessionId: Hex;
  step: bigint;
  inputHash: Hex;
  outputHash: Hex;
  blocksRoot: Hex; // Merkle root of the step's per-block fingerprints
  issuedAt: bigint;
}

export const RECEIPT_KINDS = ['inference', 'forward', 'backward'] as const; // pollen.receipts.KIND_NAMES

/** A receipt kind in words ("kind 7" for an unknown code). */
export function kindName(kind: number): string {
  return RECEIPT_KINDS[kind] ?? `kind ${kind}`;
}

export interface SignedReceipt {
  receipt: ReceiptStruct;
  signature: Hex;
  domain: { chainId: number; court: Address };
}

/** Read either the client's snake_case keys or the contract's camelCase ones. */
function field(r: Record<string, unknown>, snake: string, camel: string): unknown {
  return r[snake] ?? r[camel];
}

function bytes32(value: unknown, name: string): Hex {
  if (typeof value !== 'string' || !isHex(value) || value.length !== 66) {
    throw new Error(`The receipt's ${name} must be 32 bytes of hex (0x + 64 hex digits).`);
  }
  return value.toLowerCase() as Hex;
}

function uint(value: unknown, name: string, max: bigint): bigint {
  let n: bigint;
  try {
    n = BigInt(value as string | number);
  } catch {
    throw new Error(`The receipt's ${name} is not a whole number.`);
  }
  if (n < 0n || n > max) throw new Error(`The receipt's ${name} is out of range.`);
  return n;
}

/** Parse and check a receipt file's text. Errors say what is wrong with the file. */
export function parseReceiptFile(text: string): SignedReceipt {
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new Error('This file is not JSON. Choose the receipt file your Pollen client saved.');
  }
  const r = raw?.receipt as Record<string, unknown> | undefined;
  if (!r || typeof r !== 'object') throw new Error('This JSON has no "receipt" object: it is not a Pollen receipt file.');
  const server = field(r, 'server', 'server');
  if (typeof server !== 'string' || !isAddress(server)) throw new Error("The receipt's server is not an address.");
  const U32 = 2n ** 32n - 1n;
  const U64 = 2n ** 64n - 1n;
  const receipt: ReceiptStruct = {
    server: getAddress(server),
    versionId: uint(field(r, 'version_id', 'versionId'), 'version id', 2n ** 256n - 1n),
    firstBlock: Number(uint(field(r, 'first_block', 'firstBlock'), 'first block', U32)),
    lastBlock: Number(uint(field(r, 'last_block', 'lastBlock'), 'last block', U32)),
    term: Number(uint(field(r, 'term', 'term'), 'term', U32)),
    kind: Number(uint(field(r, 'kind', 'kind'), 'kind', 255n)),
    sessionId: bytes32(field(r, 'session_id', 'sessionId'), 'session id'),
    step: uint(field(r, 'step', 'step'), 'step', U64),
    inputHash: bytes32(field(r, 'input_hash', 'inputHash'), 'input hash'),
    outputHash: bytes32(field(r, 'output_hash', 'outputHash'), 'output hash'),
    blocksRoot: bytes32(field(r, 'blocks_root', 'blocksRoot'), 'blocks root'),
    issuedAt: uint(field(r, 'issued_at', 'issuedAt'), 'issue time', U64),
  };
  if (receipt.firstBlock >= receipt.lastBlock) throw new Error("The receipt's span is empty (first block ≥ last block).");
  if (receipt.kind > 2) throw new Error(`The receipt's kind ${receipt.kind} is unknown (0 inference step, 1 forward, 2 backward).`);
  const signature = raw.signature;
  if (typeof signature !== 'string' || !isHex(signature) || signature.length !== 132) {
    throw new Error('The file has no 65-byte "signature" (0x + 130 hex digits).');
  }
  const d = (raw.domain ?? {}) as Record<string, unknown>;
  const court = d.court ?? d.verifyingContract;
  if (typeof court !== 'string' || !isAddress(court)) throw new Error('The file\'s "domain" has no court address.');
  const chainId = Number(d.chainId);
  if (!Number.isInteger(chainId) || chainId <= 0) throw new Error('The file\'s "domain" has no chainId.');
  return { receipt, signature: signature as Hex, domain: { chainId, court: getAddress(court) } };
}

/** Why this receipt cannot be disputed on this deployment, or null if its domain matches. */
export function domainMismatch(s: SignedReceipt, chainId: number, court: Address): string | null {
  if (s.domain.chainId !== chainId) {
    return `This receipt was signed for chain ${s.domain.chainId}, but this UI shows chain ${chainId}. Open the UI of that deployment.`;
  }
  if (getAddress(s.domain.court) !== getAddress(court)) {
    return `This receipt was signed for the DisputeCourt at ${s.domain.court}, not this deployment's (${court}).`;
  }
  return null;
}
