"""BenchmarkRegistry: living benchmarks scored by drawn evaluators (commit-reveal, median), with
the attacks each rule stops, on the in-process chain."""

import os

import ape
import pytest

from conftest import (
    BENCH_COMMIT, BENCH_DRAW_DELAY, BENCH_K, BENCH_MIN_FEE, BENCH_QUORUM, BENCH_REVEAL, CID, DATASET, ETHER,
)

VERSION, ADAPTER = 0, 1  # SubjectKind
AWAITING_DRAW, SCORING, FINALIZED, LAPSED = 1, 2, 3, 4  # Stage
FEE = 12 * 10**15  # divisible by 1..4 evaluators
HONEST = -1_234_567  # an honest score: mean log-likelihood -1.234567, x 1e6
TOLERANCE = 5_000  # +-0.005 of the metric


@pytest.fixture
def by_addr(operators, accounts):
    return {a.address: a for a in [*operators, *accounts]}


@pytest.fixture
def bench_id(benchmarks, version_id, owner):
    benchmarks.registerBenchmark(1, DATASET, "answer_loglik", True, TOLERANCE, sender=owner)
    return 1


def travel(chain, seconds):
    chain.pending_timestamp += seconds
    chain.mine()


def request(benchmarks, bench_id, who, subject=1, kind=VERSION, fee=FEE):
    benchmarks.requestEvaluation(kind, subject, bench_id, value=fee, sender=who)
    return benchmarks.requestCount()


def draw(benchmarks, chain, request_id, who):
    chain.mine(BENCH_DRAW_DELAY)
    tx = benchmarks.drawEvaluators(request_id, sender=who)
    drawn = [e for e in tx.events if e.event_name == "EvaluatorsDrawn"]
    return list(drawn[0].evaluators) if drawn else []


def commit(benchmarks, request_id, evaluator, score):
    salt = os.urandom(32)
    benchmarks.commitScore(request_id, benchmarks.commitmentOf(request_id, evaluator.address, score, salt),
                           sender=evaluator)
    return salt


def score_all(benchmarks, request_id, scores: dict, by_addr, reveal=True):
    """Commit every evaluator's score (None: stays silent), then reveal them; returns salts."""
    salts = {a: commit(benchmarks, request_id, by_addr[a], s) for a, s in scores.items() if s is not None}
    if reveal:
        for a, salt in salts.items():
            benchmarks.revealScore(request_id, scores[a], salt, sender=by_addr[a])
    return salts


def books_balance(benchmarks, chain):
    balance = chain.provider.get_balance(benchmarks.address)
    assert balance == benchmarks.escrowed() + benchmarks.totalCredits(), "benchmark books do not balance"


# ------------------------------------------------------------------ benchmarks


def test_register_benchmark(benchmarks, versions, version_id, owner, stranger, operators):
    tx = benchmarks.registerBenchmark(1, DATASET, "answer_loglik", True, TOLERANCE, sender=owner)
    ev = [e for e in tx.events if e.event_name == "BenchmarkRegistered"][0]
    assert ev.benchmarkId == 1 and ev.modelId == 1 and ev.datasetCid == DATASET and ev.higherIsBetter
    b = benchmarks.getBenchmark(1)
    assert (b.modelId, b.metric, b.tolerance, b.registrant) == (1, "answer_loglik", TOLERANCE, owner.address)
    versions.addMaintainer(1, operators[0], sender=owner)  # a maintainer may register too
    benchmarks.registerBenchmark(1, DATASET, "exact_match", True, 0, sender=operators[0])
    assert list(benchmarks.benchmarksOf(1)) == [1, 2] and list(benchmarks.benchmarksOf(2)) == []
    with ape.reverts(benchmarks.BenchmarkRegistry_NotMaintainer, modelId=1, caller=stranger.address):
        benchmarks.registerBenchmark(1, DATASET, "answer_loglik", True, 0, sender=stranger)
    with ape.reverts(benchmarks.BenchmarkRegistry_NotMaintainer):  # a model that does not exist
        benchmarks.registerBenchmark(9, DATASET, "answer_loglik", True, 0, sender=owner)
    for cid in ("", "bafy123", "b" * 129):
        with ape.reverts(benchmarks.BenchmarkRegistry_BadCid):
            benchmarks.registerBenchmark(1, cid, "answer_loglik", True, 0, sender=owner)
    for metric in ("", "m" * 65):
        with ape.reverts(benchmarks.BenchmarkRegistry_BadMetric):
            benchmarks.registerBenchmark(1, DATASET, metric, True, 0, sender=owner)


