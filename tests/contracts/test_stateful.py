"""Random sequences of honest and adversarial actions against fresh contracts: stake, unstake,
withdraw, join, leave; receipts issued and disputed (commit, then reveal), the same receipt or
session disputed again, openings copied by someone else or revealed too late, receipts signed
after the server left; draws (after servers joined or left since the opening), draws past the
blockhash window (lapses); commits, reveals, silence, abstentions; resolutions, appeals; time
travel. Honest audits (every drawn auditor votes the truth) mix with random votes. Payments run
in the same sequences (stateful_payments.py): vouchers redeemed in batches by servers that may
have been slashed or left, auditors paid from the audit pool, reclaims, withdrawals; their
books and per-account earnings are checked after every step too.

Checked after every step: the vault's books balance and escrow holds exactly the open disputes'
bonds and appeal bonds. Checked on every transaction, against a model kept from the events and
an independent recount of the votes:
  * a drawn panel is min(k, eligible) distinct servers, each holding a ticket issued before the
    opening, Active since auditorMinAge before it, and neither accused, challenger, appellant nor
    an earlier round's auditor (k = K, or 2K+1 on appeal); fewer than minPanel -> no panel;
  * a ruling is Faulty / Honest only with more than half of the whole panel of its round for
    that verdict, otherwise NoQuorum; a lapse (no blockhash) is Lapsed in round 0 and keeps the
    first ruling in an appeal round; an honest panel rules the truth;
  * the accused is slashed slashBps of its slashable stake only by a final Faulty ruling, once
    per incident (server, session); after that no dispute over the incident opens;
  * exactly the drawn auditors who never revealed (noRevealPenalty), those who revealed the
    verdict opposite to a final Faulty/Honest ruling (incoherencePenalty) and those who abstained
    when the final ruling was Faulty/Honest (half of it) are penalised;
  * a faulty ruling settles only once every older dispute over its incident has settled (the
    model keeps the order itself);
  * every account's freeze count is the number of unsettled disputes it is accused in or
    audits, and a frozen account cannot unstake;
  * an opening reverts exactly when it should (self-dispute, expired or missing commitment,
    closed window, slashed incident, unregistered signer)."""

import os
import sys

from ape.exceptions import ContractLogicError
from eth_abi import encode
from eth_account import Account
from eth_utils import keccak
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine, initialize, invariant, precondition, rule, run_state_machine_as_test,
)

from conftest import CID, ETHER, EscrowBooks, HeadStorage, EVIDENCE, PARAMS, fingerprint, fresh_accounts, params_with
from pollen import artifacts
from pollen.payments import PaymentDomain
from stateful_payments import PayEnv, PaymentRules, deploy_payments
from pollen.receipts import Receipt, ReceiptDomain, sign_receipt

STEPS = int(os.environ.get("POLLEN_STATEFUL_STEPS", "30"))
EXAMPLES = int(os.environ.get("POLLEN_STATEFUL_EXAMPLES", "15"))  # up to 15 x 30 = 450 steps

N_OPS = 8  # enough servers that an appeal round (after the accused and 3 first-round auditors) sits
BPS = 10_000
OK = object()  # _send: the call must succeed
FAULTY, HONEST, NO_QUORUM, LAPSED = 1, 2, 3, 4  # Outcome
AWAITING_DRAW, VOTING, APPEALABLE, RESOLVED = 1, 2, 3, 4  # Stage
DRAWN, COMMITTED, REV_HONEST, REV_FAULTY, REV_ABSTAIN = 1, 2, 3, 4, 5  # VoteState
VERDICT = st.sampled_from([1, 2, 1, 2, 3, None])  # 1 faulty, 2 honest, 3 abstain; None: silent
executed: dict = {}


def count(key, n=1):
    executed[key] = executed.get(key, 0) + n


def incident_of(r) -> bytes:
    return keccak(encode(["address", "bytes32"], [r.server, r.session_id]))


def fail(message):
    """Fail the example, printing why at once (a replay during shrinking may diverge: the
    draws depend on block hashes, which py-evm randomises)."""
    print(f"stateful check failed: {message}", file=sys.stderr)
    raise AssertionError(message)


class Views:
    """Read-only calls through web3 directly, from a fixed address (several times faster than
    through Ape's contract wrappers); structs come back as dicts keyed by their ABI names."""

    def __init__(self, w3, contract, name, caller):
        self._fns = w3.eth.contract(address=contract.address, abi=artifacts.abi(name)).functions
        self._from = {"from": caller}
        self._names = {}
        for item in artifacts.abi(name):
            outs = item.get("outputs") or []
            if item.get("type") == "function" and len(outs) == 1 and outs[0]["type"] == "tuple":
                self._names[item["name"]] = [c["name"] for c in outs[0]["components"]]

    def __getattr__(self, fn):
        def call(*args):
            out = getattr(self._fns, fn)(*args).call(self._from)
            return dict(zip(self._names[fn], out)) if fn in self._names else out
        return call


