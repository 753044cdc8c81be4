"""Certified-radius fuzzing: the radius's proven lower bound must lie below every adversarial
example an independent attack finds, and its upper bound must come with a replayed example.

usage: python tests/property/fuzz/planted_radius.py OUT_DIR [--seconds S] [--timeout T]
       [--first N] [--large]

For each seed: a random classifier from ``planted.random_net``, an input x (float32 values),
a norm (linf, l1, l2, l0) and a domain, then ``certified_radius``. Judged here, with onnx's
reference evaluator on a float64 copy of the model as the truth:

- lower bound L: PGD (float64, the norm's own projection, then clipped into the domain, which
  never moves a point away from x) searches the ball of radius L (1 - 1e-6) for a point whose
  label margin is negative beyond float64 noise; one is a wrong radius. For l0 the attack
  changes the ceil(L) - 1 features with the largest gradient.
- upper bound U: the returned example lies in the domain within U of x, and onnxruntime's
  float32 output misclassifies it (a tie counts, as in ``certified_radius``).
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import torch
from onnx import TensorProto

import completeverify as cv
from completeverify.robustness.radius import certified_radius

sys.path.insert(0, str(Path(__file__).resolve().parent))
import planted  # noqa: E402

NORMS = ("linf", "l1", "l2", "l0")


def project_l1(delta: torch.Tensor, r: float) -> torch.Tensor:
    """Euclidean projection of each row of ``delta`` onto the L1 ball of radius r (by sorting)."""
    a = delta.abs()
    inside = a.sum(1) <= r
    u, _ = torch.sort(a, 1, descending=True)
    css = u.cumsum(1) - r
    k = torch.arange(1, a.shape[1] + 1, dtype=a.dtype)
    rho = ((u - css / k) > 0).sum(1).clamp(min=1)
    theta = css.gather(1, (rho - 1)[:, None]) / rho[:, None]
    out = torch.sign(delta) * (a - theta).clamp(min=0)
    return torch.where(inside[:, None], delta, out)


def project(delta: torch.Tensor, r: float, norm: str) -> torch.Tensor:
    """Each row of ``delta`` into the ball of radius r (linf, l2, l1)."""
    if norm == "linf":
        return delta.clamp(-r, r)
    if norm == "l2":
        n = delta.norm(dim=1, keepdim=True)
        return delta * torch.clamp(r / n.clamp(min=1e-300), max=1.0)
    return project_l1(delta, r)


def margins(b: planted.NetBuilder, xs: torch.Tensor, label: int) -> torch.Tensor:
    """min over j != label of y_label - y_j, per row (float64 torch mirror)."""
    y = b.forward(xs.reshape((len(xs),) + b.input_shape[1:])).reshape(len(xs), -1)
    others = torch.cat([y[:, :label], y[:, label + 1 :]], 1)
    return y[:, label] - others.max(1).values


def attack_inside(b, centre, lo, hi, label, r, norm, rng) -> np.ndarray | None:
    """The point of least margin PGD finds in the ball of radius r around ``centre``."""
    n = centre.size
    c = torch.tensor(centre)[None]
    lo_t, hi_t = torch.tensor(lo)[None], torch.tensor(hi)[None]
    if r <= 0:
        return None
    if norm == "l0":
        k = math.ceil(r) - 1
        if k <= 0:
            return None
        x = c.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(margins(b, x, label).sum(), x)
        mask = torch.zeros(1, n, dtype=torch.float64)
        mask[0, torch.argsort(g.abs()[0], descending=True)[:k]] = 1.0
        starts = lo_t + (hi_t - lo_t) * torch.tensor(rng.random((8, n)))
        x = c + mask * (starts - c)
        for step in range(60):
            x.requires_grad_(True)
            (g,) = torch.autograd.grad(margins(b, x, label).sum(), x)
            with torch.no_grad():
                x = x - (0.2 * (1 - step / 60) + 0.01) * (hi_t - lo_t) * torch.sign(g) * mask
                x = torch.max(torch.min(x, hi_t), lo_t)
        best = int(torch.argmin(margins(b, x, label)))
        return x[best].detach().numpy()
    m = 8
    d = torch.tensor(rng.normal(size=(m, n)))
    x = c + project(d * r, r, norm)
    x = torch.max(torch.min(x, hi_t), lo_t)
    best, best_v = None, np.inf
    for step in range(80):
        x.requires_grad_(True)
        v = margins(b, x, label)
        (g,) = torch.autograd.grad(v.sum(), x)
        with torch.no_grad():
            i = int(torch.argmin(v))
            if float(v[i]) < best_v:
                best_v, best = float(v[i]), x[i].detach().clone()
            size = r * (0.3 * (1 - step / 80) + 0.01)
            if norm == "linf":
                step_dir = torch.sign(g)
            elif norm == "l2":
                step_dir = g / g.norm(dim=1, keepdim=True).clamp(min=1e-300)
            else:  # l1: move the coordinate of largest gradient
                step_dir = torch.zeros_like(g)
                step_dir.scatter_(1, g.abs().argmax(1, keepdim=True), 1.0)
                step_dir = step_dir * torch.sign(g)
            x = c + project(x - size * step_dir - c, r, norm)
            x = torch.max(torch.min(x, hi_t), lo_t)
    return None if best is None else best.numpy()


def true_margin(model64: onnx.ModelProto, b, x: np.ndarray, label: int) -> tuple[float, float]:
    """(margin, output scale) of x in the float64 reference evaluator."""
    y = planted.truth(model64, b, x)
    others = np.delete(y, label)
    return float(y[label] - others.max()), 1.0 + float(np.abs(y).max())


def radius_one(seed: int, seconds: float, out: Path, large: bool = False) -> dict:
    """Build, run and judge one certified-radius call."""
    rng = np.random.default_rng(seed)
    b, kind = planted.random_net(rng, large)
    model32, model64 = b.model(), b.model(TensorProto.DOUBLE)
    n = int(np.prod(b.input_shape))
    norm = NORMS[seed % len(NORMS)]
    centre = rng.uniform(-1, 1, n).astype(np.float32).astype(np.float64)
    if rng.random() < 0.5:
        lo, hi, domain = centre - 1.0, centre + 1.0, None
    else:
        lo = np.minimum(centre, rng.uniform(-1.5, -0.5, n))
        hi = np.maximum(centre, rng.uniform(0.5, 1.5, n))
        domain = (lo, hi)
    if norm == "l0" and domain is None:
        domain = (lo, hi)
    t0 = time.perf_counter()
    res = certified_radius(cv.load_onnx(model32), centre, norm=norm, domain=domain, timeout=seconds)
    secs = time.perf_counter() - t0
    label = int(res.stats["label"])
    wrong = ""
    # the lower bound: nothing adversarial strictly inside it
    if res.lower > 0 and math.isfinite(res.lower):
        x = attack_inside(b, centre, lo, hi, label, res.lower * (1 - 1e-6), norm, rng)
        if x is not None:
            dist = float(planted_distance(x - centre, norm))
            m, scale = true_margin(model64, b, x, label)
            if dist < res.lower and m < -1e-12 * scale:
                wrong = f"adversarial at distance {dist:.6g} < lower bound {res.lower:.6g}"
    # the upper bound: a replayed example at that distance
    if not wrong and math.isfinite(res.upper):
        adv = res.adversarial
        if adv is None:
            wrong = "finite upper bound without an example"
        else:
            adv = np.asarray(adv, dtype=np.float64).reshape(-1)
            dist = float(planted_distance(adv - centre, norm))
            sess = onnxruntime.InferenceSession(model32.SerializeToString())
            y = sess.run(None, {"x": adv.astype(np.float32).reshape(b.input_shape)})[0]
            y = np.asarray(y, dtype=np.float64).reshape(-1)
            if np.any(adv < lo) or np.any(adv > hi):
                wrong = "example outside the domain"
            elif dist > res.upper * (1 + 1e-9) + 1e-12:
                wrong = f"example at {dist:.6g} beyond the upper bound {res.upper:.6g}"
            elif y[label] > np.delete(y, label).max():
                wrong = "example not misclassified in onnxruntime"
    if res.lower > res.upper:
        wrong = wrong or f"lower bound {res.lower:.6g} above upper bound {res.upper:.6g}"
    row = dict(
        seed=seed,
        kind=kind,
        ops=sorted({nd.op_type for nd in b.nodes}),
        norm=norm,
        lower=res.lower,
        upper=res.upper,
        exact=bool(res.exact),
        seconds=round(secs, 2),
        wrong=wrong,
    )
    if wrong:
        onnx.save(model32, str(out / f"radius-wrong-{seed}.onnx"))
        (out / f"radius-wrong-{seed}.json").write_text(
            json.dumps(dict(row, centre=centre.tolist(), lo=lo.tolist(), hi=hi.tolist()))
        )
    return row


def planted_distance(delta: np.ndarray, norm: str) -> float:
    """The norm of a flat perturbation, written here rather than imported."""
    if norm == "linf":
        return float(np.abs(delta).max())
    if norm == "l1":
        return float(np.abs(delta).sum())
    if norm == "l2":
        return float(np.sqrt((delta * delta).sum()))
    return float(np.count_nonzero(delta))


def main() -> None:
    """Run seeds from --first until --seconds have passed; one JSON line per call."""
    ap = planted.campaign_args(__doc__, "per radius call")
    ap.add_argument("--large", action="store_true", help="wider networks (random_net)")
    args = ap.parse_args()
    rows = planted.campaign(
        args.out / "radius.jsonl",
        args.seconds,
        args.first,
        lambda seed: radius_one(seed, args.timeout, args.out, args.large),
        lambda r: (
            f"{r['seed']} {r['kind']} {r['norm']} [{r['lower']:.4g}, {r['upper']:.4g}] "
            f"exact={r['exact']} {r['seconds']}s {r['wrong']}"
        ),
    )
    wrong = [r for r in rows if r["wrong"]]
    exact = sum(r["exact"] for r in rows)
    print(f"{len(rows)} radius calls, {exact} exact, {len(wrong)} wrong")
    sys.exit(1 if wrong else 0)


if __name__ == "__main__":
    main()
