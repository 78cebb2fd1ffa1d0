"""One view of a dispute's life for everyone who pushes it along (the challenger's client, the
auditors' daemons, the web UI's Python twin in tests): the stage and outcome names of
DisputeCourt's enums, and the rules for when a dispute can move on. Pure functions over the
dict `pollen.chain.Chain.dispute` returns, unit-tested without a chain.

    d = chain.dispute(7)
    if next_action(d, now=block_time, block=block_number) == "resolve": chain.resolve(7)
"""

from __future__ import annotations

from typing import Any, Literal

STAGES = ("none", "awaiting_draw", "voting", "appealable", "resolved")  # DisputeCourt.Stage
OUTCOMES = ("pending", "faulty", "honest", "no_quorum", "lapsed")  # DisputeCourt.Outcome
RULINGS = ("faulty", "honest")  # outcomes that are a ruling (auditors coherent with it are paid)

Action = Literal["draw", "resolve"] | None


def stage_name(code: int) -> str:
    return _name(STAGES, code, "stage")


def outcome_name(code: int) -> str:
    return _name(OUTCOMES, code, "outcome")


def _name(names: tuple[str, ...], code: int, what: str) -> str:
    if not 0 <= int(code) < len(names):
        raise ValueError(f"DisputeCourt returned {what} {code}, which this client does not know: upgrade pollen")
    return names[int(code)]


def revealed(d: dict[str, Any]) -> int:
    """Votes revealed in the current round (faulty, honest or abstain)."""
    return d["faulty_votes"] + d["honest_votes"] + d["abstain_votes"]


def can_rule(d: dict[str, Any], now: int) -> bool:
    """A voting round can be ruled once every drawn auditor revealed or the reveal deadline passed."""
    return d["stage"] == "voting" and (revealed(d) >= d["drawn_count"] or now > d["reveal_deadline"])


def can_settle(d: dict[str, Any], now: int) -> bool:
    """An appealable first ruling becomes final once the appeal window closed."""
    return d["stage"] == "appealable" and now > d["appeal_deadline"]


def can_draw(d: dict[str, Any], block: int) -> bool:
    """Auditors can be drawn once the draw block is mined (its hash seeds the draw)."""
    return d["stage"] == "awaiting_draw" and block > d["draw_block"]


def next_action(d: dict[str, Any], now: int, block: int) -> Action:
    """What anyone may push next: "draw", "resolve" (rule a round or settle it), or None (wait)."""
    if can_draw(d, block):
        return "draw"
    if can_rule(d, now) or can_settle(d, now):
        return "resolve"
    return None
