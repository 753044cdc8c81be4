"""Data sets for the `train` command: scikit-learn's digits or a user's .npz (x, y)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError


@dataclass(frozen=True)
class Dataset:
    """A fixed train/test split; x in [0, 1], float32 (N, *sample_shape); y int64 (N,)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    name: str

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """Shape of one input without the batch dimension."""
        return tuple(self.x_train.shape[1:])

    @property
    def n_classes(self) -> int:
        """Number of classes (max label + 1)."""
        return int(max(self.y_train.max(), self.y_test.max())) + 1


def _split(
    x: np.ndarray, y: np.ndarray, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A stratified split with a fixed seed (per class, the first shuffled share is test)."""
    rng = np.random.default_rng(seed)
    test = np.zeros(len(y), dtype=bool)
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        rng.shuffle(idx)
        test[idx[: round(len(idx) * test_fraction)]] = True
    tr, te = np.flatnonzero(~test), np.flatnonzero(test)
    rng.shuffle(tr)
    return x[tr], y[tr], x[te], y[te]


def load_dataset(source: str, seed: int = 0, test_fraction: float = 0.25) -> Dataset:
    """``digits`` (8x8 images as (N, 1, 8, 8), scaled to [0, 1]) or an .npz with arrays x and y.

    An .npz may hold x_test / y_test too; otherwise it is split like digits.  x must already lie
    in [0, 1] (the verification domain); y holds integer labels.
    """
    if source == "digits":
        try:
            from sklearn.datasets import load_digits
        except ImportError:
            raise InputError(
                "the digits data set needs scikit-learn (pip install scikit-learn)"
            ) from None
        d = load_digits()
        x = (d.images / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
        return Dataset(*_split(x, d.target.astype(np.int64), test_fraction, seed), name="digits")
    path = Path(source)
    if path.suffix != ".npz" or not path.is_file():
        raise InputError(f"{source}: DATA must be 'digits' or an existing .npz file with x and y")
    try:
        with np.load(path) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise InputError(f"{source}: cannot read the .npz ({exc})") from None
    if "x" not in arrays or "y" not in arrays:
        raise InputError(f"{source}: the .npz needs arrays 'x' and 'y' (found {sorted(arrays)})")
    x, y = arrays["x"].astype(np.float32), arrays["y"]
    if x.ndim < 2 or y.shape != (x.shape[0],) or not np.issubdtype(y.dtype, np.integer):
        raise InputError(
            f"{source}: x must be (N, ...) and y (N,) integer labels, got "
            f"{x.shape} and {y.shape} {y.dtype}"
        )
    if not np.all(np.isfinite(x)) or x.min() < 0 or x.max() > 1:
        raise InputError(f"{source}: x must lie in [0, 1]; scale it first")
    if y.min() < 0:
        raise InputError(f"{source}: labels must be >= 0")
    y = y.astype(np.int64)
    if "x_test" in arrays and "y_test" in arrays:
        return Dataset(
            x,
            y,
            arrays["x_test"].astype(np.float32),
            arrays["y_test"].astype(np.int64),
            name=path.stem,
        )
    return Dataset(*_split(x, y, test_fraction, seed), name=path.stem)
