"""A second search when the first one ends open before the deadline (see bab/knife_edge.py).

The pipeline calls ``keep_searching`` instead of answering ``unknown`` early: branch and bound
again on the still-open pairs, without hand-offs to the MILP, so that only sound bounds (whose
margin is 1e-9 relative, against the MILP's 1e-5) or a replayed point can end it.
"""

from __future__ import annotations

import dataclasses
import logging

log = logging.getLogger(__name__)


def keep_searching(run, pairs, milp_stage):
    """Branch and bound again on the still-open pairs, without hand-offs to the MILP.

    Same contract as bab.engine.decide_pairs: (counterexample or None, all decided).
    """
    from .engine import decide_pairs

    bab = dataclasses.replace(
        run.config.bab, milp_handoff_domains=0, stall_rounds=0, race_milp=False
    )
    mode = run.config.mode
    if mode == "milp":
        mode = "auto"
    cfg = dataclasses.replace(run.config, bab=bab, mode=mode)
    log.info(
        "knife edge: the search ended open with %.1f s left; searching again without "
        "MILP hand-offs",
        run.deadline.remaining(),
    )
    run.stats["keep_searching"] = run.stats.get("keep_searching", 0) + 1
    return decide_pairs(dataclasses.replace(run, config=cfg), pairs, milp_stage)
