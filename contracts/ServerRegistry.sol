// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IStakeVault} from "./interfaces/IStakeVault.sol";
import {IModelVersions} from "./interfaces/IModelVersions.sol";
import {IServerRegistry} from "./interfaces/IServerRegistry.sol";
import {IServerRegistryHook} from "./interfaces/IServerRegistryHook.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";

/// @title ServerRegistry
/// @notice Who serves what: one server per operator address (run more servers from more
///         operator addresses). A server names its receipt signer key (may equal the operator),
///         endpoint, model version, block span [firstBlock, lastBlock) and declared throughput.
/// @dev Every change of signer, version or span closes the current "term" and opens a new one,
///      so a receipt stays attributable to the key and span that were registered when it was
///      issued, and a receipt dated after the server left (or signed by a key it never
///      registered) is rejected by `signedFor`.
///
///      Auditor sortition: an operator's first registration appends one ticket to an
///      append-only list, weighted by its stake then (prefix sums never change, so a panel drawn
///      over the first `count` tickets cannot be shifted by later joins, leaves or updates).
///      A ticket's effective weight only ever goes down (min of its stake over time), and it
///      is live while its server is Active and was active since before a given time. So after
///      the draw's seed is known, nobody can add weight to the draw: leaving, unstaking or
///      updating only removes one's own chance (`drawPanel`).
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
        uint64 activeSince; // when the current Active period began (register)
        uint32 ticket; // 1 + index in the ticket list (0 = none yet)
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

    struct Ticket {
        address operator;
        uint96 cumWeight; // sum of the weights of tickets [0, this one]
    }

    Ticket[] private _tickets;
    /// @dev A ticket's weight is its stake at first registration (cumWeight minus the previous
    ///      one); its effective weight is min(weight, stake) over time, stored +1 once lowered
    ///      (0 = never lowered: effective == weight), so registering writes no extra slot.
    mapping(address => uint256) private _lowered;

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
    error ServerRegistry_BadDraw(uint256 count, uint256 tickets);

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
    event TicketIssued(address indexed operator, uint256 index, uint256 weight, uint256 cumWeight);

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
        s.activeSince = uint64(block.timestamp);
        s.endpoint = endpoint;
        s.throughput = throughput;
        _ticketOnRegister(msg.sender, s, stake);
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
        _lowerWeight(operator, vault.stakeOf(operator));
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

    /// @notice Number of active servers of a version.
    function activeCount(uint64 versionId) external view returns (uint256) {
        return _active[versionId].length;
    }

    /// @notice The operator at `index` of a version's active set (order changes on removal).
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

    /// @inheritdoc IServerRegistry
    function ticketCount() external view returns (uint256) {
        return _tickets.length;
    }

    /// @notice A ticket and its holder's current eligibility.
    /// @param index Ticket index.
    /// @return operator The holder.
    /// @return weight Its share of the prefix sums (stake at first registration).
    /// @return effective Its current effective weight (<= weight, never increases).
    /// @return activeSince When its server's current Active period began (0 if not Active).
    function ticketAt(uint256 index)
        public
        view
        returns (address operator, uint256 weight, uint256 effective, uint64 activeSince)
    {
        operator = _tickets[index].operator;
        (weight, effective) = _weightOf(operator, index);
        Server storage s = _servers[operator];
        if (s.status == Status.Active) activeSince = s.activeSince;
    }

    /// @notice Draw up to `k` distinct auditors over the first `count` tickets: stake-weighted
    ///         sortition by rejection sampling (the ticket a `seed`-derived point lands on is
    ///         kept with probability effective/weight, if its server has been Active since at
    ///         most `activeBefore` and it is not in `exclude`); if 4k tries did not fill the
    ///         panel, a scan of at most 8k consecutive tickets from a seed-derived start.
    ///         O(k log n) reads whatever the number n of tickets.
    /// @param seed The draw's randomness.
    /// @param count How many tickets (a prefix of the list, fixed before the seed existed).
    /// @param activeBefore Latest acceptable `activeSince`.
    /// @param k Panel size wanted.
    /// @param exclude Addresses never drawn (accused, challenger, earlier rounds' auditors).
    /// @return panel The drawn auditors (fewer than k if not enough are eligible).
    function drawPanel(bytes32 seed, uint256 count, uint64 activeBefore, uint256 k, address[] calldata exclude)
        external
        view
        returns (address[] memory panel)
    {
        if (count == 0 || count > _tickets.length) revert ServerRegistry_BadDraw(count, _tickets.length);
        Draw memory c = Draw(new address[](k), 0, activeBefore);
        uint256 total = _tickets[count - 1].cumWeight;
        for (uint256 nonce; nonce < 4 * k && c.n < k; ++nonce) {
            uint256 r = uint256(keccak256(abi.encode(seed, nonce)));
            _consider(c, _search(r % total, count), r >> 128, exclude);
        }
        uint256 start = uint256(keccak256(abi.encode(seed, "scan"))) % count;
        for (uint256 i; i < count && i < 8 * k && c.n < k; ++i) {
            _consider(c, (start + i) % count, 0, exclude);
        }
        panel = new address[](c.n);
        for (uint256 i; i < c.n; ++i) panel[i] = c.chosen[i];
    }

    // ------------------------------------------------------------------ internal

    /// @dev First ticket index in [0, count) whose cumulative weight exceeds `point`.
    function _search(uint256 point, uint256 count) private view returns (uint256 lo) {
        uint256 hi = count - 1;
        while (lo < hi) {
            uint256 mid = (lo + hi) / 2;
            if (_tickets[mid].cumWeight > point) hi = mid;
            else lo = mid + 1;
        }
    }

    /// @dev A panel being drawn.
    struct Draw {
        address[] chosen;
        uint256 n; // how many of `chosen` are filled
        uint64 activeBefore;
    }

    /// @dev Add ticket `index`'s holder to the panel if it passes the stake coin (kept with
    ///      probability effective/weight; coin 0 keeps any nonzero effective weight), has been
    ///      Active since at most `activeBefore`, is not excluded and not drawn already.
    function _consider(Draw memory c, uint256 index, uint256 coin, address[] calldata exclude) private view {
        (address a, uint256 weight, uint256 effective, uint64 since) = ticketAt(index);
        if (coin % weight >= effective || since == 0 || since > c.activeBefore) return;
        for (uint256 i; i < exclude.length; ++i) if (exclude[i] == a) return;
        for (uint256 i; i < c.n; ++i) if (c.chosen[i] == a) return;
        c.chosen[c.n++] = a;
    }

    function _ticketOnRegister(address operator, Server storage s, uint256 stake) private {
        uint96 w = stake > type(uint96).max ? type(uint96).max : uint96(stake);
        if (s.ticket != 0) {
            _lowerWeight(operator, w);
            return;
        }
        uint256 cum = uint256(w) + (_tickets.length == 0 ? 0 : _tickets[_tickets.length - 1].cumWeight);
        _tickets.push(Ticket({operator: operator, cumWeight: SafeCast.toUint96(cum)}));
        s.ticket = uint32(_tickets.length);
        emit TicketIssued(operator, _tickets.length - 1, w, cum);
    }

    function _weightOf(address operator, uint256 index) private view returns (uint256 weight, uint256 effective) {
        weight = _tickets[index].cumWeight - (index == 0 ? 0 : _tickets[index - 1].cumWeight);
        uint256 lowered = _lowered[operator];
        effective = lowered == 0 ? weight : lowered - 1;
    }

    function _lowerWeight(address operator, uint256 stake) private {
        uint32 ticket = _servers[operator].ticket;
        if (ticket == 0) return;
        (, uint256 effective) = _weightOf(operator, ticket - 1);
        if (stake < effective) _lowered[operator] = stake + 1;
    }

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
