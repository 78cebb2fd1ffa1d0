// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {IStakeVault} from "./interfaces/IStakeVault.sol";
import {IServerRegistry} from "./interfaces/IServerRegistry.sol";
import {IDisputeWindow} from "./interfaces/IDisputeWindow.sol";
import {CourtBounds, OPENING_SECONDS_PER_BLOCK} from "./CourtBounds.sol";

/// @title DisputeCourt
/// @notice Disputes over signed service receipts (receipt v2: server, version, span, registry
///         term, kind, session, step, input/output hashes, per-block Merkle root, time).
///
///         Opening is commit-reveal: `commitOpening(h)` with h binding the challenger, the
///         receipt, the evidence CID, the named block and a salt; `openDispute` reveals it at
///         least one block later (and within openRevealBlocks blocks and 30 s per such block),
///         with a bond scaled to what the dispute can slash. A copier who sees the reveal has no
///         commitment of its own. A receipt may be disputed again and again until a dispute
///         rules Faulty; one incident (accused, session) is slashed once, and a Faulty ruling
///         settles only after every older dispute over its incident settled.
///
///         Auditors are drawn by stake-weighted sortition over the ServerRegistry's ticket list
///         as it stood at opening (tickets of servers active since `auditorMinAge` before the
///         opening), from blockhash(drawBlock), drawBlock mined after the opening. The draw
///         must happen within 256 blocks of drawBlock or the dispute lapses (the challenger's
///         bond goes to the treasury: no free re-rolls). Drawn auditors' stake is frozen until
///         the dispute settles. They commit hash(verdict, fingerprint, salt) and reveal. A
///         ruling needs a panel of at least `minPanel` and more than half of the whole panel
///         for the same verdict (faulty or honest); otherwise NoQuorum (bond refunded).
///         A ruling can be appealed once within `appealPeriod` for `appealPrice`: a fresh
///         panel of 2K+1 auditors (none from the first round) gives the final ruling.
///         Auditors who revealed the verdict opposite to the final ruling lose
///         `incoherencePenalty` (half of it for an abstention when the panel still ruled);
///         drawn auditors who never revealed lose `noRevealPenalty`; coherent auditors share
///         the pool. Parameters are snapshotted at opening, within CourtBounds' bounds.
///         Payouts are credits in the StakeVault (pull payments).
/// @dev Randomness: blockhash of a block mined after the candidate set and weights were fixed.
///      The proposer of drawBlock can withhold its block (forfeiting its reward) to re-roll once;
///      on chains with a single sequencer (L2s, anvil) the sequencer can choose the hash. Nobody
///      else can influence the draw. Longest dispute: 2 x (drawDelayBlocks + 256) blocks plus
///      2 x (commitPeriod + revealPeriod) + appealPeriod seconds, whatever anyone does.
contract DisputeCourt is IDisputeWindow, Ownable2Step {
    struct Receipt {
        address server;
        uint256 versionId;
        uint32 firstBlock;
        uint32 lastBlock;
        uint32 term; // the accused's ServerRegistry term index the receipt falls in
        uint8 kind; // KIND_INFERENCE, KIND_FORWARD or KIND_BACKWARD
        bytes32 sessionId;
        uint64 step;
        bytes32 inputHash;
        bytes32 outputHash;
        bytes32 blocksRoot; // Merkle root of the step's per-block fingerprints
        uint64 issuedAt;
    }

    struct Params {
        uint64 disputeWindow; // seconds after issuedAt a receipt can be disputed (at commit time)
        uint64 maxClockSkew; // seconds a receipt's issuedAt may lie in the future
        uint64 commitPeriod; // seconds auditors have to commit after the draw
        uint64 revealPeriod; // seconds auditors have to reveal after the commit deadline
        uint64 appealPeriod; // seconds a first-round ruling can be appealed (0: no appeal)
        uint64 auditorMinAge; // an auditor's server must have been active this long at opening
        uint32 drawDelayBlocks; // blocks between opening and the draw's randomness
        uint32 openRevealBlocks; // blocks a committed opening stays revealable
        uint8 auditorsPerDispute; // K (the appeal round draws 2K+1)
        uint8 minPanel; // fewest drawn auditors that can rule
        uint16 slashBps; // share of the accused's slashable stake taken when faulty
        uint16 finderBps; // share of the slashed amount credited to the challenger
        uint16 auditorBps; // share of the slashed amount split among coherent auditors
        uint16 accusedShareBps; // share of a lost bond credited to the wrongly accused
        uint16 bondBps; // bond = this share of what the dispute can slash (at least minBond)
        uint96 minBond; // wei: floor of the challenger's bond
        uint96 noRevealPenalty; // wei slashed from a drawn auditor who never reveals
        uint96 incoherencePenalty; // wei slashed from an auditor who revealed against the ruling
    }

    enum Stage {
        None,
        AwaitingDraw,
        Voting,
        Appealable,
        Resolved
    }

    enum Outcome {
        Pending,
        Faulty,
        Honest,
        NoQuorum,
        Lapsed // never drawn within the blockhash window: bond to the treasury
    }

    enum VoteState {
        None,
        Drawn,
        Committed,
        RevealedHonest,
        RevealedFaulty,
        RevealedAbstain
    }

    struct Dispute {
        address accused;
        uint64 versionId;
        Stage stage;
        Outcome outcome; // final
        Outcome firstRuling; // round 0's ruling (Pending until ruled)
        uint8 round; // 0, or 1 once appealed
        address challenger;
        uint88 bond;
        address appellant;
        uint88 appealBond;
        uint32 paramsId; // the parameter snapshot this dispute runs under
        uint32 ticketCount; // candidate tickets at opening
        uint32 block; // first block the challenger names as faulty (global index in the span)
        uint32 firstBlock;
        uint32 lastBlock;
        uint8 kind; // the receipt's kind
        uint8 drawnCount; // this round
        uint8 committedCount; // this round
        uint8 faultyVotes; // this round
        uint8 honestVotes; // this round
        uint8 abstainVotes; // this round
        uint64 step; // the receipt's step
        uint64 openedAt;
        uint64 drawBlock;
        uint64 commitDeadline;
        uint64 revealDeadline;
        uint64 appealDeadline;
        uint64 nextOnIncident; // the next dispute opened on the same incident (0 = none yet)
        bytes32 incident; // keccak256(accused, sessionId)
    }

    /// @dev Per incident (accused, session): its unsettled disputes as a list in opening order
    ///      (head = the oldest unsettled one; settled ones further down are skipped when the head
    ///      advances), and the dispute that slashed it.
    struct Incident {
        uint64 head;
        uint64 tail;
        uint64 slashedBy;
    }

    struct Vote {
        bytes32 commitment;
        VoteState state;
        uint8 round;
        bytes32 fingerprint; // revealed: hash of what the auditor computed
    }

    bytes32 public constant RECEIPT_TYPEHASH = keccak256(
        "Receipt(address server,uint256 versionId,uint32 firstBlock,uint32 lastBlock,uint32 term,uint8 kind,bytes32 sessionId,uint64 step,bytes32 inputHash,bytes32 outputHash,bytes32 blocksRoot,uint64 issuedAt)"
    );
    bytes32 private constant DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    uint8 public constant KIND_BACKWARD = 2;
    uint8 public constant VERDICT_FAULTY = 1;
    uint8 public constant VERDICT_HONEST = 2;
    uint8 public constant VERDICT_ABSTAIN = 3;
    uint256 private constant BPS = 10_000;

    bytes32 private immutable _cachedDomain; // EIP-712 domain separator at deployment
    uint256 private immutable _cachedChainId;
    IStakeVault public immutable vault;
    IServerRegistry public immutable registry;
    /// @notice The parameter bounds (a stateless contract this court created).
    CourtBounds public immutable bounds;

    Params[] private _params; // snapshots; the last is current
    uint256 public disputeCount;
    mapping(uint256 => Dispute) private _disputes;
    mapping(uint256 => address[]) private _auditors; // every round's, in draw order
    mapping(uint256 => mapping(address => Vote)) private _votes;
    /// @notice Opening commitment => (block << 64 | timestamp) it was committed at (0 = none).
    mapping(bytes32 => uint256) public openingCommitted;
    mapping(bytes32 => Incident) private _incidents;

    error DisputeCourt_BondTooLow(uint256 sent, uint256 required);
    error DisputeCourt_BadEvidenceCid();
    error DisputeCourt_ReceiptFromFuture(uint64 issuedAt, uint256 now_);
    error DisputeCourt_WindowClosed(uint64 issuedAt, uint256 closedAt);
    error DisputeCourt_NoOpeningCommitment(bytes32 commitment);
    error DisputeCourt_OpeningTooEarly(bytes32 commitment);
    error DisputeCourt_OpeningExpired(bytes32 commitment);
    error DisputeCourt_AlreadyCommitted(bytes32 commitment);
    error DisputeCourt_IncidentSlashed(bytes32 incident, uint256 disputeId);
    error DisputeCourt_OlderDisputePending(uint256 disputeId, uint256 olderId);
    error DisputeCourt_BadSignature();
    error DisputeCourt_SignerNotRegistered(address signer, address server);
    error DisputeCourt_SelfDispute();
    error DisputeCourt_WrongStage(uint256 disputeId, Stage stage);
    error DisputeCourt_DrawTooEarly(uint256 disputeId, uint64 drawBlock);
    error DisputeCourt_NotAuditor(uint256 disputeId, address caller);
    error DisputeCourt_VoteCommitted(uint256 disputeId, address auditor);
    error DisputeCourt_CommitClosed(uint256 disputeId, uint64 commitDeadline);
    error DisputeCourt_RevealNotOpen(uint256 disputeId, uint64 commitDeadline);
    error DisputeCourt_RevealClosed(uint256 disputeId, uint64 revealDeadline);
    error DisputeCourt_NotCommitted(uint256 disputeId, address auditor);
    error DisputeCourt_CommitmentMismatch(uint256 disputeId, address auditor);
    error DisputeCourt_NotResolvable(uint256 disputeId, uint64 deadline);
    error DisputeCourt_AppealClosed(uint256 disputeId, uint64 appealDeadline);
    error DisputeCourt_BadParams(string reason);
    error DisputeCourt_BadKind(uint8 kind);
    error DisputeCourt_BadBlock(uint32 blockIndex, uint32 firstBlock, uint32 lastBlock);
    error DisputeCourt_BadVerdict(uint8 verdict);
    error DisputeCourt_NoCandidates();
    error DisputeCourt_RenounceDisabled();

    event OpeningCommitted(bytes32 indexed commitment, uint64 revealableUntilBlock);
    event DisputeOpened(
        uint256 indexed disputeId,
        address indexed accused,
        address indexed challenger,
        bytes32 receiptHash,
        Receipt receipt,
        string evidenceCid,
        uint32 blockIndex,
        uint256 bond,
        uint64 drawBlock
    );
    event AuditorsDrawn(
        uint256 indexed disputeId, uint8 round, address[] auditors, uint64 commitDeadline, uint64 revealDeadline
    );
    event VoteCommitted(uint256 indexed disputeId, address indexed auditor, bytes32 commitment);
    event VoteRevealed(uint256 indexed disputeId, address indexed auditor, uint8 verdict, bytes32 fingerprint);
    event RoundRuled(uint256 indexed disputeId, uint8 round, Outcome ruling, uint64 appealDeadline);
    event Appealed(uint256 indexed disputeId, address indexed appellant, uint256 appealBond, uint64 drawBlock);
    event AuditorPenalized(uint256 indexed disputeId, address indexed auditor, uint256 amount, bool incoherent);
    event DisputeResolved(
        uint256 indexed disputeId,
        Outcome outcome,
        uint256 slashed,
        uint256 challengerCredit,
        uint256 accusedCredit,
        uint256 perAuditorCredit
    );
    event ParamsChanged(uint256 indexed paramsId, Params params);

    /// @param vault_ The StakeVault (must be wired to this court).
    /// @param registry_ The ServerRegistry.
    /// @param params_ Initial parameters (see `setParams` for bounds).
    /// @param owner_ Governance (a timelock outside dev chains; see pollen/deploy.py).
    constructor(IStakeVault vault_, IServerRegistry registry_, Params memory params_, address owner_)
        Ownable(owner_)
    {
        (_cachedChainId, _cachedDomain) = (block.chainid, _buildDomain());
        vault = vault_;
        registry = registry_;
        CourtBounds bounds_ = new CourtBounds();
        bounds = bounds_;
        _checkBounds(bounds_.violation(params_, vault_.minStake(), vault_.unbondingPeriod()));
        _params.push(params_);
        emit ParamsChanged(0, params_);
    }

    // ------------------------------------------------------------------ opening

    /// @notice Commit to an opening; reveal it with `openDispute` from the same address at
    ///         least one block later and within `openRevealBlocks`. The commitment is
    ///         `openingCommitment(challenger, receiptHash, evidenceCid, blockIndex, salt)`.
    /// @param commitment The hash.
    function commitOpening(bytes32 commitment) external {
        if (openingCommitted[commitment] != 0) revert DisputeCourt_AlreadyCommitted(commitment);
        openingCommitted[commitment] = (block.number << 64) | block.timestamp;
        emit OpeningCommitted(commitment, uint64(block.number) + _current().openRevealBlocks);
    }

    /// @notice Open a dispute over a signed receipt (revealing an earlier `commitOpening`),
    ///         naming the first block of its span the challenger says is faulty, with a bond of
    ///         at least `bondFor(receipt.server)` (all of msg.value is the bond).
    /// @param r The receipt as the server signed it.
    /// @param signature 65-byte ECDSA signature over the receipt's EIP-712 digest.
    /// @param evidenceCid IPFS CID of the evidence bundle.
    /// @param blockIndex Global index of the first faulty block, r.firstBlock <= blockIndex < r.lastBlock.
    /// @param salt The secret in the opening commitment.
    /// @return disputeId The new dispute's id.
    function openDispute(
        Receipt calldata r,
        bytes calldata signature,
        string calldata evidenceCid,
        uint32 blockIndex,
        bytes32 salt
    ) external payable returns (uint256 disputeId) {
        (bytes32 structHash, bytes32 incident) = _checkOpening(r, signature, evidenceCid, blockIndex, salt);
        disputeId = _record(r, blockIndex, incident);
        emit DisputeOpened(
            disputeId,
            r.server,
            msg.sender,
            structHash,
            r,
            evidenceCid,
            blockIndex,
            msg.value,
            _disputes[disputeId].drawBlock
        );
        vault.freeze(r.server);
        vault.depositEscrow{value: msg.value}();
    }

    /// @dev Every check of an opening; consumes its commitment; returns the receipt's struct hash and
    ///      its incident keccak256(accused, sessionId).
    function _checkOpening(
        Receipt calldata r,
        bytes calldata signature,
        string calldata evidenceCid,
        uint32 blockIndex,
        bytes32 salt
    ) private returns (bytes32 structHash, bytes32 incident) {
        Params storage p = _current();
        if (bytes(evidenceCid).length < 8 || bytes(evidenceCid).length > 128) revert DisputeCourt_BadEvidenceCid();
        if (msg.sender == r.server) revert DisputeCourt_SelfDispute();
        if (r.kind > KIND_BACKWARD) revert DisputeCourt_BadKind(r.kind);
        if (blockIndex < r.firstBlock || blockIndex >= r.lastBlock) {
            revert DisputeCourt_BadBlock(blockIndex, r.firstBlock, r.lastBlock);
        }
        structHash = hashReceipt(r);
        uint256 committedAt =
            _takeOpening(openingCommitment(msg.sender, structHash, evidenceCid, blockIndex, salt), p.openRevealBlocks);
        _verifyReceipt(r, structHash, signature, uint64(committedAt), p);
        incident = keccak256(abi.encode(r.server, r.sessionId));
        uint256 slashedBy = _incidents[incident].slashedBy;
        if (slashedBy != 0) revert DisputeCourt_IncidentSlashed(incident, slashedBy);
        uint256 required = bondFor(r.server);
        if (msg.value < required) revert DisputeCourt_BondTooLow(msg.value, required);
    }

    /// @dev Store a new dispute (stage AwaitingDraw) under the current parameters.
    function _record(Receipt calldata r, uint32 blockIndex, bytes32 incident) private returns (uint256 disputeId) {
        Params storage p = _current();
        disputeId = ++disputeCount;
        Dispute storage d = _disputes[disputeId];
        d.accused = r.server;
        d.versionId = uint64(r.versionId);
        d.stage = Stage.AwaitingDraw;
        d.challenger = msg.sender;
        d.bond = uint88(msg.value);
        d.paramsId = uint32(_params.length - 1);
        d.ticketCount = uint32(registry.ticketCount());
        d.block = blockIndex;
        d.firstBlock = r.firstBlock;
        d.lastBlock = r.lastBlock;
        d.kind = r.kind;
        d.step = r.step;
        d.openedAt = uint64(block.timestamp);
        d.drawBlock = uint64(block.number) + p.drawDelayBlocks;
        d.incident = incident;
        Incident storage inc = _incidents[incident];
        if (inc.tail == 0) inc.head = uint64(disputeId);
        else _disputes[inc.tail].nextOnIncident = uint64(disputeId);
        inc.tail = uint64(disputeId);
    }

    // ------------------------------------------------------------------ panel

    /// @notice Draw this round's auditors once drawBlock is mined (anyone may call). Past the
    ///         256-block blockhash window the round lapses instead: round 0 -> Lapsed (bond to
    ///         the treasury), an appeal round -> the first ruling stands and the appeal bond
    ///         goes to the treasury. A panel smaller than `minPanel` -> NoQuorum (round 0) or
    ///         the first ruling stands with the appeal bond refunded (appeal round).
    /// @param disputeId The dispute.
    function drawAuditors(uint256 disputeId) external {
        Dispute storage d = _disputes[disputeId];
        if (d.stage != Stage.AwaitingDraw) revert DisputeCourt_WrongStage(disputeId, d.stage);
        if (block.number <= d.drawBlock) revert DisputeCourt_DrawTooEarly(disputeId, d.drawBlock);
        Params storage p = _params[d.paramsId];
        bytes32 seedHash = blockhash(d.drawBlock);
        if (seedHash == bytes32(0)) {
            if (d.round == 0) return _settle(disputeId, d, Outcome.Lapsed);
            d.appellant = address(0); // appeal forfeited: its bond stays in escrow for the treasury
            return _settle(disputeId, d, d.firstRuling);
        }
        uint256 k = d.round == 0 ? p.auditorsPerDispute : 2 * uint256(p.auditorsPerDispute) + 1;
        address[] memory drawn = registry.drawPanel(
            keccak256(abi.encode(seedHash, disputeId, d.round)),
            d.ticketCount,
            d.openedAt - p.auditorMinAge,
            k,
            _excluded(disputeId, d)
        );
        if (drawn.length < p.minPanel) {
            if (d.round == 0) return _settle(disputeId, d, Outcome.NoQuorum);
            return _settle(disputeId, d, d.firstRuling); // appellant refunded: nobody to hear it
        }
        for (uint256 i; i < drawn.length; ++i) {
            Vote storage v = _votes[disputeId][drawn[i]];
            (v.state, v.round) = (VoteState.Drawn, d.round);
            _auditors[disputeId].push(drawn[i]);
        }
        d.drawnCount = uint8(drawn.length);
        d.stage = Stage.Voting;
        d.commitDeadline = uint64(block.timestamp) + p.commitPeriod;
        d.revealDeadline = d.commitDeadline + p.revealPeriod;
        emit AuditorsDrawn(disputeId, d.round, drawn, d.commitDeadline, d.revealDeadline);
        vault.freezeMany(drawn);
    }

    /// @notice Commit a vote as a drawn auditor: commitment = `commitmentOf(disputeId, auditor,
    ///         verdict, fingerprint, salt)`; the fingerprint binds the vote to what it computed.
    /// @param disputeId The dispute.
    /// @param commitment The hash.
    function commitVote(uint256 disputeId, bytes32 commitment) external {
        Dispute storage d = _disputes[disputeId];
        if (d.stage != Stage.Voting) revert DisputeCourt_WrongStage(disputeId, d.stage);
        if (block.timestamp > d.commitDeadline) revert DisputeCourt_CommitClosed(disputeId, d.commitDeadline);
        Vote storage v = _votes[disputeId][msg.sender];
        if (v.state == VoteState.None || v.round != d.round) revert DisputeCourt_NotAuditor(disputeId, msg.sender);
        if (v.state != VoteState.Drawn) revert DisputeCourt_VoteCommitted(disputeId, msg.sender);
        v.commitment = commitment;
        v.state = VoteState.Committed;
        d.committedCount += 1;
        emit VoteCommitted(disputeId, msg.sender, commitment);
    }

    /// @notice Reveal a committed vote, after the commit deadline (or once every auditor of
    ///         the round committed) and before the reveal deadline.
    /// @param disputeId The dispute.
    /// @param verdict 1 = faulty, 2 = honest, 3 = abstain (the evidence could not be fetched or used).
    /// @param fingerprint The hash of what the auditor computed, as committed.
    /// @param salt The secret used in the commitment.
    function revealVote(uint256 disputeId, uint8 verdict, bytes32 fingerprint, bytes32 salt) external {
        if (verdict == 0 || verdict > VERDICT_ABSTAIN) revert DisputeCourt_BadVerdict(verdict);
        Dispute storage d = _disputes[disputeId];
        if (d.stage != Stage.Voting) revert DisputeCourt_WrongStage(disputeId, d.stage);
        if (block.timestamp <= d.commitDeadline && d.committedCount < d.drawnCount) {
            revert DisputeCourt_RevealNotOpen(disputeId, d.commitDeadline);
        }
        if (block.timestamp > d.revealDeadline) revert DisputeCourt_RevealClosed(disputeId, d.revealDeadline);
        Vote storage v = _votes[disputeId][msg.sender];
        if (v.state == VoteState.None || v.round != d.round) revert DisputeCourt_NotAuditor(disputeId, msg.sender);
        if (v.state != VoteState.Committed) revert DisputeCourt_NotCommitted(disputeId, msg.sender);
        if (commitmentOf(disputeId, msg.sender, verdict, fingerprint, salt) != v.commitment) {
            revert DisputeCourt_CommitmentMismatch(disputeId, msg.sender);
        }
        v.fingerprint = fingerprint;
        if (verdict == VERDICT_FAULTY) {
            v.state = VoteState.RevealedFaulty;
            d.faultyVotes += 1;
        } else if (verdict == VERDICT_HONEST) {
            v.state = VoteState.RevealedHonest;
            d.honestVotes += 1;
        } else {
            v.state = VoteState.RevealedAbstain;
            d.abstainVotes += 1;
        }
        emit VoteRevealed(disputeId, msg.sender, verdict, fingerprint);
    }

    /// @notice Push a dispute on (anyone may call): after the reveal deadline (or once every
    ///         drawn auditor of the round revealed) rule the round — round 0 opens the appeal
    ///         window when `appealPeriod` > 0, otherwise the ruling is final and settles; after
    ///         the appeal window with no appeal, settle on the first ruling.
    /// @param disputeId The dispute.
    function resolve(uint256 disputeId) external {
        Dispute storage d = _disputes[disputeId];
        if (d.stage == Stage.Appealable) {
            if (block.timestamp <= d.appealDeadline) revert DisputeCourt_NotResolvable(disputeId, d.appealDeadline);
            return _settle(disputeId, d, d.firstRuling);
        }
        if (d.stage != Stage.Voting) revert DisputeCourt_WrongStage(disputeId, d.stage);
        uint256 revealed = uint256(d.faultyVotes) + d.honestVotes + d.abstainVotes;
        if (block.timestamp <= d.revealDeadline && revealed < d.drawnCount) {
            revert DisputeCourt_NotResolvable(disputeId, d.revealDeadline);
        }
        Outcome ruling = _ruling(d);
        uint64 appealPeriod = _params[d.paramsId].appealPeriod;
        if (d.round == 0 && appealPeriod != 0) {
            d.firstRuling = ruling;
            d.stage = Stage.Appealable;
            d.appealDeadline = uint64(block.timestamp) + appealPeriod;
            emit RoundRuled(disputeId, 0, ruling, d.appealDeadline);
            return;
        }
        emit RoundRuled(disputeId, d.round, ruling, 0);
        _settle(disputeId, d, ruling);
    }

    /// @notice Appeal a first-round ruling within the appeal window, posting at least
    ///         `appealPrice` (twice the bond): a fresh panel of 2K+1 auditors gives the final ruling. The
    ///         appeal bond is refunded if the final ruling differs from the first (or no panel
    ///         could hear it), and shared by the coherent auditors otherwise.
    /// @param disputeId The dispute.
    function appeal(uint256 disputeId) external payable {
        Dispute storage d = _disputes[disputeId];
        if (d.stage != Stage.Appealable) revert DisputeCourt_WrongStage(disputeId, d.stage);
        if (block.timestamp > d.appealDeadline) revert DisputeCourt_AppealClosed(disputeId, d.appealDeadline);
        uint256 price = appealPrice(disputeId);
        if (msg.value < price) revert DisputeCourt_BondTooLow(msg.value, price);
        d.round = 1;
        d.appellant = msg.sender;
        d.appealBond = uint88(msg.value);
        d.stage = Stage.AwaitingDraw;
        (d.drawnCount, d.committedCount, d.faultyVotes, d.honestVotes, d.abstainVotes) = (0, 0, 0, 0, 0);
        d.drawBlock = uint64(block.number) + _params[d.paramsId].drawDelayBlocks;
        emit Appealed(disputeId, msg.sender, msg.value, d.drawBlock);
        vault.depositEscrow{value: msg.value}();
    }

    // ------------------------------------------------------------------ governance

    /// @notice Change the court's parameters within bounds (see `_setParams`); disputes already
    ///         opened keep the snapshot they opened under.
    /// @param params_ The new parameters.
    function setParams(Params calldata params_) external onlyOwner {
        _params.push(params_);
        _checkBounds(bounds.currentViolation());
        emit ParamsChanged(_params.length - 1, _current());
    }
    /// @notice Disabled: a court without governance could never be tuned within its bounds.
    function renounceOwnership() public pure override {
        revert DisputeCourt_RenounceDisabled();
    }

    // ------------------------------------------------------------------ views

    /// @notice Current parameters.
    function params() external view returns (Params memory) {
        return _current();
    }

    /// @notice The parameters a dispute runs under (snapshotted at its opening).
    function paramsOf(uint256 disputeId) external view returns (Params memory) {
        return _params[_disputes[disputeId].paramsId];
    }

    /// @inheritdoc IDisputeWindow
    function disputeWindow() external view returns (uint64) {
        return _current().disputeWindow;
    }

    /// @inheritdoc IDisputeWindow
    function freezeHorizon() external view returns (uint256) {
        return bounds.currentFreezeHorizon();
    }

    /// @notice Incident keccak256(accused, sessionId) => the dispute that slashed it (0 = none).
    function incidentSlashedBy(bytes32 incident) external view returns (uint256) {
        return _incidents[incident].slashedBy;
    }

    /// @notice Incident => its oldest unsettled dispute (0 = none): the only one whose Faulty
    ///         ruling can settle, so the first claim takes the finder's reward.
    function incidentLead(bytes32 incident) external view returns (uint256) {
        return _incidents[incident].head;
    }

    /// @notice The bond a dispute against `accused` requires now: bondBps of what it can slash,
    ///         at least minBond.
    function bondFor(address accused) public view returns (uint256) {
        Params storage p = _current();
        uint256 scaled = vault.slashableOf(accused) * p.slashBps / BPS * p.bondBps / BPS;
        return scaled > p.minBond ? scaled : p.minBond;
    }

    /// @notice What an appeal of `disputeId` costs: twice the smaller of the challenger's bond and
    ///         the bond the court requires now (so over-bonding cannot price out an appeal, and an
    ///         accused who stakes more cannot raise the price above twice what was posted).
    function appealPrice(uint256 disputeId) public view returns (uint256) {
        uint256 posted = _disputes[disputeId].bond;
        uint256 required = bondFor(_disputes[disputeId].accused);
        return 2 * (posted < required ? posted : required);
    }

    /// @notice A dispute's record.
    function getDispute(uint256 disputeId) external view returns (Dispute memory) {
        return _disputes[disputeId];
    }

    /// @notice The auditors drawn for a dispute, every round, in draw order.
    function auditorsOf(uint256 disputeId) external view returns (address[] memory) {
        return _auditors[disputeId];
    }

    /// @notice An auditor's vote record in a dispute.
    function voteOf(uint256 disputeId, address auditor) external view returns (Vote memory) {
        return _votes[disputeId][auditor];
    }

    /// @notice The commitment an auditor must submit for (verdict, fingerprint, salt).
    function commitmentOf(uint256 disputeId, address auditor, uint8 verdict, bytes32 fingerprint, bytes32 salt)
        public
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(disputeId, auditor, verdict, fingerprint, salt));
    }

    /// @notice The opening commitment for `openDispute`: binds who opens, which receipt (its
    ///         struct hash), the evidence and the named block.
    function openingCommitment(
        address challenger,
        bytes32 receiptHash,
        string calldata evidenceCid,
        uint32 blockIndex,
        bytes32 salt
    ) public pure returns (bytes32) {
        return keccak256(abi.encode(challenger, receiptHash, keccak256(bytes(evidenceCid)), blockIndex, salt));
    }

    /// @notice EIP-712 struct hash of a receipt.
    function hashReceipt(Receipt calldata r) public pure returns (bytes32) {
        // Every field is static: abi.encode(typehash, r) is the 13 words EIP-712 hashes.
        return keccak256(abi.encode(RECEIPT_TYPEHASH, r));
    }

    /// @notice The address that signed a receipt (reverts on a malformed signature).
    function recoverSigner(Receipt calldata r, bytes calldata signature) external view returns (address) {
        return _recoverSigner(hashReceipt(r), signature);
    }

    // ------------------------------------------------------------------ internal

    /// @dev EIP-712 domain: name "PollenDisputeCourt", version "2", this chain, this court.
    function _buildDomain() private view returns (bytes32) {
        return keccak256(
            abi.encode(DOMAIN_TYPEHASH, keccak256("PollenDisputeCourt"), keccak256("2"), block.chainid, address(this))
        );
    }

    /// @dev The EIP-712 digest of a struct hash (the domain recomputed only after a chain fork).
    function _hashTypedData(bytes32 structHash) private view returns (bytes32) {
        bytes32 domain = block.chainid == _cachedChainId ? _cachedDomain : _buildDomain();
        return keccak256(abi.encodePacked("\x19\x01", domain, structHash));
    }

    function _current() private view returns (Params storage) {
        return _params[_params.length - 1];
    }

    /// @dev Consume an opening commitment; returns the timestamp it was committed at. A reveal
    ///      comes at least one block and at most `revealBlocks` blocks and
    ///      `bounds.revealSeconds(revealBlocks)` seconds after its commitment.
    function _takeOpening(bytes32 commitment, uint32 revealBlocks) private returns (uint256 committedAt) {
        uint256 packed = openingCommitted[commitment];
        if (packed == 0) revert DisputeCourt_NoOpeningCommitment(commitment);
        uint256 atBlock = packed >> 64;
        committedAt = uint64(packed);
        if (block.number <= atBlock) revert DisputeCourt_OpeningTooEarly(commitment);
        bool late = block.timestamp > committedAt + uint256(revealBlocks) * OPENING_SECONDS_PER_BLOCK;
        if (late || block.number > atBlock + revealBlocks) revert DisputeCourt_OpeningExpired(commitment);
        delete openingCommitted[commitment];
    }

    /// @dev Window (judged at commit time), signature and registry-term checks.
    function _verifyReceipt(
        Receipt calldata r,
        bytes32 structHash,
        bytes calldata signature,
        uint64 committedAt,
        Params storage p
    ) private view {
        if (r.issuedAt > committedAt + p.maxClockSkew) revert DisputeCourt_ReceiptFromFuture(r.issuedAt, committedAt);
        uint256 closesAt = uint256(r.issuedAt) + p.disputeWindow;
        if (committedAt > closesAt) revert DisputeCourt_WindowClosed(r.issuedAt, closesAt);
        _checkSigner(r, _recoverSigner(structHash, signature));
    }

    function _recoverSigner(bytes32 structHash, bytes calldata signature) private view returns (address signer) {
        ECDSA.RecoverError err;
        (signer, err,) = ECDSA.tryRecover(_hashTypedData(structHash), signature);
        if (err != ECDSA.RecoverError.NoError) revert DisputeCourt_BadSignature();
    }

    function _checkSigner(Receipt calldata r, address signer) private view {
        bool registered = r.versionId <= type(uint64).max
            && registry.signedFor(r.server, signer, uint64(r.versionId), r.firstBlock, r.lastBlock, r.issuedAt, r.term);
        if (!registered) revert DisputeCourt_SignerNotRegistered(signer, r.server);
    }

    /// @dev Never drawn: the accused, the challenger, the appellant and earlier rounds' auditors.
    function _excluded(uint256 disputeId, Dispute storage d) private view returns (address[] memory out) {
        address[] storage earlier = _auditors[disputeId];
        out = new address[](earlier.length + 3);
        (out[0], out[1], out[2]) = (d.accused, d.challenger, d.appellant);
        for (uint256 i; i < earlier.length; ++i) out[i + 3] = earlier[i];
    }

    /// @dev A verdict needs more than half of the whole drawn panel (abstentions and silence
    ///      count against both sides).
    function _ruling(Dispute storage d) private view returns (Outcome) {
        if (uint256(d.faultyVotes) * 2 > d.drawnCount) return Outcome.Faulty;
        if (uint256(d.honestVotes) * 2 > d.drawnCount) return Outcome.Honest;
        return Outcome.NoQuorum;
    }

    /// @dev Amounts moved by one settlement.
    struct Settlement {
        uint256 slashed; // taken from the accused (faulty only)
        uint256 penalties; // taken from silent and incoherent auditors
        uint256 pool; // split evenly among coherent auditors
        uint256 winners; // number of coherent auditors
        uint256 toChallenger;
        uint256 toAccused;
        uint256 toAppellant;
        uint256 perAuditor;
    }

    /// @dev Final: penalise, slash if faulty (once per incident), credit, unfreeze everyone.
    function _settle(uint256 disputeId, Dispute storage d, Outcome outcome) private {
        Incident storage inc = _incidents[d.incident];
        if (outcome == Outcome.Faulty && inc.head != disputeId) {
            revert DisputeCourt_OlderDisputePending(disputeId, inc.head);
        }
        d.stage = Stage.Resolved;
        d.outcome = outcome;
        if (inc.head == disputeId) _advanceLead(inc, d.nextOnIncident);
        Params storage p = _params[d.paramsId];
        Settlement memory s;
        s.penalties = _penalize(disputeId, outcome, p);
        s.pool = s.penalties;
        if (outcome == Outcome.Faulty) {
            s.toChallenger = d.bond;
            if (inc.slashedBy == 0) {
                inc.slashedBy = uint64(disputeId);
                s.slashed = vault.slash(d.accused, vault.slashableOf(d.accused) * p.slashBps / BPS);
                s.toChallenger += s.slashed * p.finderBps / BPS;
                s.pool += s.slashed * p.auditorBps / BPS;
            }
        } else if (outcome == Outcome.Honest) {
            s.toAccused = uint256(d.bond) * p.accusedShareBps / BPS;
            s.pool += d.bond - s.toAccused;
        } else if (outcome == Outcome.NoQuorum) {
            s.toChallenger = d.bond;
        } // Lapsed: the bond goes to the treasury
        if (d.appellant != address(0)) {
            // the appellant loses only if a second panel ruled and upheld the first ruling
            bool upheld = d.round == 1 && d.drawnCount != 0 && outcome == d.firstRuling && outcome != Outcome.NoQuorum;
            if (upheld) s.pool += d.appealBond;
            else s.toAppellant = d.appealBond;
        }
        s.winners = _coherentCount(disputeId, outcome);
        if (s.winners != 0) s.perAuditor = s.pool / s.winners;
        _payout(disputeId, d, outcome, s);
        emit DisputeResolved(disputeId, outcome, s.slashed, s.toChallenger, s.toAccused, s.perAuditor);
        address[] storage drawn = _auditors[disputeId];
        address[] memory frozen = new address[](drawn.length + 1);
        frozen[0] = d.accused;
        for (uint256 i; i < drawn.length; ++i) frozen[i + 1] = drawn[i];
        vault.unfreezeMany(frozen);
    }

    /// @dev The lead settled: the next unsettled dispute on the incident (in opening order) leads.
    function _advanceLead(Incident storage inc, uint64 next) private {
        while (next != 0 && _disputes[next].stage == Stage.Resolved) next = _disputes[next].nextOnIncident;
        inc.head = next;
        if (next == 0) inc.tail = 0;
    }

    function _winningState(Outcome outcome) private pure returns (VoteState) {
        if (outcome == Outcome.Faulty) return VoteState.RevealedFaulty;
        if (outcome == Outcome.Honest) return VoteState.RevealedHonest;
        return VoteState.None; // nobody is coherent with NoQuorum or Lapsed
    }

    function _coherentCount(uint256 disputeId, Outcome outcome) private view returns (uint256 n) {
        VoteState winning = _winningState(outcome);
        if (winning == VoteState.None) return 0;
        address[] storage drawn = _auditors[disputeId];
        for (uint256 i; i < drawn.length; ++i) if (_votes[disputeId][drawn[i]].state == winning) ++n;
    }

    /// @dev Non-revealers (any round) lose noRevealPenalty; those who revealed the verdict
    ///      opposite to a Faulty/Honest final ruling lose incoherencePenalty, and those who
    ///      abstained when the panel could still rule Faulty/Honest lose half of it (the evidence
    ///      was usable; an abstention is no free "no"). Returns the total.
    function _penalize(uint256 disputeId, Outcome outcome, Params storage p) private returns (uint256 taken) {
        VoteState winning = _winningState(outcome);
        address[] storage drawn = _auditors[disputeId];
        for (uint256 i; i < drawn.length; ++i) {
            VoteState state = _votes[disputeId][drawn[i]].state;
            bool silent = state < VoteState.RevealedHonest;
            bool incoherent = winning != VoteState.None && state != winning && !silent;
            uint256 penalty = silent ? p.noRevealPenalty : incoherent ? p.incoherencePenalty : 0;
            if (state == VoteState.RevealedAbstain) penalty /= 2;
            if (penalty == 0) continue;
            uint256 t = vault.slash(drawn[i], penalty);
            taken += t;
            emit AuditorPenalized(disputeId, drawn[i], t, incoherent);
        }
    }

    /// @dev Credits challenger, accused, appellant and coherent auditors; the rest (dust, the
    ///      treasury's share of a slash, a lapsed bond, undistributed penalties) goes to the treasury.
    function _payout(uint256 disputeId, Dispute storage d, Outcome outcome, Settlement memory s) private {
        VoteState winning = _winningState(outcome);
        address[] storage drawn = _auditors[disputeId];
        address[] memory to = new address[](s.winners + 3);
        uint256[] memory amounts = new uint256[](s.winners + 3);
        (to[0], amounts[0]) = (d.challenger, s.toChallenger);
        (to[1], amounts[1]) = (d.accused, s.toAccused);
        (to[2], amounts[2]) = (d.appellant, s.toAppellant);
        uint256 j = 3;
        for (uint256 i; i < drawn.length && j < to.length; ++i) {
            if (_votes[disputeId][drawn[i]].state != winning) continue;
            (to[j], amounts[j]) = (drawn[i], s.perAuditor);
            ++j;
        }
        uint256 total = uint256(d.bond) + d.appealBond + s.slashed + s.penalties;
        uint256 paid = s.toChallenger + s.toAccused + s.toAppellant + s.perAuditor * s.winners;
        vault.distribute(to, amounts, total - paid);
    }

    function _checkBounds(string memory violation) private pure {
        if (bytes(violation).length != 0) revert DisputeCourt_BadParams(violation);
    }
}
