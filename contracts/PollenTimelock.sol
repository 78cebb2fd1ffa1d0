// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {TimelockController} from "@openzeppelin/contracts/governance/TimelockController.sol";

/// @title PollenTimelock
/// @notice Governance for StakeVault and DisputeCourt outside dev chains: OpenZeppelin's
///         TimelockController, deployed by `pollen.deploy --timelock-delay`. Proposers (a
///         multisig) schedule parameter changes; anyone executes them after `minDelay`, so
///         operators see every change coming and can leave before it applies.
contract PollenTimelock is TimelockController {
    /// @param minDelay Seconds between scheduling and executing an operation.
    /// @param proposers Who may schedule (and cancel) operations.
    /// @param executors Who may execute them (address(0) = anyone).
    constructor(uint256 minDelay, address[] memory proposers, address[] memory executors)
        TimelockController(minDelay, proposers, executors, address(0))
    {}
}