def test_constructor_refuses_bad_parameters(project, owner, versions, registry):
    for k, quorum, delay in ((0, 0, 2), (33, 3, 2), (4, 0, 2), (4, 5, 2), (4, 3, 0), (4, 3, 201)):
        with ape.reverts(project.BenchmarkRegistry.BenchmarkRegistry_BadParams):
            project.BenchmarkRegistry.deploy(versions, registry, k, quorum, delay, 600, 600, 0, sender=owner)


def test_request_reverts(benchmarks, versions, bench_id, swarm, stranger, owner):
    with ape.reverts(benchmarks.BenchmarkRegistry_UnknownBenchmark, benchmarkId=7):
        benchmarks.requestEvaluation(VERSION, 1, 7, value=FEE, sender=stranger)
    with ape.reverts(benchmarks.BenchmarkRegistry_FeeTooLow, sent=BENCH_MIN_FEE - 1, minimum=BENCH_MIN_FEE):
        benchmarks.requestEvaluation(VERSION, 1, bench_id, value=BENCH_MIN_FEE - 1, sender=stranger)
    with ape.reverts(benchmarks.BenchmarkRegistry_UnknownSubject):
        benchmarks.requestEvaluation(VERSION, 5, bench_id, value=FEE, sender=stranger)
    with ape.reverts(benchmarks.BenchmarkRegistry_UnknownSubject):
        benchmarks.requestEvaluation(ADAPTER, 1, bench_id, value=FEE, sender=stranger)
    versions.createModel("other", sender=stranger)
    versions.publishVersion(2, CID + "x", 8, 0, 10_000, sender=stranger)
    with ape.reverts(benchmarks.BenchmarkRegistry_SubjectOfOtherModel, kind=VERSION, subjectId=2, modelId=2):
        benchmarks.requestEvaluation(VERSION, 2, bench_id, value=FEE, sender=stranger)
    versions.publishAdapter(2, CID, "lora-other", "", sender=stranger)
    with ape.reverts(benchmarks.BenchmarkRegistry_SubjectOfOtherModel):  # an adapter of the other model
        benchmarks.requestEvaluation(ADAPTER, 1, bench_id, value=FEE, sender=stranger)
    assert benchmarks.requestCount() == 0 and benchmarks.escrowed() == 0


# ------------------------------------------------------------------ the honest path


def test_honest_evaluation_records_the_median_and_pays_everyone(benchmarks, chain, bench_id, swarm, stranger,
                                                                 by_addr, owner):
    tx = benchmarks.requestEvaluation(VERSION, 1, bench_id, value=FEE, sender=stranger)
    rid = benchmarks.requestCount()
    ev = [e for e in tx.events if e.event_name == "EvaluationRequested"][0]
    assert ev.drawBlock == tx.block_number + BENCH_DRAW_DELAY and ev.fee == FEE
    r = benchmarks.getRequest(rid)
    assert r.stage == AWAITING_DRAW and r.ticketCount == 5 and (r.publisher, r.requester) == (owner.address, stranger.address)
    with ape.reverts(benchmarks.BenchmarkRegistry_DrawTooEarly):
        benchmarks.drawEvaluators(rid, sender=stranger)
    with ape.reverts(benchmarks.BenchmarkRegistry_WrongStage):
        benchmarks.commitScore(rid, b"\x00" * 32, sender=swarm[0])
    drawn = draw(benchmarks, chain, rid, stranger)
    assert len(drawn) == BENCH_K and len(set(drawn)) == BENCH_K and set(drawn) <= {a.address for a in swarm}
    assert benchmarks.getRequest(rid).stage == SCORING and list(benchmarks.evaluatorsOf(rid)) == drawn
    scores = dict(zip(drawn, [HONEST, HONEST + 900, HONEST - 700, HONEST + 300]))  # float noise
    salts = score_all(benchmarks, rid, scores, by_addr, reveal=False)
    with ape.reverts(benchmarks.BenchmarkRegistry_AlreadyCommitted):
        benchmarks.commitScore(rid, b"\x01" * 32, sender=by_addr[drawn[0]])
    for a, salt in salts.items():  # everyone committed: reveals open before the commit deadline
        benchmarks.revealScore(rid, scores[a], salt, sender=by_addr[a])
    tx = benchmarks.finalize(rid, sender=stranger)  # everyone revealed: no need to wait
    recorded = [e for e in tx.events if e.event_name == "ScoreRecorded"][0]
    assert recorded.score == HONEST and recorded.reveals == 4  # lower median of the four
    s = benchmarks.scoreOf(VERSION, 1, bench_id)
    assert (s.value, s.requestId, s.reveals) == (HONEST, rid, 4)
    assert benchmarks.scoreOf(ADAPTER, 1, bench_id).requestId == 0  # per (kind, subject, benchmark)
    for a in drawn:
        assert benchmarks.credits(a) == FEE // 4
    books_balance(benchmarks, chain)
    before = by_addr[drawn[0]].balance
    tx = benchmarks.withdraw(sender=by_addr[drawn[0]])
    assert by_addr[drawn[0]].balance == before + FEE // 4 - tx.total_fees_paid
    with ape.reverts(benchmarks.BenchmarkRegistry_NothingToWithdraw):
        benchmarks.withdraw(sender=by_addr[drawn[0]])
    with ape.reverts(benchmarks.BenchmarkRegistry_WrongStage):
        benchmarks.finalize(rid, sender=stranger)
    books_balance(benchmarks, chain)


