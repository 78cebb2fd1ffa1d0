// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @notice The court parameters StakeVault must stay consistent with.
interface IDisputeWindow {
    /// @notice Seconds after a receipt's issuedAt during which it can be disputed.
    function disputeWindow() external view returns (uint64);

    /// @notice Seconds after a receipt's issuedAt until which a dispute over it can still freeze
    ///         the accused (window + clock skew + the opening's reveal delay); unbonding must be
    ///         longer.
    function freezeHorizon() external view returns (uint256);
}
