// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {DisputeCourt} from "./DisputeCourt.sol";
import {IStakeVault} from "./interfaces/IStakeVault.sol";

/// @dev Seconds per block an opening's reveal deadline allows at most (see CourtBounds).
uint256 constant OPENING_SECONDS_PER_BLOCK = 30;

/// @title CourtBounds
/// @notice The governance bounds of DisputeCourt's parameters, and the freeze horizon that
///         StakeVault's unbonding period must exceed. Stateless: the court creates one in its
///         constructor and asks it whenever parameters change (this keeps the court's runtime
///         code under the EIP-170 limit without touching its ABI).
/// @dev The freeze horizon: a receipt dated up to maxClockSkew ahead of the chain can be committed
///      to until disputeWindow after its date, and the commitment revealed (which freezes the
///      accused) up to openRevealBlocks blocks and OPENING_BLOCK_SECONDS x openRevealBlocks
///      seconds later. Stake unbonding when the receipt was issued must still be there then.
contract CourtBounds {
    /// @notice The court that created this contract (its parameters are the "current" ones).
    DisputeCourt public immutable court;

    /// @notice Seconds per block the opening's reveal deadline allows at most (the court also
    ///         refuses a reveal this many seconds per `openRevealBlocks` after the commitment).
    uint256 public constant OPENING_BLOCK_SECONDS = OPENING_SECONDS_PER_BLOCK;

    constructor() {
        court = DisputeCourt(msg.sender);
    }

    /// @notice The court's current freeze horizon (see `freezeHorizon`).
    function currentFreezeHorizon() external view returns (uint256) {
        return freezeHorizon(court.params());
    }

    /// @notice The first of the court's current parameters outside its bounds ("" when none is),
    ///         given the vault's minimum stake and unbonding period now.
    function currentViolation() external view returns (string memory) {
        IStakeVault vault = court.vault();
        return violation(court.params(), vault.minStake(), vault.unbondingPeriod());
    }

    /// @notice Seconds after a receipt's issuedAt (by the signer's clock, at most maxClockSkew
    ///         ahead of the chain's) until which a dispute over it can still freeze the accused.
    /// @param p The court parameters.
    function freezeHorizon(DisputeCourt.Params memory p) public pure returns (uint256) {
        return uint256(p.disputeWindow) + p.maxClockSkew + revealSeconds(p.openRevealBlocks);
    }

    /// @notice The most seconds an opening may take from commitment to reveal.
    /// @param openRevealBlocks The court's `openRevealBlocks`.
    function revealSeconds(uint32 openRevealBlocks) public pure returns (uint256) {
        return uint256(openRevealBlocks) * OPENING_BLOCK_SECONDS;
    }

    /// @notice The first parameter of `p` outside its bounds ("" when all are within).
    /// @param p The proposed parameters.
    /// @param minStake StakeVault's minimum stake (caps the auditor penalties).
    /// @param unbondingPeriod StakeVault's unbonding period (must exceed the freeze horizon).
    function violation(DisputeCourt.Params memory p, uint256 minStake, uint256 unbondingPeriod)
        public
        pure
        returns (string memory)
    {
        string memory timing = _timing(p);
        if (bytes(timing).length != 0) return timing;
        string memory money = _money(p, minStake / 2);
        if (bytes(money).length != 0) return money;
        if (unbondingPeriod <= freezeHorizon(p)) return "unbonding <= freezeHorizon";
        return "";
    }

    function _timing(DisputeCourt.Params memory p) private pure returns (string memory) {
        if (p.disputeWindow < 10 minutes || p.disputeWindow > 90 days) return "disputeWindow";
        if (p.maxClockSkew > 10 minutes) return "maxClockSkew";
        if (p.commitPeriod < 1 minutes || p.commitPeriod > 14 days) return "commitPeriod";
        if (p.revealPeriod < 1 minutes || p.revealPeriod > 14 days) return "revealPeriod";
        if (p.appealPeriod > 30 days) return "appealPeriod";
        if (p.auditorMinAge > 30 days) return "auditorMinAge";
        if (p.drawDelayBlocks == 0 || p.drawDelayBlocks > 200) return "drawDelayBlocks";
        if (p.openRevealBlocks == 0 || p.openRevealBlocks > 1000) return "openRevealBlocks";
        if (p.auditorsPerDispute < 3 || p.auditorsPerDispute > 15) return "auditorsPerDispute";
        if (p.minPanel < 3 || p.minPanel > p.auditorsPerDispute) return "minPanel";
        return "";
    }

    function _money(DisputeCourt.Params memory p, uint256 penaltyCap) private pure returns (string memory) {
        if (p.slashBps < 100 || p.slashBps > 5_000) return "slashBps";
        if (p.finderBps > 5_000 || p.auditorBps > 5_000 || uint256(p.finderBps) + p.auditorBps > 9_000) {
            return "finderBps+auditorBps";
        }
        if (p.accusedShareBps > 10_000) return "accusedShareBps";
        if (p.bondBps < 100 || p.bondBps > 10_000) return "bondBps";
        if (p.minBond < 1e15 || p.minBond > type(uint88).max / 4) return "minBond";
        if (p.noRevealPenalty == 0 || p.noRevealPenalty > penaltyCap) return "noRevealPenalty";
        if (p.incoherencePenalty > penaltyCap) return "incoherencePenalty";
        return "";
    }
}
