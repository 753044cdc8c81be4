"""Data for ``certify``: the built-in digits, user arrays (.npz with x and y), VNN-COMP folders.

Built-in ``digits``: scikit-learn's 8x8 digits (1,797 images shipped with scikit-learn), pixels
scaled from 0..16 to [0, 1], split once with a fixed seed (75% train, 25% test).  The models in
examples/ (digits_mlp.onnx, digits_cnn.onnx) were trained on the train split by
benchmarks/train_digits.py.

A VNN-COMP robustness folder (e.g. mnist_fc): every .vnnlib with a single box whose polytopes
are "Y_j >= Y_k" rows gives one input: the box centre and the label k.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError

DIGITS_SEED = 0
DIGITS_TEST_SHARE = 0.25


def digits_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train (N, 64), y_train (N,), x_test (M, 64), y_test (M,)), pixels in [0, 1], float32."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise InputError(
            "the built-in 'digits' data needs scikit-learn (pip install scikit-learn)"
        ) from None
    data = load_digits()
    x = (data.data / 16.0).astype(np.float32)
    y = data.target.astype(np.int64)
    order = np.random.default_rng(DIGITS_SEED).permutation(len(y))
    n_test = round(len(y) * DIGITS_TEST_SHARE)
    test, train = order[:n_test], order[n_test:]
    return x[train], y[train], x[test], y[test]


def load_data(
    source: str, limit: int | None = None
) -> tuple[np.ndarray, np.ndarray, tuple[float, float] | None, list[str]]:
    """(x (N, n) float64, y (N,) int, domain or None, names) from DATA as ``certify`` takes it.

    source: "digits" (domain [0, 1]), an .npz with arrays x and y, or a folder of .vnnlib files.
    """
    out: tuple[np.ndarray, np.ndarray, tuple[float, float] | None, list[str]]
    if source == "digits":
        _, _, x, y = digits_split()
        names = [f"digits_test_{i}" for i in range(len(y))]
        out = (x.astype(np.float64), y, (0.0, 1.0), names)
    elif str(source).endswith(".npz"):
        path = Path(source)
        if not path.is_file():
            raise InputError(f"{source}: no such file")
        with np.load(path) as z:
            if "x" not in z or "y" not in z:
                raise InputError(f"{source}: needs arrays 'x' and 'y' (found {', '.join(z.files)})")
            x = np.asarray(z["x"], dtype=np.float64)
            y = np.asarray(z["y"]).astype(np.int64).reshape(-1)
        if x.shape[0] != y.shape[0]:
            raise InputError(f"{source}: x has {x.shape[0]} rows but y has {y.shape[0]}")
        out = (x.reshape(x.shape[0], -1), y, None, [f"{path.stem}_{i}" for i in range(len(y))])
    elif Path(source).is_dir():
        out = _vnnlib_folder(Path(source))
    else:
        raise InputError(f"{source}: DATA must be 'digits', an .npz file or a folder of .vnnlib")
    x, y, dom, names = out
    if limit is not None:
        x, y, names = x[:limit], y[:limit], names[:limit]
    return x, y, dom, names


def _vnnlib_folder(
    folder: Path,
) -> tuple[np.ndarray, np.ndarray, tuple[float, float] | None, list[str]]:
    """Centres and labels of the robustness properties in folder (one per distinct centre)."""
    from ..vnnlib import load_vnnlib

    files = sorted(folder.glob("*.vnnlib")) + sorted(folder.glob("vnnlib/*.vnnlib"))
    if not files:
        raise InputError(f"{folder}: no .vnnlib files")
    xs, ys, names, seen = [], [], [], set()
    for f in files:
        prop = load_vnnlib(f)
        if len(prop.cases) != 1:
            continue
        case = prop.cases[0]
        label = _label_of(case.polytopes)
        if label is None:
            continue
        centre = _centre(case.lower, case.upper)
        key = (centre.round(5).tobytes(), label)
        if key in seen:
            continue
        seen.add(key)
        xs.append(centre)
        ys.append(label)
        names.append(f.stem)
    if not xs:
        raise InputError(f"{folder}: no robustness property (one box, rows Y_j >= Y_k) found")
    x = np.stack(xs)
    dom = (0.0, 1.0) if x.min() >= 0 and x.max() <= 1 else None
    return x, np.asarray(ys, dtype=np.int64), dom, names


def _centre(lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """The point the box was built around: boxes are [max(lo, x - eps), min(hi, x + eps)].

    eps is the widest half-width; a narrower coordinate was clipped at the domain's bottom
    (its lower bound is the smallest lower bound) or top, and its point is eps inside the other end.
    """
    half = (upper - lower) / 2
    eps = float(half.max())
    clipped = half < eps * (1 - 1e-6)
    at_bottom = lower <= lower.min()
    x = np.where(at_bottom, np.maximum(upper - eps, lower), np.minimum(lower + eps, upper))
    return np.where(clipped, x, (lower + upper) / 2)


def _label_of(polytopes) -> int | None:
    """k when every polytope is one row y_k - y_j <= 0 (or its negation form), else None."""
    labels = set()
    for p in polytopes:
        if p.C.shape[0] != 1 or p.d[0] != 0:
            return None
        row = p.C[0]
        pos, neg = np.flatnonzero(row > 0), np.flatnonzero(row < 0)
        if len(pos) != 1 or len(neg) != 1:
            return None
        labels.add(int(pos[0]))
    return labels.pop() if len(labels) == 1 else None
