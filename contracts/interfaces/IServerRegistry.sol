// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @notice The parts of ServerRegistry that DisputeCourt uses.
interface IServerRegistry {
    /// @notice Whether `signer` was `operator`'s registered receipt key, serving `versionId` on a
    ///         span containing [firstBlock, lastBlock), at time `issuedAt`, in term `termIndex`.
    function signedFor(
        address operator,
        address signer,
        uint64 versionId,
        uint32 firstBlock,
        uint32 lastBlock,
        uint64 issuedAt,
        uint256 termIndex
    ) external view returns (bool);

    /// @notice Number of auditor tickets issued so far.
    function ticketCount() external view returns (uint256);

    /// @notice Draw up to k distinct eligible auditors over the first `count` tickets.
    function drawPanel(bytes32 seed, uint256 count, uint64 activeBefore, uint256 k, address[] calldata exclude)
        external
        view
        returns (address[] memory panel);
}
