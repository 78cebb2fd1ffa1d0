// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {IStakeVault} from "./interfaces/IStakeVault.sol";
import {IServerRegistry} from "./interfaces/IServerRegistry.sol";
import {IDisputeWindow} from "./interfaces/IDisputeWindow.sol";

/// @title DisputeCourt
/// @notice Disputes over signed service receipts (receipt v2). A server signs one EIP-712
///         receipt per served step: an inference step, a training forward or a backward
///         (`kind`), naming its registry `term` and committing to a Merkle root of per-block
///         fingerprints (`blocksRoot`, opaque here). A challenger submits the receipt with its
///         signature, the CID of an evidence bundle, the first block of the span it says is
///         faulty, and a bond. After a delay K auditors are drawn among the version's active
///         servers; they recompute the named block off chain and commit
///         hash(verdict, fingerprint, salt), where the fingerprint is the hash of what they
///         computed (so a vote is accountable off chain), then reveal. Verdicts: faulty, honest,
///         or abstain (the evidence could not be fetched or used). A decision needs more than
///         half of the whole drawn panel to have judged (faulty or honest) and no tie:
///         faulty -> the accused is slashed, the challenger gets the bond back plus a finder's
///         reward and the majority auditors are paid; honest -> the bond pays the accused and
///         the auditors; otherwise no quorum -> the bond is returned to the challenger.
///         Drawn auditors who never reveal are penalised; abstainers are neither penalised nor
///         paid. Every stage has a deadline and anyone may push a dispute to its next stage.
///         Payouts are credits in the StakeVault (pull payments).
/// @dev Randomness: auditors are drawn from blockhash(drawBlock), a block mined after the
///      dispute opened, so neither side can know the draw when opening. Bias: the proposer of
///      drawBlock can see the outcome and withhold its block (losing its reward) to re-roll once
///      per withheld block; anyone calling `drawAuditors` cannot influence it. If drawBlock
///      falls out of the 256-block blockhash window, the draw is rescheduled (not skipped).
///      On chains with a trusted sequencer (or anvil) the sequencer can pick blockhashes.
contract DisputeCourt is IDisputeWindow, EIP712, Ownable {
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
        uint64 disputeWindow; // seconds after issuedAt a receipt can be disputed
        uint64 maxClockSkew; // seconds a receipt's issuedAt may lie in the future
        uint64 commitPeriod; // seconds auditors have to commit after the draw
        uint64 revealPeriod; // seconds auditors have to reveal after the commit deadline
        uint32 drawDelayBlocks; // blocks between opening and the draw's randomness
        uint8 auditorsPerDispute; // K
        uint16 slashBps; // share of the accused's slashable stake taken when faulty
        uint16 finderBps; // share of the slashed amount credited to the challenger
        uint16 auditorBps; // share of the slashed amount split among majority auditors
        uint16 accusedShareBps; // share of a lost bond credited to the wrongly accused
        uint96 bond; // wei a challenger posts
        uint96 noRevealPenalty; // wei slashed from a drawn auditor who never reveals
    }

    enum Stage {
        None,
        AwaitingDraw,
        Voting,
        Resolved
    }

    enum Outcome {
        Pending,
        Faulty,
        Honest,
        NoQuorum
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
        Outcome outcome;
        uint8 drawnCount;
        uint8 committedCount;
        address challenger;
        uint88 bond;
        uint8 faultyVotes;
        uint32 firstBlock;
        uint32 lastBlock;
        uint64 drawBlock;
        uint64 commitDeadline;
        uint64 revealDeadline;
        uint8 honestVotes;
        uint8 abstainVotes;
        uint32 block; // first block the challenger names as faulty (global index in the span)
        uint64 step; // the receipt's step
        uint8 kind; // the receipt's kind
    }

    struct Vote {
        bytes32 commitment;
        VoteState state;
        bytes32 fingerprint; // revealed: hash of what the auditor computed
    }

    bytes32 public constant RECEIPT_TYPEHASH = keccak256(
        "Receipt(address server,uint256 versionId,uint32 firstBlock,uint32 lastBlock,uint32 term,uint8 kind,bytes32 sessionId,uint64 step,bytes32 inputHash,bytes32 outputHash,bytes32 blocksRoot,uint64 issuedAt)"
    );
    uint8 public constant KIND_INFERENCE = 0;
    uint8 public constant KIND_FORWARD = 1;
    uint8 public constant KIND_BACKWARD = 2;
    uint8 public constant VERDICT_FAULTY = 1;
    uint8 public constant VERDICT_HONEST = 2;
    uint8 public constant VERDICT_ABSTAIN = 3;
    uint256 private constant BPS = 10_000;

    IStakeVault public immutable vault;
    IServerRegistry public immutable registry;

    Params private _params;
    uint256 public disputeCount;
    mapping(uint256 => Dispute) private _disputes;
    mapping(uint256 => address[]) private _auditors;
    mapping(uint256 => mapping(address => Vote)) private _votes;
    /// @notice Receipt struct hash => dispute id (0 = never disputed).
    mapping(bytes32 => uint256) public disputeOfReceipt;

    error DisputeCourt_WrongBond(uint256 sent, uint256 required);
    error DisputeCourt_BadEvidenceCid();
    error DisputeCourt_ReceiptFromFuture(uint64 issuedAt, uint256 now_);
    error DisputeCourt_WindowClosed(uint64 issuedAt, uint256 closedAt);
    error DisputeCourt_AlreadyDisputed(uint256 disputeId);
    error DisputeCourt_BadSignature();
    error DisputeCourt_SignerNotRegistered(address signer, address server);
    error DisputeCourt_SelfDispute();
    error DisputeCourt_WrongStage(uint256 disputeId, Stage stage);
    error DisputeCourt_DrawTooEarly(uint256 disputeId, uint64 drawBlock);
    error DisputeCourt_NotAuditor(uint256 disputeId, address caller);
    error DisputeCourt_AlreadyCommitted(uint256 disputeId, address auditor);
    error DisputeCourt_CommitClosed(uint256 disputeId, uint64 commitDeadline);
    error DisputeCourt_RevealNotOpen(uint256 disputeId, uint64 commitDeadline);
    error DisputeCourt_RevealClosed(uint256 disputeId, uint64 revealDeadline);
    error DisputeCourt_NotCommitted(uint256 disputeId, address auditor);
    error DisputeCourt_CommitmentMismatch(uint256 disputeId, address auditor);
    error DisputeCourt_NotResolvable(uint256 disputeId, uint64 revealDeadline);
    error DisputeCourt_BadParams(string reason);
    error DisputeCourt_BadKind(uint8 kind);
    error DisputeCourt_BadBlock(uint32 blockIndex, uint32 firstBlock, uint32 lastBlock);
    error DisputeCourt_BadVerdict(uint8 verdict);

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
    event DrawRescheduled(uint256 indexed disputeId, uint64 drawBlock);
    event AuditorsDrawn(uint256 indexed disputeId, address[] auditors, uint64 commitDeadline, uint64 revealDeadline);
    event VoteCommitted(uint256 indexed disputeId, address indexed auditor, bytes32 commitment);
    event VoteRevealed(uint256 indexed disputeId, address indexed auditor, uint8 verdict, bytes32 fingerprint);
    event AuditorPenalized(uint256 indexed disputeId, address indexed auditor, uint256 amount);
    event DisputeResolved(
        uint256 indexed disputeId,
        Outcome outcome,
        uint256 slashed,
        uint256 challengerCredit,
        uint256 accusedCredit,
        uint256 perAuditorCredit
    );
    event ParamsChanged(Params params);

    /// @param vault_ The StakeVault (must be wired to this court).
    /// @param registry_ The ServerRegistry.
    /// @param params_ Initial parameters (see `setParams` for bounds).
    /// @param owner_ Governance.
    constructor(IStakeVault vault_, IServerRegistry registry_, Params memory params_, address owner_)
        EIP712("PollenDisputeCourt", "2")
        Ownable(owner_)
    {
        vault = vault_;
        registry = registry_;
        _setParams(params_);
    }

    // ------------------------------------------------------------------ disputes

    /// @notice Open a dispute over a signed receipt, naming the first block of its span the
    ///         challenger says is faulty, posting exactly `params().bond`. The registry term
    ///         checked is the receipt's own `term` field.
    /// @param r The receipt as the server signed it.
    /// @param signature 65-byte ECDSA signature over the receipt's EIP-712 digest.
    /// @param evidenceCid IPFS CID of the evidence bundle (receipt, input history, claimed output).
    /// @param blockIndex Global index of the first faulty block, r.firstBlock <= blockIndex < r.lastBlock.
    /// @return disputeId The new dispute's id.
    function openDispute(Receipt calldata r, bytes calldata signature, string calldata evidenceCid, uint32 blockIndex)
        external
        payable
        returns (uint256 disputeId)
    {
        uint96 bond = _params.bond;
        if (msg.value != bond) revert DisputeCourt_WrongBond(msg.value, bond);
        if (bytes(evidenceCid).length < 8 || bytes(evidenceCid).length > 128) revert DisputeCourt_BadEvidenceCid();
        if (msg.sender == r.server) revert DisputeCourt_SelfDispute();
        if (r.kind > KIND_BACKWARD) revert DisputeCourt_BadKind(r.kind);
        if (blockIndex < r.firstBlock || blockIndex >= r.lastBlock) {
            revert DisputeCourt_BadBlock(blockIndex, r.firstBlock, r.lastBlock);
        }
        bytes32 structHash = _verifyReceipt(r, signature);

        disputeId = ++disputeCount;
        uint64 drawBlock = uint64(block.number) + _params.drawDelayBlocks;
        Dispute storage d = _disputes[disputeId];
        d.accused = r.server;
        d.versionId = uint64(r.versionId);
        d.stage = Stage.AwaitingDraw;
        d.challenger = msg.sender;
        d.bond = uint88(msg.value);
        d.firstBlock = r.firstBlock;
        d.lastBlock = r.lastBlock;
        d.drawBlock = drawBlock;
        d.block = blockIndex;
        d.step = r.step;
        d.kind = r.kind;
        disputeOfReceipt[structHash] = disputeId;
        emit DisputeOpened(
            disputeId, r.server, msg.sender, structHash, r, evidenceCid, blockIndex, msg.value, drawBlock
        );

        vault.freeze(r.server);
        vault.depositEscrow{value: msg.value}();
    }

    /// @notice Draw the auditors once drawBlock is mined (anyone may call).
    /// @param disputeId The dispute.
    function drawAuditors(uint256 disputeId) external {
        Dispute storage d = _disputes[disputeId];
        if (d.stage != Stage.AwaitingDraw) revert DisputeCourt_WrongStage(disputeId, d.stage);
        if (block.number <= d.drawBlock) revert DisputeCourt_DrawTooEarly(disputeId, d.drawBlock);
        bytes32 seedHash = blockhash(d.drawBlock);
        if (seedHash == bytes32(0)) {
            d.drawBlock = uint64(block.number) + _params.drawDelayBlocks;
            emit DrawRescheduled(disputeId, d.drawBlock);
            return;
        }
        address[] memory drawn = _pickAuditors(d, keccak256(abi.encode(seedHash, disputeId)));
        for (uint256 i; i < drawn.length; ++i) {
            _votes[disputeId][drawn[i]].state = VoteState.Drawn;
            _auditors[disputeId].push(drawn[i]);
        }
        d.drawnCount = uint8(drawn.length);
        d.stage = Stage.Voting;
        d.commitDeadline = uint64(block.timestamp) + _params.commitPeriod;
        d.revealDeadline = d.commitDeadline + _params.revealPeriod;
        emit AuditorsDrawn(disputeId, drawn, d.commitDeadline, d.revealDeadline);
    }

    /// @notice Commit a vote as a drawn auditor: commitment = keccak256(abi.encode(disputeId,
    ///         auditor, verdict, fingerprint, salt)) (see `commitmentOf`). Binding the id and
    ///         auditor stops copying another auditor's commitment; the fingerprint binds the
    ///         vote to what the auditor computed.
    /// @param disputeId The dispute.
    /// @param commitment The hash.
    function commitVote(uint256 disputeId, bytes32 commitment) external {
        Dispute storage d = _disputes[disputeId];
        if (d.stage != Stage.Voting) revert DisputeCourt_WrongStage(disputeId, d.stage);
        if (block.timestamp > d.commitDeadline) revert DisputeCourt_CommitClosed(disputeId, d.commitDeadline);
        Vote storage v = _votes[disputeId][msg.sender];
        if (v.state == VoteState.None) revert DisputeCourt_NotAuditor(disputeId, msg.sender);
        if (v.state != VoteState.Drawn) revert DisputeCourt_AlreadyCommitted(disputeId, msg.sender);
        v.commitment = commitment;
        v.state = VoteState.Committed;
        d.committedCount += 1;
        emit VoteCommitted(disputeId, msg.sender, commitment);
    }

    /// @notice Reveal a committed vote, after the commit deadline (or once every auditor
    ///         committed) and before the reveal deadline. The fingerprint is stored and emitted.
    /// @param disputeId The dispute.
    /// @param verdict 1 = faulty (outside tolerance), 2 = honest, 3 = abstain (the evidence could
    ///        not be fetched or used: the auditor did not judge).
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
        if (v.state == VoteState.None) revert DisputeCourt_NotAuditor(disputeId, msg.sender);
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

    /// @notice Settle a dispute after the reveal deadline (or once every drawn auditor revealed,
    ///         abstentions included). Anyone may call.
    /// @param disputeId The dispute.
    function resolve(uint256 disputeId) external {
        Dispute storage d = _disputes[disputeId];
        if (d.stage != Stage.Voting) revert DisputeCourt_WrongStage(disputeId, d.stage);
        uint256 revealed = uint256(d.faultyVotes) + d.honestVotes + d.abstainVotes;
        if (block.timestamp <= d.revealDeadline && revealed < d.drawnCount) {
            revert DisputeCourt_NotResolvable(disputeId, d.revealDeadline);
        }
        Outcome outcome = _outcome(d);
        d.stage = Stage.Resolved;
        d.outcome = outcome;
        _settle(disputeId, d, outcome);
        vault.unfreeze(d.accused);
    }

    // ------------------------------------------------------------------ governance

    /// @notice Change the court's parameters within bounds (see `_setParams`).
    /// @param params_ The new parameters; they apply to disputes opened or drawn afterwards.
    function setParams(Params calldata params_) external onlyOwner {
        _setParams(params_);
        if (vault.unbondingPeriod() <= params_.disputeWindow) revert DisputeCourt_BadParams("window >= unbonding");
    }

    // ------------------------------------------------------------------ views

    /// @notice Current parameters.
    function params() external view returns (Params memory) {
        return _params;
    }

    /// @inheritdoc IDisputeWindow
    function disputeWindow() external view returns (uint64) {
        return _params.disputeWindow;
    }

    /// @notice A dispute's record.
    function getDispute(uint256 disputeId) external view returns (Dispute memory) {
        return _disputes[disputeId];
    }

    /// @notice The auditors drawn for a dispute.
    function auditorsOf(uint256 disputeId) external view returns (address[] memory) {
        return _auditors[disputeId];
    }

    /// @notice An auditor's vote record in a dispute.
    function voteOf(uint256 disputeId, address auditor) external view returns (Vote memory) {
        return _votes[disputeId][auditor];
    }

    /// @notice The commitment an auditor must submit for (verdict, fingerprint, salt).
    /// @param disputeId The dispute.
    /// @param auditor The drawn auditor.
    /// @param verdict 1 = faulty, 2 = honest, 3 = abstain.
    /// @param fingerprint Hash of what the auditor computed (32 bytes, opaque to the court).
    /// @param salt A secret random value, revealed with the vote.
    function commitmentOf(uint256 disputeId, address auditor, uint8 verdict, bytes32 fingerprint, bytes32 salt)
        public
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(disputeId, auditor, verdict, fingerprint, salt));
    }

    /// @notice EIP-712 struct hash of a receipt (the key disputes are recorded under).
    function hashReceipt(Receipt calldata r) public pure returns (bytes32) {
        // Every field is static: abi.encode(typehash, r) is the 13 words EIP-712 hashes.
        return keccak256(abi.encode(RECEIPT_TYPEHASH, r));
    }

    /// @notice The EIP-712 digest a server signs for a receipt.
    function receiptDigest(Receipt calldata r) external view returns (bytes32) {
        return _hashTypedDataV4(hashReceipt(r));
    }

    /// @notice The address that signed a receipt (reverts on a malformed signature).
    function recoverSigner(Receipt calldata r, bytes calldata signature) external view returns (address) {
        return _recover(hashReceipt(r), signature);
    }

    // ------------------------------------------------------------------ internal

    /// @dev Window, uniqueness, signature and registration checks; returns the struct hash.
    function _verifyReceipt(Receipt calldata r, bytes calldata signature)
        private
        view
        returns (bytes32 structHash)
    {
        if (r.issuedAt > block.timestamp + _params.maxClockSkew) {
            revert DisputeCourt_ReceiptFromFuture(r.issuedAt, block.timestamp);
        }
        uint256 closesAt = uint256(r.issuedAt) + _params.disputeWindow;
        if (block.timestamp > closesAt) revert DisputeCourt_WindowClosed(r.issuedAt, closesAt);
        structHash = hashReceipt(r);
        uint256 existing = disputeOfReceipt[structHash];
        if (existing != 0) revert DisputeCourt_AlreadyDisputed(existing);
        address signer = _recover(structHash, signature);
        bool registered = r.versionId <= type(uint64).max
            && registry.signedFor(r.server, signer, uint64(r.versionId), r.firstBlock, r.lastBlock, r.issuedAt, r.term);
        if (!registered) revert DisputeCourt_SignerNotRegistered(signer, r.server);
    }

    function _recover(bytes32 structHash, bytes calldata signature) private view returns (address signer) {
        ECDSA.RecoverError err;
        (signer, err,) = ECDSA.tryRecover(_hashTypedDataV4(structHash), signature);
        if (err != ECDSA.RecoverError.NoError) revert DisputeCourt_BadSignature();
    }

    /// @dev Rejection sampling over the version's active set; excludes the accused and the
    ///      challenger. Takes everyone eligible when there are at most K of them.
    function _pickAuditors(Dispute storage d, bytes32 seed) private view returns (address[] memory picked) {
        uint64 versionId = d.versionId;
        uint256 n = registry.activeCount(versionId);
        uint256 k = _params.auditorsPerDispute;
        address[] memory chosen = new address[](k);
        uint256 count;
        uint256 eligible = n;
        for (uint256 i; i < n && eligible > k; ++i) {
            address a = registry.activeServerAt(versionId, i);
            if (a == d.accused || a == d.challenger) --eligible;
        }
        if (eligible <= k) {
            for (uint256 i; i < n; ++i) {
                address a = registry.activeServerAt(versionId, i);
                if (a != d.accused && a != d.challenger) chosen[count++] = a;
            }
        } else {
            for (uint256 nonce; count < k; ++nonce) {
                address a = registry.activeServerAt(versionId, uint256(keccak256(abi.encode(seed, nonce))) % n);
                if (a == d.accused || a == d.challenger || _contains(chosen, count, a)) continue;
                chosen[count++] = a;
            }
        }
        picked = new address[](count);
        for (uint256 i; i < count; ++i) picked[i] = chosen[i];
    }

    function _contains(address[] memory list, uint256 len, address a) private pure returns (bool) {
        for (uint256 i; i < len; ++i) if (list[i] == a) return true;
        return false;
    }

    /// @dev Quorum: more than half of the whole drawn panel judged (faulty or honest; abstentions
    ///      and silence do not count), and the judgments are not tied.
    function _outcome(Dispute storage d) private view returns (Outcome) {
        uint256 judged = uint256(d.faultyVotes) + d.honestVotes;
        if (d.drawnCount == 0 || judged * 2 <= d.drawnCount || d.faultyVotes == d.honestVotes) {
            return Outcome.NoQuorum;
        }
        return d.faultyVotes > d.honestVotes ? Outcome.Faulty : Outcome.Honest;
    }

    /// @dev Amounts moved by one resolution.
    struct Settlement {
        uint256 slashed; // taken from the accused (faulty only)
        uint256 penalties; // taken from drawn auditors who never revealed
        uint256 toChallenger;
        uint256 toAccused;
        uint256 pool; // split evenly among the majority auditors
        uint256 winners; // number of majority auditors
    }

    /// @dev Penalise non-revealers, slash if faulty, then split escrow into credits.
    function _settle(uint256 disputeId, Dispute storage d, Outcome outcome) private {
        Settlement memory s;
        s.penalties = _penalizeSilent(disputeId, _params.noRevealPenalty);
        s.pool = s.penalties;
        if (outcome == Outcome.Faulty) {
            s.slashed = vault.slash(d.accused, vault.slashableOf(d.accused) * _params.slashBps / BPS);
            s.toChallenger = d.bond + s.slashed * _params.finderBps / BPS;
            s.pool += s.slashed * _params.auditorBps / BPS;
            s.winners = d.faultyVotes;
        } else if (outcome == Outcome.Honest) {
            s.toAccused = uint256(d.bond) * _params.accusedShareBps / BPS;
            s.pool += d.bond - s.toAccused;
            s.winners = d.honestVotes;
        } else {
            s.toChallenger = d.bond;
        }
        uint256 perAuditor = s.winners == 0 ? 0 : s.pool / s.winners;
        _payout(disputeId, d, outcome, s, perAuditor);
        emit DisputeResolved(disputeId, outcome, s.slashed, s.toChallenger, s.toAccused, perAuditor);
    }

    function _penalizeSilent(uint256 disputeId, uint256 penalty) private returns (uint256 taken) {
        address[] storage drawn = _auditors[disputeId];
        for (uint256 i; i < drawn.length; ++i) {
            VoteState state = _votes[disputeId][drawn[i]].state;
            if (state >= VoteState.RevealedHonest) continue; // revealed (abstaining included)
            uint256 t = penalty == 0 ? 0 : vault.slash(drawn[i], penalty);
            taken += t;
            emit AuditorPenalized(disputeId, drawn[i], t);
        }
    }

    /// @dev Credits challenger, accused and majority auditors; the rest (dust, the treasury's
    ///      share of a slash, undistributed penalties) goes to the treasury.
    function _payout(uint256 disputeId, Dispute storage d, Outcome outcome, Settlement memory s, uint256 perAuditor)
        private
    {
        VoteState winning = outcome == Outcome.Faulty ? VoteState.RevealedFaulty : VoteState.RevealedHonest;
        address[] storage drawn = _auditors[disputeId];
        address[] memory to = new address[](s.winners + 2);
        uint256[] memory amounts = new uint256[](s.winners + 2);
        (to[0], amounts[0]) = (d.challenger, s.toChallenger);
        (to[1], amounts[1]) = (d.accused, s.toAccused);
        uint256 j = 2;
        for (uint256 i; i < drawn.length && j < to.length; ++i) {
            if (_votes[disputeId][drawn[i]].state != winning) continue;
            to[j] = drawn[i];
            amounts[j] = perAuditor;
            ++j;
        }
        uint256 total = uint256(d.bond) + s.slashed + s.penalties;
        uint256 paid = s.toChallenger + s.toAccused + perAuditor * s.winners;
        vault.distribute(to, amounts, total - paid);
    }

    function _setParams(Params memory p) private {
        if (p.disputeWindow < 10 minutes || p.disputeWindow > 90 days) revert DisputeCourt_BadParams("disputeWindow");
        if (p.maxClockSkew > 10 minutes) revert DisputeCourt_BadParams("maxClockSkew");
        if (p.commitPeriod < 1 minutes || p.commitPeriod > 14 days) revert DisputeCourt_BadParams("commitPeriod");
        if (p.revealPeriod < 1 minutes || p.revealPeriod > 14 days) revert DisputeCourt_BadParams("revealPeriod");
        if (p.drawDelayBlocks == 0 || p.drawDelayBlocks > 200) revert DisputeCourt_BadParams("drawDelayBlocks");
        if (p.auditorsPerDispute == 0 || p.auditorsPerDispute > 15) revert DisputeCourt_BadParams("auditorsPerDispute");
        if (p.slashBps == 0 || p.slashBps > BPS) revert DisputeCourt_BadParams("slashBps");
        if (uint256(p.finderBps) + p.auditorBps > BPS) revert DisputeCourt_BadParams("finderBps+auditorBps");
        if (p.accusedShareBps > BPS) revert DisputeCourt_BadParams("accusedShareBps");
        if (p.bond == 0 || p.bond > type(uint88).max) revert DisputeCourt_BadParams("bond");
        _params = p;
        emit ParamsChanged(p);
    }
}