def test_adapter_is_scored_on_its_base_versions_model(benchmarks, versions, chain, bench_id, swarm, stranger,
                                                      by_addr, accounts):
    versions.publishAdapter(1, CID, "lora-math", "lora", sender=accounts[8])
    rid = request(benchmarks, bench_id, stranger, subject=1, kind=ADAPTER)
    r = benchmarks.getRequest(rid)
    assert (r.kind, r.subjectId, r.versionId, r.publisher) == (ADAPTER, 1, 1, accounts[8].address)
    drawn = draw(benchmarks, chain, rid, stranger)
    score_all(benchmarks, rid, {a: 700_000 for a in drawn}, by_addr)
    benchmarks.finalize(rid, sender=stranger)
    assert benchmarks.scoreOf(ADAPTER, 1, bench_id).value == 700_000
    assert benchmarks.scoreOf(VERSION, 1, bench_id).requestId == 0


def test_a_later_evaluation_replaces_the_score(benchmarks, chain, bench_id, swarm, stranger, by_addr):
    for value in (100_000, 250_000):
        rid = request(benchmarks, bench_id, stranger)
        drawn = draw(benchmarks, chain, rid, stranger)
        score_all(benchmarks, rid, {a: value for a in drawn}, by_addr)
        benchmarks.finalize(rid, sender=stranger)
        assert benchmarks.scoreOf(VERSION, 1, bench_id).value == value


def test_an_older_request_finalized_late_does_not_overwrite_a_newer_score(benchmarks, chain, bench_id, swarm,
                                                                          stranger, by_addr):
    old = request(benchmarks, bench_id, stranger)
    old_drawn = draw(benchmarks, chain, old, stranger)
    new = request(benchmarks, bench_id, stranger)
    new_drawn = draw(benchmarks, chain, new, stranger)
    score_all(benchmarks, new, {a: 300_000 for a in new_drawn}, by_addr)
    benchmarks.finalize(new, sender=stranger)
    score_all(benchmarks, old, {a: 100_000 for a in old_drawn}, by_addr)
    benchmarks.finalize(old, sender=stranger)
    s = benchmarks.scoreOf(VERSION, 1, bench_id)
    assert (s.value, s.requestId) == (300_000, new)


# ------------------------------------------------------------------ attacks


@pytest.mark.parametrize("lie", [10**15, -(10**15), HONEST + 6_000])
def test_a_single_lying_evaluator_cannot_move_the_median_and_is_not_paid(benchmarks, chain, bench_id, swarm,
                                                                          stranger, by_addr, lie):
    rid = request(benchmarks, bench_id, stranger)
    drawn = draw(benchmarks, chain, rid, stranger)
    liar, honest = drawn[0], drawn[1:]
    scores = {liar: lie, honest[0]: HONEST - 200, honest[1]: HONEST, honest[2]: HONEST + 400}
    score_all(benchmarks, rid, scores, by_addr)
    benchmarks.finalize(rid, sender=stranger)
    value = benchmarks.scoreOf(VERSION, 1, bench_id).value
    assert HONEST - 200 <= value <= HONEST + 400  # stays within the honest scores
    assert benchmarks.credits(liar) == 0
    for a in honest:
        assert benchmarks.credits(a) == FEE // 3
    assert benchmarks.credits(stranger) == 0  # 12e15 / 3 leaves no dust
    books_balance(benchmarks, chain)


def test_the_publisher_cannot_evaluate_its_own_version(benchmarks, versions, chain, bench_id, swarm, owner,
                                                       stranger, by_addr):
    publisher = swarm[0]  # a staked server that also publishes a version of the model
    versions.addMaintainer(1, publisher, sender=owner)
    versions.publishVersion(1, CID + "v2", 8, 1, 10_000, sender=publisher)
    rid = request(benchmarks, bench_id, stranger, subject=2)
    drawn = draw(benchmarks, chain, rid, stranger)
    assert publisher.address not in drawn and len(drawn) == 4  # the four other servers
    with ape.reverts(benchmarks.BenchmarkRegistry_NotEvaluator, requestId=rid, caller=publisher.address):
        commit(benchmarks, rid, publisher, 10**15)


