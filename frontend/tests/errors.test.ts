import { describe, expect, test } from 'vitest';
import {
  ContractFunctionExecutionError, ContractFunctionRevertedError, UserRejectedRequestError, encodeErrorResult, parseEther, type Abi,
} from 'viem';
import { allErrorsAbi } from '../src/contracts';
import { DisputeCourtAbi, ServerRegistryAbi, StakeVaultAbi } from '../src/generated/contracts';
import { PlainError, explainError, explainRevert, humanizeErrorName } from '../src/errors';

const ctx = { symbol: 'ETH', abi: allErrorsAbi };

/** The error viem throws when a simulated call reverts with custom error `errorName`. */
function revert(abi: Abi, decodeWith: Abi, errorName: string, args: readonly unknown[]) {
  const data = encodeErrorResult({ abi, errorName, args } as Parameters<typeof encodeErrorResult>[0]);
  const cause = new ContractFunctionRevertedError({ abi: decodeWith, data, functionName: 'f' });
  return new ContractFunctionExecutionError(cause, { abi: decodeWith, functionName: 'f', args: [] });
}

describe('explainError', () => {
  test('names a contract revert by its custom error and says what to do', () => {
    const err = revert(ServerRegistryAbi as Abi, ServerRegistryAbi as Abi, 'ServerRegistry_InsufficientStake', [0n, parseEther('1')]);
    const e = explainError(err, ctx);
    expect(e.name).toBe('ServerRegistry_InsufficientStake');
    expect(e.message).toBe('Your active stake (0 ETH) is below the minimum of 1 ETH. Stake more under My account, then register again.');
  });

  test('decodes an error raised by another contract in a nested call', () => {
    // ServerRegistry's ABI does not know StakeVault's errors; the combined error ABI does.
    const err = revert(StakeVaultAbi as Abi, ServerRegistryAbi as Abi, 'StakeVault_Frozen', ['0x70997970C51812dc3A010C7d01b50e0d17dc79C8']);
    expect(explainError(err, ctx).name).toBe('StakeVault_Frozen');
    expect(explainError(err, ctx).message).toMatch(/frozen while a dispute/);
  });

  test('explains court errors with their arguments', () => {
    const err = revert(DisputeCourtAbi as Abi, DisputeCourtAbi as Abi, 'DisputeCourt_DrawTooEarly', [4n, 25n]);
    const e = explainError(err, ctx);
    expect(e.name).toBe('DisputeCourt_DrawTooEarly');
    expect(e.message).toBe('Auditors for dispute #4 can be drawn only after block 25 is mined. Wait a few blocks and try again.');
  });

  test('explains the court v3 reverts (bond, opening commit-reveal, appeal) with what to do next', () => {
    const say = (name: string, args: readonly unknown[]) => explainError(revert(DisputeCourtAbi as Abi, DisputeCourtAbi as Abi, name, args), ctx);
    const h = `0x${'ab'.repeat(32)}`;
    expect(say('DisputeCourt_BondTooLow', [parseEther('0.1'), parseEther('0.25')]).message)
      .toMatch(/^The bond must be at least 0\.25 ETH \(you sent 0\.1 ETH\).*Try again/);
    expect(say('DisputeCourt_NoOpeningCommitment', [h]).message).toMatch(/Open the dispute again from the form/);
    expect(say('DisputeCourt_OpeningTooEarly', [h]).message).toMatch(/Wait for one more block/);
    expect(say('DisputeCourt_OpeningExpired', [h]).message).toMatch(/Discard it and open the dispute again/);
    expect(say('DisputeCourt_AlreadyCommitted', [h]).message).toMatch(/already on chain/);
    expect(say('DisputeCourt_VoteCommitted', [3n, '0x70997970C51812dc3A010C7d01b50e0d17dc79C8']).message).toBe('You already committed a vote for dispute #3. Reveal it once commits close.');
    expect(say('DisputeCourt_IncidentSlashed', [h, 2n]).message).toMatch(/already slashed for this session in dispute #2/);
    expect(say('DisputeCourt_OlderDisputePending', [5n, 4n]).message).toMatch(/older dispute on the same incident \(#4\) must settle before dispute #5/);
    expect(say('DisputeCourt_AppealClosed', [5n, 1_800_000_000n]).message).toMatch(/^The appeal window of dispute #5 closed at 2027-01-15 .*the first ruling stands/);
    expect(say('DisputeCourt_NoCandidates', []).message).toMatch(/no auditor candidates/);
    expect(say('DisputeCourt_RenounceDisabled', []).message).toMatch(/disabled/);
    expect(say('DisputeCourt_WrongStage', [5n, 3]).message).toBe('Dispute #5 is not at that stage (it is in its appeal window). Reload the Disputes page to see where it stands.');
    expect(say('DisputeCourt_WrongStage', [5n, 4]).message).toMatch(/it is resolved/);
  });

  test('every error the court declares is one the UI explains in its own words', () => {
    const court = (DisputeCourtAbi as Abi).filter((i) => i.type === 'error').map((i) => (i as { name: string }).name);
    const generic = court.filter((name) => {
      const item = (DisputeCourtAbi as Abi).find((i) => i.type === 'error' && i.name === name) as unknown as { inputs: { type: string }[] };
      const args = item.inputs.map((i) => (i.type === 'address' ? '0x0000000000000000000000000000000000000001' : i.type === 'string' ? 'x' : i.type === 'bytes32' ? `0x${'0'.repeat(64)}` : 1n));
      return explainRevert(name, args, ctx).message.startsWith('Dispute Court:');
    });
    expect(generic).toEqual([]);
  });

  test('falls back to the humanised name with its arguments', () => {
    const err = revert(StakeVaultAbi as Abi, StakeVaultAbi as Abi, 'StakeVault_EscrowShort', [1n, 2n]);
    expect(explainError(err, ctx)).toEqual({ name: 'StakeVault_EscrowShort', message: 'Stake Vault: escrow short (1, 2).' });
  });

  test('a rejected request says nothing was sent', () => {
    const e = explainError(new UserRejectedRequestError(new Error('User denied')), ctx);
    expect(e).toEqual({ name: 'Rejected', message: 'You rejected the request in your wallet. Nothing was sent.' });
    expect(explainError({ code: 4001, message: 'denied' }, ctx).name).toBe('Rejected');
  });

  test("the UI's own errors keep their name", () => {
    expect(explainError(new PlainError('WrongNetwork', 'Switch to Anvil.'), ctx)).toEqual({ name: 'WrongNetwork', message: 'Switch to Anvil.' });
  });
});

test('humanizeErrorName', () => {
  expect(humanizeErrorName('StakeVault_NothingToWithdraw')).toBe('Stake Vault: nothing to withdraw');
  expect(humanizeErrorName('DisputeCourt_BadParams')).toBe('Dispute Court: bad params');
  expect(humanizeErrorName('SomethingOdd')).toBe('Something odd');
});

test('every custom error of every contract gets words without throwing', () => {
  for (const item of allErrorsAbi) {
    if (item.type !== 'error') continue;
    const args = item.inputs.map((i) => (i.type === 'address' ? '0x0000000000000000000000000000000000000001' : i.type === 'string' ? 'x' : i.type === 'bool' ? true : 1n));
    const e = explainRevert(item.name, args, ctx);
    expect(e.name).toBe(item.name);
    expect(e.message.length).toBeGreaterThan(10);
  }
});
