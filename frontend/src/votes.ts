// Commit-reveal votes: the commitment DisputeCourt.commitmentOf computes, and the salt the user
// must keep (in this browser, and in a backup they download) until they reveal. A vote is bound
// to a fingerprint: the hash of what the auditor recomputed (the zero hash for a manual vote).
import { encodeAbiParameters, keccak256, toHex, zeroHash, type Address, type Hex } from 'viem';

export type Verdict = 'faulty' | 'honest' | 'abstain';
/** DisputeCourt.revealVote's verdict codes. */
export const VERDICT_CODE: Record<Verdict, number> = { faulty: 1, honest: 2, abstain: 3 };
/** Verdict of a VoteRevealed code (undefined for an unknown one). */
export function verdictOf(code: number | bigint): Verdict | undefined {
  return (Object.keys(VERDICT_CODE) as Verdict[]).find((v) => VERDICT_CODE[v] === Number(code));
}
export const ZERO_FINGERPRINT: Hex = zeroHash;

export interface SavedVote {
  disputeId: string;
  auditor: Address;
  verdict: Verdict;
  fingerprint: Hex;
  salt: Hex;
  commitment: Hex;
  court: Address;
  chainId: number;
  savedAt: string;
}

/** keccak256(abi.encode(disputeId, auditor, verdict, fingerprint, salt)), as DisputeCourt.commitmentOf. */
export function commitmentOf(disputeId: bigint, auditor: Address, verdict: Verdict, fingerprint: Hex, salt: Hex): Hex {
  return keccak256(
    encodeAbiParameters(
      [{ type: 'uint256' }, { type: 'address' }, { type: 'uint8' }, { type: 'bytes32' }, { type: 'bytes32' }],
      [disputeId, auditor, VERDICT_CODE[verdict], fingerprint, salt],
    ),
  );
}

/** A fingerprint typed by the user: empty = the zero hash; otherwise 32 bytes of hex. */
export function parseFingerprint(text: string): Hex {
  const t = text.trim();
  if (t === '') return ZERO_FINGERPRINT;
  if (!/^0x[0-9a-fA-F]{64}$/.test(t)) throw new Error('The fingerprint must be 32 bytes of hex (0x + 64 hex digits), or empty for the zero hash.');
  return t.toLowerCase() as Hex;
}

export function randomSalt(): Hex {
  return toHex(crypto.getRandomValues(new Uint8Array(32)));
}

export function voteKey(chainId: number, court: Address, disputeId: bigint, auditor: Address): string {
  return `pollen.vote.${chainId}.${court.toLowerCase()}.${disputeId}.${auditor.toLowerCase()}`;
}

export interface KeyValueStore {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem?(key: string): void;
}

export function saveVote(store: KeyValueStore, vote: SavedVote): void {
  store.setItem(voteKey(vote.chainId, vote.court, BigInt(vote.disputeId), vote.auditor), JSON.stringify(vote));
}

export function loadVote(store: KeyValueStore, chainId: number, court: Address, disputeId: bigint, auditor: Address): SavedVote | null {
  const text = store.getItem(voteKey(chainId, court, disputeId, auditor));
  if (!text) return null;
  try {
    const v = JSON.parse(text) as SavedVote;
    return isVote(v) ? v : null; // a vote saved by an older UI (no verdict / fingerprint) cannot be revealed
  } catch {
    return null;
  }
}

function isVote(v: SavedVote): boolean {
  return !!v && typeof v.salt === 'string' && /^0x[0-9a-fA-F]{64}$/.test(v.salt)
    && typeof v.verdict === 'string' && v.verdict in VERDICT_CODE
    && typeof v.fingerprint === 'string' && /^0x[0-9a-fA-F]{64}$/.test(v.fingerprint);
}

/** Parse a vote backup file (what "Download backup" saved); throws plain-words errors. */
export function parseVoteBackup(text: string): SavedVote {
  let v: SavedVote;
  try {
    v = JSON.parse(text);
  } catch {
    throw new Error('This file is not JSON. Choose the vote backup you downloaded when you committed.');
  }
  if (!isVote(v)) {
    throw new Error('This is not a Pollen vote backup (it needs "salt", "verdict" and "fingerprint").');
  }
  return v;
}
