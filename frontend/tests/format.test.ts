import { expect, test } from 'vitest';
import { chainById } from '../src/chains';
import { countdown, formatAmount, formatDuration, formatSpan, formatTimestamp, formatTolerance, parseAmount, shortAddress } from '../src/format';

test('formatAmount trims, groups and keeps tiny amounts visible', () => {
  expect(formatAmount(10n ** 18n, 'ETH')).toBe('1 ETH');
  expect(formatAmount(15n * 10n ** 17n, 'xDAI')).toBe('1.5 xDAI');
  expect(formatAmount(9_997_199_400_000_000_000_000n, 'ETH')).toBe('9,997.1994 ETH');
  expect(formatAmount(66_666_666_666_666_666n, 'ETH')).toBe('0.0666 ETH');
  expect(formatAmount(1n, 'ETH')).toBe('<0.0001 ETH');
  expect(formatAmount(0n, 'ETH')).toBe('0 ETH');
  expect(formatAmount(-(10n ** 18n), 'ETH')).toBe('-1 ETH');
});

test('amounts carry the currency of the chain the deployment lives on', () => {
  const amount = (id: number) => formatAmount(25n * 10n ** 17n, chainById(id)!.symbol);
  expect(amount(31337)).toBe('2.5 ETH');
  expect(amount(10200)).toBe('2.5 xDAI');
  expect(amount(100)).toBe('2.5 XDAI');
  expect(amount(314)).toBe('2.5 FIL');
  expect(amount(314159)).toBe('2.5 tFIL');
});

test('parseAmount reads decimals exactly and explains bad input', () => {
  expect(parseAmount('1.5')).toBe(15n * 10n ** 17n);
  expect(parseAmount(' 3 ')).toBe(3n * 10n ** 18n);
  expect(parseAmount('0.000000000000000001')).toBe(1n);
  expect(() => parseAmount('abc')).toThrow(/not an amount/);
  expect(() => parseAmount('0')).toThrow(/more than zero/);
  expect(() => parseAmount('1.0000000000000000001')).toThrow(/18 decimals/);
});

test('durations and countdowns', () => {
  expect(formatDuration(0)).toBe('0s');
  expect(formatDuration(59)).toBe('59s');
  expect(formatDuration(125)).toBe('2m 5s');
  expect(formatDuration(3600 * 5 + 60 * 12)).toBe('5h 12m');
  expect(formatDuration(2 * 86400)).toBe('2d');
  expect(formatDuration(2 * 86400 + 3 * 3600)).toBe('2d 3h');
  expect(countdown(1000, 1000)).toBe('ready now');
  expect(countdown(1090, 1000)).toBe('in 1m 30s');
});

test('addresses, spans, tolerance, timestamps', () => {
  expect(shortAddress('0x70997970c51812dc3a010c7d01b50e0d17dc79c8')).toBe('0x7099…79C8');
  expect(shortAddress('0x0000000000000000000000000000000000000000')).toBe('—');
  expect(formatSpan(0, 4)).toBe('blocks 0–3');
  expect(formatSpan(5, 6)).toBe('block 5');
  expect(formatTolerance(10_000)).toBe('1 %');
  expect(formatTolerance(5_000)).toBe('0.5 %');
  expect(formatTimestamp(0)).toBe('—');
  expect(formatTimestamp(1_795_504_421)).toBe('2026-11-24 07:13:41 UTC');
});
