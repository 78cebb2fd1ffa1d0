// Models: each model's versions (manifest, parent, blocks, tolerance, deprecation) and adapters.
import type { Ctx, View } from '../app';
import type { ModelInfo, VersionInfo } from '../chainData';
import { fill, h } from '../dom';
import { formatTolerance } from '../format';
import { setGateway } from '../ipfs';
import { addr, badge, cidLink, empty } from './common';

export function modelsView(ctx: Ctx): View {
  const el = h('section', { class: 'view models' });
  const gatewayInput = h('input', { id: 'gateway', value: ctx.gateway(), size: 36, 'aria-label': 'IPFS gateway' });
  const gatewayNote = h('span', { class: 'muted small' });
  const settings = h('form', {
    class: 'gateway-form',
    onsubmit: (e: Event) => {
      e.preventDefault();
      try {
        setGateway(gatewayInput.value);
        gatewayNote.textContent = 'Saved in this browser.';
        rendered = -1;
        update();
      } catch (err) {
        gatewayNote.textContent = (err as Error).message;
      }
    },
  }, h('label', { for: 'gateway' }, 'IPFS gateway for links '), gatewayInput, h('button', { type: 'submit' }, 'Use'), ' ', gatewayNote);
  const body = h('div');
  fill(el, h('h1', null, 'Models'),
    h('p', { class: 'lede' }, 'Model versions published to ModelVersionRegistry. A version is an IPFS manifest: one content id per block shard, plus the tolerance auditors allow between honest outputs.'),
    settings, body);
  let rendered = -1;
  function update(): void {
    if (rendered === ctx.data.revision) return;
    rendered = ctx.data.revision;
    const models = [...ctx.data.models.values()].sort((a, b) => Number(a.id - b.id));
    fill(body, models.length ? models.map((m) => modelCard(ctx, m)) : ctx.data.latestBlock === null ? h('p', { class: 'muted' }, 'Reading the chain…')
      : empty('No models published yet', 'Maintainers publish with the Pollen CLI or an Ape script: createModel, then publishVersion with the manifest CID.'));
  }
  return { el, update };
}

function modelCard(ctx: Ctx, m: ModelInfo): HTMLElement {
  const gw = ctx.gateway();
  const versions = [...ctx.data.versions.values()].filter((v) => v.modelId === m.id).sort((a, b) => Number(b.id - a.id));
  const ids = new Set(versions.map((v) => v.id));
  const adapters = [...ctx.data.adapters.values()].filter((a) => ids.has(a.baseVersionId));
  const servedBy = (v: VersionInfo) => [...ctx.data.servers.values()].filter((s) => s.versionId === v.id && s.status === 'Active').length;
  return h('div', { class: 'card model', 'data-model': String(m.id) },
    h('div', { class: 'card-head' }, h('h2', null, m.name), h('span', { class: 'muted' }, `model ${m.id} · owner `), addr(m.owner)),
    h('h3', null, 'Versions'),
    versions.length ? h('table', null,
      h('thead', null, h('tr', null, ...['Version', 'Manifest', 'Parent', 'Blocks', 'Tolerance', 'Servers', 'Status'].map((t) => h('th', null, t)))),
      h('tbody', null, versions.map((v) => h('tr', { 'data-version': String(v.id) },
        h('td', null, `#${v.id}`),
        h('td', null, cidLink(gw, v.manifestCid)),
        h('td', null, v.parentId ? `#${v.parentId}` : h('span', { class: 'muted' }, 'none')),
        h('td', { class: 'num' }, String(v.numBlocks)),
        h('td', { class: 'num', title: 'max relative L2 error between honest outputs' }, formatTolerance(v.toleranceMicros)),
        h('td', { class: 'num' }, String(servedBy(v))),
        h('td', null, v.deprecated ? badge(v.supersededBy ? `deprecated → #${v.supersededBy}` : 'deprecated', 'warn') : badge('active', 'ok')))))) : empty('No versions', 'This model has no published version yet.'),
    h('h3', null, 'Adapters'),
    adapters.length ? h('table', null,
      h('thead', null, h('tr', null, ...['Adapter', 'Content', 'Base version', 'Tags', 'Publisher'].map((t) => h('th', null, t)))),
      h('tbody', null, adapters.map((a) => h('tr', null,
        h('td', null, a.name), h('td', null, cidLink(gw, a.cid)), h('td', null, `#${a.baseVersionId}`),
        h('td', null, a.tags ? a.tags.split(',').map((t) => h('span', { class: 'tag' }, t.trim())) : h('span', { class: 'muted' }, '—')),
        h('td', null, addr(a.publisher)))))) : h('p', { class: 'muted small' }, 'No adapters (LoRA weights, trained prompts) published for these versions.'));
}
