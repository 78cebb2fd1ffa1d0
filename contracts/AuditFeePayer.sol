// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {DisputeCourt} from "./DisputeCourt.sol";

/// @notice The part of PaymentEscrow this contract calls (it is the escrow's audit payer).
interface IAuditPool {
    function credit(address[] calldata auditors, uint256 amountEach) external returns (uint256 paidEach);
}

/// @title AuditFeePayer
/// @notice Pays auditors for the work of auditing, from the escrow's audit pool (funded by the
///         protocol fee on every redemption), once per resolved dispute and whatever the verdict:
///         every drawn auditor whose revealed verdict agrees with the final ruling gets
///         `feePerAudit` (or an equal share of the pool when it holds less). Honest auditing pays
///         even when cheating is rare; a wrong, abstaining or silent auditor gets nothing here
///         (and pays the court's penalties). Anyone may trigger the payment.
/// @dev Reads the court's views only, so the court needs no change and no room. A dispute that
///      ends without a ruling (no quorum, lapsed) pays nobody. Rational-attacker note: opening a
///      frivolous dispute to farm fees costs the challenger's bond (10 % of what it could
///      slash), far above K x feePerAudit; `MAX_FEE_PER_AUDIT` bounds the owner.
contract AuditFeePayer is Ownable2Step {
    uint256 public constant MAX_FEE_PER_AUDIT = 1 ether;

    DisputeCourt public immutable court;
    IAuditPool public immutable pool;
    uint256 public feePerAudit;
    mapping(uint256 disputeId => bool) public paid;

    error AuditFeePayer_NotResolved(uint256 disputeId);
    error AuditFeePayer_AlreadyPaid(uint256 disputeId);
    error AuditFeePayer_FeeTooHigh(uint256 value, uint256 max);
    error AuditFeePayer_RenounceDisabled();

    event AuditPaid(uint256 indexed disputeId, uint256 auditors, uint256 paidEach);
    event FeePerAuditChanged(uint256 value);

    /// @param court_ The DisputeCourt whose disputes are paid for.
    /// @param pool_ The PaymentEscrow holding the audit pool (must name this contract its audit payer).
    /// @param feePerAudit_ Wei per coherent auditor per dispute (at most MAX_FEE_PER_AUDIT).
    /// @param owner_ Governance (a timelock in production).
    constructor(DisputeCourt court_, IAuditPool pool_, uint256 feePerAudit_, address owner_) Ownable(owner_) {
        court = court_;
        pool = pool_;
        _setFee(feePerAudit_);
    }

    /// @notice Credit the coherent auditors of a resolved dispute (once per dispute).
    /// @param disputeId The dispute.
    /// @return paidEach What each coherent auditor was credited in the escrow (withdrawable there).
    function payAudit(uint256 disputeId) external returns (uint256 paidEach) {
        if (paid[disputeId]) revert AuditFeePayer_AlreadyPaid(disputeId);
        DisputeCourt.Dispute memory d = court.getDispute(disputeId);
        if (d.stage != DisputeCourt.Stage.Resolved) revert AuditFeePayer_NotResolved(disputeId);
        paid[disputeId] = true;
        address[] memory coherent = _coherent(disputeId, d.outcome);
        if (coherent.length != 0) paidEach = pool.credit(coherent, feePerAudit);
        emit AuditPaid(disputeId, coherent.length, paidEach);
    }

    /// @notice Change the fee per coherent auditor (bounded), for disputes paid later.
    /// @param value Wei.
    function setFeePerAudit(uint256 value) external onlyOwner {
        _setFee(value);
    }

    /// @notice Disabled: the fee must stay tunable.
    function renounceOwnership() public pure override {
        revert AuditFeePayer_RenounceDisabled();
    }

    function _coherent(uint256 disputeId, DisputeCourt.Outcome outcome) private view returns (address[] memory out) {
        DisputeCourt.VoteState want;
        if (outcome == DisputeCourt.Outcome.Faulty) want = DisputeCourt.VoteState.RevealedFaulty;
        else if (outcome == DisputeCourt.Outcome.Honest) want = DisputeCourt.VoteState.RevealedHonest;
        else return new address[](0);
        address[] memory drawn = court.auditorsOf(disputeId);
        out = new address[](drawn.length);
        uint256 n;
        for (uint256 i; i < drawn.length; ++i) {
            if (court.voteOf(disputeId, drawn[i]).state == want) out[n++] = drawn[i];
        }
        assembly ("memory-safe") {
            mstore(out, n)
        }
    }

    function _setFee(uint256 value) private {
        if (value > MAX_FEE_PER_AUDIT) revert AuditFeePayer_FeeTooHigh(value, MAX_FEE_PER_AUDIT);
        feePerAudit = value;
        emit FeePerAuditChanged(value);
    }
}
