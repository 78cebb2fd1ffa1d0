// The networks Pollen deploys to, as viem defines them (name, native currency, RPC, explorer),
// and the EIP-3085 / EIP-3326 parameters a wallet needs to add or switch to one.
import { defineChain, type Chain } from 'viem';
import { anvil, filecoin, filecoinCalibration, gnosis, gnosisChiado } from 'viem/chains';
import type { Deployment } from './deployment';

export interface ChainInfo {
  id: number;
  name: string;
  /** Native currency symbol, e.g. ETH, xDAI, FIL, tFIL. */
  symbol: string;
  currencyName: string;
  decimals: number;
  rpcUrls: string[];
  explorer?: string;
}

/** The chains the wallet picker offers, in viem's definitions (order: dev, testnets, mainnets). */
export const VIEM_CHAINS: readonly Chain[] = [anvil, gnosisChiado, gnosis, filecoinCalibration, filecoin];

export function chainInfoOf(c: Chain): ChainInfo {
  return {
    id: c.id,
    name: c.name,
    symbol: c.nativeCurrency.symbol,
    currencyName: c.nativeCurrency.name,
    decimals: c.nativeCurrency.decimals,
    rpcUrls: [...c.rpcUrls.default.http],
    explorer: c.blockExplorers?.default.url,
  };
}

export const KNOWN_CHAINS: readonly ChainInfo[] = VIEM_CHAINS.map(chainInfoOf);

export function chainById(id: number | null | undefined): ChainInfo | undefined {
  return KNOWN_CHAINS.find((c) => c.id === id);
}

/** The chain a deployment lives on: viem's definition with the deployment's own RPC first;
 *  an id viem's list here lacks works from the deployment file alone (its rpc, ETH). */
export function chainOfDeployment(d: Deployment): ChainInfo {
  const known = chainById(d.chainId);
  if (known) return { ...known, rpcUrls: [d.rpc, ...known.rpcUrls.filter((u) => u !== d.rpc)] };
  return {
    id: d.chainId, name: d.network || `Chain ${d.chainId}`, symbol: 'ETH', currencyName: 'Ether', decimals: 18, rpcUrls: [d.rpc],
  };
}

export function chainName(id: number | null | undefined): string {
  if (id == null) return 'unknown network';
  return chainById(id)?.name ?? `chain ${id}`;
}

/** What the header shows for a chain: "Gnosis Chiado · xDAI". */
export const chainLabel = (c: ChainInfo) => `${c.name} · ${c.symbol}`;

export const toHexChainId = (id: number) => `0x${id.toString(16)}`;

/** EIP-3085 wallet_addEthereumChain parameters for a chain. */
export function addChainParams(c: ChainInfo) {
  return {
    chainId: toHexChainId(c.id),
    chainName: c.name,
    rpcUrls: c.rpcUrls,
    nativeCurrency: { name: c.currencyName, symbol: c.symbol, decimals: c.decimals },
    blockExplorerUrls: c.explorer ? [c.explorer] : undefined,
  };
}

/** A viem chain for a wallet client: the chain's definition with the deployment's RPC. */
export function toViemChain(c: ChainInfo): Chain {
  return defineChain({
    id: c.id, name: c.name,
    nativeCurrency: { name: c.currencyName, symbol: c.symbol, decimals: c.decimals },
    rpcUrls: { default: { http: c.rpcUrls } },
    blockExplorers: c.explorer ? { default: { name: c.name, url: c.explorer } } : undefined,
  });
}