def test_the_requester_is_not_drawn_either(benchmarks, chain, bench_id, swarm, by_addr):
    requester = swarm[1]  # a server asking for an evaluation cannot then score it itself
    rid = request(benchmarks, bench_id, requester)
    assert requester.address not in draw(benchmarks, chain, rid, swarm[2])


def test_the_publisher_of_an_adapter_cannot_evaluate_it(benchmarks, versions, chain, bench_id, swarm, stranger):
    versions.publishAdapter(1, CID, "my-lora", "lora", sender=swarm[3])
    rid = request(benchmarks, bench_id, stranger, kind=ADAPTER)
    assert swarm[3].address not in draw(benchmarks, chain, rid, stranger)


def test_copying_another_evaluators_commitment_is_useless(benchmarks, chain, bench_id, swarm, stranger, by_addr):
    rid = request(benchmarks, bench_id, stranger)
    drawn = draw(benchmarks, chain, rid, stranger)
    victim, copier, others = by_addr[drawn[0]], by_addr[drawn[1]], drawn[2:]
    salt = commit(benchmarks, rid, victim, HONEST)
    copied = benchmarks.entryOf(rid, victim).commitment  # read from the chain (or the mempool)
    benchmarks.commitScore(rid, copied, sender=copier)
    other_salts = score_all(benchmarks, rid, {a: HONEST for a in others}, by_addr, reveal=False)
    benchmarks.revealScore(rid, HONEST, salt, sender=victim)
    with ape.reverts(benchmarks.BenchmarkRegistry_BadReveal, requestId=rid, evaluator=copier.address):
        benchmarks.revealScore(rid, HONEST, salt, sender=copier)  # the victim's opening, replayed
    for a, s in other_salts.items():
        benchmarks.revealScore(rid, HONEST, s, sender=by_addr[a])
    travel(chain, BENCH_COMMIT + BENCH_REVEAL + 1)
    benchmarks.finalize(rid, sender=stranger)
    assert benchmarks.credits(copier) == 0 and benchmarks.credits(victim) == FEE // 3


def test_a_changed_score_does_not_open_the_commitment(benchmarks, chain, bench_id, swarm, stranger, by_addr):
    rid = request(benchmarks, bench_id, stranger)
    drawn = draw(benchmarks, chain, rid, stranger)
    salts = score_all(benchmarks, rid, {a: HONEST for a in drawn}, by_addr, reveal=False)
    with ape.reverts(benchmarks.BenchmarkRegistry_BadReveal):
        benchmarks.revealScore(rid, HONEST + 1, salts[drawn[0]], sender=by_addr[drawn[0]])
    with ape.reverts(benchmarks.BenchmarkRegistry_BadReveal):  # never drawn, never committed
        benchmarks.revealScore(rid, HONEST, salts[drawn[0]], sender=stranger)


def test_early_and_late_reveals_are_refused(benchmarks, chain, bench_id, swarm, stranger, by_addr):
    rid = request(benchmarks, bench_id, stranger)
    drawn = draw(benchmarks, chain, rid, stranger)
    early, late = drawn[0], drawn[1]
    salts = score_all(benchmarks, rid, {a: HONEST for a in drawn[:3]}, by_addr, reveal=False)
    with ape.reverts(benchmarks.BenchmarkRegistry_RevealNotOpen):  # one has not committed yet
        benchmarks.revealScore(rid, HONEST, salts[early], sender=by_addr[early])
    travel(chain, BENCH_COMMIT + 1)
    with ape.reverts(benchmarks.BenchmarkRegistry_CommitClosed):
        commit(benchmarks, rid, by_addr[drawn[3]], HONEST)
    for a in drawn[:3]:
        if a != late:
            benchmarks.revealScore(rid, HONEST, salts[a], sender=by_addr[a])
    with ape.reverts(benchmarks.BenchmarkRegistry_FinalizeTooEarly):
        benchmarks.finalize(rid, sender=stranger)
    travel(chain, BENCH_REVEAL + 1)
    with ape.reverts(benchmarks.BenchmarkRegistry_RevealClosed):
        benchmarks.revealScore(rid, HONEST, salts[late], sender=by_addr[late])
    benchmarks.finalize(rid, sender=stranger)  # 2 reveals < quorum 3: lapses
    assert benchmarks.getRequest(rid).stage == LAPSED and benchmarks.credits(late) == 0


