// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @notice The parts of ModelVersionRegistry that ServerRegistry uses.
interface IModelVersions {
    /// @notice Block count of an existing, non-deprecated version; 0 otherwise.
    function activeBlockCount(uint64 versionId) external view returns (uint32);
}
