import { expect, test } from 'vitest';
import { keccak256, type Hex } from 'viem';
import { commitmentOf, loadVote, parseVoteBackup, randomSalt, saveVote, type SavedVote } from '../src/votes';

test('commitment is keccak256 of the ABI-encoded (disputeId, auditor, faulty, salt)', () => {
  const auditor = '0x70997970C51812dc3A010C7d01b50e0d17dc79C8';
  const salt = `0x${'5a'.repeat(32)}` as Hex;
  const word = (hex: string) => hex.replace(/^0x/, '').padStart(64, '0');
  const manual = keccak256(`0x${word('7')}${word(auditor.toLowerCase())}${word('1')}${word(salt)}`);
  expect(commitmentOf(7n, auditor, true, salt)).toBe(manual);
  expect(commitmentOf(7n, auditor, false, salt)).not.toBe(manual);
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
  const vote: SavedVote = { disputeId: '2', auditor, faulty: true, salt: randomSalt(), commitment: '0x00', court, chainId: 31337, savedAt: 'now' };
  saveVote(kv, vote);
  expect(loadVote(kv, 31337, court, 2n, auditor)).toEqual(vote);
  expect(loadVote(kv, 31337, court, 3n, auditor)).toBeNull();
  expect(loadVote(kv, 100, court, 2n, auditor)).toBeNull();
  expect(parseVoteBackup(JSON.stringify(vote))).toEqual(vote);
  expect(() => parseVoteBackup('{"salt": "0x12"}')).toThrow(/not a Pollen vote backup/);
});
