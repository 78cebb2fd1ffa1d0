import { expect, test } from 'vitest';
import { gnosisChiado } from 'viem/chains';
import { addChainParams, chainById, chainLabel, chainName, chainOfDeployment, KNOWN_CHAINS, toViemChain } from '../src/chains';
import { parseDeployment } from '../src/deployment';

const deployment = (chainId: number, network: string, rpc: string) => parseDeployment({
  network, chainId, rpc,
  contracts: {
    StakeVault: '0x5fbdb2315678afecb367f032d93f642f64180aa3', ServerRegistry: '0x9fe46736679d2d9a65f0992f2272de9f3c7fa6e0',
    DisputeCourt: '0xcf7ed3acca5a467e9e704c703e8d87f634fb0fc9', ModelVersionRegistry: '0xe7f1725e7734ce288f8367e1bb143e90bb3f0512',
  },
});

test.each([
  [31337, 'Anvil', 'ETH', undefined],
  [100, 'Gnosis', 'XDAI', 'https://gnosisscan.io'],
  [10200, 'Gnosis Chiado', 'xDAI', 'https://blockscout.chiadochain.net'],
  [314, 'Filecoin Mainnet', 'FIL', 'https://filfox.info/en'],
  [314159, 'Filecoin Calibration', 'tFIL', 'https://calibration.filscan.io'],
])('chain %i comes from viem: %s, %s, explorer %s', (id, name, symbol, explorer) => {
  const c = chainById(id)!;
  expect(c).toMatchObject({ id, name, symbol, decimals: 18, explorer });
  expect(c.rpcUrls[0]).toMatch(/^https?:\/\//);
  expect(chainName(id)).toBe(name);
});

test('every chain the wallet picker offers is a distinct viem chain', () => {
  expect(KNOWN_CHAINS.map((c) => c.id)).toEqual([31337, 10200, 100, 314159, 314]);
  expect(chainLabel(chainById(10200)!)).toBe('Gnosis Chiado · xDAI');
});

test("a deployment's own RPC comes first", () => {
  const c = chainOfDeployment(deployment(10200, 'gnosis-chiado', 'https://my.rpc/'));
  expect(c.rpcUrls).toEqual(['https://my.rpc/', ...gnosisChiado.rpcUrls.default.http]);
  expect(c.symbol).toBe('xDAI');
});

test('an unknown chain id falls back to the deployment file', () => {
  const c = chainOfDeployment(deployment(424242, 'private-net', 'http://10.0.0.5:8545'));
  expect(c).toMatchObject({ id: 424242, name: 'private-net', symbol: 'ETH', decimals: 18, rpcUrls: ['http://10.0.0.5:8545'] });
  expect(c.explorer).toBeUndefined();
  expect(chainById(424242)).toBeUndefined();
  expect(chainName(424242)).toBe('chain 424242');
  expect(chainName(null)).toBe('unknown network');
});

test('EIP-3085 parameters are built from the viem definition', () => {
  expect(addChainParams(chainById(314159)!)).toEqual({
    chainId: '0x4cb2f', chainName: 'Filecoin Calibration', rpcUrls: ['https://api.calibration.node.glif.io/rpc/v1'],
    nativeCurrency: { name: 'testnet filecoin', symbol: 'tFIL', decimals: 18 }, blockExplorerUrls: ['https://calibration.filscan.io'],
  });
  expect(addChainParams(chainById(31337)!).blockExplorerUrls).toBeUndefined();
  const v = toViemChain(chainById(100)!);
  expect([v.id, v.nativeCurrency.symbol, v.rpcUrls.default.http[0]]).toEqual([100, 'XDAI', 'https://rpc.gnosischain.com']);
});
