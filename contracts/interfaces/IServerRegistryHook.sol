// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @notice What StakeVault tells ServerRegistry after an operator's stake went down.
interface IServerRegistryHook {
    /// @notice Re-check the operator's stake against the minimum; deactivate if below.
    function onStakeDecreased(address operator) external;
}
