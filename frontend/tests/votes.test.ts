import { expect, test } from 'vitest';
import { keccak256, type Hex } from 'viem';
import { commitmentOf, loadVote, parseFingerprint, parseVoteBackup, randomSalt, saveVote, verdictOf, ZERO_FINGERPRINT, type SavedVote } from '../src/votes';

const word = (hex: string) => hex.replace(/^0x/, '').padStart(64, '0');

test('commitment is keccak256 of the ABI-encoded (disputeId, auditor, verdict, fingerprint, salt)', () => {
  const auditor = '0x70997970C51812dc3A010C7d01b50e0d17dc79C8';
  const salt = `0x${'5a'.repeat(32)}` as Hex;
  const fp = `0x${'c3'.repeat(32)}` as Hex;
  const manual = (code: string, f: Hex) => keccak256(`0x${word('7')}${word(auditor.toLowerCase())}${word(code)}${word(f)}${word(salt)}`);
  expect(commitmentOf(7n, auditor, 'faulty', fp, salt)).toBe(manual('1', fp));
  expect(commitmentOf(7n, auditor, 'honest', fp, salt)).toBe(manual('2', fp));
  expect(commitmentOf(7n, auditor, 'abstain', ZERO_FINGERPRINT, salt)).toBe(manual('3', ZERO_FINGERPRINT));
  expect(commitmentOf(7n, auditor, 'faulty', ZERO_FINGERPRINT, salt)).not.toBe(manual('1', fp)); // bound to the fingerprint
});

test('verdict codes and fingerprints', () => {
  expect([1, 2, 3, 4].map((c) => verdictOf(c))).toEqual(['faulty', 'honest', 'abstain', undefined]);
  expect(parseFingerprint('')).toBe(ZERO_FINGERPRINT);
  expect(parseFingerprint(`0x${'AB'.repeat(32)}`)).toBe(`0x${'ab'.repeat(32)}`);
  expect(() => parseFingerprint('0x1234')).toThrow(/32 bytes/);
});

test('salts are random 32-byte values', () => {
  const a = randomSalt(), b = randomSalt();
  expect(a).toMatch(/^0x[0-9a-f]{64}$/);
  expect(a).not.toBe(b);
});

test('votes survive a save / load round trip, keyed by chain, court, dispute and auditor', () => {
  const store = new Map<string, string>();
  const kv = { getItem: (k: string) => store.get(k) ?? null, setItem: (k: string, v: string) => void store.set(k, v) };
  const court = '0xCf7Ed3AccA5a467e9e704C703E8D87F634fB0Fc9';
  const auditor = '0x70997970C51812dc3A010C7d01b50e0d17dc79C8';
  const vote: SavedVote = { disputeId: '2', auditor, verdict: 'abstain', fingerprint: ZERO_FINGERPRINT, salt: randomSalt(), commitment: '0x00', court, chainId: 31337, savedAt: 'now' };
  saveVote(kv, vote);
  expect(loadVote(kv, 31337, court, 2n, auditor)).toEqual(vote);
  expect(loadVote(kv, 31337, court, 3n, auditor)).toBeNull();
  expect(loadVote(kv, 100, court, 2n, auditor)).toBeNull();
  expect(parseVoteBackup(JSON.stringify(vote))).toEqual(vote);
  expect(() => parseVoteBackup('{"salt": "0x12"}')).toThrow(/not a Pollen vote backup/);
  // a backup from before fingerprinted votes cannot be revealed on this court
  const old = { ...vote, verdict: undefined, fingerprint: undefined, faulty: true };
  expect(() => parseVoteBackup(JSON.stringify(old))).toThrow(/verdict/);
});
