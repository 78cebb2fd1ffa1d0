// Networks the UI knows how to ask a wallet to switch to (EIP-3085 / EIP-3326 parameters).
import type { Deployment } from './deployment';

export interface ChainInfo {
  id: number;
  name: string;
  symbol: string;
  rpcUrls: string[];
  explorer?: string;
}

export const KNOWN_CHAINS: ChainInfo[] = [
  { id: 31337, name: 'Anvil (local)', symbol: 'ETH', rpcUrls: ['http://127.0.0.1:8545'] },
  { id: 10200, name: 'Gnosis Chiado', symbol: 'xDAI', rpcUrls: ['https://rpc.chiadochain.net'], explorer: 'https://gnosis-chiado.blockscout.com' },
  { id: 100, name: 'Gnosis', symbol: 'xDAI', rpcUrls: ['https://rpc.gnosischain.com'], explorer: 'https://gnosis.blockscout.com' },
];

/** The chain a deployment lives on: a known chain with the deployment's own RPC first. */
export function chainOfDeployment(d: Deployment): ChainInfo {
  const known = KNOWN_CHAINS.find((c) => c.id === d.chainId);
  if (known) return { ...known, rpcUrls: [d.rpc, ...known.rpcUrls.filter((u) => u !== d.rpc)] };
  return { id: d.chainId, name: d.network || `Chain ${d.chainId}`, symbol: 'ETH', rpcUrls: [d.rpc] };
}

export function chainName(id: number | null | undefined): string {
  if (id == null) return 'unknown network';
  return KNOWN_CHAINS.find((c) => c.id === id)?.name ?? `chain ${id}`;
}

export const toHexChainId = (id: number) => `0x${id.toString(16)}`;
