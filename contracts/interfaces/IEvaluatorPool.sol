// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @notice The parts of ServerRegistry that BenchmarkRegistry uses to draw evaluators: the
///         append-only, stake-weighted ticket list and its sortition.
interface IEvaluatorPool {
    /// @notice Number of tickets issued so far (a prefix fixed before a draw's seed exists).
    function ticketCount() external view returns (uint256);

    /// @notice Up to k distinct holders of the first `count` tickets, stake-weighted, whose
    ///         servers are Active and have been since at most `activeBefore`, none in `exclude`.
    function drawPanel(bytes32 seed, uint256 count, uint64 activeBefore, uint256 k, address[] calldata exclude)
        external
        view
        returns (address[] memory panel);
}
