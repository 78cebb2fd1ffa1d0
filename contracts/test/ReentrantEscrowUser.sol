// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

interface IEscrowForAttack {
    function deposit() external payable;
    function announceReclaim(uint256 amount) external;
    function reclaim() external;
    function withdraw() external;
    function spendEarned(uint256 amount) external;
}

/// @notice Test-only attacker: a client / auditor contract whose receive() re-enters the escrow
///         (the same call, then `spendEarned`) while the first payout is being sent.
contract ReentrantEscrowUser {
    IEscrowForAttack public immutable escrow;
    uint256 public reentryAttempts;
    bool public reentrySucceeded;
    bool private _viaReclaim;

    constructor(IEscrowForAttack escrow_) {
        escrow = escrow_;
    }

    /// @notice Deposit the sent value and announce a reclaim of all of it.
    function depositAndAnnounce() external payable {
        escrow.deposit{value: msg.value}();
        escrow.announceReclaim(msg.value);
    }

    /// @notice Reclaim; receive() tries to reclaim again.
    function attackReclaim() external {
        _viaReclaim = true;
        escrow.reclaim();
    }

    /// @notice Withdraw earnings; receive() tries to withdraw again, then to spend them.
    function attackWithdraw() external {
        _viaReclaim = false;
        escrow.withdraw();
    }

    receive() external payable {
        if (reentryAttempts++ != 0) return;
        if (_viaReclaim) {
            try escrow.reclaim() {
                reentrySucceeded = true;
            } catch {}
            return;
        }
        try escrow.withdraw() {
            reentrySucceeded = true;
        } catch {}
        try escrow.spendEarned(1) {
            reentrySucceeded = true;
        } catch {}
    }
}
