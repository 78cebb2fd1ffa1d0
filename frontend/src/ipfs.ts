// Links to IPFS content through a configurable HTTP gateway (?gateway=, saved in this browser).
const KEY = 'pollen.ipfsGateway';
export const DEFAULT_GATEWAY = 'https://ipfs.io/ipfs/';

export function normalizeGateway(url: string): string {
  const u = url.trim();
  if (!/^https?:\/\//.test(u)) throw new Error('The gateway must be an http(s) URL, e.g. http://127.0.0.1:8080/ipfs/');
  return u.endsWith('/') ? u : `${u}/`;
}

export function currentGateway(fallback?: string): string {
  const fromQuery = new URLSearchParams(window.location.search).get('gateway');
  const stored = localStorage.getItem(KEY);
  try {
    return normalizeGateway(fromQuery ?? stored ?? fallback ?? DEFAULT_GATEWAY);
  } catch {
    return DEFAULT_GATEWAY;
  }
}

export function setGateway(url: string): void {
  localStorage.setItem(KEY, normalizeGateway(url));
}

export function cidUrl(gateway: string, cid: string): string {
  return `${gateway}${encodeURIComponent(cid)}`;
}
