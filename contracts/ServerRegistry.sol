// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IStakeVault} from "./interfaces/IStakeVault.sol";
import {IModelVersions} from "./interfaces/IModelVersions.sol";
import {IServerRegistry} from "./interfaces/IServerRegistry.sol";
import {IServerRegistryHook} from "./interfaces/IServerRegistryHook.sol";

/// @title ServerRegistry
/// @notice Who serves what: one server per operator address (run more servers from more
///         operator addresses). A server names its receipt signer key (may equal the operator),
///         endpoint, model version, block span [firstBlock, lastBlock) and declared throughput.
/// @dev Every change of signer, version or span closes the current "term" and opens a new one,
///      so a receipt stays attributable to the key and span that were registered when it was
///      issued, and a receipt dated after the server left (or signed by a key it never
///      registered) is rejected by `signedFor`.
contract ServerRegistry is IServerRegistry, IServerRegistryHook {
    enum Status {
        None,
        Active,
        Inactive, // stake fell under the minimum
        Left
    }

    struct Server {
        uint64 throughput; // declared tokens/s (client-side routing hint)
        uint32 activeIndex; // position in the version's active set while Active
        uint32 termCount;
        Status status;
        string endpoint; // e.g. "grpc://203.0.113.7:31330"
    }

    struct Term {
        address signer;
        uint32 firstBlock;
        uint32 lastBlock;
        uint64 versionId;
        uint64 startedAt;
        uint64 endedAt; // 0 while open
    }

    uint256 public constant MAX_ENDPOINT_LENGTH = 256;
    /// @notice A receipt may be dated up to this long before its term started (the server's
    ///         clock may lag the block that registered it); without it a freshly registered
    ///         server could back-date its first receipts out of reach of any dispute.
    uint64 public constant START_GRACE = 5 minutes;

    IStakeVault public immutable vault;
    IModelVersions public immutable versions;

    mapping(address => Server) private _servers;
    mapping(address => mapping(uint256 => Term)) private _terms;
    mapping(uint64 => address[]) private _active;

    error ServerRegistry_AlreadyActive(address operator);
    error ServerRegistry_NotActive(address operator);
    error ServerRegistry_NotRegistered(address operator);
    error ServerRegistry_InsufficientStake(uint256 stake, uint256 minStake);
    error ServerRegistry_BadSpan(uint64 versionId, uint32 firstBlock, uint32 lastBlock, uint32 numBlocks);
    error ServerRegistry_InactiveVersion(uint64 versionId);
    error ServerRegistry_BadEndpoint();
    error ServerRegistry_ZeroSigner();
    error ServerRegistry_ZeroThroughput();
    error ServerRegistry_NotVault(address caller);
    error ServerRegistry_StakeSufficient(address operator);

    event ServerRegistered(
        address indexed operator,
        address indexed signer,
        uint64 indexed versionId,
        uint32 firstBlock,
        uint32 lastBlock,
        string endpoint,
        uint64 throughput
    );
    event ServerUpdated(
        address indexed operator,
        address indexed signer,
        uint64 indexed versionId,
        uint32 firstBlock,
        uint32 lastBlock,
        string endpoint,
        uint64 throughput
    );
    event ServerDeactivated(address indexed operator, uint64 indexed versionId, uint256 stake, uint256 minStake);
    event ServerLeft(address indexed operator, uint64 indexed versionId);

    /// @param vault_ The StakeVault holding operators' stake.
    /// @param versions_ The ModelVersionRegistry.
    constructor(IStakeVault vault_, IModelVersions versions_) {
        vault = vault_;
        versions = versions_;
    }

    /// @notice Register (or re-register after leaving / deactivation) the caller's server.
    ///         Requires the vault's minimum active stake and a non-deprecated version.
    /// @param signer Key that signs this server's receipts (may be the caller).
    /// @param endpoint Where clients reach the server (1..256 bytes).
    /// @param versionId Model version served.
    /// @param firstBlock First block of the span (inclusive).
    /// @param lastBlock End of the span (exclusive), <= the version's block count.
    /// @param throughput Declared throughput (tokens/s, > 0).
    function register(
        address signer,
        string calldata endpoint,
        uint64 versionId,
        uint32 firstBlock,
        uint32 lastBlock,
        uint64 throughput
    ) external {
        Server storage s = _servers[msg.sender];
        if (s.status == Status.Active) revert ServerRegistry_AlreadyActive(msg.sender);
        _checkServer(signer, endpoint, versionId, firstBlock, lastBlock, throughput);
        uint256 stake = vault.stakeOf(msg.sender);
        uint256 minimum = vault.minStake();
        if (stake < minimum) revert ServerRegistry_InsufficientStake(stake, minimum);

        s.status = Status.Active;
        s.endpoint = endpoint;
        s.throughput = throughput;
        _openTerm(msg.sender, s, signer, versionId, firstBlock, lastBlock);
        _addActive(msg.sender, s, versionId);
        emit ServerRegistered(msg.sender, signer, versionId, firstBlock, lastBlock, endpoint, throughput);
    }

    /// @notice Change an active server's signer, endpoint, version, span or throughput.
    ///         A new signer, version or span starts a new term.
    /// @param signer Receipt key.
    /// @param endpoint Endpoint.
    /// @param versionId Model version.
    /// @param firstBlock Span start.
    /// @param lastBlock Span end (exclusive).
    /// @param throughput Declared throughput.
    function update(
        address signer,
        string calldata endpoint,
        uint64 versionId,
        uint32 firstBlock,
        uint32 lastBlock,
        uint64 throughput
    ) external {
        Server storage s = _servers[msg.sender];
        if (s.status != Status.Active) revert ServerRegistry_NotActive(msg.sender);
        _checkServer(signer, endpoint, versionId, firstBlock, lastBlock, throughput);
        Term storage t = _terms[msg.sender][s.termCount - 1];
        uint64 oldVersion = t.versionId;
        if (t.signer != signer || oldVersion != versionId || t.firstBlock != firstBlock || t.lastBlock != lastBlock) {
            t.endedAt = uint64(block.timestamp);
            _openTerm(msg.sender, s, signer, versionId, firstBlock, lastBlock);
        }
        if (oldVersion != versionId) {
            _removeActive(s, oldVersion);
            _addActive(msg.sender, s, versionId);
        }
        s.endpoint = endpoint;
        s.throughput = throughput;
        emit ServerUpdated(msg.sender, signer, versionId, firstBlock, lastBlock, endpoint, throughput);
    }

    /// @notice Leave: the server stops being listed and its current term closes now. It stays
    ///         accountable for receipts it signed before (its stake is still in unbonding).
    function leave() external {
        Server storage s = _servers[msg.sender];
        if (s.status == Status.None || s.status == Status.Left) revert ServerRegistry_NotRegistered(msg.sender);
        Term storage t = _terms[msg.sender][s.termCount - 1];
        if (s.status == Status.Active) {
            t.endedAt = uint64(block.timestamp);
            _removeActive(s, t.versionId);
        }
        s.status = Status.Left;
        emit ServerLeft(msg.sender, t.versionId);
    }

    /// @inheritdoc IServerRegistryHook
    function onStakeDecreased(address operator) external {
        if (msg.sender != address(vault)) revert ServerRegistry_NotVault(msg.sender);
        _deactivateIfUnderStaked(operator, false);
    }

    /// @notice Anyone may deactivate a server whose stake is under the (possibly raised) minimum.
    /// @param operator The server's operator.
    function poke(address operator) external {
        _deactivateIfUnderStaked(operator, true);
    }

    // ------------------------------------------------------------------ views

    /// @inheritdoc IServerRegistry
    function signedFor(
        address operator,
        address signer,
        uint64 versionId,
        uint32 firstBlock,
        uint32 lastBlock,
        uint64 issuedAt,
        uint256 termIndex
    ) external view returns (bool) {
        if (termIndex >= _servers[operator].termCount) return false;
        Term storage t = _terms[operator][termIndex];
        return t.signer == signer && t.versionId == versionId && t.firstBlock <= firstBlock
            && lastBlock <= t.lastBlock && firstBlock < lastBlock && t.startedAt <= uint256(issuedAt) + START_GRACE
            && (t.endedAt == 0 || issuedAt <= t.endedAt);
    }

    /// @notice The term index that makes `signedFor` true, or type(uint256).max (off-chain helper).
    function findTerm(
        address operator,
        address signer,
        uint64 versionId,
        uint32 firstBlock,
        uint32 lastBlock,
        uint64 issuedAt
    ) external view returns (uint256) {
        uint256 n = _servers[operator].termCount;
        for (uint256 i = n; i > 0; --i) {
            if (this.signedFor(operator, signer, versionId, firstBlock, lastBlock, issuedAt, i - 1)) return i - 1;
        }
        return type(uint256).max;
    }

    /// @notice An operator's server record.
    function getServer(address operator) external view returns (Server memory) {
        return _servers[operator];
    }

    /// @notice One of an operator's terms (index < termCount).
    function getTerm(address operator, uint256 index) external view returns (Term memory) {
        return _terms[operator][index];
    }

    /// @notice The operator's latest term (all-zero if never registered).
    function currentTerm(address operator) external view returns (Term memory t) {
        uint256 n = _servers[operator].termCount;
        if (n != 0) t = _terms[operator][n - 1];
    }

    /// @notice Whether the operator's server is active.
    function isActive(address operator) external view returns (bool) {
        return _servers[operator].status == Status.Active;
    }

    /// @inheritdoc IServerRegistry
    function activeCount(uint64 versionId) external view returns (uint256) {
        return _active[versionId].length;
    }

    /// @inheritdoc IServerRegistry
    function activeServerAt(uint64 versionId, uint256 index) external view returns (address) {
        return _active[versionId][index];
    }

    /// @notice A page of a version's active servers: [offset, offset + limit).
    function activeServers(uint64 versionId, uint256 offset, uint256 limit)
        external
        view
        returns (address[] memory page)
    {
        address[] storage all = _active[versionId];
        uint256 end = offset + limit > all.length ? all.length : offset + limit;
        if (offset >= end) return new address[](0);
        page = new address[](end - offset);
        for (uint256 i = offset; i < end; ++i) page[i - offset] = all[i];
    }

    // ------------------------------------------------------------------ internal

    function _checkServer(
        address signer,
        string calldata endpoint,
        uint64 versionId,
        uint32 firstBlock,
        uint32 lastBlock,
        uint64 throughput
    ) private view {
        if (signer == address(0)) revert ServerRegistry_ZeroSigner();
        uint256 len = bytes(endpoint).length;
        if (len == 0 || len > MAX_ENDPOINT_LENGTH) revert ServerRegistry_BadEndpoint();
        if (throughput == 0) revert ServerRegistry_ZeroThroughput();
        uint32 numBlocks = versions.activeBlockCount(versionId);
        if (numBlocks == 0) revert ServerRegistry_InactiveVersion(versionId);
        if (firstBlock >= lastBlock || lastBlock > numBlocks) {
            revert ServerRegistry_BadSpan(versionId, firstBlock, lastBlock, numBlocks);
        }
    }

    function _openTerm(
        address operator,
        Server storage s,
        address signer,
        uint64 versionId,
        uint32 firstBlock,
        uint32 lastBlock
    ) private {
        _terms[operator][s.termCount++] = Term({
            signer: signer,
            firstBlock: firstBlock,
            lastBlock: lastBlock,
            versionId: versionId,
            startedAt: uint64(block.timestamp),
            endedAt: 0
        });
    }

    function _addActive(address operator, Server storage s, uint64 versionId) private {
        s.activeIndex = uint32(_active[versionId].length);
        _active[versionId].push(operator);
    }

    function _removeActive(Server storage s, uint64 versionId) private {
        address[] storage list = _active[versionId];
        uint32 index = s.activeIndex;
        address moved = list[list.length - 1];
        list[index] = moved;
        _servers[moved].activeIndex = index;
        list.pop();
    }

    function _deactivateIfUnderStaked(address operator, bool mustDeactivate) private {
        Server storage s = _servers[operator];
        if (s.status != Status.Active) {
            if (mustDeactivate) revert ServerRegistry_NotActive(operator);
            return;
        }
        uint256 stake = vault.stakeOf(operator);
        uint256 minimum = vault.minStake();
        if (stake >= minimum) {
            if (mustDeactivate) revert ServerRegistry_StakeSufficient(operator);
            return;
        }
        Term storage t = _terms[operator][s.termCount - 1];
        t.endedAt = uint64(block.timestamp);
        _removeActive(s, t.versionId);
        s.status = Status.Inactive;
        emit ServerDeactivated(operator, t.versionId, stake, minimum);
    }
}
