"""Typed outcomes of the MILP stage that callers branch on (instead of matching messages)."""

from __future__ import annotations


class EmptyDomain(ValueError):
    """The encoding's bounds (pre-activation boxes, splits, column intervals) have no common point.

    With sound bounds and no split constraints the box is not empty, so some bound is wrong
    and this is never a proof; with split constraints it means the splits contradict the
    bounds (an infeasible sub-domain).  A ValueError subclass so that older callers that
    catch ValueError keep working.
    """
