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

    /// @notice Number of active servers of a version.
    function activeCount(uint64 versionId) external view returns (uint256);

    /// @notice The operator at `index` of a version's active set (order changes on removal).
    function activeServerAt(uint64 versionId, uint256 index) external view returns (address);
}