# StakeVault storage (Ownable, Ownable2Step, minStake, unbondingPeriod+court, registry, then these
# as (slot, bit offset): totalStaked|escrow and totalCredits|treasury share slots): read directly,
# the books are checked after every step. Verified against the getters.
BOOK_SLOTS = {"totalStaked": (5, 0), "escrow": (5, 128), "totalCredits": (6, 0), "treasury": (6, 128),
              "totalUnbonding": (7, 0)}


def deploy(project, owner, operators, keys):
    """The contracts (default parameters); every operator staked, all but the last registered."""
    vault = project.StakeVault.deploy(PARAMS.min_stake, PARAMS.unbonding_period, owner, sender=owner)
    versions = project.ModelVersionRegistry.deploy(sender=owner)
    registry = project.ServerRegistry.deploy(vault, versions, sender=owner)
    court = project.DisputeCourt.deploy(vault, registry, PARAMS.court_tuple(), owner, sender=owner)
    vault.wire(court, registry, sender=owner)
    versions.createModel("m", sender=owner)
    versions.publishVersion(1, CID, 8, 0, 10_000, sender=owner)
    for i, op in enumerate(operators):
        vault.stake(value=2 * ETHER, sender=op)
        if i < len(operators) - 1:
            registry.register(keys[i].address, f"grpc://h:{i}", 1, 0, 8, 10, sender=op)
    return vault, registry, court


