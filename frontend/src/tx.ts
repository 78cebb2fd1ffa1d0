// Every write goes simulate → sign in the wallet → wait for the receipt, with a visible state
// at each step: simulating, waiting for the wallet, pending, confirmed or failed (in plain words).
import { createWalletClient, custom, type Abi, type Address, type Hex, type PublicClient } from 'viem';
import { allErrorsAbi, errorNotices } from './contracts';
import { explainError, PlainError, type Explained } from './errors';
import type { Wallet } from './wallet';
import { chainName, toViemChain, type ChainInfo } from './chains';

export type TxPhase = 'simulating' | 'signing' | 'pending' | 'confirmed' | 'failed';

export interface TxEntry {
  id: number;
  title: string;
  phase: TxPhase;
  hash?: Hex;
  block?: bigint;
  error?: Explained;
}

export interface TxRequest {
  title: string;
  address: Address;
  abi: Abi | readonly unknown[];
  functionName: string;
  args?: readonly unknown[];
  value?: bigint;
  /** Called at every phase change, e.g. to show the state next to the form's button. */
  onUpdate?: (e: TxEntry) => void;
}

export class TxRunner {
  entries: TxEntry[] = [];
  private listeners = new Set<(e: TxEntry) => void>();
  private nextId = 1;

  constructor(
    private client: PublicClient,
    private wallet: Wallet,
    private chain: ChainInfo,
    private afterConfirm: () => Promise<void>,
  ) {}

  onUpdate(fn: (e: TxEntry) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private watchers = new Map<number, (e: TxEntry) => void>();

  private update(e: TxEntry, patch: Partial<TxEntry>): void {
    Object.assign(e, patch);
    for (const fn of this.listeners) fn(e);
    this.watchers.get(e.id)?.(e);
  }

  /** Run one transaction; resolves to the entry (never throws: failures land in entry.error). */
  async send(req: TxRequest): Promise<TxEntry> {
    const entry: TxEntry = { id: this.nextId++, title: req.title, phase: 'simulating' };
    this.entries.unshift(entry);
    if (req.onUpdate) this.watchers.set(entry.id, req.onUpdate);
    this.update(entry, {});
    const ctx = { symbol: this.chain.symbol, notices: errorNotices, abi: allErrorsAbi };
    try {
      const s = this.wallet.state;
      if (s.kind !== 'connected') throw new PlainError('NotConnected', 'Connect your wallet first (button at the top right).');
      if (s.chainId !== this.chain.id) {
        throw new PlainError('WrongNetwork', `Your wallet is on ${chainName(s.chainId)}; switch it to ${this.chain.name} first (banner at the top).`);
      }
      // The ABI carries every contract's errors, so a revert from a nested call is named too.
      const abi = [...(req.abi as Abi), ...allErrorsAbi] as Abi;
      const { request } = await this.client.simulateContract({
        address: req.address, abi, functionName: req.functionName, args: req.args ?? [], value: req.value, account: s.account,
      } as Parameters<PublicClient['simulateContract']>[0]);
      this.update(entry, { phase: 'signing' });
      const walletClient = createWalletClient({
        account: s.account,
        chain: toViemChain(this.chain),
        transport: custom(this.wallet.provider!),
      });
      const hash = await walletClient.writeContract(request as Parameters<typeof walletClient.writeContract>[0]);
      this.update(entry, { phase: 'pending', hash });
      const receipt = await this.client.waitForTransactionReceipt({ hash, pollingInterval: 500 });
      if (receipt.status !== 'success') {
        throw new PlainError('RevertedOnChain', `The transaction was mined in block ${receipt.blockNumber} but reverted. Nothing changed; check the inputs and try again.`);
      }
      this.update(entry, { phase: 'confirmed', block: receipt.blockNumber });
      await this.afterConfirm();
    } catch (err) {
      this.update(entry, { phase: 'failed', error: explainError(err, ctx) });
    }
    this.watchers.delete(entry.id);
    return entry;
  }
}

export function phaseText(e: TxEntry): string {
  switch (e.phase) {
    case 'simulating': return 'Checking the transaction…';
    case 'signing': return 'Confirm it in your wallet…';
    case 'pending': return 'Sent — waiting to be mined…';
    case 'confirmed': return `Confirmed in block ${e.block}`;
    case 'failed': return 'Failed';
  }
}
