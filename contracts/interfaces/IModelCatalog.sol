// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @notice The parts of ModelVersionRegistry that BenchmarkRegistry reads (same ABI layout as
///         ModelVersionRegistry's Version and Adapter structs).
interface IModelCatalog {
    struct Version {
        uint64 modelId;
        uint64 parentId;
        uint64 supersededBy;
        uint32 numBlocks;
        uint32 toleranceMicros;
        bool deprecated;
        address publisher;
        string manifestCid;
    }

    struct Adapter {
        uint64 baseVersionId;
        address publisher;
        string cid;
        string name;
        string tags;
    }

    /// @notice Whether `account` may publish versions of the model (its owner is one).
    function isMaintainer(uint64 modelId, address account) external view returns (bool);

    /// @notice A version's record (all-zero if unknown).
    function getVersion(uint64 versionId) external view returns (Version memory);

    /// @notice An adapter's record (all-zero if unknown).
    function getAdapter(uint64 adapterId) external view returns (Adapter memory);
}
