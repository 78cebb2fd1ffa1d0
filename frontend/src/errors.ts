// Turn anything a wallet, RPC or contract throws into plain words: what went wrong and what to do.
// Contract reverts are named by their custom error (e.g. "StakeVault_Frozen") and explained.
import {
  BaseError,
  ContractFunctionRevertedError,
  HttpRequestError,
  InsufficientFundsError,
  UserRejectedRequestError,
  decodeErrorResult,
  type Abi,
} from 'viem';
import { formatAmount, formatTimestamp } from './format';

export interface Explained {
  /** The custom error's name when a contract reverted with one, else a short category. */
  name: string;
  /** A sentence or two a person can act on. */
  message: string;
}

export interface ExplainContext {
  symbol: string; // native currency symbol for amounts in error arguments
  notices?: Record<string, string>; // NatSpec @notice per error name (from the compiler's userdoc)
  abi?: Abi; // every error of every contract, to decode raw revert data from nested calls
}

type Args = readonly unknown[];

/** An error the UI raises itself, already in plain words, with a short name for the headline. */
export class PlainError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
  }
}
type Phrase = (args: Args, ctx: ExplainContext) => string;

/** DisputeCourt.Stage in words (WrongStage's second argument). */
const STAGE_WORDS = ['not opened', 'awaiting its auditor draw', 'in voting', 'in its appeal window', 'resolved'];

const amt = (v: unknown, ctx: ExplainContext) => formatAmount(BigInt(v as bigint), ctx.symbol);

