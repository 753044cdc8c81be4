"""A small seeded training loop for standard, PGD, IBP and CROWN-IBP training, and evaluation.

Architectures: "mlp", "cnn" (small, for 8x8 digits-sized inputs) or the path of a Python file
defining ``build_model(sample_shape, n_classes) -> torch.nn.Module``.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import InputError
from .data import Dataset
from .losses import BoundedModule, certified, pgd_attack, robust_loss, unstable_relus
from .schedules import Schedule

TRAIN_METHODS = ("standard", "pgd", "ibp", "crown-ibp")


@dataclass(frozen=True)
class TrainConfig:
    """Options of one training run.

    eps: target test radius; the model trains at eps * train_eps_factor (about 1.1x is usual).
    warmup_frac / ramp_frac: shares of all steps for natural warm-up and the eps ramp.
    kappa_end: final weight of the clean loss (IBP: 0.5 as Gowal et al.; CROWN-IBP 0 as
        Zhang et al. on MNIST); None picks that default per method.
    """

    method: str = "crown-ibp"
    eps: float = 0.1
    epochs: int = 30
    batch_size: int = 64
    lr: float = 5e-3
    seed: int = 0
    train_eps_factor: float = 1.1
    warmup_frac: float = 0.1
    ramp_frac: float = 0.5
    kappa_end: float | None = None
    pgd_steps: int = 7
    threads: int = 1

    def __post_init__(self) -> None:
        """Validate the values once."""
        if self.method not in TRAIN_METHODS:
            raise InputError(
                f"unknown training method '{self.method}' (choose from {', '.join(TRAIN_METHODS)})"
            )
        if not (self.eps >= 0 and self.epochs >= 1 and self.batch_size >= 1 and self.lr > 0):
            raise InputError("train: need eps >= 0, epochs >= 1, batch_size >= 1, lr > 0")


@dataclass
class TrainResult:
    """What a run produced: the model (eval mode) and the mean training loss per epoch."""

    model: nn.Module
    losses: list[float] = field(default_factory=list)


def build_arch(arch: str, sample_shape: tuple[int, ...], n_classes: int) -> nn.Module:
    """The model named by ``arch`` ("mlp", "cnn" or a .py file with build_model)."""
    n_in = int(np.prod(sample_shape))
    if arch == "mlp":
        return nn.Sequential(
            nn.Flatten(),
            nn.Linear(n_in, 64),
            nn.ReLU(),
            nn.Linear(64, 32),
            nn.ReLU(),
            nn.Linear(32, n_classes),
        )
    if arch == "cnn":
        if len(sample_shape) != 3:
            raise InputError(f"arch 'cnn' needs (C, H, W) inputs, got {sample_shape}")
        c, h, w = sample_shape
        ho, wo = (h + 1) // 2, (w + 1) // 2
        return nn.Sequential(
            nn.Conv2d(c, 8, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(8 * ho * wo, 32),
            nn.ReLU(),
            nn.Linear(32, n_classes),
        )
    path = Path(arch)
    if path.suffix != ".py" or not path.is_file():
        raise InputError(f"--arch must be mlp, cnn or an existing .py file, got '{arch}'")
    spec = importlib.util.spec_from_file_location(f"cv_arch_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise InputError(f"{arch}: cannot load this Python file")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    build = getattr(mod, "build_model", None)
    if build is None:
        raise InputError(f"{arch}: define build_model(sample_shape, n_classes) returning a module")
    model = build(tuple(sample_shape), n_classes)
    if not isinstance(model, nn.Module):
        raise InputError(f"{arch}: build_model returned {type(model).__name__}, not a torch module")
    return model


def _batches(n: int, size: int, gen: np.random.Generator) -> Iterator[np.ndarray]:
    """Shuffled index batches covering range(n) once."""
    perm = gen.permutation(n)
    for i in range(0, n, size):
        yield perm[i : i + size]


Progress = Callable[[Iterable, int], Iterable]


def train(
    model: nn.Module, data: Dataset, config: TrainConfig, progress: Progress | None = None
) -> TrainResult:
    """Train ``model`` on data.x_train in place (seeded); returns it in eval mode with the losses.

    progress: optional wrapper (iterable, total) -> iterable, e.g. a tqdm progress bar over
    the training steps.
    """
    torch.manual_seed(config.seed)
    gen = np.random.default_rng(config.seed)
    previous = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        return _train(model, data, config, progress, gen)
    finally:
        torch.set_num_threads(previous)


def _train(
    model: nn.Module,
    data: Dataset,
    config: TrainConfig,
    progress: Progress | None,
    gen: np.random.Generator,
) -> TrainResult:
    """The loop of train()."""
    n = len(data.y_train)
    per_epoch = math.ceil(n / config.batch_size)
    total = per_epoch * config.epochs
    kappa_end = config.kappa_end
    if kappa_end is None:
        kappa_end = 0.0 if config.method == "crown-ibp" else 0.5
    sched = Schedule.of(
        total, config.eps * config.train_eps_factor, config.warmup_frac, config.ramp_frac, kappa_end
    )
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    lr_sched = torch.optim.lr_scheduler.MultiStepLR(
        opt, milestones=[int(total * 0.75), int(total * 0.9)], gamma=0.3
    )
    bounded = BoundedModule(model, data.sample_shape)
    xs, ys = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    steps: Iterable = range(total)
    if progress is not None:
        steps = progress(steps, total)
    result = TrainResult(model)
    model.train()
    batches: Iterator[np.ndarray] = iter(())
    epoch_loss, seen = 0.0, 0
    for step in steps:
        idx = next(batches, None)
        if idx is None:
            if seen:
                result.losses.append(epoch_loss / seen)
            epoch_loss, seen = 0.0, 0
            batches = _batches(n, config.batch_size, gen)
            idx = next(batches)
        x, y = xs[idx], ys[idx]
        eps = sched.eps_at(step)
        if config.method == "standard" or eps == 0:
            loss = nn.functional.cross_entropy(model(x), y)
        elif config.method == "pgd":
            loss = robust_loss(
                model, x, y, eps, method="pgd", pgd_steps=config.pgd_steps, seed=config.seed + step
            )
        else:
            beta = sched.beta_at(step) if config.method == "crown-ibp" else 0.0
            loss = robust_loss(
                bounded, x, y, eps, method=config.method, beta=beta, kappa=sched.kappa_at(step)
            )
        opt.zero_grad()
        loss.backward()
        opt.step()
        lr_sched.step()
        epoch_loss += float(loss.detach()) * len(idx)
        seen += len(idx)
    if seen:
        result.losses.append(epoch_loss / seen)
    model.eval()
    return result


def evaluate(
    model: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    eps: float,
    domain: tuple[float, float] = (0.0, 1.0),
    pgd_steps: int = 20,
    seed: int = 0,
) -> dict[str, float]:
    """Clean, PGD, IBP-, CROWN-IBP- and CROWN-verified accuracy and mean unstable ReLUs.

    x: (N, *sample_shape) in the domain; y: (N,).  Bound-verified figures use the engine's
    sound mode; PGD uses 20 steps and 3 restarts.
    """
    model.eval()
    xt, yt = torch.from_numpy(np.asarray(x, np.float32)), torch.from_numpy(np.asarray(y, np.int64))
    bounded = BoundedModule(model, tuple(xt.shape[1:]))
    with torch.no_grad():
        clean = model(xt).argmax(1) == yt
    adv = pgd_attack(model, xt, yt, eps, pgd_steps, domain, seed, restarts=3)
    with torch.no_grad():
        pgd_ok = clean & (model(adv).argmax(1) == yt)
    out = {"clean": float(clean.float().mean()), "pgd": float(pgd_ok.float().mean())}
    for method in ("ibp", "crown-ibp", "crown"):
        out[method] = float(
            certified(bounded, xt, yt, eps, method=method, domain=domain).float().mean()
        )
    out["unstable"] = float(unstable_relus(bounded, xt, eps, domain).float().mean())
    return out
