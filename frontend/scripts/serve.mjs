#!/usr/bin/env node
// Serve the built UI (dist/) for one deployment: GET /deployment.json answers with the
// deployment file (re-read on every request, so a redeploy shows up on reload).
//   node scripts/serve.mjs --deployment deployments/anvil.json [--port 5173] [--host 127.0.0.1]
import { createServer } from 'node:http';
import { readFile, stat } from 'node:fs/promises';
import { extname, join, normalize, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const TYPES = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8',
  '.json': 'application/json', '.svg': 'image/svg+xml', '.png': 'image/png', '.ico': 'image/x-icon',
};

/** Start serving; resolves to { url, close } once listening. Port 0 picks a free port. */
export async function serveUi({ dist, deployment, port = 0, host = '127.0.0.1' }) {
  const root = resolve(dist);
  await stat(join(root, 'index.html')).catch(() => {
    throw new Error(`No built UI in ${root}: run \`npm run build\` in frontend/ (make ui does it).`);
  });
  const deploymentPath = resolve(deployment);
  JSON.parse(await readFile(deploymentPath, 'utf8')); // fail now, not on the first request
  const server = createServer(async (req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    try {
      if (path === '/deployment.json') {
        res.writeHead(200, { 'content-type': TYPES['.json'], 'cache-control': 'no-store' });
        res.end(await readFile(deploymentPath));
        return;
      }
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

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const here = dirname(fileURLToPath(import.meta.url));
  const deployment = arg('deployment', process.env.DEPLOYMENT);
  if (!deployment) {
    console.error('serve: say which deployment to show: --deployment deployments/<name>.json (make ui DEPLOYMENT=...)');
    process.exit(2);
  }
  try {
    const d = JSON.parse(await readFile(deployment, 'utf8'));
    const { url } = await serveUi({ dist: arg('dist', join(here, '..', 'dist')), deployment, port: Number(arg('port', process.env.UI_PORT ?? 5173)), host: arg('host', '127.0.0.1') });
    console.log(`Pollen UI: ${url}  (deployment "${d.network}", chain ${d.chainId}, RPC ${d.rpc}) — Ctrl-C to stop`);
  } catch (err) {
    console.error(`serve: ${err.code === 'EADDRINUSE' ? 'that port is taken: pass UI_PORT=<free port>' : err.message}`);
    process.exit(1);
  }
}
