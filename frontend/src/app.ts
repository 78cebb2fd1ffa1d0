// The shell: header (navigation, network, wallet), status banners, the current view, tx toasts.
import { createPublicClient, http, type PublicClient } from 'viem';
import { ChainData } from './chainData';
import { chainLabel, chainName, chainOfDeployment, KNOWN_CHAINS, type ChainInfo } from './chains';
import { contractsOf, type Contracts } from './contracts';
import { deploymentSource, loadDeployment, offeredNetworks, type Deployment, type OfferedNetwork } from './deployment';
import { fill, h } from './dom';
import { explainError } from './errors';
import { shortAddress } from './format';
import { currentGateway } from './ipfs';
import { phaseText, TxRunner, type TxEntry } from './tx';
import { Wallet } from './wallet';
import { swarmView } from './views/swarm';
import { modelsView } from './views/models';
import { disputesView } from './views/disputes';
import { accountView } from './views/account';
import { paymentsView } from './views/payments';

export interface Ctx {
  deployment: Deployment;
  chain: ChainInfo;
  client: PublicClient;
  c: Contracts;
  data: ChainData;
  wallet: Wallet;
  tx: TxRunner;
  gateway: () => string;
  /** Explain an error in this deployment's currency. */
  explain: (err: unknown) => { name: string; message: string };
}

export interface View {
  el: HTMLElement;
  update(): void;
}

const ROUTES: Array<{ path: string; label: string; make: (ctx: Ctx) => View }> = [
  { path: 'swarm', label: 'Swarm', make: swarmView },
  { path: 'models', label: 'Models', make: modelsView },
  { path: 'disputes', label: 'Disputes', make: disputesView },
  { path: 'payments', label: 'Payments', make: paymentsView },
  { path: 'account', label: 'My account', make: accountView },
];

/** The deployments the server offers; picking one reloads the page with ?network=NAME. */
function networkPicker(offered: OfferedNetwork[]): HTMLSelectElement {
  const current = deploymentSource(location.search).network;
  const label = (n: OfferedNetwork) => (n.chainId ? `${n.name} (${chainName(n.chainId)})` : n.name);
  const options = offered.map((n) => h('option', { value: n.name, selected: n.name === current }, label(n)));
  if (!current || !offered.some((n) => n.name === current)) options.unshift(h('option', { value: '', selected: true, disabled: true }, 'this deployment'));
  return h('select', {
    class: 'network-picker', id: 'network-picker', title: 'Show another deployment (reloads the page)',
    onchange: (e: Event) => { location.search = `?network=${encodeURIComponent((e.target as HTMLSelectElement).value)}`; },
  }, ...options);
}

