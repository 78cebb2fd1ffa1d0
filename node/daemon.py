"""`pollen node`: the operator daemon.

Start-up: connect with the operator key, stake up to the configured amount (saying how much),
pick a span (block selection over the chain's membership + live Info probes), fetch only that
span's shards by CID, serve them (in-process gRPC block server signing receipts with the hot
key), register (or update the endpoint after a restart). Then watch the chain (node.watcher):

    ServerDeactivated(me)  -> stop serving; re-stake + re-register if `restake`, else leave, exit
    Slashed(me)            -> report it (deactivation follows from the registry)
    DisputeOpened(me)      -> report that we are accused
    AuditorsDrawn(me in)   -> queue an audit; each tick node.audits.AuditDuty fetches evidence, recomputes, commits, reveals
    DisputeResolved        -> record the outcome of our audits
    VersionDeprecated      -> announce it (moving to the successor is left to the operator)
    SIGTERM / SIGINT       -> leave the registry and request unstake (configurable), exit cleanly

Progress goes to stdout as JSON lines ({"event": ...}) for supervisors (the demo, tests);
human-readable logs go to stderr. Private keys are never printed.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time

from node.audits import AuditDuty
from node.daemon_config import DaemonConfig, parse_blocks
from node.runtime import ComputeLoop, direct
from node.state import DONE, StateStore, emit
from node.watcher import Watcher
from pollen.chain import Chain, ChainError, Deployment
from pollen.disputes import RULINGS, outcome_name
from pollen.receipts import Receipt

log = logging.getLogger("pollen.node.daemon")
WEI = 10**18


class CountingSigner:
    """Wraps the server's ReceiptSigner to count receipts and sessions for `pollen node status`."""

    def __init__(self, inner):
        self.inner, self.address, self.domain = inner, inner.address, inner.domain
        self.receipts, self.sessions = 0, set()

    def sign(self, receipt: Receipt) -> bytes:
        self.receipts += 1
        if len(self.sessions) < 1_000_000:
            self.sessions.add(receipt.session_id)
        return self.inner.sign(receipt)


