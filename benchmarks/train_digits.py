"""Train the two small digits models shipped in examples/ and export them to ONNX.

    python benchmarks/train_digits.py [--out examples]

Standard (not certified) training with Adam on scikit-learn's 8x8 digits, train split of
completeverify.robustness.data.digits_split (pixels in [0, 1]); seeded, CPU, a few seconds.
* digits_mlp.onnx: 64-32-32-10 fully connected ReLU network, input (1, 64);
* digits_cnn.onnx: Conv(4, 3x3) - ReLU - Conv(8, 3x3, stride 2) - ReLU - 128-32-10, input
  (1, 1, 8, 8).
Prints the test accuracy of each.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from torch import nn

from completeverify.robustness.data import digits_split


def mlp() -> nn.Module:
    """The fully connected model."""
    return nn.Sequential(
        nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 10)
    )


def cnn() -> nn.Module:
    """The convolutional model."""
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(4, 8, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(128, 32),
        nn.ReLU(),
        nn.Linear(32, 10),
    )


def train(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int = 60, seed: int = 0
) -> nn.Module:
    """Adam, batch 64, cross-entropy."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(epochs):
        perm = torch.randperm(len(y), generator=gen)
        for i in range(0, len(y), 64):
            idx = perm[i : i + 64]
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    return model


def main() -> None:
    """Train, report test accuracy, export."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="examples", help="folder for the .onnx files")
    args = ap.parse_args()
    torch.manual_seed(0)
    xtr, ytr, xte, yte = digits_split()
    for name, make, shape in (("digits_mlp", mlp, (1, 64)), ("digits_cnn", cnn, (1, 1, 8, 8))):
        torch.manual_seed(0)
        model = make()
        xt = torch.as_tensor(xtr).reshape((-1,) + shape[1:])
        train(model, xt, torch.as_tensor(ytr))
        model.eval()
        with torch.no_grad():
            pred = model(torch.as_tensor(xte).reshape((-1,) + shape[1:])).argmax(1).numpy()
        acc = float(np.mean(pred == yte))
        path = Path(args.out) / f"{name}.onnx"
        torch.onnx.export(
            model,
            torch.zeros(shape),
            str(path),
            input_names=["x"],
            output_names=["y"],
            dynamo=False,
            opset_version=13,
        )
        print(f"{name}: test accuracy {acc:.4f}, {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
