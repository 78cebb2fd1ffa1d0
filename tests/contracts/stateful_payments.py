"""Payment rules for the court's stateful machine (test_stateful.py): the same random run that
stakes, disputes, draws, votes, slashes and appeals also pays servers with vouchers, redeems
them in batches, pays auditors from the audit pool, reclaims lanes and withdraws earnings.

Checked on every step, against a model kept from the calls:
  * the escrow's books: balance == deposits + earned + audit pool, deposits == unallocated
    balances + lanes, earned == the sum of every account's earnings;
  * every account's earnings are exactly what the model credited (redemptions net of the fee,
    audit credits) minus what it withdrew: disputes and slashes never touch escrow earnings,
    and nobody else's action moves them;
  * no (client, server) pair is ever paid more than the client signed;
  * only an Active server is paid (a server slashed under the minimum, or one that left, is
    refused) and a redemption pays exactly min(cumulative - redeemed, lane) per voucher;
  * an auditor is paid for a resolved dispute exactly when its revealed verdict is the final
    Faulty / Honest ruling (whatever the verdict), once per dispute, min(fee, pool / n) each;
  * a lane cannot be reclaimed before its delay, so a voucher held for it stays payable."""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, rule

from pollen.payments import PaymentDomain, Voucher, redeem_args, sign_voucher

ETHER = 10**18
FEE_BPS = 100  # 1 % protocol fee
RECLAIM_DELAY = 3600
AUDIT_FEE = 10**16  # per coherent auditor per dispute
POOL_SEED = 5 * 10**16  # small, so that a short pool's equal shares are exercised too
LANE = ETHER  # each client's lane for each server at the start
FAULTY, HONEST = 1, 2
REV_HONEST, REV_FAULTY = 3, 4
RESOLVED = 4


def deploy_payments(project, owner, registry, court, operators, clients):
    """PaymentEscrow + AuditFeePayer (the escrow's audit payer, its pool seeded); every client
    funds a lane for every operator."""
    escrow = project.PaymentEscrow.deploy(registry, FEE_BPS, RECLAIM_DELAY, owner, sender=owner)
    fees = project.AuditFeePayer.deploy(court, escrow, AUDIT_FEE, owner, sender=owner)
    escrow.setAuditPayer(fees, sender=owner)
    escrow.fundAuditPool(value=POOL_SEED, sender=owner)
    for c in clients:
        escrow.allocate(operators, [LANE] * len(operators), value=LANE * len(operators), sender=c)
    return escrow, fees


@dataclass
class PayEnv:
    """What the payment rules need from the machine's world (set once per example)."""
    escrow: object
    fees: object
    views: object  # Views over the escrow
    clients: list
    servers: list
    domain: PaymentDomain
    w3: object
    accounts: dict  # address -> Ape account (to send as an earner)
    books: object  # EscrowBooks over the escrow (the per-step checks read storage)
    signed: dict = field(default_factory=dict)  # (client, server) -> highest cumulative signed
    paid: dict = field(default_factory=dict)  # (client, server) -> redeemed (from events)
    earned: dict = field(default_factory=dict)  # account -> earnings the model expects
    audited: set = field(default_factory=set)  # disputes whose auditors were paid


