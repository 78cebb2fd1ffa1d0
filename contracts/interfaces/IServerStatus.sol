// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @notice The part of ServerRegistry that PaymentEscrow reads.
interface IServerStatus {
    /// @notice Whether the operator's server is registered and active (staked at the minimum).
    function isActive(address operator) external view returns (bool);
}