def test_random_sequences_keep_books_and_slash_only_faulty(project, chain, owner, operators, challenger, stranger):
    ops = [*operators, *fresh_accounts(owner, N_OPS - len(operators), fund=1_000 * ETHER)]
    keys = [Account.from_key(bytes([i + 1]) * 32) for i in range(N_OPS)]
    actors = [*ops, challenger, stranger]
    by_addr = {a.address: a for a in actors}
    w3 = chain.provider.web3
    # Deployed once; every example starts from this snapshot (restoring consumes a snapshot, so
    # each example takes the next one right after restoring).
    vault, registry, court = deploy(project, owner, ops, keys)
    payers = [challenger, stranger]  # clients paying every server (the challenger also disputes)
    escrow, fees = deploy_payments(project, owner, registry, court, ops, payers)
    ev = Views(w3, escrow, "PaymentEscrow", owner.address)
    escrow_books, vault_storage = EscrowBooks(w3, escrow), HeadStorage(w3)
    vv = Views(w3, vault, "StakeVault", owner.address)
    rv = Views(w3, registry, "ServerRegistry", owner.address)
    cv = Views(w3, court, "DisputeCourt", owner.address)
    snapshot = [chain.snapshot()]

    class Machine(PaymentRules):
        OK, fail, count = OK, staticmethod(fail), staticmethod(count)  # for the payment rules

        @initialize(appeal=st.sampled_from([0, 600]), min_age=st.sampled_from([0, 120]), k=st.sampled_from([3, 3, 4]))
        def start(self, appeal, min_age, k):
            chain.restore(snapshot[0])
            snapshot[0] = chain.snapshot()
            self.p = params_with(appeal_period=appeal, auditor_min_age=min_age, auditors_per_dispute=k)
            self.vault, self.registry, self.court, self.vv, self.rv, self.cv = vault, registry, court, vv, rv, cv
            court.setParams(self.p.court_tuple(), sender=owner)
            assert court.disputeCount() == 0 and registry.ticketCount() == N_OPS - 1
            books = self.books()
            assert books == {k: getattr(self.vv, k)() for k in BOOK_SLOTS} and books["totalStaked"] > 0
            self.domain = ReceiptDomain(chain_id=chain.chain_id, court=self.court.address)
            self.pay = PayEnv(escrow, fees, ev, payers, ops, PaymentDomain(chain_id=chain.chain_id,
                              escrow=escrow.address), w3, by_addr, escrow_books)
            self.receipts = []  # openings revealed: {"r", "sig", "by", "block", "salt", "faulty", ...}
            self.d = {}  # dispute id -> model
            self.slashed = {}  # incident -> the dispute that slashed it
            self.salts = {}  # (dispute, auditor) -> (verdict, fingerprint, salt)
            self.openings = []  # committed, not yet revealed
            count("examples")
            count(f"appeal={appeal},min_age={min_age},k={k}")
            if min_age:
                self.travel(min_age + 1)  # the swarm has been up long enough to audit
            for accused, faulty in ((0, True), (1, False)):  # two disputes to start from
                r, sig = self._receipt(accused)
                self._reveal(self._commit(r, sig, N_OPS, 0, faulty))

        # -------------------------------------------------------------- plumbing

        def _send(self, call, expect=None, what=""):
            """Send; `expect` OK: must succeed, a name: must revert with that error, None: either.
            Checks the transaction's events against the model."""
            try:
                tx = call()
            except ContractLogicError as exc:
                name = type(exc).__name__
                executed.setdefault("reverts", {}).setdefault(name, 0)
                executed["reverts"][name] += 1
                if expect is OK or (isinstance(expect, str) and name != expect):
                    fail(f"{what}: expected {'success' if expect is OK else expect}, got {name}: {exc!r:.400}")
                return None
            if isinstance(expect, str):
                fail(f"{what}: expected {expect}, but it succeeded")
            self._observe(tx)
            return tx

        def now(self):
            return chain.blocks.head.timestamp

        def frozen_model(self, a):
            return sum((m["accused"] == a) + sum(x == a for x, _ in m["auditors"])
                       for m in self.d.values() if m["stage"] != RESOLVED)

        def _check_frozen(self, accounts):
            for a in set(accounts):
                got = self.vv.accountOf(a)["frozenCount"]
                if got != self.frozen_model(a):
                    fail(f"{a} frozen {got} times, model {self.frozen_model(a)}")

        def _eligible(self, m):
            excluded = {m["accused"], m["challenger"], m["appellant"], *(a for a, _ in m["auditors"])}
            out = set()
            for i in range(m["tickets"]):
                op, _, effective, since = self.rv.ticketAt(i)
                if effective and since and since <= m["opened_at"] - self.p.auditor_min_age and op not in excluded:
                    out.add(op)
            return out

        def _recount(self, did, rnd):
            panel = [a for a, r in self.d[did]["auditors"] if r == rnd]
            states = [self.cv.voteOf(did, a)["state"] for a in panel]
            f, h = states.count(REV_FAULTY), states.count(REV_HONEST)
            return FAULTY if 2 * f > len(panel) else HONEST if 2 * h > len(panel) else NO_QUORUM

        # -------------------------------------------------------------- event checks

        def _observe(self, tx):
            events = {}
            for e in tx.events:
                events.setdefault(e.event_name, []).append(e)
            if "DisputeOpened" in events:
                self._opened(events["DisputeOpened"][0])
            did = None
            for name in ("AuditorsDrawn", "RoundRuled", "Appealed", "DisputeResolved"):
                if name in events:
                    did = events[name][0].disputeId
            if "Slashed" in events and "DisputeResolved" not in events:
                fail("stake slashed outside a settlement")
            if did is None:
                return
            m = self.d[did]
            if "Appealed" in events:
                ev = events["Appealed"][0]
                price = 2 * min(m["bond"], self.cv.bondFor(m["accused"]))  # appealPrice
                if m["stage"] != APPEALABLE or ev.appealBond < price:
                    fail(f"dispute {did} appealed in stage {m['stage']} with {ev.appealBond}")
                m.update(stage=AWAITING_DRAW, round=1, appellant=ev.appellant, appeal_bond=ev.appealBond,
                         draw_block=ev.drawBlock)
                count("appeals")
            if "AuditorsDrawn" in events:
                self._drawn(did, m, events["AuditorsDrawn"][0], tx)
            elif tx.method_called.name == "drawAuditors":
                self._draw_settled(did, m, tx, "DisputeResolved" in events)
            if "RoundRuled" in events:
                ev = events["RoundRuled"][0]
                if ev.round != m["round"] or ev.ruling != self._recount(did, m["round"]):
                    fail(f"dispute {did} round {ev.round} ruled {ev.ruling}, the votes say "
                         f"{self._recount(did, m['round'])}")
                if self.cv.getDispute(did)["drawnCount"] != sum(r == m["round"] for _, r in m["auditors"]):
                    fail("drawnCount is not the round's panel")
                m["ruled"] = ev.ruling
                if m["round"] == 0 and self.p.appeal_period:
                    m.update(stage=APPEALABLE, first=ev.ruling, appeal_deadline=ev.appealDeadline)
            if "DisputeResolved" in events:
                self._settled(did, m, events)
            if "Appealed" in events or "DisputeResolved" in events:  # that round's votes are spent
                for key in [key for key in self.salts if key[0] == did]:
                    del self.salts[key]
            rec = self.cv.getDispute(did)
            if (rec["stage"], rec["round"]) != (m["stage"], m["round"]):
                fail(f"dispute {did}: chain {rec['stage'], rec['round']}, model {m['stage'], m['round']}")
            self._check_frozen([m["accused"], *(a for a, _ in m["auditors"])])

        def _opened(self, ev):
            did = ev.disputeId
            rec = self.cv.getDispute(did)
            receipt = tuple(ev.receipt)
            incident = keccak(encode(["address", "bytes32"], [receipt[0], receipt[6]]))  # (server, session)
            if rec["incident"] != incident or incident in self.slashed:
                fail(f"dispute {did} opened over incident {incident.hex()} (slashed: {incident in self.slashed})")
            self.d[did] = dict(accused=ev.accused, challenger=ev.challenger, bond=ev.bond, appeal_bond=0,
                               appellant="0x" + "00" * 20, incident=incident, stage=AWAITING_DRAW, round=0,
                               auditors=[], draw_block=ev.drawBlock, opened_at=rec["openedAt"],
                               tickets=rec["ticketCount"], receipt=ev.receiptHash, first=None)
            self._check_frozen([ev.accused])
            count("opened")

        def _drawn(self, did, m, ev, tx):
            if m["stage"] != AWAITING_DRAW or ev.round != m["round"] or tx.block_number > m["draw_block"] + 256:
                fail(f"dispute {did} drawn in stage {m['stage']} round {ev.round} at block {tx.block_number}")
            eligible = self._eligible(m)
            k = self.p.auditors_per_dispute if m["round"] == 0 else 2 * self.p.auditors_per_dispute + 1
            panel = list(ev.auditors)
            if len(set(panel)) != len(panel) or not set(panel) <= eligible:
                fail(f"panel {panel} not distinct eligible servers ({eligible})")
            if len(panel) != min(k, len(eligible)) or len(panel) < self.p.min_panel:
                fail(f"panel of {len(panel)} with {len(eligible)} eligible, k {k}")
            m["auditors"] += [(a, m["round"]) for a in panel]
            m["stage"] = VOTING
            count("panels drawn" if m["round"] == 0 else "appeal panels drawn")

        def _draw_settled(self, did, m, tx, resolved):
            """drawAuditors without a panel: a lapse, or too few candidates."""
            if not resolved:
                fail("drawAuditors neither drew nor settled")
            lapsed = tx.block_number > m["draw_block"] + 256
            if not lapsed and len(self._eligible(m)) >= self.p.min_panel:
                fail(f"no panel drawn though {len(self._eligible(m))} eligible")
            m["expect"] = (LAPSED if lapsed else NO_QUORUM) if m["round"] == 0 else m["first"]
            count("lapses" if lapsed else "too few candidates")

        def _settled(self, did, m, events):
            ev = events["DisputeResolved"][0]
            o = ev.outcome
            if "expect" in m and o != m["expect"]:
                fail(f"dispute {did} settled {o}, expected {m['expect']}")
            if "expect" not in m and o != m.get("ruled", m["first"]):
                fail(f"dispute {did} settled {o}, but ruled {m.get('ruled')} / first {m['first']}")
            # penalties: exactly the silent and the incoherent
            winning = {FAULTY: REV_FAULTY, HONEST: REV_HONEST}.get(o)
            expected = {}
            for a, _ in m["auditors"]:
                s = self.cv.voteOf(did, a)["state"]
                if s in (DRAWN, COMMITTED):
                    expected[a] = False
                elif winning and s in (REV_FAULTY, REV_HONEST, REV_ABSTAIN) and s != winning:
                    expected[a] = True
            got = {e.auditor: e.incoherent for e in events.get("AuditorPenalized", [])}
            if got != expected:
                fail(f"dispute {did} penalised {got}, expected {expected}")
            for e in events.get("AuditorPenalized", []):  # the whole penalty, unless it took all there was
                penalty = self.p.incoherence_penalty if e.incoherent else self.p.no_reveal_penalty
                if self.cv.voteOf(did, e.auditor)["state"] == REV_ABSTAIN:
                    penalty = self.p.incoherence_penalty // 2
                if e.amount != penalty and (e.amount > penalty or self.vv.slashableOf(e.auditor) != 0):
                    fail(f"{e.auditor} penalised {e.amount}, not {penalty}")
            count("silent penalised", sum(not v for v in got.values()))
            count("incoherent penalised", sum(got.values()))
            # slashes: the accused once per incident on Faulty, auditors only as penalised
            slashed_accused = 0
            for e in events.get("Slashed", []):
                taken = e.fromStake + e.fromUnbonding
                if e.operator == m["accused"]:
                    slashed_accused += taken
                elif e.operator not in got:
                    fail(f"{e.operator} slashed in dispute {did} without a penalty")
            first_slash = o == FAULTY and m["incident"] not in self.slashed
            if slashed_accused != ev.slashed or (slashed_accused and not first_slash):
                fail(f"accused slashed {slashed_accused} (outcome {o}, incident slashed "
                     f"before: {m['incident'] in self.slashed})")
            if first_slash:
                before = self.vv.slashableOf(m["accused"]) + slashed_accused
                if slashed_accused != before * self.p.slash_bps // BPS:
                    fail(f"slashed {slashed_accused} of {before}")
                self.slashed[m["incident"]] = did
                count("accused slashed")
            # the challenger's and the accused's credits
            bond = m["bond"]
            to_challenger = (bond + ev.slashed * self.p.finder_bps // BPS if o == FAULTY else
                             bond if o == NO_QUORUM else 0)
            to_accused = bond * self.p.accused_share_bps // BPS if o == HONEST else 0
            if (ev.challengerCredit, ev.accusedCredit) != (to_challenger, to_accused):
                fail(f"dispute {did} ({o}) credited challenger {ev.challengerCredit} (not {to_challenger}), "
                     f"accused {ev.accusedCredit} (not {to_accused})")
            m.update(stage=RESOLVED, outcome=o)
            count(f"outcome {o}")

        # -------------------------------------------------------------- books

        def books(self):
            head = vault_storage.refresh()
            words = {slot: head.word(self.vault.address, slot) for slot, _ in BOOK_SLOTS.values()}
            return {k: words[slot] >> shift & (2**128 - 1) for k, (slot, shift) in BOOK_SLOTS.items()}

        @invariant()
        def books_balance(self):
            if not hasattr(self, "d"):
                return
            books = self.books()
            balance = vault_storage.balance(self.vault.address)
            if balance != sum(books.values()):
                fail(f"vault invariant broken: balance {balance} != accounted {books}")
            open_bonds = sum(m["bond"] + m["appeal_bond"] for m in self.d.values() if m["stage"] != RESOLVED)
            if books["escrow"] != open_bonds:
                fail(f"escrow {books['escrow']} != open bonds {open_bonds}")
            self.check_payment_books()
            count("steps")

        def teardown(self):
            if hasattr(self, "d"):
                self._check_frozen([a.address for a in actors])
                escrow_books.check_layout([c.address for c in payers], [s.address for s in ops])

        # -------------------------------------------------------------- stake and membership

        @rule(action=st.sampled_from(["stake", "unstake", "withdraw", "join", "leave"]),
              who=st.integers(0, N_OPS - 1), share=st.sampled_from([0.0, 0.1, 0.5, 1.0]))
        def membership(self, action, who, share):
            """Stake, unstake (refused while frozen), withdraw, (re-)register, leave."""
            a = ops[who]
            if action == "stake":
                self._send(lambda: self.vault.stake(value=int(share * 2 * ETHER) + 1, sender=a), OK, "stake")
            elif action == "unstake":
                amount = int(self.vv.stakeOf(a.address) * share)
                expect = ("StakeVault_ZeroAmount" if amount == 0 else
                          "StakeVault_Frozen" if self.frozen_model(a.address) else OK)
                self._send(lambda: self.vault.requestUnstake(amount, sender=a), expect, "unstake")
                count("frozen unstake refused" if expect == "StakeVault_Frozen" else "unstake")
            elif action == "withdraw":
                self._send(lambda: self.vault.withdraw(sender=a))
            elif action == "join":  # after leaving, after deactivation, or for the first time
                if self._send(lambda: self.registry.register(keys[who].address, f"grpc://h:{who}", 1, 0, 8, 10,
                                                             sender=a)) is not None:
                    count("joined")
            elif self._send(lambda: self.registry.leave(sender=a)) is not None:
                count("left")

        # -------------------------------------------------------------- receipts and openings

        def _receipt(self, accused, kind=0, session=None, step=0, issued_at=None, term=None):
            a = ops[accused].address
            if term is None:
                term = max(self.rv.getServer(a)["termCount"] - 1, 0)
            r = Receipt(server=a, version_id=1, first_block=0, last_block=8, term=term, kind=kind,
                        session_id=session or os.urandom(32), step=step, input_hash=os.urandom(32),
                        output_hash=os.urandom(32), blocks_root=os.urandom(32),
                        issued_at=self.now() if issued_at is None else issued_at)
            return r, sign_receipt(r, self.domain, keys[accused].key)

        def _commit(self, r, sig, by, block, faulty):
            who = actors[by]
            salt = os.urandom(32)
            c = self.cv.openingCommitment(who.address, r.struct_hash(), EVIDENCE, block, salt)
            self._send(lambda: self.court.commitOpening(c, sender=who), OK, "commitOpening")
            head = chain.blocks.head
            return dict(r=r, sig=sig, by=by, block=block, salt=salt, faulty=faulty, at_block=head.number,
                        at=head.timestamp)

        def _reveal(self, o, by=None):
            """Reveal opening `o` (as `by`, default its committer) expecting exactly what the
            contract must do."""
            r, by = o["r"], o["by"] if by is None else by
            who = actors[by]
            incident = incident_of(r)
            expired = (chain.blocks.head.number + 1 > o["at_block"] + self.p.open_reveal_blocks
                       or chain.pending_timestamp > o["at"] + self.p.open_reveal_blocks * 30)
            expect = ("DisputeCourt_SelfDispute" if who.address == r.server else
                      "DisputeCourt_NoOpeningCommitment" if by != o["by"] else
                      "DisputeCourt_OpeningExpired" if expired else
                      "DisputeCourt_WindowClosed" if o["at"] > r.issued_at + self.p.dispute_window else
                      "DisputeCourt_IncidentSlashed" if incident in self.slashed else OK)
            bond = self.cv.bondFor(r.server)
            tx = self._send(lambda: self.court.openDispute(r.as_tuple(), o["sig"], EVIDENCE, o["block"], o["salt"],
                                                           value=bond, sender=who), expect, "openDispute")
            count(f"opening {'ok' if expect is OK else expect}")
            if tx is not None:
                self.receipts.append(o)
                did = [e.disputeId for e in tx.events if e.event_name == "DisputeOpened"][0]
                self.d[did]["faulty"] = o["faulty"]
            return tx

        @rule(accused=st.integers(0, N_OPS - 1), by=st.integers(0, N_OPS + 1), kind=st.integers(0, 2),
              block=st.integers(0, 7), faulty=st.booleans())
        def dispute(self, accused, by, kind, block, faulty):
            """An active server serves a step (faulty or not) and someone disputes the receipt;
            for a server that is not active, a receipt dated now is refused."""
            if not self.rv.isActive(ops[accused].address):
                r, sig = self._receipt(accused, issued_at=self.now() + 1)
                if actors[by].address != r.server:
                    o = self._commit(r, sig, by, 0, True)
                    self._send(lambda: self.court.openDispute(r.as_tuple(), sig, EVIDENCE, 0, o["salt"],
                                                              value=self.cv.bondFor(r.server), sender=actors[by]),
                               "DisputeCourt_SignerNotRegistered", "receipt of an inactive server")
                    count("inactive server's receipt refused")
                return
            r, sig = self._receipt(accused, kind)
            self._reveal(self._commit(r, sig, by, block, faulty))

        @precondition(lambda self: self.receipts or self.openings)
        @rule(action=st.sampled_from(["again", "same_session", "commit_only", "reveal", "copy"]),
              pick=st.integers(0, 50), by=st.integers(0, N_OPS + 1), slashed=st.booleans())
        def dispute_again(self, action, pick, by, slashed):
            """The same receipt disputed again (by anyone, the accused included), another step of
            its session, an opening committed now and revealed later (or too late), and a
            pending opening's reveal copied by someone else."""
            if action in ("reveal", "copy"):
                if self.openings:
                    i = pick % len(self.openings)
                    if action == "reveal":
                        self._reveal(self.openings.pop(i))
                    elif by != self.openings[i]["by"]:
                        self._reveal(self.openings[i], by=by)
                return
            pool = [o for o in self.receipts if slashed and incident_of(o["r"]) in self.slashed] or self.receipts
            if not pool:
                return
            o = pool[pick % len(pool)]
            r, sig = o["r"], o["sig"]
            if action == "same_session":
                if not self.rv.isActive(r.server):
                    return
                accused = next(i for i, op in enumerate(ops) if op.address == r.server)
                r, sig = self._receipt(accused, r.kind, session=r.session_id, step=r.step + 1)
            opening = self._commit(r, sig, by, o["block"], o["faulty"])
            if action == "commit_only":
                self.openings.append(opening)
            else:
                self._reveal(opening)

        # -------------------------------------------------------------- draw, vote, resolve, appeal

        def _pick(self, pick, *stages):
            ids = [i for i, m in self.d.items() if m["stage"] in stages]
            return ids[pick % len(ids)] if ids else None

        def _has(self, *stages):
            return any(m["stage"] in stages for m in self.d.values())

        def _draw_now(self, did):
            m = self.d[did]
            if chain.blocks.head.number + 1 <= m["draw_block"]:
                self._send(lambda: self.court.drawAuditors(did, sender=stranger), "DisputeCourt_DrawTooEarly")
                chain.mine(m["draw_block"] + 1 - chain.blocks.head.number)
            self._send(lambda: self.court.drawAuditors(did, sender=challenger), self._draw_expect(did), "draw")

        def _draw_expect(self, did):
            """A draw always goes through, except that an appeal round which cannot sit settles
            on a Faulty first ruling, which waits for an older dispute over the incident."""
            m = self.d[did]
            return OK if m["round"] == 0 or m["first"] != FAULTY else None

        @precondition(lambda self: self._has(AWAITING_DRAW))
        @rule(pick=st.integers(0, 50), late=st.sampled_from([None, None, 0, 1]))
        def draw(self, pick, late):
            """Draw (refused before drawBlock), or let 256 blocks pass after drawBlock first."""
            did = self._pick(pick, AWAITING_DRAW)
            if late is None:
                self._draw_now(did)
                return
            chain.mine(max(self.d[did]["draw_block"] + 256 + late - chain.blocks.head.number, 0))
            self._send(lambda: self.court.drawAuditors(did, sender=stranger), self._draw_expect(did), "late draw")

        @precondition(lambda self: self._has(AWAITING_DRAW))
        @rule(pick=st.integers(0, 50), who=st.integers(0, N_OPS - 1), rejoin=st.booleans())
        def churn_then_draw(self, pick, who, rejoin):
            """Once drawBlock is mined (the seed is known), a server leaves, or leaves and joins
            again, or joins for the first time; then the draw: nobody whose Active period began
            after the opening (less auditorMinAge) and no ticket issued after it is drawn."""
            did = self._pick(pick, AWAITING_DRAW)
            m, a = self.d[did], ops[who]
            if chain.blocks.head.number <= m["draw_block"]:
                chain.mine(m["draw_block"] + 1 - chain.blocks.head.number)
            if self.rv.isActive(a.address):
                self._send(lambda: self.registry.leave(sender=a), OK, "leave")
                count("left before a draw")
            if rejoin or self.rv.getServer(a.address)["ticket"] == 0:
                if self._send(lambda: self.registry.register(keys[who].address, f"grpc://h:{who}", 1, 0, 8, 10,
                                                             sender=a)) is not None:
                    count("joined before a draw")
            self._send(lambda: self.court.drawAuditors(did, sender=challenger), self._draw_expect(did), "draw")

        def _panel(self, did):
            m = self.d[did]
            return [a for a, r in m["auditors"] if r == m["round"]]

        def _commit_vote(self, did, a, verdict):
            salt, fp = os.urandom(32), fingerprint(a, verdict)
            c = self.cv.commitmentOf(did, a, verdict, fp, salt)
            if self._send(lambda: self.court.commitVote(did, c, sender=by_addr[a])) is not None:
                self.salts[(did, a)] = (verdict, fp, salt)

        def _reveal_votes(self, did):
            for (d, a), (verdict, fp, salt) in list(self.salts.items()):
                if d == did:
                    self._send(lambda: self.court.revealVote(did, verdict, fp, salt, sender=by_addr[a]))

        @precondition(lambda self: self._has(VOTING))
        @rule(action=st.sampled_from(["commit", "commit_all", "reveal", "reveal_all"]), pick=st.integers(0, 50),
              verdicts=st.lists(VERDICT, min_size=7, max_size=7))
        def vote(self, action, pick, verdicts):
            """One auditor commits or reveals, or every auditor of a round commits (None:
            silent) or reveals."""
            did = self._pick(pick, VOTING)
            panel = self._panel(did)
            if action == "commit":
                if verdicts[0] is not None:
                    self._commit_vote(did, panel[pick % len(panel)], verdicts[0])
            elif action == "commit_all":
                for a, verdict in zip(panel, verdicts):
                    if verdict is not None:
                        self._commit_vote(did, a, verdict)
            elif action == "reveal_all":
                self._reveal_votes(did)
            elif self.salts:
                (d, a), (verdict, fp, salt) = list(self.salts.items())[pick % len(self.salts)]
                self._send(lambda: self.court.revealVote(d, verdict, fp, salt, sender=by_addr[a]))

        @precondition(lambda self: self._has(VOTING, APPEALABLE))
        @rule(pick=st.integers(0, 50), late=st.booleans())
        def resolve(self, pick, late):
            """Resolve whenever (maybe too early), or once the round's reveal deadline or the
            appeal deadline passed (then it must go through)."""
            did = self._pick(pick, VOTING, APPEALABLE)
            if not late:
                self._send(lambda: self.court.resolve(did, sender=challenger))
                return
            rec = self.cv.getDispute(did)
            deadline = rec["revealDeadline"] if rec["stage"] == VOTING else rec["appealDeadline"]
            if self.now() <= deadline:
                self.travel(deadline + 1 - self.now())
            self._send(lambda: self.court.resolve(did, sender=challenger), self._resolve_expect(did), "late resolve")

        @precondition(lambda self: self._has(APPEALABLE))
        @rule(pick=st.integers(0, 50), by=st.integers(0, N_OPS + 1), extra=st.sampled_from([0, 1]))
        def appeal(self, pick, by, extra):
            did = self._pick(pick, APPEALABLE)
            m = self.d[did]
            now = self.now()
            expect = (OK if now + 5 < m["appeal_deadline"] else
                      "DisputeCourt_AppealClosed" if now > m["appeal_deadline"] else None)
            self._send(lambda: self.court.appeal(did, value=2 * m["bond"] + extra, sender=actors[by]), expect,
                       "appeal")

        @precondition(lambda self: self._has(AWAITING_DRAW, VOTING))
        @rule(pick=st.integers(0, 50), verdicts=st.lists(VERDICT, min_size=7, max_size=7), wait=st.booleans(),
              then_appeal=st.booleans())
        def full_audit(self, pick, verdicts, wait, then_appeal):
            """Draw (if needed), commit random verdicts, reveal and resolve one round at once; a
            first ruling that opens an appeal window may be appealed at once (the `appeal` rule
            alone rarely comes before time travel closes the window)."""
            did = self._pick(pick, AWAITING_DRAW, VOTING)
            if self.d[did]["stage"] == AWAITING_DRAW:
                self._draw_now(did)
            if self.d[did]["stage"] != VOTING:
                return
            for a, verdict in zip(self._panel(did), verdicts):
                if verdict is not None:
                    self._commit_vote(did, a, verdict)
            if wait:  # let the commit phase end so that partial reveals are allowed
                self.travel(self.p.commit_period + 1)
            self._reveal_votes(did)
            self.travel(self.p.commit_period + self.p.reveal_period + 2)
            self._send(lambda: self.court.resolve(did, sender=challenger), self._resolve_expect(did), "resolve")
            m = self.d[did]
            if then_appeal and m["stage"] == APPEALABLE:
                self._send(lambda: self.court.appeal(did, value=self.cv.appealPrice(did), sender=challenger), OK,
                           "appeal at once")

        def _resolve_expect(self, did):
            """Once the round's votes are in (or its reveal deadline passed) resolve goes through,
            except that a faulty settlement waits while the incident's lead dispute is unsettled."""
            m = self.d[did]
            if m["stage"] == APPEALABLE:
                ruling = m["first"]
            elif m["round"] == 0 and self.p.appeal_period:
                return OK  # a first ruling, appealable
            else:
                ruling = self._recount(did, m["round"])
            if ruling != FAULTY:
                return OK
            older = [x for x, o in self.d.items() if o["incident"] == m["incident"] and x < did
                     and o["stage"] != RESOLVED]
            if older and self.cv.incidentLead(m["incident"]) != min(older):
                fail(f"incident lead {self.cv.incidentLead(m['incident'])}, expected {min(older)}")
            return "DisputeCourt_OlderDisputePending" if older else OK

        @precondition(lambda self: self._has(AWAITING_DRAW))
        @rule(pick=st.integers(0, 50))
        def honest_audit(self, pick):
            """A round heard by a panel that votes the truth must rule the truth."""
            did = self._pick(pick, AWAITING_DRAW)
            self._draw_now(did)
            if self.d[did]["stage"] != VOTING:
                return
            truth = 1 if self.d[did]["faulty"] else 2
            for a in self._panel(did):
                self._commit_vote(did, a, truth)
            self._reveal_votes(did)
            tx = self._send(lambda: self.court.resolve(did, sender=challenger), self._resolve_expect(did), "resolve")
            if tx is not None:
                ruled = [e.ruling for e in tx.events if e.event_name == "RoundRuled"]
                if ruled != [truth]:
                    fail(f"an honest panel ruled {ruled} on a {'faulty' if truth == 1 else 'honest'} step")
                count("honest audits ruled")

        @rule(seconds=st.sampled_from([30, PARAMS.commit_period + 1, 601, PARAMS.unbonding_period + 1]))
        def travel(self, seconds):
            chain.pending_timestamp += seconds
            chain.mine()

    def run(examples: int) -> None:
        run_state_machine_as_test(Machine, settings=settings(
            max_examples=examples, stateful_step_count=STEPS, deadline=None,
            # no shrinking: replays diverge (random block hashes steer the draws), and the failing
            # check is printed as it happens
            phases=[Phase.explicit, Phase.reuse, Phase.generate],
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        ))

    coverage = ("opened", "panels drawn", "accused slashed", "silent penalised", "honest audits ruled", "appeals",
                "lapses", f"outcome {NO_QUORUM}", f"outcome {HONEST}", "redeemed", "auditors paid",
                "redeem refused (PaymentEscrow_NotActiveServer)", "earnings withdrawn")
    run(EXAMPLES)
    if EXAMPLES * STEPS >= 300:  # a full run must have exercised the main paths
        if any(not executed.get(key) for key in coverage):  # the draws are random: one more batch first
            run(max(3, EXAMPLES // 3))
        print("stateful:", executed)
        for key in coverage:
            if not executed.get(key):
                fail(f"no {key!r} in {EXAMPLES} + {max(3, EXAMPLES // 3)} examples: {executed}")
    else:
        print("stateful:", executed)