export async function startApp(root: HTMLElement): Promise<void> {
  const deployment = await loadDeployment();
  const chain = chainOfDeployment(deployment);
  const client = createPublicClient({ transport: http(deployment.rpc), pollingInterval: 1000 }) as PublicClient;
  const c = contractsOf(deployment);
  const data = new ChainData(client, deployment, c);
  const wallet = new Wallet();
  const tx = new TxRunner(client, wallet, chain, () => data.refresh());
  const ctx: Ctx = {
    deployment, chain, client, c, data, wallet, tx,
    gateway: () => currentGateway(deployment.ipfsGateway),
    explain: (err) => explainError(err, { symbol: chain.symbol }),
  };

  const views = new Map<string, View>();
  const nav = h('nav', { class: 'tabs' });
  const walletBox = h('div', { class: 'wallet' });
  const netBox = h('div', { class: 'network' });
  const siteBox = h('div', { class: 'network site' }, h('span', { class: 'network-name', id: 'network-name', title: `Deployment “${deployment.network}”, chain ${chain.id}` }, chainLabel(chain)));
  const banners = h('div', { class: 'banners' });
  const main = h('main');
  const toasts = h('div', { class: 'toasts', 'aria-live': 'polite' });
  fill(root,
    h('header', null, h('a', { class: 'brand', href: '#/swarm' }, h('span', { class: 'logo' }), 'Pollen'), nav, siteBox, netBox, walletBox),
    banners, main, toasts,
    h('footer', null, `Deployment “${deployment.network}” · chain ${deployment.chainId} · RPC ${deployment.rpc}`),
  );

  const current = () => {
    const path = location.hash.replace(/^#\/?/, '') || 'swarm';
    return ROUTES.find((r) => r.path === path) ?? ROUTES[0];
  };

  function render(): void {
    const route = current();
    fill(nav, ROUTES.map((r) => h('a', { href: `#/${r.path}`, class: r === route ? 'active' : '' }, r.label)));
    let view = views.get(route.path);
    if (!view) {
      view = route.make(ctx);
      views.set(route.path, view);
    }
    if (main.firstChild !== view.el) fill(main, view.el);
    document.body.dataset.view = route.path;
    view.update();
  }

  const head = h('span', { class: 'head', title: 'Latest block' }, '…');
  let pickerKey = '';

  function renderChrome(): void {
    const s = wallet.state;
    head.textContent = data.latestBlock === null ? '…' : `#${data.latestBlock}`;
    // The picker is rebuilt only when the wallet changes, so a new block never closes it.
    const key = s.kind === 'connected' ? `${s.account}:${s.chainId}` : s.kind;
    if (key !== pickerKey) {
      pickerKey = key;
      fill(netBox, chainPicker(), head);
    }
    renderWalletAndBanners();
  }

  // network: the deployment's chain, the chain picker (asks the wallet to switch) and the head block
  function chainPicker(): HTMLSelectElement {
    const s = wallet.state;
    const picker = h('select', {
      class: 'chain-picker', title: 'Ask your wallet to switch network',
      disabled: s.kind !== 'connected',
      onchange: async (e: Event) => {
        const id = Number((e.target as HTMLSelectElement).value);
        const target = id === chain.id ? chain : KNOWN_CHAINS.find((k) => k.id === id)!;
        try {
          await wallet.switchTo(target);
        } catch (err) {
          showError('Network switch failed', err);
          pickerKey = ''; // show the wallet's real network again
          renderChrome();
        }
      },
    }, ...(KNOWN_CHAINS.some((k) => k.id === chain.id) ? KNOWN_CHAINS : [chain, ...KNOWN_CHAINS]).map((k) =>
      h('option', { value: String(k.id), selected: s.kind === 'connected' ? s.chainId === k.id : k.id === chain.id }, k.name)));
    if (s.kind === 'connected' && !KNOWN_CHAINS.some((k) => k.id === s.chainId) && s.chainId !== chain.id) {
      picker.prepend(h('option', { value: String(s.chainId), selected: true }, `Chain ${s.chainId}`));
    }
    return picker;
  }

  let chromeKey = '';

  function renderWalletAndBanners(): void {
    const s = wallet.state;
    const key = `${pickerKey}|${data.error}`;
    if (key === chromeKey) return; // nothing changed: keep the buttons under the user's pointer
    chromeKey = key;

    if (s.kind === 'no-wallet') fill(walletBox, h('span', { class: 'muted' }, 'No wallet'));
    else if (s.kind === 'connecting') fill(walletBox, h('button', { disabled: true }, 'Connecting…'));
    else if (s.kind === 'disconnected') fill(walletBox, h('button', { class: 'primary', id: 'connect', onclick: connect }, 'Connect wallet'));
    else fill(walletBox, h('span', { class: 'account-chip', id: 'account-chip', title: s.account }, h('span', { class: 'dot' }), shortAddress(s.account)));

    const notes: HTMLElement[] = [];
    if (data.error) notes.push(h('div', { class: 'banner error' }, data.error));
    if (s.kind === 'no-wallet') {
      notes.push(h('div', { class: 'banner info' }, 'No wallet found: you can look around, but to stake, register, dispute or vote install MetaMask (or another EIP-1193 wallet) and reload.'));
    } else if (s.kind === 'connected' && s.chainId !== chain.id) {
      notes.push(h('div', { class: 'banner warn', id: 'wrong-network' },
        `Your wallet is on ${chainName(s.chainId)}, but this deployment lives on ${chain.name}. `,
        h('button', { class: 'primary', id: 'switch-network', onclick: () => wallet.switchTo(chain).catch((e) => showError('Network switch failed', e)) }, `Switch to ${chain.name}`)));
    }
    fill(banners, notes);
  }

  async function connect(): Promise<void> {
    try { await wallet.connect(); } catch (err) { showError('Connecting failed', err); }
  }

  function showError(title: string, err: unknown): void {
    const e = ctx.explain(err);
    const el = h('div', { class: 'toast failed' }, h('strong', null, title), h('div', { class: 'err-name' }, e.name), h('div', null, e.message),
      h('button', { class: 'link', onclick: () => el.remove() }, 'Dismiss'));
    toasts.prepend(el);
  }

  const toastEls = new Map<number, HTMLElement>();
  tx.onUpdate((e: TxEntry) => {
    let el = toastEls.get(e.id);
    if (!el) {
      el = h('div');
      toastEls.set(e.id, el);
      toasts.prepend(el);
    }
    el.className = `toast tx ${e.phase}`;
    el.dataset.phase = e.phase;
    fill(el,
      h('strong', null, e.title),
      h('div', { class: 'phase' }, phaseText(e)),
      e.hash ? h('div', { class: 'hash mono' }, `tx ${e.hash.slice(0, 10)}…${e.hash.slice(-6)}`) : null,
      e.error ? h('div', { class: 'err' }, h('span', { class: 'err-name' }, e.error.name), ' — ', e.error.message) : null,
      e.phase === 'confirmed' || e.phase === 'failed' ? h('button', { class: 'link', onclick: () => el!.remove() }, 'Dismiss') : null);
    if (e.phase === 'confirmed') setTimeout(() => el!.remove(), 6000);
    if (e.phase === 'failed') setTimeout(() => el!.remove(), 30000);
  });

  void offeredNetworks().then((offered) => { if (offered.length) siteBox.append(networkPicker(offered)); });
  wallet.onChange(() => { renderChrome(); render(); });
  data.onChange(() => { renderChrome(); render(); });
  window.addEventListener('hashchange', render);
  setInterval(() => views.get(current().path)?.update(), 1000); // countdowns tick between blocks
  renderChrome();
  render();
  data.start();
}
