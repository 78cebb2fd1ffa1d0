// Commit-reveal votes: the commitment DisputeCourt.commitmentOf computes, and the salt the user
// must keep (in this browser, and in a backup they download) until they reveal.
import { encodeAbiParameters, keccak256, toHex, type Address, type Hex } from 'viem';

export interface SavedVote {
  disputeId: string;
  auditor: Address;
  faulty: boolean;
  salt: Hex;
  commitment: Hex;
  court: Address;
  chainId: number;
  savedAt: string;
}

/** keccak256(abi.encode(disputeId, auditor, faulty, salt)), as DisputeCourt.commitmentOf. */
export function commitmentOf(disputeId: bigint, auditor: Address, faulty: boolean, salt: Hex): Hex {
  return keccak256(
    encodeAbiParameters(
      [{ type: 'uint256' }, { type: 'address' }, { type: 'bool' }, { type: 'bytes32' }],
      [disputeId, auditor, faulty, salt],
    ),
  );
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
}

export function saveVote(store: KeyValueStore, vote: SavedVote): void {
  store.setItem(voteKey(vote.chainId, vote.court, BigInt(vote.disputeId), vote.auditor), JSON.stringify(vote));
}

export function loadVote(store: KeyValueStore, chainId: number, court: Address, disputeId: bigint, auditor: Address): SavedVote | null {
  const text = store.getItem(voteKey(chainId, court, disputeId, auditor));
  if (!text) return null;
  try {
    return JSON.parse(text) as SavedVote;
  } catch {
    return null;
  }
}

/** Parse a vote backup file (what "Download backup" saved); throws plain-words errors. */
export function parseVoteBackup(text: string): SavedVote {
  let v: SavedVote;
  try {
    v = JSON.parse(text);
  } catch {
    throw new Error('This file is not JSON. Choose the vote backup you downloaded when you committed.');
  }
  if (!v || typeof v.salt !== 'string' || !/^0x[0-9a-fA-F]{64}$/.test(v.salt) || typeof v.faulty !== 'boolean') {
    throw new Error('This is not a Pollen vote backup (it needs "salt" and "faulty").');
  }
  return v;
}
