"""HiGHS backend through highspy (imported lazily), fed the whole model as arrays."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib.util
import math
import os
import sys
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from completeverify.errors import SolverError

from .base import (
    MilpProgram,
    SolveLimits,
    SolveResult,
    compressed,
    start_solve,
)
from .status import SolveStatus, at_limit

_LIMIT_STATUSES = (
    "kTimeLimit",
    "kIterationLimit",
    "kSolutionLimit",
    "kInterrupt",
    "kHighsInterrupt",
    "kObjectiveBound",
    "kObjectiveTarget",
)
_INT32_MAX = 2**31 - 1
_SOLUTION_FEASIBLE = 2  # HiGHS kSolutionStatusFeasible


@contextlib.contextmanager
def _stdout_silenced() -> Iterator[None]:
    """Point file descriptor 1 at /dev/null for the duration (native code ignores sys.stdout)."""
    try:
        sys.stdout.flush()
    except (AttributeError, ValueError):
        pass
    try:
        saved = os.dup(1)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "w") as sink:
            os.dup2(sink.fileno(), 1)
            yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


@functools.lru_cache(maxsize=1)
def _swallow_banner() -> bool:
    """Create one throwaway Highs with stdout silenced: HiGHS prints its banner once per process."""
    import highspy

    with _stdout_silenced():
        highspy.Highs()
    return True


def _new_highs() -> Any:
    """A silent highspy.Highs instance."""
    import highspy

    _swallow_banner()
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    return h


# HiGHS's default MIP feasibility tolerance (1e-6) gave wrong answers on this project's
# encodings, where pinned inputs leave columns of width 1e-9..1e-6: on small planted CNNs and
# MLPs it declared feasible programs infeasible (optima -0.116 and -1.6e-7), and reported an
# optimum 0.026 above the true one (found by enumerating the binaries, each an LP).  At 1e-9
# every one of those programs solves to the enumerated optimum (tests/property/fuzz/CAMPAIGN.md).
MIP_FEASIBILITY_TOLERANCE = 1e-9


def _build_lp(program: MilpProgram) -> Any:
    """A highspy.HighsLp holding program with A in column-wise (CSC) form."""
    import highspy

    start, index, value = compressed(program, by_column=True)
    if value.size > _INT32_MAX:
        raise ValueError(f"{value.size} nonzeros exceed HiGHS's 32-bit index range")
    lp = highspy.HighsLp()
    lp.num_col_ = program.num_cols()
    lp.num_row_ = program.num_rows()
    lp.col_cost_ = program.c
    lp.col_lower_ = program.col_lower
    lp.col_upper_ = program.col_upper
    lp.row_lower_ = program.row_lower
    lp.row_upper_ = program.row_upper
    lp.offset_ = float(program.offset)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.num_col_ = program.num_cols()
    lp.a_matrix_.num_row_ = program.num_rows()
    lp.a_matrix_.start_ = start.astype(np.int32)
    lp.a_matrix_.index_ = index.astype(np.int32)
    lp.a_matrix_.value_ = value
    if program.is_mip():
        kinds = (highspy.HighsVarType.kContinuous, highspy.HighsVarType.kInteger)
        lp.integrality_ = [kinds[flag] for flag in program.integrality.tolist()]
    return lp


def _set_options(h: Any, program: MilpProgram, limits: SolveLimits) -> None:
    """Apply limits as HiGHS options; raise ValueError if HiGHS rejects one."""
    options: dict[str, Any] = {
        "threads": int(limits.threads),
        "random_seed": 0,
    }
    if math.isfinite(limits.time_limit):
        options["time_limit"] = float(limits.time_limit)
    if limits.presolve is not None:
        options["presolve"] = "on" if limits.presolve else "off"
    if program.is_mip():
        options["mip_feasibility_tolerance"] = MIP_FEASIBILITY_TOLERANCE
        options["mip_rel_gap"] = float(limits.mip_rel_gap)
        options["mip_abs_gap"] = float(limits.mip_abs_gap)
        if limits.node_limit is not None:
            options["mip_max_nodes"] = int(limits.node_limit)
    for key, val in options.items():
        status = h.setOptionValue(key, val)
        if status.name == "kError":
            raise ValueError(f"HiGHS rejected option {key}={val!r}")


class _EarlyStop:
    """MIP interrupt callback that stops on stop_above (dual bound), stop_below (primal) or
    cancel."""

    def __init__(
        self, stop_above: float | None, stop_below: float | None, cancel: Any = None
    ) -> None:
        """Remember the thresholds; nothing triggered yet."""
        self.stop_above = stop_above
        self.stop_below = stop_below
        self.cancel = cancel
        self.triggered = ""
        self.best_dual = -math.inf

    def __call__(self, event: Any) -> None:
        """Read the bounds HiGHS reports and request an interrupt when a threshold is crossed."""
        data = event.data_out
        dual, primal = float(data.mip_dual_bound), float(data.mip_primal_bound)
        if math.isfinite(dual):
            self.best_dual = max(self.best_dual, dual)
        if self.cancel is not None and self.cancel.is_set():
            self.triggered = "cancelled"
        elif self.stop_above is not None and dual > self.stop_above:
            self.triggered = f"stop_above: dual bound {dual!r} > {self.stop_above!r}"
        elif self.stop_below is not None and primal < self.stop_below:
            self.triggered = f"stop_below: primal objective {primal!r} < {self.stop_below!r}"
        if self.triggered:
            event.interrupt()


def _cancel_callback(cancel: Any):
    """A simplex interrupt callback that stops the LP once ``cancel`` is set."""

    def callback(event: Any) -> None:
        if cancel.is_set():
            event.interrupt()

    return callback


def _run(h: Any) -> Any:
    """Run HiGHS; if the thread scheduler was started with another thread count, reset it once."""
    import highspy

    status = h.run()
    if status.name == "kError" and h.getModelStatus().name == "kNotset":
        reset = getattr(highspy.Highs, "resetThreadScheduler", None)
        if reset is None:
            reset = highspy.Highs.resetGlobalScheduler
        reset(True)
        status = h.run()
    return status


class HighsSolver:
    """MilpSolver backed by HiGHS (highspy)."""

    name = "highs"

    def is_available(self) -> bool:
        """True when highspy can be imported (checked without importing it)."""
        return importlib.util.find_spec("highspy") is not None

    def solve(self, program: MilpProgram, limits: SolveLimits | None = None) -> SolveResult:
        """Solve program with HiGHS; solver failures come back as status ERROR."""
        t0 = time.perf_counter()
        limits, done = start_solve(program, limits, t0)
        if done is not None:
            return done
        try:
            h = _new_highs()
            pass_status = h.passModel(_build_lp(program))
            if pass_status.name == "kError":
                return _error(t0, "HiGHS rejected the model (passModel returned kError)")
            if program.hessian_diag is not None and _pass_hessian(h, program).name == "kError":
                return _error(t0, "HiGHS rejected the Hessian (passHessian returned kError)")
            _set_options(h, program, limits)
            stopper = None
            wants_stop = limits.stop_above is not None or limits.stop_below is not None
            if program.is_mip() and (wants_stop or limits.cancel is not None):
                stopper = _EarlyStop(limits.stop_above, limits.stop_below, limits.cancel)
                h.cbMipInterrupt.subscribe(stopper)
            elif limits.cancel is not None:
                h.cbSimplexInterrupt.subscribe(_cancel_callback(limits.cancel))
            if limits.cancel is not None and limits.cancel.is_set():
                return SolveResult(
                    SolveStatus.NO_SOLUTION_AT_LIMIT,
                    None,
                    None,
                    None,
                    time.perf_counter() - t0,
                    "cancelled before the solve started",
                )
            run_status = _run(h)
            return _collect(h, program, run_status, stopper, t0)
        except Exception as exc:  # noqa: BLE001 - any failure is a non-verdict, reported as ERROR
            return _error(t0, f"HiGHS failed: {type(exc).__name__}: {exc}")


class HighsLpSession:
    """One HiGHS LP kept alive across solves that differ only in their objective.

    For bound tightening: each solve minimises ``sign * x_col`` for one column, and only two
    cost entries change between solves, so every solve warm-starts from the previous basis.
    The program's integrality is ignored (the LP relaxation is solved).  Built on first use.
    """

    def __init__(self, program: MilpProgram) -> None:
        """Keep the program (as its LP relaxation); no HiGHS model yet."""
        self.program = dataclasses.replace(
            program, integrality=np.zeros(program.num_cols(), dtype=bool)
        )
        self._highs: Any = None
        self._last_col: int | None = None

    def _model(self) -> Any:
        """The persistent HiGHS model (built once)."""
        if self._highs is None:
            h = _new_highs()
            if h.passModel(_build_lp(self.program)).name == "kError":
                raise SolverError("HiGHS rejected the LP (passModel returned kError)")
            _set_options(h, self.program, SolveLimits())
            self._highs = h
        return self._highs

    def row_duals_of_min(self, col: int, sign: float, time_limit: float) -> np.ndarray | None:
        """Row duals (num_rows,) of an optimal solve of min sign * x_col; None when not optimal.

        HiGHS errors propagate; after one, call ``reset`` (the next solve rebuilds the model).
        """
        h = self._model()
        if self._last_col is not None and self._last_col != col:
            h.changeColCost(int(self._last_col), 0.0)
        h.changeColCost(int(col), float(sign))
        self._last_col = col
        # HiGHS's clock is cumulative over the model's runs
        h.setOptionValue("time_limit", float(h.getRunTime()) + float(time_limit))
        _run(h)
        if h.getModelStatus().name != "kOptimal":
            return None
        sol = h.getSolution()
        if not sol.dual_valid:
            return None
        return np.asarray(sol.row_dual, dtype=np.float64).copy()

    def reset(self) -> None:
        """Drop the model (after a failure); the next solve builds a fresh one."""
        self._highs, self._last_col = None, None


def _pass_hessian(h: Any, program: MilpProgram) -> Any:
    """Give HiGHS the diagonal Hessian of a QP (lower-triangular CSC, nonzeros only)."""
    import highspy

    diag = np.asarray(program.hessian_diag, dtype=np.float64)
    idx = np.flatnonzero(diag).astype(np.int32)
    start = np.zeros(diag.size + 1, dtype=np.int32)
    np.cumsum(diag != 0, out=start[1:])
    return h.passHessian(
        int(diag.size), int(idx.size), highspy.HessianFormat.kTriangular, start, idx, diag[idx]
    )


def _error(t0: float, message: str) -> SolveResult:
    """An ERROR result carrying message."""
    return SolveResult(SolveStatus.ERROR, None, None, None, time.perf_counter() - t0, message)


def _collect(
    h: Any,
    program: MilpProgram,
    run_status: Any,
    stopper: _EarlyStop | None,
    t0: float,
    confirmed: bool = False,
) -> SolveResult:
    """Translate HiGHS's model status, info and solution into a SolveResult."""
    model_status = h.getModelStatus()
    name = model_status.name
    if name == "kInfeasible" and program.is_mip() and not confirmed:
        again = _confirm_mip_infeasible(h)
        if again == "kError":
            return _error(
                t0, "HiGHS declared the MIP infeasible; the check without presolve failed"
            )
        if again != "kInfeasible":
            result = _collect(h, program, run_status, stopper, t0, confirmed=True)
            result.message += "; MIP presolve had declared the program infeasible"
            return result
    info = h.getInfo()
    solution = h.getSolution()
    is_mip = program.is_mip()
    x: np.ndarray | None = None
    objective: float | None = None
    if solution.value_valid and int(info.primal_solution_status) == _SOLUTION_FEASIBLE:
        x = np.asarray(solution.col_value, dtype=np.float64).copy()
        objective = float(info.objective_function_value)
    node_count = int(info.mip_node_count) if is_mip and int(info.mip_node_count) >= 0 else None
    stopped = bool(stopper is not None and stopper.triggered)
    message = f"HiGHS model status {name}; run status {run_status.name}"
    if stopped and stopper is not None:
        message += f"; {stopper.triggered}"

    dual_bound: float | None = None
    if is_mip:
        dual_bound = _finite_or_none(float(info.mip_dual_bound))
        if stopper is not None and math.isfinite(stopper.best_dual):
            dual_bound = (
                stopper.best_dual if dual_bound is None else max(dual_bound, stopper.best_dual)
            )
    row_duals = col_duals = dual_ray = None

    if name == "kOptimal":
        if x is None:
            status = SolveStatus.ERROR
            message += "; optimal status without a feasible primal solution"
            dual_bound = None
        else:
            status = SolveStatus.OPTIMAL
            if not is_mip:
                dual_bound = objective
                if solution.dual_valid:
                    row_duals = np.asarray(solution.row_dual, dtype=np.float64).copy()
                    col_duals = np.asarray(solution.col_dual, dtype=np.float64).copy()
    elif name == "kInfeasible":
        status, x, objective, dual_bound = SolveStatus.INFEASIBLE, None, None, math.inf
        if not is_mip:
            again = _rerun_without_presolve(h)
            if again in ("kOptimal", "kUnbounded"):  # the claim does not survive: no verdict
                status, dual_bound = SolveStatus.ERROR, None
                message += f"; without presolve the LP is {again}, not infeasible"
            elif again in ("", "kInfeasible"):
                dual_ray = _dual_ray(h, program.num_rows())
    elif name in ("kUnbounded", "kUnboundedOrInfeasible"):
        status, dual_bound = SolveStatus.UNBOUNDED, None
    elif name in _LIMIT_STATUSES:
        status = at_limit(x is not None)
        if not is_mip:
            dual_bound = None
    else:
        status, x, objective, dual_bound = SolveStatus.ERROR, None, None, None
    return SolveResult(
        status,
        x,
        objective,
        dual_bound,
        time.perf_counter() - t0,
        message,
        node_count=node_count,
        row_duals=row_duals,
        col_duals=col_duals,
        stopped_early=stopped,
        dual_ray=dual_ray,
    )