@pytest.mark.parametrize("commits", [False, True])
def test_non_revealers_get_nothing(benchmarks, chain, bench_id, swarm, stranger, by_addr, commits):
    rid = request(benchmarks, bench_id, stranger)
    drawn = draw(benchmarks, chain, rid, stranger)
    silent, revealers = drawn[0], drawn[1:]
    salts = score_all(benchmarks, rid, {a: HONEST for a in drawn if commits or a != silent}, by_addr, reveal=False)
    travel(chain, BENCH_COMMIT + 1)
    for a in revealers:
        benchmarks.revealScore(rid, HONEST, salts[a], sender=by_addr[a])
    assert benchmarks.entryOf(rid, silent).state == (2 if commits else 1)  # Committed / Drawn
    travel(chain, BENCH_REVEAL + 1)
    benchmarks.finalize(rid, sender=stranger)
    assert benchmarks.scoreOf(VERSION, 1, bench_id).reveals == 3
    assert benchmarks.credits(silent) == 0
    for a in revealers:
        assert benchmarks.credits(a) == FEE // 3
    books_balance(benchmarks, chain)


# ------------------------------------------------------------------ lapses


def test_too_few_reveals_lapse_and_refund_the_requester(benchmarks, chain, bench_id, swarm, stranger, by_addr):
    rid = request(benchmarks, bench_id, stranger)
    drawn = draw(benchmarks, chain, rid, stranger)
    score_all(benchmarks, rid, {a: HONEST for a in drawn[:BENCH_QUORUM - 1]}, by_addr, reveal=False)
    travel(chain, BENCH_COMMIT + BENCH_REVEAL + 1)
    tx = benchmarks.finalize(rid, sender=stranger)
    assert [e.reason for e in tx.events if e.event_name == "EvaluationLapsed"] == ["too few reveals"]
    assert benchmarks.getRequest(rid).stage == LAPSED and benchmarks.credits(stranger) == FEE
    assert benchmarks.scoreOf(VERSION, 1, bench_id).requestId == 0
    before = stranger.balance
    tx = benchmarks.withdraw(sender=stranger)
    assert stranger.balance == before + FEE - tx.total_fees_paid
    books_balance(benchmarks, chain)


def test_too_few_eligible_servers_lapse_at_the_draw(benchmarks, staked_server, chain, bench_id, operators,
                                                    signer_keys, stranger):
    for i in range(BENCH_QUORUM - 1):
        staked_server(operators[i], signer_keys[i], port=31330 + i)
    rid = request(benchmarks, bench_id, stranger)
    assert draw(benchmarks, chain, rid, stranger) == []
    assert benchmarks.getRequest(rid).stage == LAPSED and benchmarks.credits(stranger) == FEE


def test_servers_joining_after_the_request_are_not_candidates(benchmarks, staked_server, chain, bench_id,
                                                              operators, signer_keys, stranger):
    for i in range(2):
        staked_server(operators[i], signer_keys[i], port=31330 + i)
    rid = request(benchmarks, bench_id, stranger)
    for i in range(2, 5):  # they see the request and join to be drawn
        staked_server(operators[i], signer_keys[i], port=31330 + i)
    assert draw(benchmarks, chain, rid, stranger) == []  # only 2 candidates: lapses
    assert benchmarks.getRequest(rid).stage == LAPSED


def test_a_draw_past_the_blockhash_window_lapses(benchmarks, chain, bench_id, swarm, stranger):
    rid = request(benchmarks, bench_id, stranger)
    chain.mine(BENCH_DRAW_DELAY + 257)
    tx = benchmarks.drawEvaluators(rid, sender=stranger)
    assert [e.reason for e in tx.events if e.event_name == "EvaluationLapsed"] == ["draw block too old"]
    assert benchmarks.credits(stranger) == FEE
    with ape.reverts(benchmarks.BenchmarkRegistry_WrongStage):
        benchmarks.drawEvaluators(rid, sender=stranger)


def test_stake_weight_decides_the_draw(benchmarks, staked_server, chain, bench_id, operators, signer_keys,
                                       stranger, by_addr):
    """With K = 4 of 5 servers, the heavy one (10x the stake) is drawn in every request."""
    staked_server(operators[0], signer_keys[0], amount=20 * ETHER)
    for i in range(1, 5):
        staked_server(operators[i], signer_keys[i], port=31330 + i)
    for _ in range(3):
        rid = request(benchmarks, bench_id, stranger)
        assert operators[0].address in draw(benchmarks, chain, rid, stranger)
