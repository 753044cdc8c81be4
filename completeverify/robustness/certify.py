"""certify: per-input verdicts at several radii, PGD against certified accuracy, abstention.

Every input is checked against its PREDICTED class (the model's own answer): at each eps,
PGD looks for a replayed adversarial example in the ball, and if it finds none the verifier
decides the ball (``ball_verify.decide``): "certified", "counterexample" or "unknown".  With
``radius=True`` the certified radius (``radius.certified_radius``) is computed as well.

Accuracy at eps (over all inputs): clean = prediction correct; PGD = correct and no attack found;
certified = correct and certified; undecided = correct, no attack, not certified.  A PGD attack
is a replayed counterexample, so certified <= PGD <= clean always holds.

Selective prediction: at radius r the model answers the inputs whose prediction is certified at
r (a proven radius lower bound >= r with ``radius``, else the verdict at eps = r) and abstains
elsewhere; undecided inputs and ties count as abstentions.  Coverage = share answered, risk =
error among them.  AURC = area under risk against coverage (trapezoids, coverage sorted).
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..config import Deadline
from .ball_verify import decide, inscribed_attack
from .problem import Problem, check_norm, greedy_attack, l2_attack, make_problem

VERDICTS = ("certified", "counterexample", "unknown")


@dataclass
class CertifyRow:
    """One input: label, prediction, PGD outcome and verdict per eps, optional radius."""

    index: int
    label: int
    prediction: int
    pgd: dict[float, bool] = field(default_factory=dict)  # eps -> PGD found an attack
    verdicts: dict[float, str] = field(default_factory=dict)  # eps -> VERDICTS
    radius: float | None = None  # proven lower bound of the prediction's radius
    radius_upper: float | None = None
    radius_exact: bool | None = None
    seconds: float = 0.0
    name: str = ""

    @property
    def correct(self) -> bool:
        """Whether the prediction is the label."""
        return self.prediction == self.label


def _pgd(prob: Problem, eps: float, norm: str, deadline: Deadline) -> np.ndarray | None:
    """A replayed adversarial example inside the ball of radius eps, or None."""
    ball = prob.ball(eps, norm)
    if norm in ("linf", "l1", "l2"):
        hit = inscribed_attack(prob, ball, deadline)
        if hit is not None:
            return hit
    if norm == "l2":
        hit = l2_attack(prob, eps, deadline)
        return hit if hit is not None and ball.contains(hit) else None
    if norm in ("l0", "l1"):
        hit = greedy_attack(prob, deadline, max_changes=max(1, int(ball.k if norm == "l0" else 8)))
        return hit if hit is not None and ball.contains(hit) else None
    return None


def certify_one(
    graph,
    x: np.ndarray,
    y: int,
    eps: Sequence[float],
    norm: str,
    timeout: float,
    radius: bool,
    domain,
    index: int = 0,
    name: str = "",
) -> CertifyRow:
    """The row of one input (see the module docstring); ``timeout`` covers all of its work."""
    t0 = time.monotonic()
    deadline = Deadline(timeout)
    prob = make_problem(graph, x, None, domain)
    row = CertifyRow(index, int(y), prob.prediction, name=name)
    eps_sorted = sorted(eps)
    share = 0.5 if radius else 1.0
    broken = False  # a counterexample at eps is one at every larger eps
    for i, e in enumerate(eps_sorted):
        left = len(eps_sorted) - i
        sub = deadline.sub(share / left)
        hit = None if broken else _pgd(prob, e, norm, sub.sub(0.2))
        row.pgd[e] = hit is not None or broken
        if row.pgd[e]:
            row.verdicts[e] = "counterexample"
            broken = True
            continue
        verdict, _ = decide(prob, prob.ball(e, norm), sub)
        row.verdicts[e] = verdict
        broken = verdict == "counterexample"
    if radius and not deadline.expired():
        from .radius import certified_radius

        r = certified_radius(
            graph,
            prob.center,
            norm=norm,
            label=prob.prediction,
            domain=(prob.lower, prob.upper),
            timeout=max(0.5, deadline.remaining()),
        )
        row.radius, row.radius_upper, row.radius_exact = r.lower, r.upper, r.exact
    row.seconds = time.monotonic() - t0
    return row


@dataclass
class CertifyReport:
    """All rows plus the figures of the module docstring."""

    rows: list[CertifyRow]
    eps: list[float]
    norm: str

    @property
    def clean_accuracy(self) -> float:
        """Share of inputs predicted correctly."""
        return _mean([r.correct for r in self.rows])

    @property
    def pgd_accuracy(self) -> dict[float, float]:
        """eps -> share correct with no attack found (empirical robust accuracy)."""
        return {
            e: _mean([r.correct and not r.pgd.get(e, False) for r in self.rows]) for e in self.eps
        }

    @property
    def certified_accuracy(self) -> dict[float, float]:
        """eps -> share correct and certified (verified accuracy)."""
        return {
            e: _mean([r.correct and r.verdicts.get(e) == "certified" for r in self.rows])
            for e in self.eps
        }

    @property
    def undecided(self) -> dict[float, float]:
        """eps -> share correct, not attacked and not certified."""
        return {
            e: _mean([r.correct and r.verdicts.get(e) == "unknown" for r in self.rows])
            for e in self.eps
        }

    def proven_radius(self, row: CertifyRow) -> float:
        """The largest radius the row is proven at: its radius lower bound or a certified eps."""
        cert = [e for e, v in row.verdicts.items() if v == "certified"]
        return max([0.0, *cert] + ([row.radius] if row.radius is not None else []))

    def _answered(self, r: float) -> list[CertifyRow]:
        """Inputs the model answers at radius r (proven there; radius 0: all)."""
        if r <= 0:
            return list(self.rows)
        return [row for row in self.rows if self.proven_radius(row) >= r]

    def radii(self) -> list[float]:
        """The radii at which the curves are evaluated: 0, the eps, and the proven radii."""
        rs = {0.0, *self.eps}
        if self.rows and all(row.radius is not None for row in self.rows):
            rs |= {
                float(row.radius)
                for row in self.rows
                if row.radius is not None and math.isfinite(row.radius)
            }
        return sorted(rs)

    def risk_coverage(self) -> list[tuple[float, float, float]]:
        """(r, coverage, risk) for every radius of ``radii``; risk 0 where nothing is answered."""
        out = []
        n = max(1, len(self.rows))
        for r in self.radii():
            ans = self._answered(r)
            risk = _mean([not a.correct for a in ans]) if ans else 0.0
            out.append((r, len(ans) / n, risk))
        return out

    def accuracy_vs_radius(self) -> list[tuple[float, float]]:
        """(r, certified accuracy at r) for every radius of ``radii``."""
        n = max(1, len(self.rows))
        return [(r, sum(a.correct for a in self._answered(r)) / n) for r in self.radii()]

    def aurc(self) -> float:
        """Area under the risk-coverage curve (lower is better)."""
        pts = sorted((c, k) for _, c, k in self.risk_coverage())
        area = 0.0
        for (c0, k0), (c1, k1) in itertools.pairwise(pts):
            area += (c1 - c0) * (k0 + k1) / 2
        return area

    def summary_rows(self) -> list[dict]:
        """One dict per eps: the accuracy figures."""
        pgd, cert, und = self.pgd_accuracy, self.certified_accuracy, self.undecided
        return [
            {
                "eps": e,
                "clean": self.clean_accuracy,
                "pgd": pgd[e],
                "certified": cert[e],
                "undecided": und[e],
            }
            for e in self.eps
        ]

    def to_csv(self, path) -> None:
        """Per-input rows as CSV (columns: see ``csv_header``)."""
        from .report import write_text

        lines = [f"# norm={self.norm}", ",".join(csv_header(self.eps))] + [
            csv_line(r, self.eps) for r in self.rows
        ]
        write_text(path, "\n".join(lines) + "\n")


def csv_header(eps: Sequence[float]) -> list[str]:
    """Column names of the per-input CSV."""
    cols = ["index", "name", "label", "prediction", "correct"]
    for e in eps:
        cols += [f"pgd@{e:g}", f"verdict@{e:g}"]
    return cols + ["radius_lower", "radius_upper", "radius_exact", "seconds"]


def csv_line(r: CertifyRow, eps: Sequence[float]) -> str:
    """One CSV line for a row."""
    vals: list[str] = [str(r.index), r.name, str(r.label), str(r.prediction), str(int(r.correct))]
    for e in eps:
        vals += [str(int(r.pgd.get(e, False))), r.verdicts.get(e, "")]

    def fmt(v: float | None) -> str:
        """A float as its repr, None as an empty field."""
        return "" if v is None else repr(float(v))

    vals += [
        fmt(r.radius),
        fmt(r.radius_upper),
        "" if r.radius_exact is None else str(int(r.radius_exact)),
        f"{r.seconds:.3f}",
    ]
    return ",".join(vals)


def parse_line(line: str, eps: Sequence[float]) -> CertifyRow:
    """The row a ``csv_line`` wrote (for resuming)."""
    parts = line.rstrip("\n").split(",")
    row = CertifyRow(int(parts[0]), int(parts[2]), int(parts[3]), name=parts[1])
    for i, e in enumerate(eps):
        row.pgd[e] = parts[5 + 2 * i] == "1"
        row.verdicts[e] = parts[6 + 2 * i]
    rest = parts[5 + 2 * len(eps) :]
    row.radius = float(rest[0]) if rest[0] else None
    row.radius_upper = float(rest[1]) if rest[1] else None
    row.radius_exact = bool(int(rest[2])) if rest[2] else None
    row.seconds = float(rest[3])
    return row


def read_csv(path, eps: Sequence[float] | None = None) -> CertifyReport:
    """The report whose rows ``to_csv`` (or the certify command) wrote to path."""
    from pathlib import Path

    lines = Path(path).read_text().splitlines()
    norm = lines[0].split("=", 1)[1].strip()
    if eps is None:
        eps = [float(c.split("@")[1]) for c in lines[1].split(",") if c.startswith("verdict@")]
    rows = [parse_line(line, eps) for line in lines[2:] if line.strip()]
    return CertifyReport(sorted(rows, key=lambda r: r.index), list(eps), norm)


def _mean(values: Sequence[bool]) -> float:
    """Share of True values (0 for none)."""
    return float(np.mean(values)) if len(values) else 0.0


def certify(
    net,
    x,
    y,
    eps: Sequence[float] = (),
    norm: str = "linf",
    timeout_per_input: float = 10.0,
    radius: bool = False,
    domain=None,
    names: Sequence[str] | None = None,
    workers: int = 1,
    done: dict[int, CertifyRow] | None = None,
    on_row: Callable[[CertifyRow], None] | None = None,
) -> CertifyReport:
    """Certify every input of x (N, ...) with labels y (N,) at each eps; see the module docstring.

    domain: (lo, hi) of valid inputs (default: x +- 1).  workers: processes.  done: rows
    already computed (resuming), keyed by index.  on_row: called with every new row.
    """
    from ..loading import as_graph

    check_norm(norm)
    eps = [float(e) for e in eps]
    xs = np.asarray(x, dtype=np.float64).reshape(len(y), -1)
    ys = np.asarray(y).astype(np.int64).reshape(-1)
    names = list(names) if names is not None else [str(i) for i in range(len(ys))]
    graph = as_graph(net)
    done = dict(done or {})
    todo = [i for i in range(len(ys)) if i not in done]
    args = [(i, xs[i], int(ys[i]), names[i]) for i in todo]
    job = (eps, norm, float(timeout_per_input), bool(radius), domain)
    if workers > 1 and len(args) > 1:
        import multiprocessing as mp

        ctx = mp.get_context("fork")
        with ctx.Pool(workers, initializer=_init_worker, initargs=(graph, job)) as pool:
            for row in pool.imap_unordered(_work, args):
                done[row.index] = row
                if on_row is not None:
                    on_row(row)
    else:
        _init_worker(graph, job)
        for a in args:
            row = _work(a)
            done[row.index] = row
            if on_row is not None:
                on_row(row)
    return CertifyReport([done[i] for i in sorted(done)], eps, norm)


_STATE: dict = {}


def _init_worker(graph, job) -> None:
    """Per process: the graph and the job settings, and one torch thread."""
    import torch

    torch.set_num_threads(1)
    _STATE["graph"], _STATE["job"] = graph, job


def _work(a) -> CertifyRow:
    """Certify one (index, x, y, name) in this process."""
    i, xi, yi, name = a
    eps, norm, timeout, radius, domain = _STATE["job"]
    return certify_one(_STATE["graph"], xi, yi, eps, norm, timeout, radius, domain, i, name)
