"""A short planted-witness run in the default test run: random networks and properties violated
at a known point (tests/property/fuzz/planted.py), where `unsat` is a wrong verdict and every
`sat` must replay with zero tolerance. The long campaigns are in CAMPAIGN.md."""

from __future__ import annotations

import planted
import planted_radius
import planted_torch
import pytest
import vnnlib_semantics

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


@pytest.mark.parametrize("seed", range(300, 311))
def test_planted_torch_modules_get_no_wrong_verdict(seed, tmp_path):
    """The same judgement for torch modules passed straight to cv.verify (torch_import)."""
    row = planted_torch.run_one(seed, 5.0, tmp_path)
    assert row["wrong"] == "", row


@pytest.mark.parametrize("seed", range(400, 411))
def test_planted_scaled_units_get_no_wrong_verdict(seed, tmp_path):
    """Inputs in units of 10 to 10^4 and outputs scaled by 10^-3 to 10^4 (planted --scaled):
    margins and solver tolerances meet other magnitudes than on unit-scale networks."""
    row = planted.run_one(seed, 5.0, tmp_path, scaled=True)
    assert row["wrong"] == "", row


def test_vnnlib_reader_agrees_with_the_text_on_random_properties():
    """The VNN-LIB 1.0 reader against a direct evaluation of each text (vnnlib_semantics)."""
    counts: dict = {}
    bad = [m for m in (vnnlib_semantics.check(s, 150, counts) for s in range(60)) if m]
    assert bad == []
    assert counts[True] > 1000 and counts[False] > 1000, counts
