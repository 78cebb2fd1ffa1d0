#!/usr/bin/env node
// Serve the built UI (dist/) with its deployments, re-read on every request (a redeploy shows up
// on reload):
//   GET /deployment.json            the --deployment FILE (the page's default)
//   GET /deployments/NAME.json      DIR/NAME.json from --deployments DIR (the page's ?network=NAME)
//   GET /deployments/index.json     [{ name, network, chainId }] for every *.json in DIR (the network picker)
//   GET /api/health?version=N[&network=NAME]   live probe of that version's servers (--health-cmd;
//                                   scripts/health-endpoint.mjs)
//   node scripts/serve.mjs --deployment deployments/anvil.json [--port 5173] [--host 127.0.0.1]
//   node scripts/serve.mjs --deployments deployments [--network gnosis-chiado] [--port 5173]
//     [--health-cmd '[".venv/bin/python", "-m", "pollen.cli", "health"]'] [--health-timeout-ms 20000]
import { createServer } from 'node:http';
import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, extname, join, normalize, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { healthEndpoint } from './health-endpoint.mjs';

const TYPES = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8',
  '.json': 'application/json', '.svg': 'image/svg+xml', '.png': 'image/png', '.ico': 'image/x-icon',
};

const NAME = /^[a-z0-9][a-z0-9._-]*$/i;

/** The deployment files in dir as [{ name, network, chainId }], by name; unreadable files are left out. */
export async function listDeployments(dir) {
  const files = (await readdir(dir)).filter((f) => f.endsWith('.json') && f !== 'index.json' && NAME.test(basename(f, '.json'))).sort();
  const entries = await Promise.all(files.map(async (f) => {
    try {
      const d = JSON.parse(await readFile(join(dir, f), 'utf8'));
      return { name: basename(f, '.json'), network: d.network ?? null, chainId: Number(d.chainId) || null };
    } catch {
      return null;
    }
  }));
  return entries.filter(Boolean);
}

/** Check the deployment sources before listening, so a typo fails now and not on the first request. */
async function checkSources(deployment, deployments, network) {
  if (!deployment && !deployments) throw new Error('say which deployments to show: --deployment FILE or --deployments DIR');
  if (deployment) JSON.parse(await readFile(deployment, 'utf8'));
  if (!deployments) return;
  const offered = await listDeployments(deployments).catch(() => {
    throw new Error(`cannot read the deployments folder ${deployments}: deploy first (python -m pollen.deploy --network NAME --out ${deployments}/NAME.json)`);
  });
  const names = offered.map((d) => d.name);
  if (network && !names.includes(network)) {
    throw new Error(`no deployment for network "${network}" in ${deployments} (it has: ${names.join(', ') || 'none'}); deploy it with python -m pollen.deploy --network ${network} --out ${join(deployments, `${network}.json`)}`);
  }
}

/** The body for a deployment path, or null when it is not one. */
async function deploymentBody(path, deploymentPath, deploymentsDir) {
  if (path === '/deployment.json') return deploymentPath ? readFile(deploymentPath) : null;
  const m = /^\/deployments\/([^/]+)\.json$/.exec(path);
  if (!m || !deploymentsDir) return null;
  if (m[1] === 'index') return JSON.stringify(await listDeployments(deploymentsDir));
  return NAME.test(m[1]) ? readFile(join(deploymentsDir, `${m[1]}.json`)) : null;
}

/** Start serving; resolves to { url, close } once listening. Port 0 picks a free port.
 *  deployment: the file for /deployment.json; deployments: the folder for /deployments/ (either or both);
 *  healthCmd: argv prefix of `pollen health` for /api/health (none: it answers 501). */
