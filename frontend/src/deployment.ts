// The deployment file written by `python -m pollen.deploy` (served next to the UI as deployment.json).
import { getAddress, isAddress, type Address } from 'viem';

export const CONTRACT_NAMES = ['StakeVault', 'ServerRegistry', 'DisputeCourt', 'ModelVersionRegistry'] as const;
export type ContractName = (typeof CONTRACT_NAMES)[number];
/** Contracts a deployment may name (older deployment files lack them; the UI works without). */
export const OPTIONAL_CONTRACT_NAMES = ['PaymentEscrow', 'AuditFeePayer', 'BenchmarkRegistry'] as const;
export type OptionalContractName = (typeof OPTIONAL_CONTRACT_NAMES)[number];

export interface Deployment {
  network: string;
  chainId: number;
  rpc: string;
  deployedAtBlock: bigint;
  contracts: Record<ContractName, Address>;
  parameters: Record<string, unknown>;
  ipfsGateway?: string;
  /** The optional contracts this deployment names (absent key: not deployed). */
  optional?: Partial<Record<OptionalContractName, Address>>;
}

/** Validate a parsed deployment JSON; throws an Error that says which field is wrong. */
export function parseDeployment(raw: unknown): Deployment {
  if (!raw || typeof raw !== 'object') throw new Error('The deployment file is not a JSON object.');
  const d = raw as Record<string, unknown>;
  const chainId = Number(d.chainId);
  if (!Number.isInteger(chainId) || chainId <= 0) throw new Error('The deployment file has no valid "chainId".');
  if (typeof d.rpc !== 'string' || !/^https?:\/\//.test(d.rpc)) {
    throw new Error('The deployment file has no "rpc" URL (http:// or https://).');
  }
  const c = (d.contracts ?? {}) as Record<string, unknown>;
  const contracts = {} as Record<ContractName, Address>;
  for (const name of CONTRACT_NAMES) {
    const a = c[name];
    if (typeof a !== 'string' || !isAddress(a)) {
      throw new Error(`The deployment file has no valid address for ${name}. Redeploy with python -m pollen.deploy.`);
    }
    contracts[name] = getAddress(a);
  }
  const optional: Partial<Record<OptionalContractName, Address>> = {};
  for (const name of OPTIONAL_CONTRACT_NAMES) {
    const a = c[name];
    if (a === undefined || a === null) continue;
    if (typeof a !== 'string' || !isAddress(a)) {
      throw new Error(`The deployment file's address for ${name} is not valid. Redeploy with python -m pollen.deploy.`);
    }
    optional[name] = getAddress(a);
  }
  return {
    network: typeof d.network === 'string' ? d.network : `chain ${chainId}`,
    chainId,
    rpc: d.rpc,
    deployedAtBlock: BigInt(Number(d.deployedAtBlock ?? 0)),
    contracts,
    parameters: (d.parameters as Record<string, unknown>) ?? {},
    ipfsGateway: typeof d.ipfsGateway === 'string' ? d.ipfsGateway : undefined,
    optional,
  };
}

/** Fetch ./deployment.json (or the URL in ?deployment=) relative to the page. */
export async function loadDeployment(location: Location = window.location): Promise<Deployment> {
  const url = new URLSearchParams(location.search).get('deployment') ?? './deployment.json';
  let response: Response;
  try {
    response = await fetch(url, { cache: 'no-store' });
  } catch {
    throw new Error(`Cannot fetch the deployment file ${url}. Serve the UI with \`make ui DEPLOYMENT=...\`.`);
  }
  if (!response.ok) {
    throw new Error(`No deployment file at ${url} (HTTP ${response.status}). Serve the UI with \`make ui DEPLOYMENT=deployments/<name>.json\`.`);
  }
  return parseDeployment(await response.json());
}
