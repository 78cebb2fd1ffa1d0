// Models: each model's versions as a lineage (parent → child: manifest, blocks, tolerance,
// deprecation), its adapters per version, and the scores recorded on its living benchmarks.
import type { Ctx, View } from '../app';
import type { ModelInfo, VersionInfo } from '../chainData';
import { benchmarkAddress, formatScore, lineageOrder, readScores, scoreKey, verdict, type BenchmarkInfo, type Reader,
  type ScoreBook, type SubjectKind } from '../benchmarks';
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
    h('p', { class: 'lede' }, 'Model versions published to ModelVersionRegistry, each under its parent version. A version is an IPFS manifest: one content id per block shard, plus the tolerance auditors allow between honest outputs. Where the deployment has a BenchmarkRegistry, each version and adapter shows its score on the model\'s living benchmarks.'),
    settings, body);
  let rendered = -1;
  let book: ScoreBook | null = null;
  let loading = false;
  let loadedAt = -1;
  const registry = benchmarkAddress(ctx.deployment);
  // Scores are read once per chain revision (never two reads at once); the page works without them.
  function reloadScores(): void {
    if (!registry || loading || loadedAt === ctx.data.revision) return;
    loading = true;
    const revision = ctx.data.revision;
    readScores(ctx.client as unknown as Reader, registry, [...ctx.data.models.keys()], [...ctx.data.versions.values()],
      [...ctx.data.adapters.values()])
      .then((b) => { book = b; })
      .catch(() => { /* keep the last scores */ })
      .finally(() => { loading = false; loadedAt = revision; rendered = -1; update(); });
  }
  function update(): void {
    reloadScores();
    if (rendered === ctx.data.revision) return;
    rendered = ctx.data.revision;
    const models = [...ctx.data.models.values()].sort((a, b) => Number(a.id - b.id));
    fill(body, models.length ? models.map((m) => modelCard(ctx, m, book)) : ctx.data.latestBlock === null ? h('p', { class: 'muted' }, 'Reading the chain…')
      : empty('No models published yet', 'Maintainers publish with the Pollen CLI or an Ape script: createModel, then publishVersion with the manifest CID.'));
  }
  return { el, update };
}

function modelCard(ctx: Ctx, m: ModelInfo, book: ScoreBook | null): HTMLElement {
  const gw = ctx.gateway();
  const versions = [...ctx.data.versions.values()].filter((v) => v.modelId === m.id);
  const byId = new Map(versions.map((v) => [v.id, v]));
  const adapters = [...ctx.data.adapters.values()].filter((a) => byId.has(a.baseVersionId)).sort((a, b) => Number(a.id - b.id));
  const benches = book?.benchmarks.get(m.id) ?? [];
  const servedBy = (v: VersionInfo) => [...ctx.data.servers.values()].filter((s) => s.versionId === v.id && s.status === 'Active').length;
  const score = (kind: SubjectKind, id: bigint, parent: bigint) => benches.map((b) => scoreCell(book, b, kind, id, parent));
  const benchHeads = benches.map((b) => h('th', { title: `dataset ${b.datasetCid}; ${b.higherIsBetter ? 'higher' : 'lower'} is better` }, `#${b.id} ${b.metric}`));
  return h('div', { class: 'card model', 'data-model': String(m.id) },
    h('div', { class: 'card-head' }, h('h2', null, m.name), h('span', { class: 'muted' }, `model ${m.id} · owner `), addr(m.owner)),
    h('h3', null, 'Versions'),
    versions.length ? h('table', { class: 'lineage' },
      h('thead', null, h('tr', null, ...['Version', 'Manifest', 'Parent', 'Blocks', 'Tolerance', 'Servers', 'Adapters', 'Status'].map((t) => h('th', null, t)), ...benchHeads)),
      h('tbody', null, lineageOrder(versions).map(({ version: v, depth }) => h('tr', { 'data-version': String(v.id), 'data-depth': String(depth) },
        h('td', { class: 'lineage-cell', style: `padding-left: ${0.5 + 1.25 * depth}em` }, depth ? `└ #${v.id}` : `#${v.id}`),
        h('td', null, cidLink(gw, v.manifestCid)),
        h('td', null, v.parentId ? `#${v.parentId}` : h('span', { class: 'muted' }, 'none')),
        h('td', { class: 'num' }, String(v.numBlocks)),
        h('td', { class: 'num', title: 'max relative L2 error between honest outputs' }, formatTolerance(v.toleranceMicros)),
        h('td', { class: 'num' }, String(servedBy(v))),
        h('td', { class: 'num' }, String(adapters.filter((a) => a.baseVersionId === v.id).length)),
        h('td', null, v.deprecated ? badge(v.supersededBy ? `deprecated → #${v.supersededBy}` : 'deprecated', 'warn') : badge('active', 'ok')),
        ...score('version', v.id, v.parentId))))) : empty('No versions', 'This model has no published version yet.'),
    benchmarkNote(book, benches),
    h('h3', null, 'Adapters'),
    adapters.length ? h('table', null,
      h('thead', null, h('tr', null, ...['Adapter', 'Content', 'Base version', 'Tags', 'Publisher'].map((t) => h('th', null, t)), ...benchHeads)),
      h('tbody', null, adapters.map((a) => h('tr', { 'data-adapter': String(a.id) },
        h('td', null, a.name), h('td', null, cidLink(gw, a.cid)), h('td', null, `#${a.baseVersionId}`),
        h('td', null, a.tags ? a.tags.split(',').map((t) => h('span', { class: 'tag' }, t.trim())) : h('span', { class: 'muted' }, '—')),
        h('td', null, addr(a.publisher)),
        ...score('adapter', a.id, a.baseVersionId))))) : h('p', { class: 'muted small' }, 'No adapters (LoRA weights, trained prompts) published for these versions.'));
}

/** One recorded score, marked against the parent's (a version's parent, an adapter's base version). */
function scoreCell(book: ScoreBook | null, b: BenchmarkInfo, kind: SubjectKind, id: bigint, parent: bigint): HTMLElement {
  const mine = book?.scores.get(scoreKey(kind, id, b.id));
  if (!mine) return h('td', { class: 'num muted', 'data-benchmark': String(b.id) }, '—');
  const v = parent ? verdict(b, mine, book?.scores.get(scoreKey('version', parent, b.id))) : null;
  const mark = v === 'better' ? badge('▲ vs parent', 'ok') : v === 'worse' ? badge('▼ vs parent', 'bad') : v === 'same' ? badge('= parent', 'muted') : null;
  return h('td', { class: 'num', 'data-benchmark': String(b.id), title: `evaluation #${mine.requestId}, ${mine.reveals} reveals` },
    formatScore(mine.value), ' ', mark);
}

function benchmarkNote(book: ScoreBook | null, benches: BenchmarkInfo[]): HTMLElement {
  if (book === null) return h('p', { class: 'muted small' }, 'No benchmark scores: this deployment names no BenchmarkRegistry, or it could not be read.');
  if (!benches.length) return h('p', { class: 'muted small' }, 'No living benchmarks registered for this model yet (BenchmarkRegistry.registerBenchmark).');
  return h('p', { class: 'muted small' }, `Scores are the median of the drawn evaluators' revealed scores on each benchmark (metric units; ▲/▼ against the parent version).`);
}