export async function serveUi({ dist, deployment, deployments, network, port = 0, host = '127.0.0.1', healthCmd, healthTimeoutMs }) {
  const root = resolve(dist);
  await stat(join(root, 'index.html')).catch(() => {
    throw new Error(`No built UI in ${root}: run \`npm run build\` in frontend/ (make ui does it).`);
  });
  await checkSources(deployment, deployments, network);
  const deploymentPath = deployment && resolve(deployment);
  const deploymentsDir = deployments && resolve(deployments);
  const health = healthEndpoint({ cmd: healthCmd, deployment: deploymentPath, deploymentsDir, timeoutMs: healthTimeoutMs });
  const server = createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const path = decodeURIComponent(url.pathname);
    try {
      if (path === '/api/health') {
        const { status, type, body } = await health(url.searchParams);
        res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
        res.end(body);
        return;
      }
      const deploymentJson = await deploymentBody(path, deploymentPath, deploymentsDir);
      if (deploymentJson !== null) {
        res.writeHead(200, { 'content-type': TYPES['.json'], 'cache-control': 'no-store' });
        res.end(deploymentJson);
        return;
      }
      if (path === '/deployment.json' || path.startsWith('/deployments/')) throw Object.assign(new Error('no such deployment'), { code: 'ENOENT' });
      const file = normalize(join(root, path === '/' ? 'index.html' : path));
      if (!file.startsWith(root)) throw Object.assign(new Error('outside'), { code: 'ENOENT' });
      const body = await readFile(file);
      res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream' });
      res.end(body);
    } catch (err) {
      res.writeHead(err.code === 'ENOENT' || err.code === 'EISDIR' ? 404 : 500, { 'content-type': 'text/plain' });
      res.end(err.code === 'ENOENT' || err.code === 'EISDIR' ? 'not found' : String(err));
    }
  });
  await new Promise((ok, fail) => { server.once('error', fail); server.listen(port, host, ok); });
  const url = `http://${host}:${server.address().port}/`;
  return { url, close: () => new Promise((ok) => server.close(ok)) };
}

/** --health-cmd's JSON argv prefix, checked; undefined when not given. */
export function parseHealthCmd(raw) {
  if (raw === undefined || raw === '') return undefined;
  let cmd;
  try {
    cmd = JSON.parse(raw);
  } catch {
    throw new Error(`--health-cmd takes a JSON list of strings, e.g. '[".venv/bin/python", "-m", "pollen.cli", "health"]', not ${raw}`);
  }
  if (!Array.isArray(cmd) || !cmd.length || !cmd.every((a) => typeof a === 'string' && a)) {
    throw new Error(`--health-cmd takes a non-empty JSON list of strings, not ${raw}`);
  }
  return cmd;
}

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
}

/** One line for the console: where the UI is and what it shows. */
async function describe(url, deployment, deployments, network) {
  if (network) return `Pollen UI: ${url}?network=${network}  (deployments from ${deployments}) — Ctrl-C to stop`;
  if (deployment) {
    const d = JSON.parse(await readFile(deployment, 'utf8'));
    return `Pollen UI: ${url}  (deployment "${d.network}", chain ${d.chainId}, RPC ${d.rpc}) — Ctrl-C to stop`;
  }
  const names = (await listDeployments(deployments)).map((d) => d.name);
  return `Pollen UI: ${url}?network=${names[0] ?? 'NAME'}  (networks: ${names.join(', ') || 'none yet'}, from ${deployments}) — Ctrl-C to stop`;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const here = dirname(fileURLToPath(import.meta.url));
  const deployment = arg('deployment', process.env.DEPLOYMENT);
  const deployments = arg('deployments', process.env.DEPLOYMENTS);
  const network = arg('network', process.env.NETWORK);
  if (!deployment && !deployments) {
    console.error('serve: say which deployments to show: --deployment deployments/<name>.json (make ui DEPLOYMENT=...) or --deployments deployments [--network NAME] (make ui NETWORK=NAME)');
    process.exit(2);
  }
  if (network && !deployments) {
    console.error('serve: --network NAME picks a file in --deployments DIR: pass --deployments deployments too');
    process.exit(2);
  }
  let healthCmd;
  try {
    healthCmd = parseHealthCmd(arg('health-cmd', process.env.HEALTH_CMD));
  } catch (err) {
    console.error(`serve: ${err.message}`);
    process.exit(2);
  }
  try {
    const { url } = await serveUi({ dist: arg('dist', join(here, '..', 'dist')), deployment, deployments, network, port: Number(arg('port', process.env.UI_PORT ?? 5173)), host: arg('host', '127.0.0.1'),
      healthCmd, healthTimeoutMs: Number(arg('health-timeout-ms', 20000)) });
    console.log(await describe(url, deployment, deployments, network));
  } catch (err) {
    console.error(`serve: ${err.code === 'EADDRINUSE' ? 'that port is taken: pass UI_PORT=<free port>' : err.message}`);
    process.exit(1);
  }
}
