// ABIs (generated from ape compile's output) and typed handles on the deployment's contracts.
import type { Abi, AbiItem } from 'viem';
import {
  AuditFeePayerAbi, DisputeCourtAbi, ModelVersionRegistryAbi, PaymentEscrowAbi, ServerRegistryAbi, StakeVaultAbi, errorNotices,
} from './generated/contracts';
import type { Deployment } from './deployment';

export { AuditFeePayerAbi, DisputeCourtAbi, ModelVersionRegistryAbi, PaymentEscrowAbi, ServerRegistryAbi, StakeVaultAbi, errorNotices };

const ALL = [StakeVaultAbi, ServerRegistryAbi, DisputeCourtAbi, ModelVersionRegistryAbi] as const;

/** Every custom error of every contract: a revert can come from a nested call into another one. */
export const allErrorsAbi: Abi = [...ALL, PaymentEscrowAbi, AuditFeePayerAbi].flatMap((abi) => (abi as readonly AbiItem[]).filter((i) => i.type === 'error')) as Abi;

/** Every event of every contract, to decode the logs of the whole deployment in one pass. */
export const allEventsAbi: Abi = ALL.flatMap((abi) => (abi as readonly AbiItem[]).filter((i) => i.type === 'event')) as Abi;

export function contractsOf(d: Deployment) {
  return {
    vault: { address: d.contracts.StakeVault, abi: StakeVaultAbi },
    registry: { address: d.contracts.ServerRegistry, abi: ServerRegistryAbi },
    court: { address: d.contracts.DisputeCourt, abi: DisputeCourtAbi },
    versions: { address: d.contracts.ModelVersionRegistry, abi: ModelVersionRegistryAbi },
  } as const;
}
export type Contracts = ReturnType<typeof contractsOf>;

/** Server.status and DisputeCourt enums, in declaration order (see the contracts' NatSpec). */
export const SERVER_STATUS = ['None', 'Active', 'Inactive', 'Left'] as const;
export const DISPUTE_STAGE = ['None', 'AwaitingDraw', 'Voting', 'Appealable', 'Resolved'] as const;
export const OUTCOME = ['Pending', 'Faulty', 'Honest', 'NoQuorum', 'Lapsed'] as const;
export const VOTE_STATE = ['None', 'Drawn', 'Committed', 'RevealedHonest', 'RevealedFaulty', 'RevealedAbstain'] as const;