/** Plain words for the reverts people actually hit, with what to do next. */
const PHRASES: Record<string, Phrase> = {
  StakeVault_ZeroAmount: () => 'The amount must be more than zero. Enter an amount and try again.',
  StakeVault_InsufficientStake: (a, c) =>
    `You asked to unstake ${amt(a[1], c)} but only ${amt(a[0], c)} is actively staked. Enter a smaller amount.`,
  StakeVault_Frozen: () =>
    'Your stake is frozen while a dispute against you, or one you were drawn to audit, is unsettled. Wait until it resolves (see the Disputes page), then try again.',
  StakeVault_NothingToWithdraw: () =>
    'There is nothing to withdraw yet: no credits, and no unbonding stake past its release time. Check the countdown under My account.',
  StakeVault_NotCourt: () => 'Only the DisputeCourt may do this.',
  ServerRegistry_AlreadyActive: () =>
    'This account already has an active server. Use "Update server" to change it, or leave first.',
  ServerRegistry_NotActive: () => 'This account has no active server. Register one first.',
  ServerRegistry_NotRegistered: () => 'This account has no registered server.',
  ServerRegistry_InsufficientStake: (a, c) =>
    `Your active stake (${amt(a[0], c)}) is below the minimum of ${amt(a[1], c)}. Stake more under My account, then register again.`,
  ServerRegistry_BadSpan: (a) =>
    `The span [${a[1]}, ${a[2]}) does not fit version ${a[0]}, which has ${a[3]} blocks. Pick first < last ≤ ${a[3]}.`,
  ServerRegistry_InactiveVersion: (a) =>
    `Model version ${a[0]} does not exist or is deprecated. Pick an active version from the Models page.`,
  ServerRegistry_BadEndpoint: () => 'The endpoint must be 1 to 256 characters, e.g. grpc://203.0.113.7:31330.',
  ServerRegistry_ZeroSigner: () => 'The signer address must not be zero. Use your own address if unsure.',
  ServerRegistry_ZeroThroughput: () => 'Declared throughput must be more than zero tokens/s.',
  ServerRegistry_StakeSufficient: () => 'That server still holds the minimum stake, so it cannot be deactivated.',
  DisputeCourt_BondTooLow: (a, c) =>
    `The bond must be at least ${amt(a[1], c)} (you sent ${amt(a[0], c)}): it is scaled to what the dispute can slash, so it grows when the accused stakes more. Try again: the page reads the current bond first.`,
  DisputeCourt_BadEvidenceCid: () => 'The evidence CID must be 8 to 128 characters. Paste the CID your IPFS node printed for the evidence bundle.',
  DisputeCourt_ReceiptFromFuture: (a) => `The receipt is dated ${formatTimestamp(a[0] as bigint)}, later than the chain's clock allows. The server's clock is wrong; keep the receipt as evidence of that.`,
  DisputeCourt_WindowClosed: (a) => `The dispute window for this receipt closed at ${formatTimestamp(a[1] as bigint)} (judged when the opening was committed). Receipts can only be disputed within the window after they were issued.`,
  DisputeCourt_NoOpeningCommitment: () =>
    'The court has no commitment for this opening from this account (it was never mined, was already revealed, or was committed from another account). Open the dispute again from the form: it commits first, then reveals.',
  DisputeCourt_OpeningTooEarly: () =>
    'The opening was committed in the latest block; it can be revealed from the next block on. Wait for one more block, then press "Open dispute now".',
  DisputeCourt_OpeningExpired: () =>
    'The commitment for this opening expired (it must be revealed within the court\'s reveal window: openRevealBlocks blocks, and at most 30 s per such block). Discard it and open the dispute again from the form.',
  DisputeCourt_AlreadyCommitted: () =>
    'This exact opening commitment is already on chain. Reveal it from the pending openings under "Open a dispute", or start again (a new salt makes a new commitment).',
  DisputeCourt_IncidentSlashed: (a) =>
    `The accused was already slashed for this session in dispute #${a[1]}: one incident is slashed once. Follow that dispute on the Disputes page.`,
  DisputeCourt_OlderDisputePending: (a) =>
    `An older dispute on the same incident (#${a[1]}) must settle before dispute #${a[0]} can rule faulty. Push #${a[1]} on from the Disputes page, then try again.`,
  DisputeCourt_BadBlock: (a) => `Block ${a[0]} is not in the receipt's span: name a block from ${a[1]} to ${Number(a[2]) - 1}.`,
  DisputeCourt_BadKind: (a) => `The receipt's kind (${a[0]}) is not one the court knows (0 inference, 1 forward, 2 backward). Use the file exactly as your client saved it.`,
  DisputeCourt_BadVerdict: (a) => `Verdict ${a[0]} is not valid: choose faulty, honest or abstain.`,
  DisputeCourt_BadSignature: () => 'The receipt signature is malformed. Use the file exactly as your client saved it.',
  DisputeCourt_SignerNotRegistered: (a) => `The key that signed the receipt (${a[0]}) was not the registered signer of ${a[1]} for that span at that time, so the court rejects it.`,
  DisputeCourt_SelfDispute: () => 'You cannot dispute your own server\'s receipt.',
  DisputeCourt_WrongStage: (a) => `Dispute #${a[0]} is not at that stage (it is ${STAGE_WORDS[Number(a[1])] ?? 'elsewhere'}). Reload the Disputes page to see where it stands.`,
  DisputeCourt_DrawTooEarly: (a) => `Auditors for dispute #${a[0]} can be drawn only after block ${a[1]} is mined. Wait a few blocks and try again.`,
  DisputeCourt_NotAuditor: (a) => `You were not drawn as an auditor for this round of dispute #${a[0]}.`,
  DisputeCourt_VoteCommitted: (a) => `You already committed a vote for dispute #${a[0]}. Reveal it once commits close.`,
  DisputeCourt_CommitClosed: (a) => `The commit window of dispute #${a[0]} closed at ${formatTimestamp(a[1] as bigint)}.`,
  DisputeCourt_RevealNotOpen: (a) => `Reveals for dispute #${a[0]} open when every auditor has committed or at ${formatTimestamp(a[1] as bigint)}. Try again then.`,
  DisputeCourt_RevealClosed: (a) => `The reveal window of dispute #${a[0]} closed at ${formatTimestamp(a[1] as bigint)}; unrevealed votes are penalised.`,
  DisputeCourt_NotCommitted: (a) => `You have no committed vote in dispute #${a[0]} to reveal.`,
  DisputeCourt_CommitmentMismatch: () => 'This verdict and salt do not match your commitment. Load the vote backup you downloaded when committing.',
  DisputeCourt_NotResolvable: (a) => `Dispute #${a[0]} cannot be pushed on yet: wait until every auditor has revealed or until ${formatTimestamp(a[1] as bigint)} (the reveal or appeal deadline), then try again.`,
  DisputeCourt_AppealClosed: (a) =>
    `The appeal window of dispute #${a[0]} closed at ${formatTimestamp(a[1] as bigint)}: the first ruling stands. Anyone may now resolve it from the Disputes page.`,
  DisputeCourt_NoCandidates: () => 'There are no auditor candidates in the registry yet: a dispute needs registered servers to audit it. Try again once servers have registered.',
  DisputeCourt_RenounceDisabled: () => 'Renouncing ownership is disabled: the court must keep its governance. Transfer ownership (two steps) instead.',
  DisputeCourt_BadParams: (a) => `The parameter "${a[0]}" is outside the court's bounds. Pick a value within them and try again.`,
  StakeVault_RenounceDisabled: () => 'Renouncing ownership is disabled: the vault must keep its governance. Transfer ownership (two steps) instead.',
  ModelVersionRegistry_UnknownVersion: (a) => `There is no model version ${a[0]}.`,
  ModelVersionRegistry_UnknownModel: (a) => `There is no model ${a[0]}.`,
  ModelVersionRegistry_NotMaintainer: (a) => `Only maintainers of model ${a[0]} may do this.`,
  PaymentEscrow_ZeroAmount: () => 'The amount must be more than zero. Enter an amount and try again.',
  PaymentEscrow_ZeroAddress: () => 'The address must not be zero.',
  PaymentEscrow_InsufficientBalance: (a, c) =>
    `Your unallocated deposit is ${amt(a[0], c)}, less than the ${amt(a[1], c)} asked for. Deposit more, or enter a smaller amount (money in lanes comes back by announcing a reclaim).`,
  PaymentEscrow_InsufficientEarned: (a, c) => `You have earned ${amt(a[0], c)}, less than the ${amt(a[1], c)} asked for. Enter a smaller amount.`,
  PaymentEscrow_NotActiveServer: (a) =>
    `${a[0]} is not an active server in the registry: only an active server can set a price or redeem vouchers. Register (or re-register) under My account first.`,
  PaymentEscrow_NoReclaimAnnounced: () => 'No reclaim is announced for this lane. Announce one first; it becomes takeable after the reclaim delay.',
  PaymentEscrow_ReclaimLocked: (a) =>
    `The announced reclaim can be taken from ${formatTimestamp(a[0] as bigint)} on (the server may redeem vouchers until then). Try again after that.`,
  PaymentEscrow_NothingToWithdraw: () => 'You have no earnings or audit credits in the escrow to withdraw.',
  PaymentEscrow_LengthMismatch: (a) => `The two lists must be as long as each other (${a[0]} and ${a[1]}).`,
  PaymentEscrow_FeeAboveLimit: (a) => `The protocol fee is ${Number(a[0]) / 100} %, above the ${Number(a[1]) / 100} % you accept. Nothing was redeemed.`,
  PaymentEscrow_NothingToRedeem: () => 'These vouchers pay nothing more: they were redeemed already, or their lanes are empty.',
  PaymentEscrow_BadSignature: (a) => `The voucher is not signed by its client ${a[0]}, so the escrow refuses it.`,
  PaymentEscrow_NotVoucherServer: (a) => `The voucher is made out to ${a[0]}, not to this account: only its server can redeem it.`,
  PaymentEscrow_RenounceDisabled: () => 'Renouncing ownership is disabled: the escrow must keep its governance. Transfer ownership (two steps) instead.',
};

