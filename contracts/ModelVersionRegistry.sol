// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title ModelVersionRegistry
/// @notice Models, their versions (IPFS manifest CIDs) and adapters. A version is what servers
///         serve and clients pin: a manifest CID, the number of transformer blocks, its parent
///         version and the numerical tolerance auditors use to compare honest outputs.
/// @dev CIDs are stored as strings (e.g. CIDv1 base32 "bafy..."), exactly as IPFS tools print
///      them, so they can be shown and fetched without re-encoding. Ids start at 1; 0 means none.
contract ModelVersionRegistry {
    struct Model {
        address owner;
        string name;
    }

    struct Version {
        uint64 modelId;
        uint64 parentId; // 0 = no parent
        uint64 supersededBy; // 0 = not superseded
        uint32 numBlocks;
        uint32 toleranceMicros; // max relative L2 error between honest outputs, x 1e6
        bool deprecated;
        address publisher;
        string manifestCid;
    }

    struct Adapter {
        uint64 baseVersionId;
        address publisher;
        string cid;
        string name;
        string tags; // comma-separated, free text
    }

    /// @notice Upper bound on blocks per version (keeps spans in uint32 and audits bounded).
    uint32 public constant MAX_BLOCKS = 4096;
    /// @notice Upper bound on a CID string's length.
    uint256 public constant MAX_CID_LENGTH = 128;

    uint64 public modelCount;
    uint64 public versionCount;
    uint64 public adapterCount;

    mapping(uint64 => Model) private _models;
    mapping(uint64 => mapping(address => bool)) public isMaintainer;
    mapping(uint64 => Version) private _versions;
    mapping(uint64 => Adapter) private _adapters;
    /// @notice Version id by keccak256 of its manifest CID (0 if never published).
    mapping(bytes32 => uint64) public versionIdByManifestHash;

    error ModelVersionRegistry_UnknownModel(uint64 modelId);
    error ModelVersionRegistry_UnknownVersion(uint64 versionId);
    error ModelVersionRegistry_NotModelOwner(uint64 modelId, address caller);
    error ModelVersionRegistry_NotMaintainer(uint64 modelId, address caller);
    error ModelVersionRegistry_EmptyName();
    error ModelVersionRegistry_BadCid();
    error ModelVersionRegistry_BadBlockCount(uint32 numBlocks);
    error ModelVersionRegistry_BadTolerance(uint32 toleranceMicros);
    error ModelVersionRegistry_ParentOfOtherModel(uint64 parentId);
    error ModelVersionRegistry_DuplicateManifest(uint64 existingVersionId);
    error ModelVersionRegistry_AlreadyDeprecated(uint64 versionId);
    error ModelVersionRegistry_BadSuccessor(uint64 successorId);
    error ModelVersionRegistry_ZeroAddress();

    event ModelCreated(uint64 indexed modelId, address indexed owner, string name);
    event ModelOwnershipTransferred(uint64 indexed modelId, address indexed previousOwner, address indexed newOwner);
    event MaintainerAdded(uint64 indexed modelId, address indexed maintainer);
    event MaintainerRemoved(uint64 indexed modelId, address indexed maintainer);
    event VersionPublished(
        uint64 indexed versionId,
        uint64 indexed modelId,
        uint64 parentId,
        address indexed publisher,
        string manifestCid,
        uint32 numBlocks,
        uint32 toleranceMicros
    );
    event VersionDeprecated(uint64 indexed versionId, uint64 indexed supersededBy);
    event AdapterPublished(
        uint64 indexed adapterId,
        uint64 indexed baseVersionId,
        address indexed publisher,
        string cid,
        string name,
        string tags
    );

    modifier onlyModelOwner(uint64 modelId) {
        if (_models[modelId].owner != msg.sender) revert ModelVersionRegistry_NotModelOwner(modelId, msg.sender);
        _;
    }

    /// @notice Create a model; the caller becomes its owner and first maintainer.
    /// @param name Human-readable model name (e.g. "SmolLM2-135M-Instruct").
    /// @return modelId The new model's id.
    function createModel(string calldata name) external returns (uint64 modelId) {
        if (bytes(name).length == 0 || bytes(name).length > 128) revert ModelVersionRegistry_EmptyName();
        modelId = ++modelCount;
        _models[modelId] = Model({owner: msg.sender, name: name});
        isMaintainer[modelId][msg.sender] = true;
        emit ModelCreated(modelId, msg.sender, name);
        emit MaintainerAdded(modelId, msg.sender);
    }

    /// @notice Hand a model to a new owner (who may then manage its maintainers).
    /// @param modelId The model.
    /// @param newOwner The new owner; must not be the zero address.
    function transferModelOwnership(uint64 modelId, address newOwner) external onlyModelOwner(modelId) {
        if (newOwner == address(0)) revert ModelVersionRegistry_ZeroAddress();
        address previous = _models[modelId].owner;
        _models[modelId].owner = newOwner;
        emit ModelOwnershipTransferred(modelId, previous, newOwner);
    }

    /// @notice Allow `maintainer` to publish and deprecate versions of the model.
    /// @param modelId The model (caller must own it).
    /// @param maintainer The account to add.
    function addMaintainer(uint64 modelId, address maintainer) external onlyModelOwner(modelId) {
        if (maintainer == address(0)) revert ModelVersionRegistry_ZeroAddress();
        isMaintainer[modelId][maintainer] = true;
        emit MaintainerAdded(modelId, maintainer);
    }

    /// @notice Revoke a maintainer.
    /// @param modelId The model (caller must own it).
    /// @param maintainer The account to remove.
    function removeMaintainer(uint64 modelId, address maintainer) external onlyModelOwner(modelId) {
        isMaintainer[modelId][maintainer] = false;
        emit MaintainerRemoved(modelId, maintainer);
    }

    /// @notice Publish a version of a model (caller must be a maintainer).
    /// @param modelId The model.
    /// @param manifestCid IPFS CID of the version's manifest (string form); unique across versions.
    /// @param numBlocks Number of transformer blocks; spans must satisfy last <= numBlocks.
    /// @param parentId Version this one derives from (same model), or 0.
    /// @param toleranceMicros Audit tolerance: max relative L2 error x 1e6 (1..1e6).
    /// @return versionId The new version's id.
    function publishVersion(
        uint64 modelId,
        string calldata manifestCid,
        uint32 numBlocks,
        uint64 parentId,
        uint32 toleranceMicros
    ) external returns (uint64 versionId) {
        if (_models[modelId].owner == address(0)) revert ModelVersionRegistry_UnknownModel(modelId);
        if (!isMaintainer[modelId][msg.sender]) revert ModelVersionRegistry_NotMaintainer(modelId, msg.sender);
        _checkCid(manifestCid);
        if (numBlocks == 0 || numBlocks > MAX_BLOCKS) revert ModelVersionRegistry_BadBlockCount(numBlocks);
        if (toleranceMicros == 0 || toleranceMicros > 1e6) revert ModelVersionRegistry_BadTolerance(toleranceMicros);
        if (parentId != 0 && _versions[parentId].modelId != modelId) revert ModelVersionRegistry_ParentOfOtherModel(parentId);
        bytes32 cidHash = keccak256(bytes(manifestCid));
        uint64 existing = versionIdByManifestHash[cidHash];
        if (existing != 0) revert ModelVersionRegistry_DuplicateManifest(existing);

        versionId = ++versionCount;
        _versions[versionId] = Version({
            modelId: modelId,
            parentId: parentId,
            supersededBy: 0,
            numBlocks: numBlocks,
            toleranceMicros: toleranceMicros,
            deprecated: false,
            publisher: msg.sender,
            manifestCid: manifestCid
        });
        versionIdByManifestHash[cidHash] = versionId;
        emit VersionPublished(versionId, modelId, parentId, msg.sender, manifestCid, numBlocks, toleranceMicros);
    }

    /// @notice Mark a version deprecated, optionally naming its successor (a later version of
    ///         the same model). Servers cannot register for deprecated versions.
    /// @param versionId The version to deprecate (caller must maintain its model).
    /// @param supersededBy The successor version id, or 0.
    function deprecateVersion(uint64 versionId, uint64 supersededBy) external {
        Version storage v = _versions[versionId];
        uint64 modelId = v.modelId;
        if (modelId == 0) revert ModelVersionRegistry_UnknownVersion(versionId);
        if (!isMaintainer[modelId][msg.sender]) revert ModelVersionRegistry_NotMaintainer(modelId, msg.sender);
        if (v.deprecated) revert ModelVersionRegistry_AlreadyDeprecated(versionId);
        if (supersededBy != 0) {
            Version storage next = _versions[supersededBy];
            if (supersededBy == versionId || next.modelId != modelId || next.deprecated) {
                revert ModelVersionRegistry_BadSuccessor(supersededBy);
            }
        }
        v.deprecated = true;
        v.supersededBy = supersededBy;
        emit VersionDeprecated(versionId, supersededBy);
    }

    /// @notice Publish an adapter (LoRA weights, trained prompts) for a base version. Anyone may
    ///         publish; the adapter is attributed to the caller.
    /// @param baseVersionId The version the adapter applies to.
    /// @param cid IPFS CID of the adapter's files.
    /// @param name Short name.
    /// @param tags Comma-separated tags (free text, may be empty).
    /// @return adapterId The new adapter's id.
    function publishAdapter(uint64 baseVersionId, string calldata cid, string calldata name, string calldata tags)
        external
        returns (uint64 adapterId)
    {
        if (_versions[baseVersionId].modelId == 0) revert ModelVersionRegistry_UnknownVersion(baseVersionId);
        _checkCid(cid);
        if (bytes(name).length == 0 || bytes(name).length > 128) revert ModelVersionRegistry_EmptyName();
        adapterId = ++adapterCount;
        _adapters[adapterId] = Adapter({baseVersionId: baseVersionId, publisher: msg.sender, cid: cid, name: name, tags: tags});
        emit AdapterPublished(adapterId, baseVersionId, msg.sender, cid, name, tags);
    }

    /// @notice A model's owner and name.
    function getModel(uint64 modelId) external view returns (Model memory) {
        return _models[modelId];
    }

    /// @notice A version's full record (all-zero if unknown).
    function getVersion(uint64 versionId) external view returns (Version memory) {
        return _versions[versionId];
    }

    /// @notice An adapter's record (all-zero if unknown).
    function getAdapter(uint64 adapterId) external view returns (Adapter memory) {
        return _adapters[adapterId];
    }

    /// @notice Block count of a version that exists and is not deprecated, else 0.
    /// @dev The cheap check ServerRegistry uses at registration.
    function activeBlockCount(uint64 versionId) external view returns (uint32) {
        Version storage v = _versions[versionId];
        return v.deprecated ? 0 : v.numBlocks;
    }

    /// @notice Audit tolerance of a version (max relative L2 error x 1e6); 0 if unknown.
    function toleranceOf(uint64 versionId) external view returns (uint32) {
        return _versions[versionId].toleranceMicros;
    }

    function _checkCid(string calldata cid) private pure {
        uint256 len = bytes(cid).length;
        if (len < 8 || len > MAX_CID_LENGTH) revert ModelVersionRegistry_BadCid();
    }
}
