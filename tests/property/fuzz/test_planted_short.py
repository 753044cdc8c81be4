"""A short planted-witness run in the default test run: random networks and properties violated
at a known point (tests/property/fuzz/planted.py), where `unsat` is a wrong verdict and every
`sat` must replay with zero tolerance. The long campaigns are in CAMPAIGN.md."""

from __future__ import annotations

import planted
import planted_radius
import pytest

# seeds chosen to cover every configuration of planted.configs() once, MLPs and CNNs
SEEDS = range(200, 216)


@pytest.mark.parametrize("seed", SEEDS)
def test_planted_instances_get_no_wrong_verdict(seed, tmp_path):
    row = planted.run_one(seed, 5.0, tmp_path)
    assert row["wrong"] == "", row


def test_planted_runs_reach_every_configuration():
    names = {planted.configs(1.0)[s % len(planted.configs(1.0))][0] for s in SEEDS}
    assert names == {name for name, _ in planted.configs(1.0)}


@pytest.mark.parametrize("seed", range(100, 108))
def test_radius_bounds_bracket_what_an_independent_attack_finds(seed, tmp_path):
    row = planted_radius.radius_one(seed, 4.0, tmp_path)
    assert row["wrong"] == "", row
    assert row["lower"] <= row["upper"]


def test_forced_input_split_on_a_cnn_ends_near_its_timeout(tmp_path):
    """Input splitting bounded 256 boxes per round whatever the network: on this CNN (162
    inputs, conv, batch norm, max pool, pad; seed 20553 of the large planted campaign) one
    round took 30 s of a 15 s budget. Rounds now shrink to what the last round's pace fits in
    the time left."""
    row = planted.run_one(20553, 3.0, tmp_path, large=True, only=["input-split"])
    assert row["wrong"] == "", row
    assert row["seconds"] < 3.0 + 4.0, row