/** "StakeVault_NothingToWithdraw" → "Stake vault: nothing to withdraw". */
export function humanizeErrorName(name: string): string {
  const [scope, rest] = name.includes('_') ? [name.slice(0, name.indexOf('_')), name.slice(name.indexOf('_') + 1)] : ['', name];
  const words = (s: string) => s.replace(/([a-z0-9])([A-Z])/g, '$1 $2').replace(/([A-Z]+)([A-Z][a-z])/g, '$1 $2');
  const body = words(rest).toLowerCase();
  return scope ? `${words(scope)}: ${body}` : body.charAt(0).toUpperCase() + body.slice(1);
}

/** Explain a revert by error name and arguments. */
export function explainRevert(name: string, args: Args, ctx: ExplainContext): Explained {
  const phrase = PHRASES[name];
  if (phrase) {
    try {
      return { name, message: phrase(args, ctx) };
    } catch {
      /* malformed args: fall through to the generic words */
    }
  }
  const notice = ctx.notices?.[name];
  const detail = args.length ? ` (${args.map((a) => formatArg(a)).join(', ')})` : '';
  return { name, message: `${notice ?? humanizeErrorName(name)}${detail}.`.replace(/\.\.$/, '.') };
}

function formatArg(a: unknown): string {
  if (typeof a === 'bigint' && a > 1_000_000_000n && a < 4_000_000_000n) return formatTimestamp(a);
  return String(a);
}

/** Explain any error thrown while reading, simulating, sending or waiting for a transaction. */
export function explainError(err: unknown, ctx: ExplainContext): Explained {
  if (err instanceof BaseError) {
    const rejected = err.walk((e) => e instanceof UserRejectedRequestError || (e as { code?: number }).code === 4001);
    if (rejected) return { name: 'Rejected', message: 'You rejected the request in your wallet. Nothing was sent.' };

    const revert = err.walk((e) => e instanceof ContractFunctionRevertedError) as ContractFunctionRevertedError | null;
    if (revert) {
      if (revert.data?.errorName && revert.data.errorName !== 'Error' && revert.data.errorName !== 'Panic') {
        return explainRevert(revert.data.errorName, revert.data.args ?? [], ctx);
      }
      if (revert.raw && ctx.abi) {
        try {
          const decoded = decodeErrorResult({ abi: ctx.abi, data: revert.raw });
          return explainRevert(decoded.errorName, decoded.args ?? [], ctx);
        } catch {
          /* unknown selector */
        }
      }
      if (revert.reason) return { name: 'Reverted', message: `The contract refused: ${revert.reason}.` };
      return { name: 'Reverted', message: 'The contract refused the transaction without a reason.' };
    }
    if (err.walk((e) => e instanceof InsufficientFundsError)) {
      return {
        name: 'InsufficientFunds',
        message: 'Your wallet does not hold enough to pay the amount plus gas. Top it up or send less.',
      };
    }
    if (err.walk((e) => e instanceof HttpRequestError)) {
      return {
        name: 'RpcUnreachable',
        message: "The chain's RPC endpoint did not answer. Check that the node is running and reload.",
      };
    }
    return { name: err.name.replace(/Error$/, '') || 'Error', message: err.shortMessage };
  }
  if (err instanceof PlainError) return { name: err.code, message: err.message };
  const code = (err as { code?: number })?.code;
  if (code === 4001) return { name: 'Rejected', message: 'You rejected the request in your wallet. Nothing was sent.' };
  const message = err instanceof Error ? err.message : String(err);
  return { name: 'Error', message };
}
