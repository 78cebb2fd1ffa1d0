// Bits several views share: badges, address chips, empty states, IPFS links.
import { h } from '../dom';
import { shortAddress } from '../format';
import { cidUrl } from '../ipfs';

export function badge(text: string, tone: 'ok' | 'warn' | 'bad' | 'info' | 'muted'): HTMLElement {
  return h('span', { class: `badge ${tone}` }, text);
}

export function addr(a: string, you?: string | null): HTMLElement {
  const mine = you && a.toLowerCase() === you.toLowerCase();
  return h('span', { class: 'addr mono', title: a }, shortAddress(a), mine ? h('span', { class: 'you' }, 'you') : null);
}

export function empty(title: string, hint: string): HTMLElement {
  return h('div', { class: 'empty' }, h('div', { class: 'empty-title' }, title), h('div', { class: 'empty-hint' }, hint));
}

export function cidLink(gateway: string, cid: string): HTMLElement {
  if (!cid) return h('span', { class: 'muted' }, '—');
  const short = cid.length > 22 ? `${cid.slice(0, 12)}…${cid.slice(-6)}` : cid;
  return h('a', { class: 'mono cid', href: cidUrl(gateway, cid), target: '_blank', rel: 'noopener', title: cid }, short);
}

export function stat(label: string, value: string | HTMLElement, id?: string): HTMLElement {
  return h('div', { class: 'stat', id }, h('div', { class: 'stat-value' }, value), h('div', { class: 'stat-label' }, label));
}

export function you(ctx: { wallet: { state: { kind: string; account?: string } } }): string | null {
  const s = ctx.wallet.state;
  return s.kind === 'connected' ? (s as { account: string }).account : null;
}
