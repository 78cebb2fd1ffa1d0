// GET /api/health?version=N[&network=NAME] for scripts/serve.mjs: runs `pollen health --json`
// for that version of the page's deployment and answers its JSON. The command is an argv prefix
// (no shell), e.g. [".venv/bin/python", "-m", "pollen.cli", "health"]; this appends
// `--deployment FILE --version-id N --json`.
//   200  the probe's JSON (also when it exits 1: some block has no live server; the JSON says which)
//   400  a bad version id or network name, or a network the server does not offer
//   501  the UI server was started without --health-cmd
//   502  the probe failed (its stderr's last lines say why)
//   503  maxProbes probes are already running (for other versions)
//   504  the probe ran past the timeout
// Answers are cached for cacheMs per (deployment, version), and one probe runs per key at a time:
// a page full of reloads starts one probe, not one each; a burst of requests for many versions
// starts at most maxProbes processes.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

const NAME = /^[a-z0-9][a-z0-9._-]*$/i;
const VERSION = /^\d{1,18}$/;

/** { status, body } for a request's query, or a thrown Error for the server's own failures. */
export function healthEndpoint({ cmd, deployment, deploymentsDir, timeoutMs = 20_000, cacheMs = 5_000, maxProbes = 2 }) {
  if (!(timeoutMs > 0)) throw new Error(`--health-timeout-ms must be a positive number of milliseconds, not ${timeoutMs}`);
  const cache = new Map(); // key -> { at, promise }
  let running = 0;
  return async function answer(query) {
    if (!cmd) return text(501, 'live health is off: start the UI server with --health-cmd \'["python", "-m", "pollen.cli", "health"]\' (pollen ui does it)');
    const version = query.get('version') ?? '';
    if (!VERSION.test(version)) return text(400, `version must be a model version id (digits), not "${version.slice(0, 40)}"`);
    const file = deploymentFile(query.get('network'), deployment, deploymentsDir);
    if (file.error) return text(400, file.error);
    const key = `${file.path}\n${version}`;
    const hit = cache.get(key);
    if (hit && Date.now() - hit.at < cacheMs) return hit.promise;
    if (running >= maxProbes) return text(503, `${running} health probes are running; try again in a few seconds`);
    for (const [k, v] of cache) if (Date.now() - v.at >= cacheMs) cache.delete(k); // old answers go
    running += 1;
    const promise = probe(cmd, file.path, version, timeoutMs);
    cache.set(key, { at: Infinity, promise }); // in flight: shared by every request for this key
    promise.then(() => {
      running -= 1;
      cache.set(key, { at: Date.now(), promise }); // the reuse window starts when it answers
    });
    return promise;
  };
}

function deploymentFile(network, deployment, deploymentsDir) {
  if (network === null || network === '') {
    return deployment ? { path: deployment } : { error: 'say which deployment: ?network=NAME (this server has no default deployment)' };
  }
  if (!NAME.test(network)) return { error: `"${network.slice(0, 40)}" is not a network name` };
  if (!deploymentsDir) return { error: `this server offers no deployments folder, so no network "${network}"` };
  const path = join(deploymentsDir, `${network}.json`);
  return existsSync(path) ? { path } : { error: `no deployment for network "${network}" here` };
}

function probe(cmd, deploymentPath, version, timeoutMs) {
  const args = [...cmd.slice(1), '--deployment', deploymentPath, '--version-id', version, '--json'];
  return new Promise((ok) => {
    execFile(cmd[0], args, { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 8 << 20 }, (err, stdout, stderr) => {
      if (err && err.killed) return ok(text(504, `the health probe ran past ${timeoutMs / 1000} s; try again, or raise --health-timeout-ms`));
      if (!err || err.code === 1) {
        try {
          JSON.parse(stdout);
          return ok({ status: 200, type: 'application/json', body: stdout });
        } catch { /* not JSON: reported below */ }
      }
      const why = String(stderr || stdout || err?.message || '').trim().split('\n').slice(-4).join('\n');
      ok(text(502, `the health probe failed (${err ? `exit ${err.code}` : 'no JSON'}): ${why}`));
    });
  });
}

const text = (status, body) => ({ status, type: 'text/plain; charset=utf-8', body });
