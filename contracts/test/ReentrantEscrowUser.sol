// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

interface IEscrowForAttack {
    function deposit() external payable;
    function allocate(address[] calldata servers, uint256[] calldata amounts) external payable;
    function announceReclaim(address server, uint256 amount) external;
    function reclaim(address server) external;
    function withdrawDeposit(uint256 amount) external;
    function withdraw() external;
    function spendEarned(uint256 amount) external;
}

/// @notice Test-only attacker: a client / auditor contract whose receive() re-enters the escrow
///         (the same payout again, then `spendEarned`) while the first payout is being sent.
contract ReentrantEscrowUser {
    enum Mode {
        Earnings,
        Deposit,
        Lane
    }

    IEscrowForAttack public immutable escrow;
    uint256 public reentryAttempts;
    bool public reentrySucceeded;
    Mode private _mode;
    bool private _armed; // the next payout received re-enters once
    uint256 private _amount;

    constructor(IEscrowForAttack escrow_) {
        escrow = escrow_;
    }

    /// @notice Deposit the sent value into a lane (for this contract as "server") and announce
    ///         its reclaim.
    function fundLaneAndAnnounce() external payable {
        address[] memory servers = new address[](1);
        uint256[] memory amounts = new uint256[](1);
        servers[0] = address(this);
        amounts[0] = msg.value;
        escrow.allocate{value: msg.value}(servers, amounts);
        escrow.announceReclaim(address(this), msg.value);
    }

    /// @notice Deposit the sent value (unallocated).
    function fundDeposit() external payable {
        escrow.deposit{value: msg.value}();
    }

    /// @notice Reclaim the lane; receive() tries to reclaim it again.
    function attackReclaim() external {
        _mode = Mode.Lane;
        _armed = true;
        escrow.reclaim(address(this));
    }

    /// @notice Withdraw `amount` of the deposit; receive() tries to withdraw it again.
    function attackWithdrawDeposit(uint256 amount) external {
        _mode = Mode.Deposit;
        _armed = true;
        _amount = amount;
        escrow.withdrawDeposit(amount);
    }

    /// @notice Withdraw earnings; receive() tries to withdraw again, then to spend them.
    function attackWithdraw() external {
        _mode = Mode.Earnings;
        _armed = true;
        escrow.withdraw();
    }

    receive() external payable {
        if (!_armed) return;
        _armed = false;
        reentryAttempts++;
        if (_mode == Mode.Lane) {
            try escrow.reclaim(address(this)) {
                reentrySucceeded = true;
            } catch {}
        } else if (_mode == Mode.Deposit) {
            try escrow.withdrawDeposit(_amount) {
                reentrySucceeded = true;
            } catch {}
        } else {
            try escrow.withdraw() {
                reentrySucceeded = true;
            } catch {}
            try escrow.spendEarned(1) {
                reentrySucceeded = true;
            } catch {}
        }
    }
}
