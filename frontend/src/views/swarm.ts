// Swarm: per model version, who covers which blocks and how thickly, then every server.
import type { Ctx, View } from '../app';
import type { ServerInfo, VersionInfo } from '../chainData';
import { computeCoverage, thicknessClass, type Coverage } from '../coverage';
import { deploymentSource } from '../deployment';
import { fill, h, svg } from '../dom';
import { formatAmount, formatSpan, shortAddress } from '../format';
import { fetchHealth, healthUrl, liveGaps, type LiveHealth } from '../health';
import { addr, badge, empty, stat, you } from './common';

const STATUS_TONE = { Active: 'ok', Inactive: 'warn', Left: 'muted', None: 'muted' } as const;

export function swarmView(ctx: Ctx): View {
  const el = h('section', { class: 'view swarm' });
  let rendered = -1;
  return {
    el,
    update() {
      if (rendered === ctx.data.revision) return;
      rendered = ctx.data.revision;
      render(ctx, el);
    },
  };
}

function render(ctx: Ctx, el: HTMLElement): void {
  const { data } = ctx;
  const servers = [...data.servers.values()];
  const active = servers.filter((s) => s.status === 'Active');
  const open = [...data.disputes.values()].filter((d) => d.stage !== 'Resolved').length;
  const versionIds = new Set<bigint>([...active.map((s) => s.versionId)]);
  for (const v of data.versions.values()) if (!v.deprecated) versionIds.add(v.id);
  const versions = [...versionIds].map((id) => data.versions.get(id)).filter((v): v is VersionInfo => !!v)
    .sort((a, b) => Number(a.id - b.id));

  fill(el,
    h('h1', null, 'Swarm'),
    h('p', { class: 'lede' }, 'Servers staked and registered on chain, and how they cover each model version\'s blocks. A client needs every block covered to run the model.'),
    h('div', { class: 'stats' },
      stat('active servers', String(active.length), 'stat-active'),
      stat('staked by servers', formatAmount(active.reduce((t, s) => t + s.stake, 0n), ctx.chain.symbol)),
      stat('model versions', String(data.versions.size)),
      stat('open disputes', String(open)),
      stat('minimum stake', formatAmount(data.minStake, ctx.chain.symbol))),
    data.latestBlock === null && !data.error ? h('p', { class: 'muted' }, 'Reading the chain…') : null,
    versions.length === 0 && data.latestBlock !== null
      ? empty('No model versions yet', 'A maintainer publishes a version to ModelVersionRegistry first; then operators stake and register servers for it under My account.')
      : null,
    versions.map((v) => versionSection(ctx, v, servers.filter((s) => s.versionId === v.id && s.status !== 'None'))),
  );
}

function versionSection(ctx: Ctx, v: VersionInfo, servers: ServerInfo[]): HTMLElement {
  const model = ctx.data.models.get(v.modelId);
  const cov = computeCoverage(v.numBlocks, servers.map((s) => ({
    operator: s.operator, firstBlock: s.firstBlock, lastBlock: s.lastBlock, throughput: s.throughput, active: s.status === 'Active',
  })));
  const summary = cov.complete
    ? badge(`every block served by ≥ ${cov.minServers} server${cov.minServers > 1 ? 's' : ''}`, cov.minServers > 1 ? 'ok' : 'warn')
    : badge(servers.some((s) => s.status === 'Active') ? `${cov.gaps.map(([a, b]) => formatSpan(a, b)).join(', ')} not served` : 'no active server', 'bad');
  return h('div', { class: 'card version', 'data-version': String(v.id) },
    h('div', { class: 'card-head' },
      h('h2', null, model?.name ?? `Model ${v.modelId}`, h('span', { class: 'muted' }, ` · version ${v.id}`)),
      h('span', { class: 'muted' }, `${v.numBlocks} blocks`), summary, v.deprecated ? badge('deprecated', 'warn') : null),
    coveragePicture(cov, ctx),
    serverTable(ctx, servers),
    livePanel(v.id));
}