def _confirm_mip_infeasible(h: Any) -> str:
    """Re-solve a MIP that HiGHS declared infeasible with presolve, without presolve.

    HiGHS's MIP presolve has declared feasible programs infeasible, release after release
    (ERGO-Code/HiGHS #1164, #1517, #1718, #1958, #2303, #2388, #2432, #2585, #3090); here it did
    so on a 4-binary encoding of a small CNN whose optimum is -0.0018 (a false `unsat`,
    tests/e2e/test_knife_edge.py). The solve without presolve is then the answer. An
    infeasibility both solves agree on is still only a claim: ``milp/decide.py`` asks for a
    certificate. Returns the second solve's model status name ("kInfeasible" when presolve was
    already off, "kError" when it failed). HiGHS's clock is cumulative, so the original time
    limit bounds both solves.
    """
    try:
        value = h.getOptionValue("presolve")  # (status, value) in highspy >= 1.9, else the value
        if (value[1] if isinstance(value, tuple) else value) == "off":
            return "kInfeasible"
        h.setOptionValue("presolve", "off")
        if _run(h).name == "kError":
            return "kError"
        return str(h.getModelStatus().name)
    except Exception:  # noqa: BLE001 - no confirmation: no proof
        return "kError"


def _rerun_without_presolve(h: Any) -> str:
    """If presolve declared the LP infeasible (so no ray exists), solve it again without presolve.

    Returns the new model status name, or "" when a ray already exists.  This is about twice
    as fast as letting getDualRay produce the ray after presolve (270 vs 560 ms on a 1,300-column
    leaf).  HiGHS's clock is cumulative, so the original time limit still bounds both runs.
    """
    try:
        _, exists = h.getDualRayExist()
        if exists:
            return ""
        h.setOptionValue("presolve", "off")
        _run(h)
        return str(h.getModelStatus().name)
    except Exception:  # noqa: BLE001 - then the ray is simply not available
        return "kError"


def _dual_ray(h: Any, num_rows: int) -> np.ndarray | None:
    """HiGHS's Farkas ray of an infeasible LP (row multipliers, its sign convention), or None.

    The ray is only a candidate: callers check it rigorously (solvers.safe_lp_lower_bound).
    """
    try:
        status, has_ray, values = h.getDualRay()
    except Exception:  # noqa: BLE001 - no ray is an ordinary outcome, not an error
        return None
    if status.name == "kError" or not has_ray:
        return None
    ray = np.asarray(values, dtype=np.float64).copy()
    if ray.shape != (num_rows,) or not np.all(np.isfinite(ray)):
        return None
    return ray


def _finite_or_none(value: float) -> float | None:
    """value if it is a finite float, else None."""
    return value if math.isfinite(value) else None