class Daemon:
    def __init__(self, cfg: DaemonConfig):
        from pollen.store import open_store

        self.cfg = cfg
        self.chain = Chain.connect(Deployment.load(cfg.deployment), private_key=cfg.operator_key(),
                                   rpc=cfg.rpc or None)
        self.me = self.chain.address
        self.store = open_store(cfg.store)
        self.states = StateStore(cfg.state_dir or os.path.join(".cache", "node", self.me))
        self.state = self.states.load()
        self.state.operator = self.me
        self.version = self.chain.version(cfg.version_id)
        self.tolerance = self.version["tolerance_micros"] / 1e6
        self.stop = threading.Event()
        self.server = self.servicer = self.signer = None
        self.span: tuple[int, int] | None = None
        self.exit_reason = ""
        self._next_rebalance = 0.0
        self.compute = direct  # the compute loop's submit once serving (see run())
        from node.earnings import Earnings

        self.earnings = Earnings.from_deployment(self.chain, self.me, cfg, self.states.folder)
        self.audits = AuditDuty(self.chain, self.store, cfg, self.tolerance, self.own_span, self.save)

    # ---- start-up ---------------------------------------------------------------------------
    def ensure_stake(self) -> None:
        target = int(self.cfg.stake * WEI) or self.chain.min_stake()
        have = self.chain.stake_of(self.me)
        if have < target:
            emit("staking", operator=self.me, amount_wei=target - have, have_wei=have)
            log.info("staking %.4f (have %.4f, want %.4f)", (target - have) / WEI, have / WEI, target / WEI)
            self.chain.stake(target - have)

    def pick_span(self) -> tuple[int, int]:
        if self.cfg.blocks != "auto":
            return parse_blocks(self.cfg.blocks)
        from node.discovery import pick_span
        from pollen.chain_membership import ChainMembership

        n = int(self.version["num_blocks"])
        members = ChainMembership(self.chain, self.cfg.version_id, deny=[self.me])
        return pick_span(members, n, self.cfg.span_length or n)

    def serve(self, first: int, last: int) -> None:
        from node.config import ServerConfig
        from node.server import build_server
        from pollen.shards import fetch_version_span

        files = fetch_version_span(self.store, self.chain, self.cfg.version_id, first, last, self.cfg.cache_dir)
        config = ServerConfig(model_path=str(files.folder), start=first, end=last, host=self.cfg.host,
                              port=self.cfg.port, dtype=self.cfg.dtype, device=self.cfg.device,
                              torch_threads=self.cfg.torch_threads,
                              max_length=self.cfg.max_length, cache_memory_mb=self.cfg.cache_mb,
                              session_timeout_s=self.cfg.session_timeout_s,
                              max_batch_sessions=self.cfg.max_batch_sessions,
                              max_batch_wait_ms=self.cfg.max_batch_wait_ms,
                              chain_id=self.chain.deployment.chain_id, court=self.chain.court.address,
                              signer_key=self.cfg.signer_key(), operator=self.me,
                              version_id=self.cfg.version_id, fault=self.cfg.fault,
                              fault_rate=self.cfg.fault_rate, fault_scale=self.cfg.fault_scale,
                              adapters=tuple(c.strip() for c in self.cfg.adapters.split(",") if c.strip()),
                              adapter_store=self.cfg.store, base_manifest=files.manifest_cid)
        self.server, self.servicer, port = self.compute(lambda: build_server(config))
        self.servicer.compute = self.compute
        self.signer = self.servicer.signer = CountingSigner(self.servicer.signer)
        if self.cfg.advertise_throughput:
            self.servicer.throughput = self.cfg.advertise_throughput
        self.span, self.port = (first, last), port
        self.endpoint = f"grpc://{self.cfg.public_host or self.cfg.host}:{port}"

    def register(self) -> None:
        first, last = self.span
        tp = max(1, int(self.servicer.throughput))
        info = self.chain.server(self.me)
        args = (self.signer.address, self.endpoint, self.cfg.version_id, first, last, tp)
        if info["status"] == "active":
            same = (info["endpoint"], info["signer"], info["first_block"], info["last_block"]) == \
                (self.endpoint, self.signer.address, first, last) and info["version_id"] == self.cfg.version_id
            if not same:
                self.chain.update_server(*args)
        else:
            self.chain.register(*args)
        self.servicer.term = self.chain.current_term(self.me)
        if self.earnings is not None:  # the escrow only takes prices from active servers
            self.earnings.declare(last - first, self.servicer.cfg.max_tokens_per_request)
            self.servicer.billing = self.earnings.billing
        emit("registered", operator=self.me, endpoint=self.endpoint, blocks=[first, last],
             signer=self.signer.address, throughput=tp)

    def start(self) -> None:
        self.ensure_stake()
        first, last = self.pick_span()
        if self.state.last_block < 0:
            self.state.last_block = self.chain.w3.eth.block_number
        self.serve(first, last)
        self.register()
        self.save()
        emit("ready", operator=self.me, port=self.port, blocks=[first, last], version_id=self.cfg.version_id,
             fault_rate=self.cfg.fault_rate)

    # ---- handlers: thin, one per event ----------------------------------------------------------
    def handlers(self) -> dict:
        return {("ServerRegistry", "ServerDeactivated"): self.on_deactivated,
                ("ServerRegistry", "ServerLeft"): self.on_left,
                ("StakeVault", "Slashed"): self.on_slashed,
                ("DisputeCourt", "DisputeOpened"): self.on_dispute_opened,
                ("DisputeCourt", "AuditorsDrawn"): self.on_auditors_drawn,
                ("DisputeCourt", "DisputeResolved"): self.on_resolved,
                ("ModelVersionRegistry", "VersionDeprecated"): self.on_deprecated}

    def on_deactivated(self, e) -> None:
        if e["args"]["operator"] == self.me and self.chain.server(self.me)["status"] == "inactive":
            emit("deactivated", operator=self.me, stake_wei=e["args"]["stake"])
            self.drop_out("deactivated (stake under the minimum)")

    def on_left(self, e) -> None:
        if e["args"]["operator"] == self.me and not self.stop.is_set():
            self.drop_out("left the registry")

    def on_slashed(self, e) -> None:
        if e["args"]["operator"] == self.me:
            taken = e["args"]["fromStake"] + e["args"]["fromUnbonding"]
            self.state.stats["slashed_wei"] = self.state.stats.get("slashed_wei", 0) + taken
            emit("slashed", operator=self.me, amount_wei=taken)

    def on_dispute_opened(self, e) -> None:
        if e["args"]["accused"] == self.me:
            emit("accused", dispute_id=e["args"]["disputeId"], challenger=e["args"]["challenger"])
        if e["args"]["disputeId"] not in self.state.draws:  # the pool is global: we help draw any
            self.state.draws.append(e["args"]["disputeId"])  # (the accused too: a draw unfreezes it sooner)

    def on_auditors_drawn(self, e) -> None:
        if self.me in e["args"]["auditors"]:
            audit = self.state.audit(e["args"]["disputeId"])
            self.save()
            emit("drawn", operator=self.me, dispute_id=audit.dispute_id)

    def on_resolved(self, e) -> None:
        key = str(e["args"]["disputeId"])
        if key in self.state.audits:
            outcome = outcome_name(e["args"]["outcome"])
            self.state.audits[key].outcome = outcome
            self.state.audits[key].stage = DONE
            self.save()
            if self.earnings is not None and outcome in RULINGS:
                self.earnings.pay_audit(int(key))

    def on_deprecated(self, e) -> None:
        if e["args"]["versionId"] == self.cfg.version_id:
            emit("version_deprecated", version_id=self.cfg.version_id, superseded_by=e["args"]["supersededBy"])
            successor = int(e["args"]["supersededBy"])
            if self.cfg.follow_successor and successor:
                self.move_to_version(successor)
            else:
                log.warning("version %d is deprecated (successor %d): still serving it (--follow-successor "
                            "moves automatically)", self.cfg.version_id, successor)

    def move_to_version(self, version_id: int) -> None:
        """Serve the same span of the successor version (clipped to its size) and update the registry."""
        version = self.chain.version(version_id)
        first, last = self.span
        n = int(version["num_blocks"])
        length = min(last - first, n)
        first = min(first, n - length)
        emit("moving_version", operator=self.me, from_version=self.cfg.version_id, to_version=version_id,
             blocks=[first, first + length])
        self.stop_serving()
        self.cfg.version_id, self.version = version_id, version
        self.tolerance = version["tolerance_micros"] / 1e6
        self.serve(first, first + length)
        self.register()

    # ---- reactions ------------------------------------------------------------------------------
    def drop_out(self, why: str) -> None:
        self.stop_serving()
        if self.cfg.restake and why.startswith("deactivated"):
            self.ensure_stake()
            self.serve(*self.span)
            self.register()
            return
        self.exit_reason = why
        self.stop.set()

    def stop_serving(self) -> None:
        if self.server is not None:
            self.server.stop(grace=1.0).wait()
            self.record_stats()
            self.server = None
            emit("stopped_serving", operator=self.me)

    def maybe_rebalance(self) -> None:
        """Move the span when the swarm's coverage is too uneven (node.selection.should_move)."""
        if not self.cfg.rebalance_interval_s or self.server is None or time.monotonic() < self._next_rebalance:
            return
        self._next_rebalance = time.monotonic() + self.cfg.rebalance_interval_s
        from node.discovery import swarm_spans
        from pollen.chain_membership import ChainMembership
        from node.selection import should_move

        n = int(self.version["num_blocks"])
        others = swarm_spans(ChainMembership(self.chain, self.cfg.version_id, deny=[self.me]), n)
        first, last = self.span
        move, start = should_move((first, last, self.servicer.throughput), others, n)
        if move:
            emit("moving", operator=self.me, blocks=[first, last], to=[start, start + last - first])
            self.stop_serving()
            self.serve(start, start + last - first)
            self.register()

    # ---- audits (advanced every tick; safe to repeat after a crash) ------------------------------
    def tick(self) -> None:
        self.record_stats()
        if self.earnings is not None:
            self.earnings.tick()
        self.audits.push_draws(self.state.draws)
        self.maybe_rebalance()
        self.audits.tick(self.state.audits)

    def own_span(self):
        """Our served span as the float32 reference for audits, unless it is not one: another
        dtype, or a load-time fault (e.g. quant:int8) that changed its weights."""
        loads_faulty = (self.cfg.fault or "").startswith("quant:")
        if self.servicer is None or self.cfg.dtype != "float32" or self.server is None or loads_faulty:
            return None
        return self.servicer.span, self.span[0], self.span[1]

    # ---- bookkeeping ---------------------------------------------------------------------------
    def record_stats(self) -> None:
        if self.signer is not None:
            base = self.state.stats.setdefault("base", {"receipts": 0, "sessions": 0})
            self.state.stats["receipts_signed"] = base["receipts"] + self.signer.receipts
            self.state.stats["sessions_served"] = base["sessions"] + len(self.signer.sessions)
        self.state.status = {"span": list(self.span or ()), "endpoint": getattr(self, "endpoint", ""),
                             "pid": os.getpid(), "updated": int(time.time()), "running": not self.stop.is_set()}

    def save(self) -> None:
        self.states.save(self.state)

    def save_cursor(self, block: int) -> None:
        self.state.last_block = block
        self.save()

    # ---- lifecycle --------------------------------------------------------------------------------
    def run(self) -> None:
        self.state.stats["base"] = {"receipts": self.state.stats.get("receipts_signed", 0),
                                    "sessions": self.state.stats.get("sessions_served", 0)}
        self.start()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self._on_signal())
        # All tensor work runs on the main thread (node/runtime.py explains why); the chain
        # watcher runs beside it and stops the compute loop only after its own shutdown.
        loop, loop_stop = ComputeLoop(), threading.Event()
        self.compute = self.servicer.compute = loop.submit
        watcher = threading.Thread(target=self._watch, args=(loop_stop,), name="chain-watcher")
        watcher.start()
        loop.run(loop_stop, self.housekeeping)
        watcher.join()
        if self.failure is not None:
            raise self.failure

    failure: BaseException | None = None

    def _watch(self, loop_stop: threading.Event) -> None:
        try:
            watcher = Watcher(self.chain, self.handlers(), lambda: self.state.last_block, self.save_cursor,
                              self.cfg.poll_interval_s)
            watcher.run(self.stop, self.tick)
            self.shutdown()
        except BaseException as exc:  # re-raised on the main thread: the process fails visibly
            self.failure = exc
        finally:
            loop_stop.set()

    def housekeeping(self) -> None:
        if self.servicer is not None and self.server is not None:
            self.servicer.expire_idle()

    def _on_signal(self) -> None:
        self.exit_reason = self.exit_reason or "signal"
        self.stop.set()

    def shutdown(self) -> None:
        self.stop_serving()
        status = self.chain.server(self.me)["status"]
        if self.cfg.leave_on_exit and status in ("active", "inactive"):
            self._try(self.chain.leave, "leave")
        account = self.chain.account_of(self.me)
        if self.cfg.unstake_on_exit and account["staked"] and account["frozen_count"]:
            # accused or drawn as an auditor in an unsettled dispute: the vault refuses until it settles
            log.warning("stake is frozen by %d open dispute(s) (accused or drawn auditor): not requesting "
                        "unstake; run `pollen node status` and unstake once they settle", account["frozen_count"])
            emit("unstake_deferred", operator=self.me, open_disputes=account["frozen_count"])
        elif self.cfg.unstake_on_exit and (staked := account["staked"]):
            self._try(lambda: self.chain.request_unstake(staked), "request unstake")
        if self.earnings is not None:
            self.earnings.redeem_due(force=True)
        self.record_stats()
        self.save()
        emit("exit", operator=self.me, reason=self.exit_reason or "stopped")

    def _try(self, action, what: str) -> None:
        try:
            action()
            emit(what.replace(" ", "_"), operator=self.me)
        except ChainError as exc:
            log.warning("%s failed: %s", what, exc)




EXIT_DEACTIVATED = 3  # the process status when the daemon stopped because it was slashed/deactivated


def main(cfg: DaemonConfig) -> int:
    """Run the daemon until it stops; 0 on a requested stop, EXIT_DEACTIVATED when it was pushed out
    (slashed under the minimum without --restake), so a supervisor does not mistake it for success."""
    logging.basicConfig(level=cfg.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log.info("pollen node starting: %s", cfg.redacted())
    daemon = Daemon(cfg)
    daemon.run()
    if daemon.exit_reason.startswith("deactivated"):
        log.error("stopped: %s; see `pollen node status`, top up the stake and start again "
                  "(or run with --restake)", daemon.exit_reason)
        return EXIT_DEACTIVATED
    return 0
