// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IModelCatalog} from "./interfaces/IModelCatalog.sol";
import {IEvaluatorPool} from "./interfaces/IEvaluatorPool.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";

/// @title BenchmarkRegistry
/// @notice Living benchmarks: a benchmark is a dataset (IPFS CID of a JSONL file) and a metric,
///         registered for a model by one of its maintainers. Anyone may pay for an evaluation of
///         a version or an adapter of that model on a benchmark; K evaluators drawn from the
///         staked servers run it through the swarm, commit to their integer scores (the metric
///         x 1e6), then reveal them. The median of the revealed scores is recorded per
///         (subject, benchmark); evaluators within the benchmark's tolerance of it share the fee,
///         the others (and those who never reveal) get nothing. Too few reveals: the request
///         lapses and the fee is refunded. Every payment is credited and withdrawn.
/// @dev Evaluators come from ServerRegistry's append-only, stake-weighted tickets (`drawPanel`)
///      over the prefix issued at request time, among servers Active since before the request,
///      never the subject's publisher nor the requester. They act as clients of the swarm, so
///      they need not serve the subject's version themselves (which also keeps the version's own
///      operators from being its only judges). Randomness: blockhash of a block mined
///      `drawDelayBlocks` after the request; its proposer can withhold a block to re-roll once,
///      and the candidates are fixed before it exists. Past the 256-block blockhash window the
///      request lapses (fee refunded), so every request ends in a bounded time.
///      A lying minority cannot move the median outside the honest scores' range, and a
///      commitment binds the evaluator's address, so copying another's is useless.
contract BenchmarkRegistry {
    enum SubjectKind {
        Version,
        Adapter
    }

    enum Stage {
        None,
        AwaitingDraw,
        Scoring, // drawn: commit, then reveal
        Finalized,
        Lapsed
    }

    enum EntryState {
        None,
        Drawn,
        Committed,
        Revealed
    }

    struct Benchmark {
        uint64 modelId;
        bool higherIsBetter;
        uint64 tolerance; // max |score - median| (score units) for an evaluator to be paid
        address registrant;
        string datasetCid;
        string metric; // e.g. "answer_loglik" (scores are the metric x 1e6)
    }

    struct Request {
        SubjectKind kind;
        Stage stage;
        uint8 drawnCount;
        uint8 committedCount;
        uint8 revealedCount;
        uint64 subjectId;
        uint64 benchmarkId;
        uint64 versionId; // the version served: the subject itself, or the adapter's base
        address requester;
        address publisher; // the subject's publisher (never drawn)
        uint128 fee;
        uint32 ticketCount; // candidate tickets at request time
        uint64 requestedAt;
        uint64 drawBlock;
        uint64 commitDeadline;
        uint64 revealDeadline;
        int64 score; // the median, once Finalized
    }

    struct Entry {
        EntryState state;
        int64 score;
        bytes32 commitment;
    }

    struct Score {
        int64 value; // metric x 1e6
        uint64 requestId; // the evaluation that produced it (0 = never scored)
        uint64 recordedAt;
        uint8 reveals;
    }

    /// @notice Score units per metric unit (scores are integers: metric x 1e6).
    int64 public constant SCALE = 1e6;
    uint256 public constant MAX_CID_LENGTH = 128;
    uint256 public constant MAX_METRIC_LENGTH = 64;
    uint256 public constant MAX_EVALUATORS = 32;

    IModelCatalog public immutable catalog;
    IEvaluatorPool public immutable pool;
    /// @notice Evaluators drawn per request (K).
    uint256 public immutable evaluatorsPerRequest;
    /// @notice Reveals needed for a score to be recorded.
    uint256 public immutable quorum;
    uint256 public immutable drawDelayBlocks;
    uint64 public immutable commitPeriod;
    uint64 public immutable revealPeriod;
    /// @notice Smallest fee (wei) an evaluation request may carry.
    uint256 public immutable minFee;

    uint64 public benchmarkCount;
    uint64 public requestCount;
    /// @notice Fees of requests not yet finalized or lapsed.
    uint256 public escrowed;
    /// @notice Sum of all credited, not yet withdrawn balances.
    uint256 public totalCredits;
    /// @notice Withdrawable balance per account.
    mapping(address => uint256) public credits;

    mapping(uint64 => Benchmark) private _benchmarks;
    mapping(uint64 => uint64[]) private _benchmarksOfModel;
    mapping(uint256 => Request) private _requests;
    mapping(uint256 => address[]) private _evaluators;
    mapping(uint256 => mapping(address => Entry)) private _entries;
    mapping(SubjectKind => mapping(uint64 => mapping(uint64 => Score))) private _scores;

    error BenchmarkRegistry_BadParams();
    error BenchmarkRegistry_NotMaintainer(uint64 modelId, address caller);
    error BenchmarkRegistry_BadCid();
    error BenchmarkRegistry_BadMetric();
    error BenchmarkRegistry_UnknownBenchmark(uint64 benchmarkId);
    error BenchmarkRegistry_UnknownSubject(SubjectKind kind, uint64 subjectId);
    error BenchmarkRegistry_SubjectOfOtherModel(SubjectKind kind, uint64 subjectId, uint64 modelId);
    error BenchmarkRegistry_FeeTooLow(uint256 sent, uint256 minimum);
    error BenchmarkRegistry_WrongStage(uint256 requestId, Stage stage);
    error BenchmarkRegistry_DrawTooEarly(uint256 requestId, uint256 drawBlock);
    error BenchmarkRegistry_NotEvaluator(uint256 requestId, address caller);
    error BenchmarkRegistry_AlreadyCommitted(uint256 requestId, address evaluator);
    error BenchmarkRegistry_CommitClosed(uint256 requestId, uint256 deadline);
    error BenchmarkRegistry_RevealNotOpen(uint256 requestId, uint256 opensAfter);
    error BenchmarkRegistry_RevealClosed(uint256 requestId, uint256 deadline);
    error BenchmarkRegistry_BadReveal(uint256 requestId, address evaluator);
    error BenchmarkRegistry_FinalizeTooEarly(uint256 requestId, uint256 revealDeadline);
    error BenchmarkRegistry_NothingToWithdraw(address account);
    error BenchmarkRegistry_TransferFailed(address account, uint256 amount);

    event BenchmarkRegistered(
        uint64 indexed benchmarkId,
        uint64 indexed modelId,
        address indexed registrant,
        string datasetCid,
        string metric,
        bool higherIsBetter,
        uint64 tolerance
    );
    event EvaluationRequested(
        uint256 indexed requestId,
        uint64 indexed benchmarkId,
        SubjectKind kind,
        uint64 indexed subjectId,
        address requester,
        uint256 fee,
        uint256 drawBlock
    );
    event EvaluatorsDrawn(uint256 indexed requestId, address[] evaluators, uint64 commitDeadline, uint64 revealDeadline);
    event ScoreCommitted(uint256 indexed requestId, address indexed evaluator, bytes32 commitment);
    event ScoreRevealed(uint256 indexed requestId, address indexed evaluator, int64 score);
    event ScoreRecorded(
        uint256 indexed requestId,
        uint64 indexed benchmarkId,
        SubjectKind kind,
        uint64 indexed subjectId,
        int64 score,
        uint8 reveals
    );
    event EvaluationLapsed(uint256 indexed requestId, string reason);
    event Credited(address indexed account, uint256 amount);
    event Withdrawn(address indexed account, uint256 amount);

    /// @param catalog_ The ModelVersionRegistry.
    /// @param pool_ The ServerRegistry (its auditor tickets are the evaluator pool).
    /// @param k Evaluators drawn per request (1..32).
    /// @param quorum_ Reveals needed to record a score (1..k).
    /// @param drawDelayBlocks_ Blocks between a request and the block whose hash draws (1..200).
    /// @param commitPeriod_ Seconds after the draw to commit a score.
    /// @param revealPeriod_ Seconds after the commit deadline to reveal it.
    /// @param minFee_ Smallest fee an evaluation request may carry (wei).
    constructor(
        IModelCatalog catalog_,
        IEvaluatorPool pool_,
        uint256 k,
        uint256 quorum_,
        uint256 drawDelayBlocks_,
        uint64 commitPeriod_,
        uint64 revealPeriod_,
        uint256 minFee_
    ) {
        if (k == 0 || k > MAX_EVALUATORS || quorum_ == 0 || quorum_ > k) revert BenchmarkRegistry_BadParams();
        if (drawDelayBlocks_ == 0 || drawDelayBlocks_ > 200 || commitPeriod_ == 0 || revealPeriod_ == 0) {
            revert BenchmarkRegistry_BadParams();
        }
        catalog = catalog_;
        pool = pool_;
        evaluatorsPerRequest = k;
        quorum = quorum_;
        drawDelayBlocks = drawDelayBlocks_;
        commitPeriod = commitPeriod_;
        revealPeriod = revealPeriod_;
        minFee = minFee_;
    }

    // ------------------------------------------------------------------ benchmarks

    /// @notice Register a benchmark for a model (caller must maintain it; its owner does).
    /// @param modelId The model.
    /// @param datasetCid IPFS CID of the dataset (JSONL, see pollen.benchmarks_onchain).
    /// @param metric The metric's name, as evaluators run it (1..64 bytes).
    /// @param higherIsBetter Whether a larger score is an improvement.
    /// @param tolerance Max distance (score units) from the median for an evaluator to be paid.
    /// @return benchmarkId The new benchmark's id (from 1).
    function registerBenchmark(
        uint64 modelId,
        string calldata datasetCid,
        string calldata metric,
        bool higherIsBetter,
        uint64 tolerance
    ) external returns (uint64 benchmarkId) {
        if (!catalog.isMaintainer(modelId, msg.sender)) revert BenchmarkRegistry_NotMaintainer(modelId, msg.sender);
        uint256 cidLength = bytes(datasetCid).length;
        if (cidLength < 8 || cidLength > MAX_CID_LENGTH) revert BenchmarkRegistry_BadCid();
        uint256 metricLength = bytes(metric).length;
        if (metricLength == 0 || metricLength > MAX_METRIC_LENGTH) revert BenchmarkRegistry_BadMetric();
        benchmarkId = ++benchmarkCount;
        _benchmarks[benchmarkId] = Benchmark(modelId, higherIsBetter, tolerance, msg.sender, datasetCid, metric);
        _benchmarksOfModel[modelId].push(benchmarkId);
        emit BenchmarkRegistered(benchmarkId, modelId, msg.sender, datasetCid, metric, higherIsBetter, tolerance);
    }

    // ------------------------------------------------------------------ evaluations

    /// @notice Ask for an evaluation of a version or an adapter of the benchmark's model; the fee
    ///         (msg.value >= minFee) pays the evaluators whose scores agree.
    /// @param kind Version or Adapter.
    /// @param subjectId The version id or adapter id.
    /// @param benchmarkId The benchmark.
    /// @return requestId The request's id (from 1).
    function requestEvaluation(SubjectKind kind, uint64 subjectId, uint64 benchmarkId)
        external
        payable
        returns (uint256 requestId)
    {
        uint64 modelId = _benchmarks[benchmarkId].modelId;
        if (modelId == 0) revert BenchmarkRegistry_UnknownBenchmark(benchmarkId);
        if (msg.value < minFee) revert BenchmarkRegistry_FeeTooLow(msg.value, minFee);
        (uint64 versionId, address publisher) = _subject(kind, subjectId, modelId);
        requestId = ++requestCount;
        Request storage r = _requests[requestId];
        (r.kind, r.subjectId, r.benchmarkId, r.versionId) = (kind, subjectId, benchmarkId, versionId);
        (r.requester, r.publisher, r.fee) = (msg.sender, publisher, SafeCast.toUint128(msg.value));
        r.stage = Stage.AwaitingDraw;
        r.ticketCount = SafeCast.toUint32(pool.ticketCount());
        r.requestedAt = uint64(block.timestamp);
        r.drawBlock = uint64(block.number + drawDelayBlocks);
        escrowed += msg.value;
        emit EvaluationRequested(requestId, benchmarkId, kind, subjectId, msg.sender, msg.value, r.drawBlock);
    }

    /// @notice Draw the request's evaluators once its draw block is mined (anyone may call).
    ///         Past the blockhash window, or with fewer than `quorum` eligible servers, the
    ///         request lapses and the requester is refunded.
    /// @param requestId The request.
    function drawEvaluators(uint256 requestId) external {
        Request storage r = _requests[requestId];
        if (r.stage != Stage.AwaitingDraw) revert BenchmarkRegistry_WrongStage(requestId, r.stage);
        if (block.number <= r.drawBlock) revert BenchmarkRegistry_DrawTooEarly(requestId, r.drawBlock);
        bytes32 seed = blockhash(r.drawBlock);
        if (seed == bytes32(0)) return _lapse(requestId, r, "draw block too old");
        address[] memory drawn = r.ticketCount == 0 ? new address[](0) : _draw(requestId, r, seed);
        if (drawn.length < quorum) return _lapse(requestId, r, "too few evaluators");
        for (uint256 i; i < drawn.length; ++i) {
            _entries[requestId][drawn[i]].state = EntryState.Drawn;
        }
        _evaluators[requestId] = drawn;
        r.drawnCount = uint8(drawn.length);
        r.stage = Stage.Scoring;
        r.commitDeadline = uint64(block.timestamp) + commitPeriod;
        r.revealDeadline = r.commitDeadline + revealPeriod;
        emit EvaluatorsDrawn(requestId, drawn, r.commitDeadline, r.revealDeadline);
    }

    /// @notice Commit to a score as a drawn evaluator, before the commit deadline:
    ///         commitment = `commitmentOf(requestId, evaluator, score, salt)`.
    /// @param requestId The request.
    /// @param commitment The hash.
    function commitScore(uint256 requestId, bytes32 commitment) external {
        Request storage r = _scoring(requestId);
        if (block.timestamp > r.commitDeadline) revert BenchmarkRegistry_CommitClosed(requestId, r.commitDeadline);
        Entry storage e = _entries[requestId][msg.sender];
        if (e.state == EntryState.None) revert BenchmarkRegistry_NotEvaluator(requestId, msg.sender);
        if (e.state != EntryState.Drawn) revert BenchmarkRegistry_AlreadyCommitted(requestId, msg.sender);
        e.state = EntryState.Committed;
        e.commitment = commitment;
        r.committedCount += 1;
        emit ScoreCommitted(requestId, msg.sender, commitment);
    }

    /// @notice Reveal a committed score, after the commit deadline (or once every evaluator
    ///         committed) and no later than the reveal deadline.
    /// @param requestId The request.
    /// @param score The score committed to (metric x 1e6).
    /// @param salt The commitment's secret.
    function revealScore(uint256 requestId, int64 score, bytes32 salt) external {
        Request storage r = _scoring(requestId);
        if (block.timestamp <= r.commitDeadline && r.committedCount < r.drawnCount) {
            revert BenchmarkRegistry_RevealNotOpen(requestId, r.commitDeadline);
        }
        if (block.timestamp > r.revealDeadline) revert BenchmarkRegistry_RevealClosed(requestId, r.revealDeadline);
        Entry storage e = _entries[requestId][msg.sender];
        if (e.state != EntryState.Committed || e.commitment != commitmentOf(requestId, msg.sender, score, salt)) {
            revert BenchmarkRegistry_BadReveal(requestId, msg.sender);
        }
        e.state = EntryState.Revealed;
        e.score = score;
        r.revealedCount += 1;
        emit ScoreRevealed(requestId, msg.sender, score);
    }

    /// @notice Settle a request after its reveal deadline (or once every evaluator revealed):
    ///         with at least `quorum` reveals the median is recorded and the evaluators within
    ///         tolerance of it are credited equal shares of the fee; otherwise the request
    ///         lapses and the requester is credited the fee. Anyone may call.
    /// @param requestId The request.
    function finalize(uint256 requestId) external {
        Request storage r = _scoring(requestId);
        if (block.timestamp <= r.revealDeadline && r.revealedCount < r.drawnCount) {
            revert BenchmarkRegistry_FinalizeTooEarly(requestId, r.revealDeadline);
        }
        if (r.revealedCount < quorum) return _lapse(requestId, r, "too few reveals");
        int64 median = _median(requestId, r.revealedCount);
        r.stage = Stage.Finalized;
        r.score = median;
        escrowed -= r.fee;
        _record(requestId, r, median);
        _pay(requestId, r, median);
    }

    /// @notice Withdraw the caller's credited balance (fees earned, refunds).
    function withdraw() external {
        uint256 amount = credits[msg.sender];
        if (amount == 0) revert BenchmarkRegistry_NothingToWithdraw(msg.sender);
        credits[msg.sender] = 0;
        totalCredits -= amount;
        emit Withdrawn(msg.sender, amount);
        (bool ok,) = msg.sender.call{value: amount}("");
        if (!ok) revert BenchmarkRegistry_TransferFailed(msg.sender, amount);
    }

    // ------------------------------------------------------------------ views

    /// @notice The commitment an evaluator sends for `score` (binds the request and its address).
    function commitmentOf(uint256 requestId, address evaluator, int64 score, bytes32 salt)
        public
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(requestId, evaluator, score, salt));
    }

    /// @notice A benchmark's record (all-zero if unknown).
    function getBenchmark(uint64 benchmarkId) external view returns (Benchmark memory) {
        return _benchmarks[benchmarkId];
    }

    /// @notice The ids of a model's benchmarks, in registration order.
    function benchmarksOf(uint64 modelId) external view returns (uint64[] memory) {
        return _benchmarksOfModel[modelId];
    }

    /// @notice An evaluation request's record (all-zero if unknown).
    function getRequest(uint256 requestId) external view returns (Request memory) {
        return _requests[requestId];
    }

    /// @notice The evaluators drawn for a request (empty before the draw).
    function evaluatorsOf(uint256 requestId) external view returns (address[] memory) {
        return _evaluators[requestId];
    }

    /// @notice One evaluator's state and (once revealed) score in a request.
    function entryOf(uint256 requestId, address evaluator) external view returns (Entry memory) {
        return _entries[requestId][evaluator];
    }

    /// @notice The latest recorded score of a version or adapter on a benchmark (requestId 0 = none).
    function scoreOf(SubjectKind kind, uint64 subjectId, uint64 benchmarkId) external view returns (Score memory) {
        return _scores[kind][subjectId][benchmarkId];
    }

    // ------------------------------------------------------------------ internal

    function _subject(SubjectKind kind, uint64 subjectId, uint64 modelId)
        private
        view
        returns (uint64 versionId, address publisher)
    {
        versionId = subjectId;
        if (kind == SubjectKind.Adapter) {
            IModelCatalog.Adapter memory a = catalog.getAdapter(subjectId);
            if (a.baseVersionId == 0) revert BenchmarkRegistry_UnknownSubject(kind, subjectId);
            (versionId, publisher) = (a.baseVersionId, a.publisher);
        }
        IModelCatalog.Version memory v = catalog.getVersion(versionId);
        if (v.modelId == 0) revert BenchmarkRegistry_UnknownSubject(kind, subjectId);
        if (v.modelId != modelId) revert BenchmarkRegistry_SubjectOfOtherModel(kind, subjectId, v.modelId);
        if (kind == SubjectKind.Version) publisher = v.publisher;
    }

    function _draw(uint256 requestId, Request storage r, bytes32 seed) private view returns (address[] memory) {
        address[] memory exclude = new address[](2);
        (exclude[0], exclude[1]) = (r.publisher, r.requester);
        return pool.drawPanel(
            keccak256(abi.encode(seed, requestId)), r.ticketCount, r.requestedAt, evaluatorsPerRequest, exclude
        );
    }

    function _scoring(uint256 requestId) private view returns (Request storage r) {
        r = _requests[requestId];
        if (r.stage != Stage.Scoring) revert BenchmarkRegistry_WrongStage(requestId, r.stage);
    }

    /// @dev The lower median of the revealed scores (a revealed value itself).
    function _median(uint256 requestId, uint256 n) private view returns (int64) {
        int64[] memory s = new int64[](n);
        address[] storage drawn = _evaluators[requestId];
        uint256 filled;
        for (uint256 i; i < drawn.length; ++i) {
            Entry storage e = _entries[requestId][drawn[i]];
            if (e.state == EntryState.Revealed) s[filled++] = e.score;
        }
        for (uint256 i = 1; i < n; ++i) {
            int64 x = s[i];
            uint256 j = i;
            for (; j > 0 && s[j - 1] > x; --j) s[j] = s[j - 1];
            s[j] = x;
        }
        return s[(n - 1) / 2];
    }

    function _record(uint256 requestId, Request storage r, int64 median) private {
        Score storage s = _scores[r.kind][r.subjectId][r.benchmarkId];
        if (requestId > s.requestId) {
            (s.value, s.requestId, s.recordedAt, s.reveals) =
                (median, uint64(requestId), uint64(block.timestamp), r.revealedCount);
        }
        emit ScoreRecorded(requestId, r.benchmarkId, r.kind, r.subjectId, median, r.revealedCount);
    }

    function _pay(uint256 requestId, Request storage r, int64 median) private {
        uint256 tolerance = _benchmarks[r.benchmarkId].tolerance;
        address[] storage drawn = _evaluators[requestId];
        bool[] memory coherent = new bool[](drawn.length);
        uint256 paid;
        for (uint256 i; i < drawn.length; ++i) {
            Entry storage e = _entries[requestId][drawn[i]];
            if (e.state == EntryState.Revealed && _distance(e.score, median) <= tolerance) {
                coherent[i] = true;
                ++paid;
            }
        }
        uint256 share = r.fee / paid; // paid >= 1: the median's own evaluator is at distance 0
        for (uint256 i; i < drawn.length; ++i) {
            if (coherent[i]) _credit(drawn[i], share);
        }
        _credit(r.requester, r.fee - share * paid); // rounding dust back to the requester
    }

    function _lapse(uint256 requestId, Request storage r, string memory reason) private {
        r.stage = Stage.Lapsed;
        escrowed -= r.fee;
        emit EvaluationLapsed(requestId, reason);
        _credit(r.requester, r.fee);
    }

    function _credit(address account, uint256 amount) private {
        if (amount == 0) return;
        credits[account] += amount;
        totalCredits += amount;
        emit Credited(account, amount);
    }

    function _distance(int64 a, int64 b) private pure returns (uint256) {
        return a > b ? uint256(int256(a) - int256(b)) : uint256(int256(b) - int256(a));
    }
}
