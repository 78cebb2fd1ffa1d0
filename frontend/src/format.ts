// Small, pure formatting helpers shared by every view.
import { formatUnits, getAddress } from 'viem';

/** 0x1234…abcd (checksummed), or "—" for the zero address / nothing. */
export function shortAddress(address: string | undefined | null): string {
  if (!address || /^0x0{40}$/i.test(address)) return '—';
  const a = getAddress(address);
  return `${a.slice(0, 6)}…${a.slice(-4)}`;
}

/** An amount of wei as a readable amount of the chain's currency (its symbol from viem's chain
 *  definition: ETH, xDAI, FIL, tFIL), e.g. "1.5 ETH", "0.0001 xDAI". */
export function formatAmount(wei: bigint, symbol: string, maxDecimals = 4): string {
  const negative = wei < 0n;
  const text = formatUnits(negative ? -wei : wei, 18);
  const [whole, frac = ''] = text.split('.');
  const trimmed = frac.slice(0, maxDecimals).replace(/0+$/, '');
  let out = trimmed ? `${groupThousands(whole)}.${trimmed}` : groupThousands(whole);
  if (out === '0' && wei !== 0n) out = `<0.${'0'.repeat(maxDecimals - 1)}1`;
  return `${negative ? '-' : ''}${out} ${symbol}`;
}

function groupThousands(digits: string): string {
  return digits.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

/** A duration in seconds as "2d 3h", "5h 12m", "4m 10s", "12s". */
export function formatDuration(seconds: number | bigint): string {
  let s = Math.max(0, Math.floor(Number(seconds)));
  const d = Math.floor(s / 86400); s -= d * 86400;
  const h = Math.floor(s / 3600); s -= h * 3600;
  const m = Math.floor(s / 60); s -= m * 60;
  if (d) return h ? `${d}d ${h}h` : `${d}d`;
  if (h) return m ? `${h}h ${m}m` : `${h}h`;
  if (m) return s ? `${m}m ${s}s` : `${m}m`;
  return `${s}s`;
}

/** "in 3h 2m" / "ready now" for a unix timestamp relative to `now` (seconds). */
export function countdown(target: number | bigint, now: number): string {
  const left = Number(target) - now;
  return left <= 0 ? 'ready now' : `in ${formatDuration(left)}`;
}

/** Tolerance stored as millionths → "0.1 %" (max relative L2 error). */
export function formatTolerance(micros: number | bigint): string {
  const pct = Number(micros) / 1e4;
  return `${Number(pct.toPrecision(3))} %`;
}

/** Unix seconds → "2026-11-24 07:03:25 UTC". */
export function formatTimestamp(seconds: number | bigint): string {
  const n = Number(seconds);
  if (!n) return '—';
  return new Date(n * 1000).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
}

/** A block span [first, last) as "blocks 0–11" (inclusive for people). */
export function formatSpan(first: number, last: number): string {
  return last - first === 1 ? `block ${first}` : `blocks ${first}–${last - 1}`;
}

/** Parse a decimal amount typed by a person ("1.5") into wei; throws a plain-words error. */
export function parseAmount(text: string): bigint {
  const t = text.trim();
  if (!/^\d+(\.\d+)?$/.test(t)) throw new Error(`"${text}" is not an amount: type a number like 1.5`);
  const [whole, frac = ''] = t.split('.');
  if (frac.length > 18) throw new Error('Amounts have at most 18 decimals');
  const wei = BigInt(whole) * 10n ** 18n + BigInt(frac.padEnd(18, '0'));
  if (wei === 0n) throw new Error('The amount must be more than zero');
  return wei;
}