// ---- live probes: the UI server runs `pollen health` (GET /api/health) -------------------------
type LiveState = { kind: 'probing' } | { kind: 'done'; health: LiveHealth; at: Date } | { kind: 'error'; message: string };
const liveStates = new Map<bigint, LiveState>(); // kept across re-renders of the page

/** "Probe servers live" and what the last probe of this version found. */
function livePanel(versionId: bigint): HTMLElement {
  const box = h('div', { class: 'live', id: `live-${versionId}` });
  const draw = () => {
    const st = liveStates.get(versionId);
    const button = h('button', { id: `probe-${versionId}`, disabled: st?.kind === 'probing', onclick: () => void probe() },
      st?.kind === 'probing' ? 'Probing…' : st ? 'Probe again' : 'Probe servers live');
    fill(box, h('div', { class: 'card-head' }, h('h3', null, 'Live'), button,
      h('span', { class: 'muted' }, 'asks every registered server for its span, load and latency; a gap here is a gap a client would hit')),
    st ? liveResult(st) : null);
  };
  const probe = async () => {
    liveStates.set(versionId, { kind: 'probing' });
    draw();
    try {
      const health = await fetchHealth(healthUrl(versionId, deploymentSource(location.search)));
      liveStates.set(versionId, { kind: 'done', health, at: new Date() });
    } catch (e) {
      liveStates.set(versionId, { kind: 'error', message: e instanceof Error ? e.message : String(e) });
    }
    draw();
  };
  draw();
  return box;
}

function liveResult(st: LiveState): HTMLElement | null {
  if (st.kind === 'probing') return null;
  if (st.kind === 'error') return h('div', { class: 'banner bad live-error' }, st.message);
  const { health, at } = st;
  const gaps = liveGaps(health);
  const up = health.servers.filter((s) => s.up).length;
  const summary = !health.servers.length ? badge('no active server registered', 'bad')
    : gaps.length ? badge(`${gaps.map(([a, b]) => formatSpan(a, b)).join(', ')} not served live`, 'bad')
    : badge('every block served live', 'ok');
  const rows = health.servers.map((s) => h('tr', { class: s.up ? 'up' : 'down', 'data-address': s.address },
    h('td', { class: 'mono small' }, s.address),
    h('td', null, s.operator ? addr(s.operator) : h('span', { class: 'muted' }, '—')),
    h('td', null, s.span ? formatSpan(s.span[0], s.span[1]) : '—'),
    h('td', { class: 'num' }, s.rttMs === null ? '—' : `${s.rttMs.toFixed(1)} ms`),
    h('td', { class: 'num' }, s.rttMs === null ? '—' : s.load.toFixed(2)),
    h('td', { class: 'num' }, s.rttMs === null ? '—' : String(s.sessions)),
    h('td', null, s.up ? badge('up', 'ok') : badge('down', 'bad'), s.problems.length ? h('div', { class: 'small muted' }, s.problems.join('; ')) : null)));
  return h('div', null,
    h('p', null, summary, h('span', { class: 'muted' }, ` ${up} of ${health.servers.length} up · probed ${at.toLocaleTimeString()}`)),
    rows.length ? h('table', { class: 'servers live-servers' },
      h('thead', null, h('tr', null, ...['Server', 'Operator', 'Span (its own)', 'Latency', 'Load', 'Sessions', 'Status'].map((t) => h('th', null, t)))),
      h('tbody', null, rows)) : null);
}

