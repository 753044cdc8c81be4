"""Linear relaxations of the activations (ReLU, Sigmoid, Tanh, MaxPool) and their backward steps.

Each relaxation is built once from the bounds (l, u) of the activation's input, each (B, size)
float64, and then maps a coefficient matrix A (B, M, n_out) on the activation's output to a
coefficient matrix on its input plus a bias (B, M), such that
``A @ act(z) >= A_in @ z + bias`` for every z in [l, u] (the lower-bound direction).

The table ``RELAX`` maps each activation op type (``caps.activation``) to the function that
builds its relaxation: ``RELAX[type(op)](op, params, n_in, lo, hi)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import torch

from ..graph import LeakyRelu, MaxPool, Relu, Sigmoid, Tanh


class Relaxation(Protocol):
    """What the bound engine needs of a relaxation: its backward step."""

    def backward(
        self,
        a: torch.Tensor,
        alpha: torch.Tensor | None = None,
        beta_term: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(A_in (B, M, n_in), bias (B, M)) for a coefficient matrix A (B, M, n_out)."""
        ...

    def magnitude(self, m_in: torch.Tensor) -> torch.Tensor:
        """(B, n_out) >= 0, given m_in (B, n_in) >= |z|, such that |A| @ magnitude bounds what
        one backward step sums and multiplies: sum |A| |intercept|, and |A_in| @ m_in for the
        A_in it returns without split terms.  gamma * (|A| @ magnitude) then bounds the step's
        rounding, including the lines' own (rounding.py, bounds/engine.py)."""
        ...


SMOOTH_EPS = 1e-12  # absolute safety margin on the intercepts of sigmoid/tanh lines
BISECT_STEPS = 60


