// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {Address} from "@openzeppelin/contracts/utils/Address.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {IServerRegistryHook} from "./interfaces/IServerRegistryHook.sol";
import {IDisputeWindow} from "./interfaces/IDisputeWindow.sol";

/// @title StakeVault
/// @notice Holds operators' stake in the chain's native currency, their unbonding amounts, the
///         credits (rewards, refunds) anyone can withdraw, the bonds of open disputes and the
///         treasury. Only the DisputeCourt can freeze, slash and credit.
/// @dev Invariant: address(this).balance ==
///      totalStaked + totalUnbonding + totalCredits + escrow + treasury.
///      `escrow` holds open disputes' bonds (and, inside one resolve call, slashed funds before
///      they are distributed); it is zero whenever no dispute is open.
///      Unbonding lasts longer than the court's freeze horizon (dispute window + clock skew + the
///      opening's reveal delay: see CourtBounds), and a dispute freezes the whole
///      account, so leaving cannot escape a slash: slashing takes active stake first, then
///      unbonding stake.
contract StakeVault is Ownable2Step, ReentrancyGuardTransient {
    /// @dev Packed so that what a dispute touches (stake, freeze count, credit) shares one slot
    ///      that is already non-zero for any staker: freezing, slashing active stake and crediting
    ///      an auditor each rewrite a warm or non-zero slot instead of filling a fresh one.
    struct Account {
        uint128 staked; // active stake, counts toward the registry's minimum
        uint96 credit; // withdrawable credits (rewards, refunds, treasury releases)
        uint32 frozenCount; // open disputes against (or drawn panels of) this operator
        uint128 unbonding; // requested for withdrawal, still slashable until released
        uint64 releaseAt; // when `unbonding` may be withdrawn
    }

    uint256 public constant MIN_UNBONDING_PERIOD = 1 hours;
    uint256 public constant MAX_UNBONDING_PERIOD = 365 days;
    uint256 public constant MAX_MIN_STAKE = 1e24;

    uint256 public minStake;
    uint64 public unbondingPeriod;
    address public court;
    address public registry;

    // Packed in pairs: escrow (zero between disputes) shares a slot with totalStaked, which is
    // non-zero while anyone stakes; totalCredits shares one with the treasury.
    uint128 public totalStaked;
    uint128 public escrow;
    uint128 public totalCredits;
    uint128 public treasury;
    uint256 public totalUnbonding;

    mapping(address => Account) private _accounts;

    error StakeVault_ZeroAmount();
    error StakeVault_InsufficientStake(uint256 available, uint256 requested);
    error StakeVault_Frozen(address operator);
    error StakeVault_NothingToWithdraw(address account);
    error StakeVault_NotCourt(address caller);
    error StakeVault_AlreadyWired();
    error StakeVault_ZeroAddress();
    error StakeVault_MinStakeOutOfBounds(uint256 value);
    error StakeVault_UnbondingOutOfBounds(uint256 value);
    error StakeVault_UnbondingNotLongerThanWindow(uint256 unbonding, uint256 freezeHorizon);
    error StakeVault_NotFrozen(address operator);
    error StakeVault_EscrowShort(uint256 escrow, uint256 needed);
    error StakeVault_TreasuryShort(uint256 treasury, uint256 needed);
    error StakeVault_LengthMismatch();
    error StakeVault_RenounceDisabled();

    event Staked(address indexed operator, uint256 amount, uint256 newStake);
    event UnstakeRequested(address indexed operator, uint256 amount, uint256 totalUnbonding, uint64 releaseAt);
    event Withdrawn(address indexed account, uint256 credit, uint256 unbonded);
    event Frozen(address indexed operator, uint32 openDisputes);
    event Unfrozen(address indexed operator, uint32 openDisputes);
    event Slashed(address indexed operator, uint256 fromStake, uint256 fromUnbonding);
    event EscrowDeposited(uint256 amount);
    event Credited(address indexed account, uint256 amount);
    event TreasuryFunded(uint256 amount);
    event Wired(address court, address registry);
    event MinStakeChanged(uint256 minStake);
    event UnbondingPeriodChanged(uint64 unbondingPeriod);

    modifier onlyCourt() {
        if (msg.sender != court) revert StakeVault_NotCourt(msg.sender);
        _;
    }

    /// @param minStake_ Minimum active stake for a registered server (wei, 1..1e24).
    /// @param unbondingPeriod_ Seconds between requesting an unstake and withdrawing it
    ///        (1 hour .. 365 days; must exceed the court's freeze horizon when wired).
    /// @param owner_ Governance: may tune parameters within bounds and release the treasury.
    constructor(uint256 minStake_, uint64 unbondingPeriod_, address owner_) Ownable(owner_) {
        _setMinStake(minStake_);
        _checkUnbonding(unbondingPeriod_);
        unbondingPeriod = unbondingPeriod_;
    }

    // ------------------------------------------------------------------ operators

    /// @notice Add the sent value to the caller's active stake.
    function stake() external payable {
        if (msg.value == 0) revert StakeVault_ZeroAmount();
        Account storage a = _accounts[msg.sender];
        a.staked += uint128(msg.value);
        totalStaked += uint128(msg.value);
        emit Staked(msg.sender, msg.value, a.staked);
    }

    /// @notice Move `amount` of active stake into unbonding. The release time restarts at
    ///         now + unbondingPeriod for the whole unbonding balance. Not allowed while frozen.
    /// @param amount Wei to unbond (> 0, <= active stake).
    function requestUnstake(uint256 amount) external {
        Account storage a = _accounts[msg.sender];
        if (amount == 0) revert StakeVault_ZeroAmount();
        if (a.frozenCount != 0) revert StakeVault_Frozen(msg.sender);
        if (amount > a.staked) revert StakeVault_InsufficientStake(a.staked, amount);
        a.staked -= uint128(amount);
        a.unbonding += uint128(amount);
        a.releaseAt = uint64(block.timestamp) + unbondingPeriod;
        totalStaked -= uint128(amount);
        totalUnbonding += amount;
        emit UnstakeRequested(msg.sender, amount, a.unbonding, a.releaseAt);
        _notifyRegistry(msg.sender);
    }

    /// @notice Withdraw the caller's credits plus, if released and not frozen, its unbonding.
    function withdraw() external nonReentrant {
        Account storage a = _accounts[msg.sender];
        uint256 credit = a.credit;
        uint256 unbonded;
        if (a.unbonding != 0 && block.timestamp >= a.releaseAt && a.frozenCount == 0) {
            unbonded = a.unbonding;
        }
        if (credit + unbonded == 0) revert StakeVault_NothingToWithdraw(msg.sender);
        if (credit != 0) {
            a.credit = 0;
            totalCredits -= uint128(credit);
        }
        if (unbonded != 0) {
            a.unbonding = 0;
            totalUnbonding -= unbonded;
        }
        emit Withdrawn(msg.sender, credit, unbonded);
        Address.sendValue(payable(msg.sender), credit + unbonded);
    }

    // ------------------------------------------------------------------ court only

    /// @notice Freeze an operator's stake while a dispute against it is open (counted).
    /// @param operator The accused.
    function freeze(address operator) external onlyCourt {
        uint32 count = ++_accounts[operator].frozenCount;
        emit Frozen(operator, count);
    }

    /// @notice Undo one `freeze` when its dispute resolves.
    /// @param operator The accused.
    function unfreeze(address operator) external onlyCourt {
        Account storage a = _accounts[operator];
        if (a.frozenCount == 0) revert StakeVault_NotFrozen(operator);
        uint32 count = --a.frozenCount;
        emit Unfrozen(operator, count);
    }

    /// @notice Freeze each of `operators` once (a dispute's drawn auditors, until it settles).
    /// @param operators Accounts to freeze.
    function freezeMany(address[] calldata operators) external onlyCourt {
        for (uint256 i; i < operators.length; ++i) {
            uint32 count = ++_accounts[operators[i]].frozenCount;
            emit Frozen(operators[i], count);
        }
    }

    /// @notice Undo one `freezeMany` (or `freeze`) of each of `operators`.
    /// @param operators Accounts to unfreeze.
    function unfreezeMany(address[] calldata operators) external onlyCourt {
        for (uint256 i; i < operators.length; ++i) {
            Account storage a = _accounts[operators[i]];
            if (a.frozenCount == 0) revert StakeVault_NotFrozen(operators[i]);
            uint32 count = --a.frozenCount;
            emit Unfrozen(operators[i], count);
        }
    }

    /// @notice Hold a dispute bond in escrow until the court distributes it.
    function depositEscrow() external payable onlyCourt {
        escrow += uint128(msg.value);
        emit EscrowDeposited(msg.value);
    }

    /// @notice Slash up to `amount` from an operator, active stake first, then unbonding; the
    ///         slashed wei move into escrow for the court to distribute.
    /// @param operator Who is slashed.
    /// @param amount The most to take.
    /// @return taken What was actually taken (less if the operator holds less).
    function slash(address operator, uint256 amount) external onlyCourt returns (uint256 taken) {
        Account storage a = _accounts[operator];
        uint256 fromStake = amount < a.staked ? amount : a.staked;
        uint256 rest = amount - fromStake;
        uint256 fromUnbonding = rest < a.unbonding ? rest : a.unbonding;
        taken = fromStake + fromUnbonding;
        if (taken == 0) return 0;
        a.staked -= uint128(fromStake);
        a.unbonding -= uint128(fromUnbonding);
        totalStaked -= uint128(fromStake);
        totalUnbonding -= fromUnbonding;
        escrow += uint128(taken);
        emit Slashed(operator, fromStake, fromUnbonding);
        _notifyRegistry(operator);
    }

    /// @notice Pay out escrow: credit each recipient and send the remainder to the treasury.
    /// @param recipients Accounts to credit (withdrawable with `withdraw`).
    /// @param amounts Wei per recipient.
    /// @param toTreasury Wei moved from escrow to the treasury.
    function distribute(address[] calldata recipients, uint256[] calldata amounts, uint256 toTreasury)
        external
        onlyCourt
    {
        if (recipients.length != amounts.length) revert StakeVault_LengthMismatch();
        uint256 total = toTreasury;
        for (uint256 i; i < amounts.length; ++i) total += amounts[i];
        if (total > escrow) revert StakeVault_EscrowShort(escrow, total);
        escrow -= uint128(total);
        totalCredits += uint128(total - toTreasury);
        for (uint256 i; i < recipients.length; ++i) {
            if (amounts[i] != 0) _credit(recipients[i], amounts[i]);
        }
        if (toTreasury != 0) {
            treasury += uint128(toTreasury);
            emit TreasuryFunded(toTreasury);
        }
    }

    // ------------------------------------------------------------------ governance

    /// @notice Connect the court and the registry, once, after all three are deployed.
    /// @param court_ The DisputeCourt (its freeze horizon must be shorter than unbonding).
    /// @param registry_ The ServerRegistry (told when an operator's stake decreases).
    function wire(address court_, address registry_) external onlyOwner {
        if (court != address(0)) revert StakeVault_AlreadyWired();
        if (court_ == address(0) || registry_ == address(0)) revert StakeVault_ZeroAddress();
        uint256 horizon = IDisputeWindow(court_).freezeHorizon();
        if (unbondingPeriod <= horizon) revert StakeVault_UnbondingNotLongerThanWindow(unbondingPeriod, horizon);
        court = court_;
        registry = registry_;
        emit Wired(court_, registry_);
    }

    /// @notice Disabled: a vault without governance could never be wired or tuned again.
    function renounceOwnership() public pure override {
        revert StakeVault_RenounceDisabled();
    }

    /// @notice Change the minimum stake (1 wei .. 1e24). Servers below it become inactive when
    ///         anyone pokes them in the registry.
    /// @param value New minimum stake in wei.
    function setMinStake(uint256 value) external onlyOwner {
        _setMinStake(value);
    }

    /// @notice Change the unbonding period (bounded, and longer than the court's freeze horizon).
    /// @param value Seconds.
    function setUnbondingPeriod(uint64 value) external onlyOwner {
        _checkUnbonding(value);
        if (court != address(0)) {
            uint256 horizon = IDisputeWindow(court).freezeHorizon();
            if (value <= horizon) revert StakeVault_UnbondingNotLongerThanWindow(value, horizon);
        }
        unbondingPeriod = value;
        emit UnbondingPeriodChanged(value);
    }

    /// @notice Credit `amount` of the treasury to `to` (who withdraws it like any credit).
    /// @param to Recipient.
    /// @param amount Wei.
    function releaseTreasury(address to, uint256 amount) external onlyOwner {
        if (to == address(0)) revert StakeVault_ZeroAddress();
        if (amount > treasury) revert StakeVault_TreasuryShort(treasury, amount);
        treasury -= uint128(amount);
        totalCredits += uint128(amount);
        _credit(to, amount);
    }

    // ------------------------------------------------------------------ views

    /// @notice Withdrawable credits of an account (rewards, refunds, treasury releases).
    function credits(address account) external view returns (uint256) {
        return _accounts[account].credit;
    }

    /// @notice Active stake of an operator.
    function stakeOf(address operator) external view returns (uint256) {
        return _accounts[operator].staked;
    }

    /// @notice Active plus unbonding stake: what a slash can reach.
    function slashableOf(address operator) external view returns (uint256) {
        Account storage a = _accounts[operator];
        return uint256(a.staked) + a.unbonding;
    }

    /// @notice An operator's full account record.
    function accountOf(address operator) external view returns (Account memory) {
        return _accounts[operator];
    }

    /// @notice Whether a dispute against the operator is open.
    function isFrozen(address operator) external view returns (bool) {
        return _accounts[operator].frozenCount != 0;
    }

    // ------------------------------------------------------------------ internal

    function _credit(address to, uint256 amount) private {
        _accounts[to].credit += SafeCast.toUint96(amount);
        emit Credited(to, amount);
    }

    function _notifyRegistry(address operator) private {
        if (registry != address(0)) IServerRegistryHook(registry).onStakeDecreased(operator);
    }

    function _setMinStake(uint256 value) private {
        if (value == 0 || value > MAX_MIN_STAKE) revert StakeVault_MinStakeOutOfBounds(value);
        minStake = value;
        emit MinStakeChanged(value);
    }

    function _checkUnbonding(uint256 value) private pure {
        if (value < MIN_UNBONDING_PERIOD || value > MAX_UNBONDING_PERIOD) {
            revert StakeVault_UnbondingOutOfBounds(value);
        }
    }
}