/** The picture: a heat strip (servers per block) over one lane per non-overlapping set of spans. */
function coveragePicture(cov: Coverage, ctx: Ctx): HTMLElement {
  const W = 900, left = 70, right = 10, cell = (W - left - right) / Math.max(1, cov.numBlocks);
  const stripH = 26, laneH = 22, gap = 6, axisH = 18;
  const lanes = cov.lanes;
  const H = axisH + stripH + gap + lanes.length * (laneH + 4) + 4;
  const root = svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'coverage', role: 'img', 'aria-label': 'Block coverage' });
  // axis: label every k-th block so labels never collide
  const every = Math.max(1, Math.ceil(28 / cell));
  for (let b = 0; b < cov.numBlocks; b += every) {
    root.appendChild(svg('text', { x: left + b * cell + cell / 2, y: 12, class: 'axis', 'text-anchor': 'middle' }, String(b)));
  }
  root.appendChild(svg('text', { x: 0, y: axisH + stripH / 2 + 4, class: 'lane-label' }, 'servers'));
  for (const bc of cov.blocks) {
    const g = svg('g', { class: `block ${thicknessClass(bc.servers)}` },
      svg('rect', { x: left + bc.block * cell + 0.5, y: axisH, width: Math.max(1, cell - 1), height: stripH, rx: 2 }),
      svg('title', {}, `block ${bc.block}: ${bc.servers} server(s), ${bc.throughput} tok/s declared`));
    if (cell >= 14) g.appendChild(svg('text', { x: left + bc.block * cell + cell / 2, y: axisH + stripH / 2 + 4, 'text-anchor': 'middle', class: 'count' }, String(bc.servers)));
    root.appendChild(g);
  }
  const me = you(ctx)?.toLowerCase();
  lanes.forEach((lane, i) => {
    const y = axisH + stripH + gap + i * (laneH + 4);
    if (i === 0) root.appendChild(svg('text', { x: 0, y: y + laneH / 2 + 4, class: 'lane-label' }, 'spans'));
    for (const s of lane) {
      const x = left + s.firstBlock * cell + 1, w = (s.lastBlock - s.firstBlock) * cell - 2;
      const mine = s.operator.toLowerCase() === me;
      root.appendChild(svg('g', { class: `span${mine ? ' mine' : ''}`, 'data-operator': s.operator },
        svg('rect', { x, y, width: Math.max(2, w), height: laneH, rx: 4 }),
        svg('text', { x: x + 6, y: y + laneH / 2 + 4, class: 'span-label' }, w > 90 ? `${shortAddress(s.operator)} · ${s.throughput} tok/s` : w > 50 ? shortAddress(s.operator) : ''),
        svg('title', {}, `${s.operator}\n${formatSpan(s.firstBlock, s.lastBlock)} · ${s.throughput} tok/s`)));
    }
  });
  const legend = h('div', { class: 'legend' },
    ...[['cov-0', 'no server'], ['cov-1', '1 server'], ['cov-2', '2 servers'], ['cov-3', '3 or more']].map(([c, t]) =>
      h('span', null, h('i', { class: `swatch ${c}` }), t)));
  return h('div', { class: 'picture' }, root, legend);
}

function serverTable(ctx: Ctx, servers: ServerInfo[]): HTMLElement {
  if (!servers.length) return empty('No servers for this version', 'Operators: stake, then register a server under My account.');
  const me = you(ctx);
  const rows = [...servers].sort((a, b) => a.firstBlock - b.firstBlock || a.operator.localeCompare(b.operator)).map((s) => {
    const disputes = ctx.data.disputesAgainst(s.operator);
    const open = disputes.filter((d) => d.stage !== 'Resolved').length;
    return h('tr', { 'data-operator': s.operator },
      h('td', null, addr(s.operator, me)),
      h('td', { class: 'mono small' }, s.endpoint),
      h('td', null, formatSpan(s.firstBlock, s.lastBlock)),
      h('td', { class: 'num' }, `${s.throughput} tok/s`),
      h('td', { class: 'num' }, formatAmount(s.stake, ctx.chain.symbol)),
      h('td', null, badge(s.status, STATUS_TONE[s.status])),
      h('td', null, disputes.length ? badge(`${disputes.length} disputed${open ? `, ${open} open` : ''}`, open ? 'bad' : 'warn') : h('span', { class: 'muted' }, 'none')));
  });
  return h('table', { class: 'servers' },
    h('thead', null, h('tr', null, ...['Operator', 'Endpoint', 'Span', 'Throughput', 'Stake', 'Status', 'Receipts disputed'].map((t) => h('th', null, t)))),
    h('tbody', null, rows));
}
