// The user's wallet through EIP-1193 (window.ethereum — MetaMask or any injected wallet).
import { getAddress, type Address, type EIP1193Provider } from 'viem';
import { addChainParams, toHexChainId, type ChainInfo } from './chains';

export type WalletState =
  | { kind: 'no-wallet' }
  | { kind: 'disconnected' }
  | { kind: 'connecting' }
  | { kind: 'connected'; account: Address; chainId: number };

declare global {
  interface Window {
    ethereum?: EIP1193Provider;
  }
}

export class Wallet {
  state: WalletState;
  private listeners = new Set<(s: WalletState) => void>();

  constructor(readonly provider: EIP1193Provider | undefined = window.ethereum) {
    this.state = provider ? { kind: 'disconnected' } : { kind: 'no-wallet' };
    if (!provider) return;
    provider.on('accountsChanged', (accounts: string[]) => void this.onAccounts(accounts));
    provider.on('chainChanged', (chainId: string) => {
      if (this.state.kind === 'connected') this.set({ ...this.state, chainId: Number(chainId) });
    });
    // Reconnect silently if the site was already authorised (eth_accounts never prompts).
    void provider.request({ method: 'eth_accounts' }).then((a) => this.onAccounts(a as string[])).catch(() => {});
  }

  onChange(fn: (s: WalletState) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private set(s: WalletState): void {
    this.state = s;
    for (const fn of this.listeners) fn(s);
  }

  private async onAccounts(accounts: string[]): Promise<void> {
    if (!this.provider) return;
    if (!accounts.length) {
      this.set({ kind: 'disconnected' });
      return;
    }
    const chainId = Number(await this.provider.request({ method: 'eth_chainId' }));
    this.set({ kind: 'connected', account: getAddress(accounts[0]), chainId });
  }

  async connect(): Promise<void> {
    if (!this.provider) throw new Error('No wallet found. Install MetaMask (or another EIP-1193 wallet) and reload.');
    this.set({ kind: 'connecting' });
    try {
      const accounts = (await this.provider.request({ method: 'eth_requestAccounts' })) as string[];
      await this.onAccounts(accounts);
    } catch (err) {
      this.set({ kind: 'disconnected' });
      throw err;
    }
  }

  /** Ask the wallet to switch networks, adding the network first if the wallet does not know it. */
  async switchTo(chain: ChainInfo): Promise<void> {
    if (!this.provider) throw new Error('No wallet found.');
    try {
      await this.provider.request({ method: 'wallet_switchEthereumChain', params: [{ chainId: toHexChainId(chain.id) }] });
    } catch (err) {
      const code = (err as { code?: number }).code ?? (err as { data?: { originalError?: { code?: number } } }).data?.originalError?.code;
      if (code !== 4902) throw err;
      await this.provider.request({
        method: 'wallet_addEthereumChain',
        params: [addChainParams(chain)],
      });
      // Some wallets switch as part of adding; asking again is harmless and covers the others.
      await this.provider.request({ method: 'wallet_switchEthereumChain', params: [{ chainId: toHexChainId(chain.id) }] });
    }
  }
}
