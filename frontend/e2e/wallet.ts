// A test wallet injected as window.ethereum: the EIP-1193 interface MetaMask gives a page, with
// the key held outside the page (in this Node process, like an extension's background) and
// transactions signed locally with that key, then sent raw to anvil.
import type { Page } from 'playwright-core';
import { createWalletClient, http, type Hex } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';

export interface TestWalletOptions {
  privateKey: Hex;
  rpc: string; // the anvil node the wallet talks to
  chainId: number; // anvil's chain id
  startChainId?: number; // the network the wallet is on when the page loads (default chainId)
}

interface RpcError { code: number; message: string; data?: unknown }

export class TestWallet {
  readonly account;
  chainId: number;
  connected = false;
  /** Every method the page asked for, in order (assertions on the wallet's side). */
  calls: string[] = [];
  /** When set, the next transaction request is rejected as a user would in MetaMask (4001). */
  rejectNext = false;
  /** When set to n, n more transactions go through, then the next one is rejected (4001). */
  rejectAfter: number | null = null;
  private page: Page | null = null;
  private knownChains = new Set<number>();
  private walletClient;

  constructor(private opts: TestWalletOptions) {
    this.account = privateKeyToAccount(opts.privateKey);
    this.chainId = opts.startChainId ?? opts.chainId;
    this.knownChains.add(opts.chainId).add(this.chainId);
    const chain = {
      id: opts.chainId, name: 'anvil', nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 },
      rpcUrls: { default: { http: [opts.rpc] } },
    };
    this.walletClient = createWalletClient({ account: this.account, chain, transport: http(opts.rpc) });
  }

  async install(page: Page): Promise<void> {
    this.page = page;
    await page.exposeFunction('__pollenWalletRequest', (json: string) => this.handle(JSON.parse(json)));
    await page.addInitScript(() => {
      const listeners: Record<string, Array<(arg: unknown) => void>> = {};
      const w = window as unknown as Record<string, unknown>;
      w.__pollenWalletEmit = (event: string, arg: unknown) => (listeners[event] ?? []).forEach((fn) => fn(arg));
      w.ethereum = {
        isMetaMask: true,
        async request({ method, params }: { method: string; params?: unknown[] }) {
          const call = w.__pollenWalletRequest as (json: string) => Promise<string>;
          const reply = JSON.parse(await call(JSON.stringify({ method, params: params ?? [] })));
          if (reply.error) throw Object.assign(new Error(reply.error.message), { code: reply.error.code, data: reply.error.data });
          return reply.result;
        },
        on(event: string, fn: (arg: unknown) => void) { (listeners[event] ??= []).push(fn); },
        removeListener(event: string, fn: (arg: unknown) => void) {
          listeners[event] = (listeners[event] ?? []).filter((f) => f !== fn);
        },
      };
    });
  }

  private async emit(event: string, arg: unknown): Promise<void> {
    await this.page?.evaluate(([e, a]) => (window as unknown as { __pollenWalletEmit: (e: string, a: unknown) => void }).__pollenWalletEmit(e as string, a), [event, arg]);
  }

  private async handle({ method, params }: { method: string; params: unknown[] }): Promise<string> {
    this.calls.push(method);
    try {
      return JSON.stringify({ result: await this.dispatch(method, params) });
    } catch (err) {
      const e = err as RpcError & { cause?: RpcError; shortMessage?: string };
      const inner = e.cause && typeof e.cause.code === 'number' ? e.cause : e;
      return JSON.stringify({ error: { code: inner.code ?? -32603, message: e.shortMessage ?? e.message, data: inner.data } });
    }
  }

  private async dispatch(method: string, params: unknown[]): Promise<unknown> {
    const hex = (n: number) => `0x${n.toString(16)}`;
    switch (method) {
      case 'eth_requestAccounts':
        this.connected = true;
        setTimeout(() => void this.emit('accountsChanged', [this.account.address]), 0);
        return [this.account.address];
      case 'eth_accounts':
        return this.connected ? [this.account.address] : [];
      case 'eth_chainId':
        return hex(this.chainId);
      case 'net_version':
        return String(this.chainId);
      case 'wallet_switchEthereumChain': {
        const id = Number((params[0] as { chainId: string }).chainId);
        if (!this.knownChains.has(id)) throw { code: 4902, message: `Unrecognized chain ID ${hex(id)}. Try adding the chain using wallet_addEthereumChain first.` };
        this.chainId = id;
        await this.emit('chainChanged', hex(id));
        return null;
      }
      case 'wallet_addEthereumChain':
        this.knownChains.add(Number((params[0] as { chainId: string }).chainId));
        return null;
      case 'eth_sendTransaction': {
        if (this.rejectAfter === 0) {
          this.rejectAfter = null;
          this.rejectNext = true;
        } else if (this.rejectAfter !== null) {
          this.rejectAfter--;
        }
        if (this.rejectNext) {
          this.rejectNext = false;
          throw { code: 4001, message: 'MetaMask Tx Signature: User denied transaction signature.' };
        }
        if (!this.connected) throw { code: 4100, message: 'The requested account has not been authorized by the user.' };
        if (this.chainId !== this.opts.chainId) throw { code: -32603, message: `wallet is on chain ${this.chainId}, cannot reach it` };
        const tx = params[0] as { to: Hex; data?: Hex; value?: Hex; gas?: Hex };
        return this.walletClient.sendTransaction({
          to: tx.to, data: tx.data, value: tx.value ? BigInt(tx.value) : undefined, gas: tx.gas ? BigInt(tx.gas) : undefined,
        });
      }
      case 'eth_signTypedData_v4': {
        const data = JSON.parse(params[1] as string);
        delete data.types.EIP712Domain;
        return this.account.signTypedData(data);
      }
      case 'personal_sign':
        return this.account.signMessage({ message: { raw: params[0] as Hex } });
      default:
        return this.forward(method, params);
    }
  }

  /** Everything else (reads) goes to the node, as MetaMask does through its RPC. */
  private async forward(method: string, params: unknown[]): Promise<unknown> {
    const res = await fetch(this.opts.rpc, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
    });
    const body = await res.json();
    if (body.error) throw body.error;
    return body.result;
  }
}
