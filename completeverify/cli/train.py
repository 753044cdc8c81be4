"""The ``train`` subcommand: certified training on digits or an .npz, exported to ONNX."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .args import CliInputError, existing_parent, positive_float, positive_int


def _nonneg_float(text: str) -> float:
    """argparse type: a number >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: '{text}'") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0: '{text}'")
    return value


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add ``train`` to the top-level subparsers."""
    p = sub.add_parser(
        "train",
        help="train a model (standard, PGD, IBP or CROWN-IBP) and export it to ONNX",
        description="Train a classifier with the eps ramp and kappa/beta schedules of CROWN-IBP "
        "(Zhang et al. 2020) and export it to ONNX for verify. Seeded; prints the "
        "clean, PGD and bound-verified test accuracy at --eps at the end.",
    )
    p.add_argument(
        "data",
        help="'digits' (scikit-learn, scaled to [0,1], stratified 75/25 split "
        "with --seed) or an .npz with x (N, ...) in [0,1] and y (N,)",
    )
    p.add_argument(
        "--arch",
        default="mlp",
        help="mlp, cnn, or a .py file defining build_model(sample_shape, n_classes)",
    )
    p.add_argument(
        "--method",
        default="crown-ibp",
        choices=["standard", "pgd", "ibp", "crown-ibp"],
        help="training loss (default crown-ibp)",
    )
    p.add_argument(
        "--eps",
        type=_nonneg_float,
        default=0.1,
        help="target L-inf radius on the [0,1] scale (default 0.1)",
    )
    p.add_argument(
        "--train-eps-factor",
        type=positive_float,
        default=1.1,
        metavar="F",
        help="train at F * eps (default 1.1)",
    )
    p.add_argument("--epochs", type=positive_int, default=30, help="epochs (default 30)")
    p.add_argument("--batch-size", type=positive_int, default=64, help="batch size (default 64)")
    p.add_argument(
        "--lr", type=positive_float, default=5e-3, help="Adam learning rate (default 5e-3)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the split, init and batches")
    p.add_argument("--out", default="model.onnx", help="ONNX file to write (default model.onnx)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the final metrics as JSON")
    p.set_defaults(func=run_train)


def run_train(args: argparse.Namespace) -> int:
    """Load data, build the model, train, evaluate, export."""
    import torch

    from ..torch_import import export_onnx
    from ..training.data import load_dataset
    from ..training.trainer import TrainConfig, build_arch, evaluate, train

    if not args.out.endswith(".onnx"):
        raise CliInputError(f"--out must end with .onnx, got '{args.out}'")
    existing_parent(args.out, "--out")
    data = load_dataset(args.data, seed=args.seed)
    torch.manual_seed(args.seed)
    model = build_arch(args.arch, data.sample_shape, data.n_classes)
    config = TrainConfig(
        method=args.method,
        eps=args.eps,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        train_eps_factor=args.train_eps_factor,
    )
    progress: Any = None
    if not args.no_progress:
        from tqdm import tqdm

        def progress(it: Any, total: int) -> Any:
            """A tqdm bar over the training steps."""
            return tqdm(
                it,
                total=total,
                desc=f"train {args.method}",
                unit="step",
                file=sys.stderr,
                leave=False,
            )

    result = train(model, data, config, progress)
    Path(args.out).write_bytes(export_onnx(model, (1,) + data.sample_shape))
    metrics = evaluate(model, data.x_test, data.y_test, args.eps) if args.eps > 0 else {}
    metrics = {"final_loss": result.losses[-1], **metrics}
    if args.json:
        print(json.dumps(metrics))
    else:
        print(
            f"wrote {args.out} ({data.name}, {len(data.y_train)} train / "
            f"{len(data.y_test)} test, {args.arch}, {args.method}, eps {args.eps})"
        )
        for key, value in metrics.items():
            print(f"  {key:>10}: {value:.4f}")
    return 0