class ReluRelax:
    """ReLU: upper = chord u/(u-l)(z-l); lower = alpha z (alpha in [0,1]); stable neurons exact."""

    def __init__(self, lo: torch.Tensor, hi: torch.Tensor) -> None:
        """Precompute slopes from the input bounds (B, size)."""
        self.lo, self.hi = lo, hi
        active = lo >= 0
        inactive = (hi <= 0) & ~active
        self.unstable = ~(active | inactive)
        den = torch.where(self.unstable, hi - lo, torch.ones_like(hi))
        chord = torch.where(self.unstable, hi / den, torch.zeros_like(hi))
        self.up_slope = torch.where(active, torch.ones_like(hi), chord)
        self.up_int = torch.where(self.unstable, -lo * chord, torch.zeros_like(hi))
        adaptive = (hi > -lo).to(hi.dtype)
        self.lo_default = torch.where(
            active, torch.ones_like(hi), torch.where(self.unstable, adaptive, torch.zeros_like(hi))
        )

    def magnitude(self, m_in: torch.Tensor) -> torch.Tensor:
        """3 max(|l|, |u|): both slopes lie in [0, 1] (so |A_in| <= |A|) and the intercept in
        [0, max(-l, u)] (LeakyReLU: slopes in [s, 1], |intercept| <= |l|)."""
        return 3 * self.lo.abs().maximum(self.hi.abs())

    def lower_slope(self, alpha: torch.Tensor | None) -> torch.Tensor:
        """Lower slopes (B, 1|M, size): alpha on unstable neurons, exact elsewhere."""
        if alpha is None:
            return self.lo_default.unsqueeze(1)
        return torch.where(self.unstable.unsqueeze(1), alpha, self.lo_default.unsqueeze(1))

    def backward(
        self,
        a: torch.Tensor,
        alpha: torch.Tensor | None = None,
        beta_term: torch.Tensor | None = None,
        z_term: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(A_in, bias); beta_term (B, M, size) is added to the coefficient on the input;
        z_term (B, M, size): coefficients q on the neurons' indicators z (see ``z_backward``)."""
        if z_term is not None:
            a_in, bias = self.z_backward(a, z_term, alpha)
        else:
            slope = torch.where(a >= 0, self.lower_slope(alpha), self.up_slope.unsqueeze(1))
            a_in = a * slope
            bias = (a.clamp(max=0) @ self.up_int.unsqueeze(2)).squeeze(2)
        if beta_term is not None:
            a_in = a_in + beta_term
        return a_in, bias

    def z_backward(
        self, a: torch.Tensor, q: torch.Tensor, alpha: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Lower line of lam * relu(x) + q * z over x in [l, u], z the neuron's indicator.

        z is 1 where x > 0, 0 where x < 0 and either at x = 0 (the values of the big-M MILP's
        indicator at the network's points).  With l < 0 < u the hull of those points
        (x, relu(x), z) has the vertices (l, 0, 0), (0, 0, 0), (0, 0, 1), (u, u, 1), so the
        minimum over it at a given x is the lower convex envelope of (l, 0), (0, min(0, q)) and
        (u, lam u + q).  Where that is convex (left slope <= right slope) every slope between
        the two is a tangent line at 0 (chosen by alpha in [0, 1], which gives alpha * lam when
        q = 0); otherwise the chord from (l, 0) to (u, lam u + q) is the best line.  l = 0 or
        u = 0 keep x = 0 where both z are possible; l > 0 and u < 0 are exact.
        """
        lo, hi = self.lo.unsqueeze(1), self.hi.unsqueeze(1)
        m0 = q.clamp(max=0)
        l_, u_ = lo.clamp(max=0), hi.clamp(min=0)
        left, right = l_ < 0, u_ > 0
        both = left & right
        one = torch.ones_like(lo)
        zero = torch.zeros_like(a)
        top = a * u_ + q  # value at (u, u, 1)
        s_left = torch.where(left, m0 / torch.where(left, -l_, one), zero)
        s_right = torch.where(right, (top - m0) / torch.where(right, u_, one), zero)
        convex = s_left <= s_right
        chord = top / torch.where(both, u_ - l_, one)
        tangent = s_left + self.lower_slope(alpha) * (s_right - s_left)
        slope = torch.where(
            both,
            torch.where(convex, tangent, chord),
            torch.where(left, s_left, torch.where(right, s_right, zero)),
        )
        icpt = torch.where(both & ~convex, -l_ * chord, m0)
        pos, neg = lo > 0, hi < 0
        slope = torch.where(pos, a, torch.where(neg, zero, slope))
        icpt = torch.where(pos, q, torch.where(neg, zero, icpt))
        return slope, icpt.sum(2)


class LeakyReluRelax(ReluRelax):
    """LeakyReLU max(z, s z), 0 <= s <= 1: upper = chord from (l, s l) to (u, u); lower =
    alpha z with alpha in [s, 1] (below f on both pieces); stable neurons exact (slope 1 or s)."""

    def __init__(self, lo: torch.Tensor, hi: torch.Tensor, slope: float) -> None:
        """Precompute slopes from the input bounds (B, size); slope: the negative-side slope s."""
        self.lo, self.hi = lo, hi
        active = lo >= 0
        inactive = (hi <= 0) & ~active
        self.slope = slope
        self.unstable = ~(active | inactive)
        one, zero = torch.ones_like(hi), torch.zeros_like(hi)
        den = torch.where(self.unstable, hi - lo, one)
        chord = torch.where(self.unstable, (hi - slope * lo) / den, zero)
        self.up_slope = torch.where(active, one, torch.where(self.unstable, chord, one * slope))
        self.up_int = torch.where(self.unstable, lo * (slope - chord), zero)
        adaptive = torch.where(hi > -lo, one, one * slope)
        self.lo_default = torch.where(
            active, one, torch.where(self.unstable, adaptive, one * slope)
        )


class LineRelax:
    """Elementwise relaxation given directly by lower/upper lines (B, size) each."""

    def __init__(
        self,
        lo_slope: torch.Tensor,
        lo_int: torch.Tensor,
        up_slope: torch.Tensor,
        up_int: torch.Tensor,
    ) -> None:
        """Store the four (B, size) tensors."""
        self.lo_slope, self.lo_int, self.up_slope, self.up_int = lo_slope, lo_int, up_slope, up_int

    def backward(
        self,
        a: torch.Tensor,
        alpha: torch.Tensor | None = None,
        beta_term: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(A_in, bias) for the lower-bound direction."""
        pos, neg = a.clamp(min=0), a.clamp(max=0)
        a_in = pos * self.lo_slope.unsqueeze(1) + neg * self.up_slope.unsqueeze(1)
        bias = (pos @ self.lo_int.unsqueeze(2)).squeeze(2) + (
            neg @ self.up_int.unsqueeze(2)
        ).squeeze(2)
        return a_in, bias

    def magnitude(self, m_in: torch.Tensor) -> torch.Tensor:
        """(|lower slope| + |upper slope|) m + |lower intercept| + |upper intercept| (the slope
        used is one of the two)."""
        return (self.lo_slope.abs() + self.up_slope.abs()) * m_in + (
            self.lo_int.abs() + self.up_int.abs()
        )


def _sigmoid_d(x: torch.Tensor) -> torch.Tensor:
    """Derivative of the logistic sigmoid."""
    s = torch.sigmoid(x)
    return s * (1 - s)


def _tanh_d(x: torch.Tensor) -> torch.Tensor:
    """Derivative of tanh."""
    t = torch.tanh(x)
    return 1 - t * t


def _upper_line(
    f: Callable, df: Callable, lo: torch.Tensor, hi: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """An upper line of an S-shaped f (convex for z < 0, concave for z > 0) on [lo, hi], lo < hi.

    u <= 0: the chord.  l >= 0: the tangent at the midpoint.  l < 0 < u: the chord when its
    slope is <= f'(u) (chord minus f is concave left of 0 and convex right of 0), else the tangent
    at a point d >= 0 whose line passes above (l, f(l)), found by bisection (the line through d
    is valid whenever it lies above f at l).
    """
    fl, fu = f(lo), f(hi)
    chord_k = (fu - fl) / (hi - lo)
    chord_b = fl - chord_k * lo
    mid = (lo + hi) / 2
    tan_k = df(mid)
    tan_b = f(mid) - tan_k * mid
    # mixed case: search d in [0, hi] with tangent_d(lo) >= f(lo)
    dlo, dhi = torch.zeros_like(hi), hi.clamp(min=0)
    for _ in range(BISECT_STEPS):
        d = (dlo + dhi) / 2
        ok = f(d) + df(d) * (lo - d) >= fl
        dhi = torch.where(ok, d, dhi)
        dlo = torch.where(ok, dlo, d)
    dk = df(dhi)
    db = f(dhi) - dk * dhi
    d_valid = db + dk * lo >= fl
    chord_ok = (hi <= 0) | ((lo < 0) & (chord_k <= df(hi)))
    # fallback when the search fails: the constant f(hi) (f is increasing)
    mixed_k = torch.where(d_valid, dk, torch.zeros_like(dk))
    mixed_b = torch.where(d_valid, db, fu)
    k = torch.where(chord_ok, chord_k, torch.where(lo >= 0, tan_k, mixed_k))
    b = torch.where(chord_ok, chord_b, torch.where(lo >= 0, tan_b, mixed_b))
    return k, b


def smooth_relax(kind: str, lo: torch.Tensor, hi: torch.Tensor) -> LineRelax:
    """Sound lines for sigmoid ("sigmoid") or tanh ("tanh") on [lo, hi] (B, size) each."""
    f, df = (torch.sigmoid, _sigmoid_d) if kind == "sigmoid" else (torch.tanh, _tanh_d)
    f0 = 0.5 if kind == "sigmoid" else 0.0
    narrow = (hi - lo) <= 1e-7 * (1 + lo.abs() + hi.abs())
    lo_s = torch.where(narrow, lo - 1, lo)  # keep the formulas finite; narrow ones use constants
    hi_s = torch.where(narrow, hi + 1, hi)
    uk, ub = _upper_line(f, df, lo_s, hi_s)
    # lower line by symmetry: f(z) = 2 f0 - f(-z)
    lk, lb_neg = _upper_line(f, df, -hi_s, -lo_s)
    lb_ = 2 * f0 - lb_neg
    zero = torch.zeros_like(lo)
    lk = torch.where(narrow, zero, lk)
    lb_ = torch.where(narrow, f(lo), lb_)
    uk = torch.where(narrow, zero, uk)
    ub = torch.where(narrow, f(hi), ub)
    margin = SMOOTH_EPS * (1 + lk.abs() * lo.abs().maximum(hi.abs()))
    ok = torch.isfinite(lo) & torch.isfinite(hi)
    lower_const = torch.full_like(lo, f0 * 2 - 1)  # inf of the range: 0 (sigmoid) / -1 (tanh)
    upper_const = torch.ones_like(hi)
    lk = torch.where(ok, lk, zero)
    uk = torch.where(ok, uk, zero)
    lb_ = torch.where(ok, lb_ - margin, lower_const)
    ub = torch.where(ok, ub + SMOOTH_EPS * (1 + uk.abs() * lo.abs().maximum(hi.abs())), upper_const)
    return LineRelax(lk, lb_, uk, ub)


class MaxPoolRelax:
    """MaxPool: lower = the window input with the largest lower bound; upper = that input when it
    dominates its window (exact), else the constant max upper bound of the window."""

    def __init__(
        self, windows: torch.Tensor, n_in: int, lo: torch.Tensor, hi: torch.Tensor
    ) -> None:
        """windows: (n_out, k) flat input indices; lo/hi: (B, n_in) input bounds."""
        lw, uw = lo[:, windows], hi[:, windows]  # (B, n_out, k)
        best_l, arg = lw.max(dim=2)
        self.n_in = n_in
        self.sel = windows[torch.arange(windows.shape[0]).unsqueeze(0), arg]  # (B, n_out)
        others = uw.scatter(2, arg.unsqueeze(2), float("-inf"))
        same = windows.unsqueeze(0) == self.sel.unsqueeze(2)  # padding duplicates of sel
        others = torch.where(same, torch.full_like(others, float("-inf")), others)
        self.exact = (best_l >= others.amax(dim=2)).to(lo.dtype)
        self.umax = uw.amax(dim=2)
        self.mag = 2 * lw.abs().maximum(uw.abs()).amax(dim=2)  # slopes 0/1, |umax| <= the max

    def magnitude(self, m_in: torch.Tensor) -> torch.Tensor:
        """2 max |input| over each window: each coefficient moves to one input of its window (a
        sum over windows that share it), and the constant upper line is at most that."""
        return self.mag

    def backward(
        self,
        a: torch.Tensor,
        alpha: torch.Tensor | None = None,
        beta_term: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(A_in, bias) by scattering the coefficients onto the selected inputs."""
        pos, neg = a.clamp(min=0), a.clamp(max=0)
        exact = self.exact.unsqueeze(1)
        coef = pos + neg * exact
        b, m, n_out = a.shape
        a_in = a.new_zeros(b, m, self.n_in).scatter_add(
            2, self.sel.unsqueeze(1).expand(b, m, n_out), coef
        )
        free = neg * (1 - exact)
        bias = (torch.where(free != 0, free * self.umax.unsqueeze(1), torch.zeros_like(free))).sum(
            -1
        )
        return a_in, bias


def _relax_relu(op: Relu, p: dict, n_in: int, lo: torch.Tensor, hi: torch.Tensor) -> Relaxation:
    """ReLU: triangle relaxation with an optimisable lower slope."""
    return ReluRelax(lo, hi)


def _relax_leaky_relu(
    op: LeakyRelu, p: dict, n_in: int, lo: torch.Tensor, hi: torch.Tensor
) -> Relaxation:
    """LeakyReLU: the ReLU triangle with negative-side slope alpha; optimisable lower slope."""
    return LeakyReluRelax(lo, hi, op.alpha)


def _relax_sigmoid(
    op: Sigmoid, p: dict, n_in: int, lo: torch.Tensor, hi: torch.Tensor
) -> Relaxation:
    """Sigmoid: sound tangent/chord lines."""
    return smooth_relax("sigmoid", lo, hi)


def _relax_tanh(op: Tanh, p: dict, n_in: int, lo: torch.Tensor, hi: torch.Tensor) -> Relaxation:
    """Tanh: sound tangent/chord lines."""
    return smooth_relax("tanh", lo, hi)


def _relax_maxpool(
    op: MaxPool, p: dict, n_in: int, lo: torch.Tensor, hi: torch.Tensor
) -> Relaxation:
    """MaxPool: the input with the largest lower bound below, exact or constant above."""
    return MaxPoolRelax(p["windows"], n_in, lo, hi)


# op type -> (op, params, input size, input lower (B, n_in), input upper (B, n_in)) -> relaxation
RELAX: dict[type, Callable[[Any, dict, int, torch.Tensor, torch.Tensor], Relaxation]] = {
    Relu: _relax_relu,
    LeakyRelu: _relax_leaky_relu,
    Sigmoid: _relax_sigmoid,
    Tanh: _relax_tanh,
    MaxPool: _relax_maxpool,
}
