"""Per-network parameter presets and the production guard (pure functions, no chain)."""

from dataclasses import replace

import pytest

from pollen.chain import ChainError
from pollen.deploy import BLOCK_SECONDS, CHAIN_IDS, PRESETS, check_production, longest_dispute, preset


def test_every_public_preset_gives_auditors_hours_and_passes_the_guard():
    for name, params in PRESETS.items():
        if name == "anvil":
            continue
        assert params.demo_grade() == [], name
        assert params.commit_period >= 3600 and params.reveal_period >= 3600 and params.appeal_period >= 86_400
        assert params.unbonding_period > params.dispute_window
        check_production(CHAIN_IDS[name], params, owner_is_contract=True)


def test_every_preset_unbonds_after_its_freeze_horizon_and_a_shorter_unbonding_is_refused():
    for name, params in PRESETS.items():
        assert params.unbonding_period > params.freeze_horizon, name
        params.check_bounds()
    anvil = PRESETS["anvil"]
    assert anvil.freeze_horizon == anvil.dispute_window + anvil.max_clock_skew + anvil.open_reveal_blocks * 30
    too_short = replace(anvil, unbonding_period=anvil.dispute_window + 1)  # the old bound accepted this
    with pytest.raises(ChainError, match="must exceed the freeze horizon"):
        too_short.check_bounds()


def test_demo_parameters_or_an_eoa_owner_are_refused_outside_dev_chains():
    with pytest.raises(ChainError, match="commit_period 60 s < 1 h"):
        check_production(CHAIN_IDS["gnosis"], PRESETS["anvil"], owner_is_contract=True)
    with pytest.raises(ChainError, match="plain key"):
        check_production(CHAIN_IDS["gnosis"], PRESETS["gnosis"], owner_is_contract=False)
    check_production(CHAIN_IDS["gnosis"], PRESETS["anvil"], owner_is_contract=False,
                     allow_demo_params=True, allow_eoa_owner=True)  # told explicitly
    check_production(31337, PRESETS["anvil"], owner_is_contract=False)  # a dev chain: anything goes


def test_presets_by_name_and_unknown_networks():
    assert preset("local") is PRESETS["anvil"] and preset("filecoin") is PRESETS["filecoin"]
    with pytest.raises(ChainError, match="no parameter preset"):
        preset("mainnet-of-somewhere")


def test_longest_dispute_is_bounded():
    blocks, seconds = longest_dispute(PRESETS["gnosis"], BLOCK_SECONDS["gnosis"])
    assert blocks == 2 * (PRESETS["gnosis"].draw_delay_blocks + 256) + (2 * 12 * 3600 + 2 * 86_400) // 5
    assert seconds < 4 * 86_400
    assert longest_dispute(PRESETS["anvil"], 1.0)[0] == PRESETS["anvil"].draw_delay_blocks + 256 + 120
