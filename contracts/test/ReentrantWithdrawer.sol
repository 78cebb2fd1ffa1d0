// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

interface IVaultForAttack {
    function stake() external payable;
    function requestUnstake(uint256 amount) external;
    function withdraw() external;
}

/// @notice Test-only attacker: an operator contract whose receive() re-enters withdraw().
contract ReentrantWithdrawer {
    IVaultForAttack public immutable vault;
    uint256 public reentryAttempts;
    bool public reentrySucceeded;

    constructor(IVaultForAttack vault_) {
        vault = vault_;
    }

    /// @notice Stake the sent value, then request unbonding of all of it.
    function stakeAndUnbond() external payable {
        vault.stake{value: msg.value}();
        vault.requestUnstake(msg.value);
    }

    /// @notice Withdraw; receive() tries to withdraw again while the first call is running.
    function attack() external {
        vault.withdraw();
    }

    receive() external payable {
        if (reentryAttempts++ == 0) {
            try vault.withdraw() {
                reentrySucceeded = true;
            } catch {}
        }
    }
}
