"""pollen/disputes.py: the one Dispute view the client and the daemons share: names that match
DisputeCourt's enums (read from the Solidity source), and when a dispute may move on."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pollen.disputes import (OUTCOMES, STAGES, can_draw, can_rule, can_settle, next_action, outcome_name,
                             stage_name)

SOURCE = (Path(__file__).resolve().parents[3] / "contracts" / "DisputeCourt.sol").read_text()


def _enum(name: str) -> tuple[str, ...]:
    body = re.search(rf"enum {name}\s*{{([^}}]*)}}", SOURCE).group(1)
    members = [re.sub(r"//.*", "", m).strip() for m in body.split(",")]
    return tuple(re.sub(r"(?<!^)(?=[A-Z])", "_", m).lower() for m in members if m)


def test_names_are_the_contracts_enums():
    assert STAGES == _enum("Stage") and OUTCOMES == _enum("Outcome")
    assert stage_name(3) == "appealable" and outcome_name(1) == "faulty"
    with pytest.raises(ValueError, match="outcome 9.*upgrade pollen"):
        outcome_name(9)


def dispute(stage, drawn=3, votes=(0, 0, 0), draw_block=100, reveal_deadline=1_000, appeal_deadline=2_000):
    f, h, a = votes
    return dict(stage=stage, drawn_count=drawn, faulty_votes=f, honest_votes=h, abstain_votes=a,
                draw_block=draw_block, reveal_deadline=reveal_deadline, appeal_deadline=appeal_deadline)


def test_when_a_dispute_may_move_on():
    assert not can_draw(dispute("awaiting_draw"), block=100) and can_draw(dispute("awaiting_draw"), block=101)
    assert next_action(dispute("awaiting_draw"), now=0, block=101) == "draw"
    # a round is ruled once all revealed, or after the deadline with some silent
    assert not can_rule(dispute("voting", votes=(1, 1, 0)), now=1_000)
    assert can_rule(dispute("voting", votes=(1, 1, 1)), now=0)
    assert can_rule(dispute("voting", votes=(1, 0, 0)), now=1_001)
    assert next_action(dispute("voting", votes=(2, 0, 1)), now=0, block=0) == "resolve"
    # an appealable first ruling settles only after the appeal window
    assert not can_settle(dispute("appealable"), now=2_000) and can_settle(dispute("appealable"), now=2_001)
    assert next_action(dispute("appealable"), now=1_500, block=10**6) is None
    assert next_action(dispute("resolved"), now=10**9, block=10**9) is None
