"""Branch-and-bound driver (placeholder: hands every pair to the exact MILP)."""

from __future__ import annotations


def decide_pairs(run, pairs, milp_stage):
    """Decide the (case, polytope) pairs that bounds left open; returns (counterexample, all_decided)."""
    return milp_stage(run, pairs)