class PaymentRules(RuleBasedStateMachine):
    """Mixed into the court machine: expects self.pay (PayEnv), self.d (the dispute model),
    self.rv / self.cv (registry / court views), self._send(call, expect, what), self.fail,
    self.count and self.travel."""

    OK = None  # set by the machine: its "must succeed" marker

    def _earn(self, who: str, amount: int) -> None:
        self.pay.earned[who] = self.pay.earned.get(who, 0) + amount

    @rule(action=st.sampled_from(["redeem", "redeem", "redeem", "audit", "audit", "withdraw", "reclaim"]),
          server=st.integers(0, 7), payers=st.lists(st.integers(0, 1), min_size=1, max_size=2, unique=True),
          more=st.integers(0, ETHER // 2), flag=st.booleans(), inactive=st.booleans(), pick=st.integers(0, 50),
          amount=st.integers(1, 2 * ETHER))
    def payments(self, action, server, payers, more, flag, inactive, pick, amount):
        """One rule for the payment actions, so that they take one slot among the court's rules
        (hypothesis picks rules uniformly: four more would starve appeals and lapses)."""
        if action == "redeem":
            self.pay_and_redeem(server, payers, more, flag, inactive)
        elif action == "audit" and any(m["stage"] == RESOLVED for m in self.d.values()):
            self.pay_audit(pick, flag)
        elif action == "withdraw" and any(self.pay.earned.values()):
            self.withdraw_earnings(pick)
        elif action == "reclaim":
            self.reclaim(payers[0], server, amount, flag)

    def pay_and_redeem(self, server, payers, more, stale, inactive):
        """Clients sign newer cumulative vouchers for a server, which redeems them in one batch
        (a stale one first, which pays nothing new); `inactive`: a server that is not Active
        (slashed under the minimum, left, never joined) tries, if there is one."""
        p = self.pay
        idle = [a for a in p.servers if not self.rv.isActive(a.address)]
        s = idle[server % len(idle)] if inactive and idle else p.servers[server % len(p.servers)]
        batch, gross = [], 0
        for n, c in enumerate(p.clients[i] for i in payers):
            key = (c.address, s.address)
            p.signed[key] = p.signed.get(key, 0) + more
            cumulative = p.signed[key] // 2 if stale and n == 0 else p.signed[key]
            lane = p.views.laneOf(c.address, s.address)
            gross += min(max(cumulative - lane["redeemed"], 0), lane["amount"])
            batch.append(sign_voucher(Voucher(c.address, s.address, cumulative, b"\x00" * 32), p.domain,
                                      c.private_key))
        active = self.rv.isActive(s.address)
        expect = (self.OK if active and gross else "PaymentEscrow_NotActiveServer" if not active
                  else "PaymentEscrow_NothingToRedeem")
        pool = p.views.auditPool()
        tx = self._send(lambda: p.escrow.redeem(*redeem_args(batch), FEE_BPS, sender=s), expect, "redeem")
        self.count("redeemed" if tx is not None else f"redeem refused ({expect})")
        if tx is None:
            return
        fee = gross * FEE_BPS // 10_000
        self._earn(s.address, gross - fee)
        for e in tx.events:
            if e.event_name == "VoucherRedeemed":
                p.paid[(e.client, e.server)] = p.paid.get((e.client, e.server), 0) + e.paid
        if p.views.auditPool() != pool + fee:
            self.fail(f"audit pool {p.views.auditPool()}, expected {pool} + fee {fee}")

    def pay_audit(self, pick, twice):
        """Anyone pays a resolved dispute's auditors: exactly the coherent ones, once."""
        p = self.pay
        resolved = [i for i, m in self.d.items() if m["stage"] == RESOLVED]
        unpaid = [i for i in resolved if i not in p.audited]
        # mostly a dispute not paid for yet, a ruled one first (most end without quorum or lapse,
        # and paying those pays nobody: the run would rarely see coherent auditors paid)
        ruled = [i for i in unpaid if self.cv.getDispute(i)["outcome"] in (FAULTY, HONEST)]
        pool = resolved if twice or not unpaid else ruled or unpaid
        did = pool[pick % len(pool)]
        if did in p.audited:
            self._send(lambda: p.fees.payAudit(did, sender=p.clients[0]), "AuditFeePayer_AlreadyPaid", "pay twice")
            return
        want = {FAULTY: REV_FAULTY, HONEST: REV_HONEST}.get(self.cv.getDispute(did)["outcome"])
        coherent = [a for a in self.cv.auditorsOf(did) if want and self.cv.voteOf(did, a)["state"] == want]
        each = min(AUDIT_FEE, p.views.auditPool() // len(coherent)) if coherent else 0
        self._send(lambda: p.fees.payAudit(did, sender=p.clients[1]), self.OK, "payAudit")
        p.audited.add(did)
        for a in coherent:
            self._earn(a, each)
        self.count("auditors paid" if each else "audit paid nobody")
        if twice:
            self._send(lambda: p.fees.payAudit(did, sender=p.clients[0]), "AuditFeePayer_AlreadyPaid", "pay twice")

    def withdraw_earnings(self, pick):
        """An earner (server or auditor) withdraws everything it earned."""
        p = self.pay
        earners = sorted(a for a, v in p.earned.items() if v)
        who = earners[pick % len(earners)]
        before = p.w3.eth.get_balance(p.escrow.address)
        self._send(lambda: p.escrow.withdraw(sender=p.accounts[who]), self.OK, "withdraw earnings")
        got = before - p.w3.eth.get_balance(p.escrow.address)
        if got != p.earned[who]:
            self.fail(f"{who} withdrew {got}, earned {p.earned[who]}")
        p.earned[who] = 0
        self.count("earnings withdrawn")

    def reclaim(self, client, server, amount, wait):
        """A client announces a reclaim; before the delay it is refused (the server's vouchers
        stay payable meanwhile), after it the lane gives back at most what it holds."""
        p = self.pay
        c, s = p.clients[client], p.servers[server % len(p.servers)]
        self._send(lambda: p.escrow.announceReclaim(s, amount, sender=c), self.OK, "announceReclaim")
        if not wait:
            self._send(lambda: p.escrow.reclaim(s, sender=c), "PaymentEscrow_ReclaimLocked", "early reclaim")
            self.count("early reclaim refused")
            return
        self.travel(RECLAIM_DELAY + 1)
        held = p.views.laneOf(c.address, s.address)["amount"]
        tx = self._send(lambda: p.escrow.reclaim(s, sender=c), self.OK, "reclaim")
        taken = [e.amount for e in tx.events if e.event_name == "Reclaimed"]
        if taken != [min(amount, held)]:
            self.fail(f"reclaimed {taken} of a lane holding {held}, announced {amount}")
        self.count("reclaimed")

    def check_payment_books(self):
        """The escrow's books, each account's earnings and the signed bound (after every step;
        read from storage, see EscrowBooks)."""
        p, b = self.pay, self.pay.books.refresh()
        deposits, earned, pool = b.total_deposits(), b.total_earned(), b.audit_pool()
        balance = b.balance()
        if balance != deposits + earned + pool:
            self.fail(f"escrow invariant broken: balance {balance} != {deposits} + {earned} + {pool}")
        held = sum(b.balance_of(c.address) for c in p.clients + p.servers)
        held += sum(b.lane(c.address, s.address)[0] for c in p.clients for s in p.servers)
        if held != deposits:
            self.fail(f"deposits {deposits} != balances and lanes {held}")
        accounts = {a.address for a in p.clients + p.servers} | set(p.earned)
        for a in accounts:
            if b.earned(a) != p.earned.get(a, 0):
                self.fail(f"{a} has earned {b.earned(a)}, the model says {p.earned.get(a, 0)}")
        if sum(b.earned(a) for a in accounts) != earned:
            self.fail("totalEarned is not the sum of the accounts' earnings")
        for (c, s), paid in p.paid.items():
            if not paid == b.lane(c, s)[1] <= p.signed.get((c, s), 0):
                self.fail(f"{s} was paid {paid} by {c} (chain {b.lane(c, s)[1]}), signed {p.signed.get((c, s))}")
