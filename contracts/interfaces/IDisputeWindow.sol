// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @notice The one court parameter StakeVault must stay consistent with.
interface IDisputeWindow {
    /// @notice Seconds after a receipt's issuedAt during which it can be disputed.
    function disputeWindow() external view returns (uint64);
}
