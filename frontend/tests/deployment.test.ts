import { expect, test } from 'vitest';
import { parseDeployment } from '../src/deployment';
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
  expect(chainOfDeployment({ ...d, chainId: 100 }).symbol).toBe('xDAI');
});

test('names the field that is wrong', () => {
  expect(() => parseDeployment(null)).toThrow(/not a JSON object/);
  expect(() => parseDeployment({ ...good, chainId: 'x' })).toThrow(/chainId/);
  expect(() => parseDeployment({ ...good, rpc: 'ws://x' })).toThrow(/rpc/);
  expect(() => parseDeployment({ ...good, contracts: { ...good.contracts, DisputeCourt: '0x12' } })).toThrow(/DisputeCourt/);
});
