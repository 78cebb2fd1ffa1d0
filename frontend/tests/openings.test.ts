import { describe, expect, test } from 'vitest';
import { hashStruct, keccak256, toHex, type Address, type Hex } from 'viem';
import {
  forgetOpening, hashReceipt, loadOpenings, newOpening, openingCommitment, openingReceipt, openingState, openingsKey,
  revealArgs, saveOpening, unpackCommitted,
} from '../src/openings';
import type { ReceiptStruct, SignedReceipt } from '../src/receiptFile';

const word = (hex: string) => hex.replace(/^0x/, '').padStart(64, '0');
const challenger = '0x70997970C51812dc3A010C7d01b50e0d17dc79C8' as Address;
const court = '0xCf7Ed3AccA5a467e9e704C703E8D87F634fB0Fc9' as Address;
const receipt: ReceiptStruct = {
  server: '0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC', versionId: 1n, firstBlock: 0, lastBlock: 4, term: 2, kind: 1,
  sessionId: `0x${'11'.repeat(32)}`, step: 7n, inputHash: `0x${'22'.repeat(32)}`, outputHash: `0x${'33'.repeat(32)}`,
  blocksRoot: `0x${'44'.repeat(32)}`, issuedAt: 1_700_000_000n,
};
const signed: SignedReceipt = { receipt, signature: `0x${'ab'.repeat(65)}`, domain: { chainId: 31337, court } };

function memoryStore() {
  const m = new Map<string, string>();
  return { m, getItem: (k: string) => m.get(k) ?? null, setItem: (k: string, v: string) => void m.set(k, v), removeItem: (k: string) => void m.delete(k) };
}

describe('opening commitments', () => {
  test('hashReceipt is the EIP-712 struct hash of the receipt (as DisputeCourt.hashReceipt)', () => {
    const types = {
      Receipt: [
        { name: 'server', type: 'address' }, { name: 'versionId', type: 'uint256' }, { name: 'firstBlock', type: 'uint32' },
        { name: 'lastBlock', type: 'uint32' }, { name: 'term', type: 'uint32' }, { name: 'kind', type: 'uint8' },
        { name: 'sessionId', type: 'bytes32' }, { name: 'step', type: 'uint64' }, { name: 'inputHash', type: 'bytes32' },
        { name: 'outputHash', type: 'bytes32' }, { name: 'blocksRoot', type: 'bytes32' }, { name: 'issuedAt', type: 'uint64' },
      ],
    } as const;
    expect(hashReceipt(receipt)).toBe(hashStruct({ data: receipt, primaryType: 'Receipt', types }));
    expect(hashReceipt({ ...receipt, step: 8n })).not.toBe(hashReceipt(receipt));
  });

  test('openingCommitment is keccak256(abi.encode(challenger, receiptHash, keccak256(cid), blockIndex, salt))', () => {
    const rh = `0x${'5c'.repeat(32)}` as Hex;
    const salt = `0x${'9e'.repeat(32)}` as Hex;
    const cid = 'bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy';
    const manual = keccak256(`0x${word(challenger.toLowerCase())}${word(rh)}${word(keccak256(toHex(cid)))}${word('3')}${word(salt)}`);
    expect(openingCommitment(challenger, rh, cid, 3, salt)).toBe(manual);
    // bound to each of them
    expect(openingCommitment(challenger, rh, cid, 2, salt)).not.toBe(manual);
    expect(openingCommitment(receipt.server, rh, cid, 3, salt)).not.toBe(manual);
    expect(openingCommitment(challenger, rh, `${cid}x`, 3, salt)).not.toBe(manual);
  });

  test('a saved opening survives JSON and gives back openDispute\'s arguments', () => {
    const salt = `0x${'01'.repeat(32)}` as Hex;
    const o = newOpening(signed, challenger, 'bafyevidence', 2, salt, { chainId: 31337, court }, 'now');
    expect(o.receiptHash).toBe(hashReceipt(receipt));
    expect(o.commitment).toBe(openingCommitment(challenger, o.receiptHash, 'bafyevidence', 2, salt));
    const back = JSON.parse(JSON.stringify(o));
    expect(openingReceipt(back)).toEqual(receipt);
    expect(revealArgs(back)).toEqual([receipt, signed.signature, 'bafyevidence', 2, salt]);
  });

  test('openings are kept per chain, court and challenger until forgotten', () => {
    const store = memoryStore();
    const a = newOpening(signed, challenger, 'bafyevidence', 1, `0x${'01'.repeat(32)}`, { chainId: 31337, court });
    const b = newOpening(signed, challenger, 'bafyevidence', 2, `0x${'02'.repeat(32)}`, { chainId: 31337, court });
    saveOpening(store, a);
    saveOpening(store, b);
    saveOpening(store, a); // saving again replaces, never duplicates
    expect(loadOpenings(store, 31337, court, challenger).map((o) => o.blockIndex)).toEqual([2, 1]);
    expect(loadOpenings(store, 100, court, challenger)).toEqual([]);
    expect(loadOpenings(store, 31337, court, receipt.server)).toEqual([]);
    forgetOpening(store, b);
    expect(loadOpenings(store, 31337, court, challenger)).toEqual([a]);
    forgetOpening(store, a);
    expect(store.m.has(openingsKey(31337, court, challenger))).toBe(false);
    store.setItem(openingsKey(31337, court, challenger), 'not json');
    expect(loadOpenings(store, 31337, court, challenger)).toEqual([]);
  });

  test('where a commitment stands: wait one block, reveal within openRevealBlocks', () => {
    const packed = (block: bigint, time: bigint) => (block << 64n) | time;
    expect(unpackCommitted(packed(10n, 1234n))).toEqual({ block: 10n, time: 1234 });
    expect(unpackCommitted(0n)).toBeNull();
    expect(openingState(0n, 10n, 50)).toEqual({ kind: 'uncommitted' });
    // committed in block 10: a simulation at head 10 would revert (too early); from head 11 it goes
    expect(openingState(packed(10n, 1n), 10n, 50)).toEqual({ kind: 'waiting', committedBlock: 10n, revealFrom: 11n, revealUntil: 60n });
    expect(openingState(packed(10n, 1n), 11n, 50)).toEqual({ kind: 'ready', committedBlock: 10n, revealUntil: 60n });
    expect(openingState(packed(10n, 1n), 58n, 50).kind).toBe('ready');
    // the next transaction would land in block 60 + 1 > 10 + 50
    expect(openingState(packed(10n, 1n), 60n, 50)).toEqual({ kind: 'expired', committedBlock: 10n, revealUntil: 60n });
  });
});
