// What the browser tests stand on: a real anvil, a real deployment, the built UI served for it,
// a headless Debian Chromium, and a separate Python process playing the other participants.
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { chromium, type Browser } from 'playwright-core';
// @ts-expect-error — plain ESM module without types
import { serveUi } from '../scripts/serve.mjs';

export const FRONTEND = resolve(import.meta.dirname, '..');
export const ROOT = resolve(FRONTEND, '..');
export const PYTHON = join(ROOT, '.venv', 'bin', 'python');
export const DRIVER = join(ROOT, 'tests', 'frontend', 'chain_driver.py');
export const ARTIFACTS = resolve(process.env.POLLEN_ARTIFACTS ?? join(ROOT, 'test-artifacts', 'frontend'));
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
// anvil's public dev accounts (mnemonic "test test … junk"): #1 is the browser's wallet; #0
// deployed the contracts and owns the court (governance on a dev chain).
export const WALLET_KEY = '0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d' as const;
export const OWNER_KEY = '0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80' as const;
const execFileP = promisify(execFile);

export function chromiumMissing(): string | null {
  return existsSync(CHROMIUM) ? null : `Chromium not found at ${CHROMIUM}: install Debian's chromium (make test-frontend does it as root) to run the browser tests.`;
}

async function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.once('error', fail);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => ok(port));
    });
  });
}

async function waitForRpc(url: string, timeoutMs = 15000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    try {
      const r = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}' });
      if (r.ok) return;
    } catch { /* not up yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`anvil did not answer at ${url} within ${timeoutMs / 1000} s`);
}

/** Run the Python driver to completion; returns its stdout. */
export async function driver(...args: string[]): Promise<string> {
  try {
    const { stdout } = await execFileP(PYTHON, [DRIVER, ...args], { cwd: ROOT, timeout: 90_000 });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`chain_driver ${args[0]} failed: ${e.stderr?.trim().split('\n').slice(-3).join(' | ') || e.message}`);
  }
}

/** Start the driver as a long-lived process that reports phases and waits for "next" between them. */
export function steppedDriver(...args: string[]) {
  const proc = spawn(PYTHON, [DRIVER, ...args, '--step'], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
  let buffer = '';
  let stderr = '';
  const waiting: Array<(line: string) => void> = [];
  const lines: string[] = [];
  proc.stdout.on('data', (chunk) => {
    buffer += chunk;
    let i;
    while ((i = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, i).trim();
      buffer = buffer.slice(i + 1);
      const w = waiting.shift();
      if (w) w(line); else lines.push(line);
    }
  });
  proc.stderr.on('data', (c) => { stderr += c; });
  return {
    /** The next line the driver prints (e.g. "PHASE drawn"). */
    next(timeoutMs = 30_000): Promise<string> {
      const ready = lines.shift();
      if (ready !== undefined) return Promise.resolve(ready);
      return new Promise((ok, fail) => {
        const t = setTimeout(() => fail(new Error(`driver printed nothing for ${timeoutMs / 1000} s; stderr: ${stderr.slice(-1500)}`)), timeoutMs);
        waiting.push((l) => { clearTimeout(t); ok(l); });
      });
    },
    proceed(): void { proc.stdin.write('next\n'); },
    async done(): Promise<number> {
      proc.stdin.end();
      if (proc.exitCode !== null) return proc.exitCode;
      return new Promise((ok) => proc.once('exit', (code) => ok(code ?? 1)));
    },
    kill(): void { if (proc.exitCode === null) proc.kill('SIGTERM'); },
  };
}

export interface Stack {
  rpc: string;
  deploymentFile: string;
  workDir: string;
  url: string;
  browser: Browser;
  /** Stop the chain node (the page should then say it cannot reach it). */
  stopNode(): void;
  stop(): Promise<void>;
}

export async function startStack(): Promise<Stack> {
  mkdirSync(ARTIFACTS, { recursive: true });
  const workDir = mkdtempSync(join(tmpdir(), 'pollen-e2e-'));
  const port = await freePort();
  const rpc = `http://127.0.0.1:${port}`;
  // Mixed mining: every transaction is mined at once, and a block comes every second besides, as
  // on a live chain. Opening a dispute is commit-reveal (the reveal needs a later block than the
  // commitment), and nobody else sends transactions while the page waits for that block.
  const anvil: ChildProcess = spawn(join(ROOT, 'node_modules', '.bin', 'anvil'), ['--host', '127.0.0.1', '--port', String(port), '--silent', '--accounts', '10', '--balance', '10000', '--block-time', '1', '--mixed-mining'], { stdio: 'ignore' });
  const cleanups: Array<() => Promise<unknown> | unknown> = [() => anvil.kill('SIGTERM')];
  const stop = async () => { for (const fn of cleanups.reverse()) await fn(); };
  try {
    await waitForRpc(rpc);
    const deploymentFile = join(workDir, 'deployment.json');
    try {
      // The "anvil" preset: fast windows, no appeal period (a scenario turns one on with setParams).
      await execFileP(PYTHON, ['-m', 'pollen.deploy', '--rpc', rpc, '--out', deploymentFile, '--network', 'anvil'], { cwd: ROOT, env: { ...process.env, PYTHONPATH: ROOT } });
    } catch (err) {
      throw new Error(`python -m pollen.deploy failed: ${(err as { stderr?: string }).stderr ?? err}`);
    }
    await driver('populate', deploymentFile);
    // The same deployment also as deployments/demo.json, for ?network=demo and the network picker.
    mkdirSync(join(workDir, 'deployments'));
    copyFileSync(deploymentFile, join(workDir, 'deployments', 'demo.json'));
    // /api/health runs the real `pollen health` against this anvil (the Swarm page's live probe)
    const server = await serveUi({ dist: join(FRONTEND, 'dist'), deployment: deploymentFile, deployments: join(workDir, 'deployments'),
      healthCmd: [PYTHON, '-m', 'pollen.cli', 'health'], healthTimeoutMs: 60_000 });
    cleanups.push(() => server.close());
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    });
    cleanups.push(() => browser.close());
    return { rpc, deploymentFile, workDir, url: server.url, browser, stop, stopNode: () => anvil.kill('SIGTERM') };
  } catch (err) {
    await stop();
    throw err;
  }
}
