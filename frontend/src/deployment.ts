// The deployment file written by `python -m pollen.deploy` (served next to the UI as deployment.json,
// or as deployments/<network>.json for ?network=<network>).
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

// ------------------------------------------------------------------ where the page's deployment comes from

/** Pollen's network names: `python -m pollen.deploy --network NAME --out deployments/NAME.json`. */
export const NETWORK_NAMES = ['anvil', 'gnosis-chiado', 'gnosis', 'filecoin-calibration', 'filecoin'] as const;
const NETWORK_NAME = /^[a-z0-9][a-z0-9._-]*$/i;
const INDEX_URL = './deployments/index.json';

export interface DeploymentSource {
  url: string;
  /** The network name from ?network= (absent for ?deployment= and ./deployment.json). */
  network?: string;
}

/** One deployment file the server offers under /deployments/ (its index.json). */
export interface OfferedNetwork {
  name: string;
  chainId?: number;
}

type Fetcher = (url: string, init?: RequestInit) => Promise<Response>;

/** ?network=NAME → ./deployments/NAME.json; ?deployment=URL → that URL; else ./deployment.json. */
export function deploymentSource(search: string): DeploymentSource {
  const q = new URLSearchParams(search);
  const network = q.get('network');
  const url = q.get('deployment');
  if (network !== null && url !== null) throw new Error('The address has both ?network= and ?deployment=: keep one of them.');
  if (network === null) return { url: url ?? './deployment.json' };
  if (!NETWORK_NAME.test(network)) {
    throw new Error(`"${network}" is not a network name: use letters, digits, "-", "_" or ".", e.g. ?network=${NETWORK_NAMES[1]}.`);
  }
  return { url: `./deployments/${network}.json`, network };
}

/** The deployment files the server offers (serve.mjs --deployments DIR); [] when it offers none. */
export async function offeredNetworks(fetcher: Fetcher = fetch): Promise<OfferedNetwork[]> {
  try {
    const response = await fetcher(INDEX_URL, { cache: 'no-store' });
    if (!response.ok) return [];
    const list: unknown = await response.json();
    if (!Array.isArray(list)) return [];
    return list.filter((n) => n && typeof n.name === 'string')
      .map((n) => ({ name: n.name as string, chainId: Number.isInteger(n.chainId) ? (n.chainId as number) : undefined }));
  } catch {
    return [];
  }
}

/** Why there is no deployment at src.url, and what to open or run instead. */
export function missingDeploymentMessage(src: DeploymentSource, status: number, offered: OfferedNetwork[]): string {
  const names = offered.map((n) => n.name).join(', ');
  if (!src.network) {
    const instead = names ? `This server offers the networks ${names}: open ?network=${offered[0].name}.` : 'Serve the UI with `make ui NETWORK=<name>` or `make ui DEPLOYMENT=deployments/<name>.json`.';
    return `No deployment file at ${src.url} (HTTP ${status}). ${instead}`;
  }
  const available = names ? `This server offers: ${names}.` : 'This server offers no deployments: serve the UI with `make ui NETWORK=<name>` (it serves deployments/).';
  const deploy = (NETWORK_NAMES as readonly string[]).includes(src.network)
    ? ` To deploy there: python -m pollen.deploy --network ${src.network} --out deployments/${src.network}.json.` : '';
  return `No deployment for network "${src.network}" (${src.url}, HTTP ${status}). ${available}${deploy}`;
}

/** Fetch the page's deployment (see deploymentSource) and validate it. */
export async function loadDeployment(location: Pick<Location, 'search'> = window.location, fetcher: Fetcher = fetch): Promise<Deployment> {
  const src = deploymentSource(location.search);
  let response: Response;
  try {
    response = await fetcher(src.url, { cache: 'no-store' });
  } catch {
    throw new Error(`Cannot fetch the deployment file ${src.url}. Serve the UI with \`make ui NETWORK=<name>\` or \`make ui DEPLOYMENT=...\`.`);
  }
  if (!response.ok) throw new Error(missingDeploymentMessage(src, response.status, await offeredNetworks(fetcher)));
  return parseDeployment(await response.json());
}
