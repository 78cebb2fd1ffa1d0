import { expect, test } from 'vitest';
import { deploymentSource, loadDeployment, offeredNetworks, parseDeployment } from '../src/deployment';
import { chainOfDeployment } from '../src/chains';

const good = {
  network: 'anvil', chainId: 31337, rpc: 'http://127.0.0.1:8546', deployedAtBlock: 3,
  contracts: {
    StakeVault: '0x5fbdb2315678afecb367f032d93f642f64180aa3', ServerRegistry: '0x9fe46736679d2d9a65f0992f2272de9f3c7fa6e0',
    DisputeCourt: '0xcf7ed3acca5a467e9e704c703e8d87f634fb0fc9', ModelVersionRegistry: '0xe7f1725e7734ce288f8367e1bb143e90bb3f0512',
  },
  parameters: { bond: 1 },
};

test('reads the file pollen.deploy writes', () => {
  const d = parseDeployment(good);
  expect(d.chainId).toBe(31337);
  expect(d.deployedAtBlock).toBe(3n);
  expect(d.contracts.DisputeCourt).toBe('0xCf7Ed3AccA5a467e9e704C703E8D87F634fB0Fc9');
  expect(chainOfDeployment(d)).toMatchObject({ id: 31337, symbol: 'ETH', rpcUrls: ['http://127.0.0.1:8546', 'http://127.0.0.1:8545'] });
  expect(chainOfDeployment({ ...d, chainId: 100 }).symbol).toBe('XDAI');
});

test('names the field that is wrong', () => {
  expect(() => parseDeployment(null)).toThrow(/not a JSON object/);
  expect(() => parseDeployment({ ...good, chainId: 'x' })).toThrow(/chainId/);
  expect(() => parseDeployment({ ...good, rpc: 'ws://x' })).toThrow(/rpc/);
  expect(() => parseDeployment({ ...good, contracts: { ...good.contracts, DisputeCourt: '0x12' } })).toThrow(/DisputeCourt/);
});

test('?network=, ?deployment= or ./deployment.json', () => {
  expect(deploymentSource('?network=gnosis-chiado')).toEqual({ url: './deployments/gnosis-chiado.json', network: 'gnosis-chiado' });
  expect(deploymentSource('?network=demo')).toEqual({ url: './deployments/demo.json', network: 'demo' });
  expect(deploymentSource('?deployment=https://x.org/d.json')).toEqual({ url: 'https://x.org/d.json' });
  expect(deploymentSource('')).toEqual({ url: './deployment.json' });
  expect(() => deploymentSource('?network=../secret')).toThrow(/"..\/secret" is not a network name/);
  expect(() => deploymentSource('?network=')).toThrow(/not a network name/);
  expect(() => deploymentSource('?network=anvil&deployment=x.json')).toThrow(/both \?network= and \?deployment=/);
});

/** A server with the given files (path -> JSON); anything else answers 404. */
const server = (files: Record<string, unknown>) => async (url: string) =>
  url in files ? new Response(JSON.stringify(files[url])) : new Response('not found', { status: 404 });
const index = [{ name: 'anvil', network: 'anvil', chainId: 31337 }, { name: 'demo', network: 'anvil', chainId: 31337 }];

test('?network= loads deployments/NAME.json', async () => {
  const fetcher = server({ './deployments/demo.json': good, './deployments/index.json': index });
  expect((await loadDeployment({ search: '?network=demo' }, fetcher)).rpc).toBe('http://127.0.0.1:8546');
  expect(await offeredNetworks(fetcher)).toEqual([{ name: 'anvil', chainId: 31337 }, { name: 'demo', chainId: 31337 }]);
  expect(await offeredNetworks(server({}))).toEqual([]);
});

test('an unknown network is named, with the ones the server offers', async () => {
  const fetcher = server({ './deployments/index.json': index });
  await expect(loadDeployment({ search: '?network=gnosis' }, fetcher)).rejects.toThrow(
    'No deployment for network "gnosis" (./deployments/gnosis.json, HTTP 404). This server offers: anvil, demo. To deploy there: python -m pollen.deploy --network gnosis --out deployments/gnosis.json.');
  await expect(loadDeployment({ search: '?network=mainnet' }, server({}))).rejects.toThrow(
    /network "mainnet".*offers no deployments: serve the UI with `make ui NETWORK=<name>`/);
  await expect(loadDeployment({ search: '' }, fetcher)).rejects.toThrow(/No deployment file at .\/deployment.json \(HTTP 404\)\. This server offers the networks anvil, demo: open \?network=anvil/);
  await expect(loadDeployment({ search: '' }, () => Promise.reject(new TypeError('offline')))).rejects.toThrow(/Cannot fetch the deployment file/);
});
