"""Certified training: IBP / CROWN-IBP / PGD losses, schedules, data and a small trainer."""

from .data import Dataset, load_dataset
from .losses import BoundedModule, pgd_attack, robust_loss, verified_error
from .schedules import Schedule

__all__ = [
    "BoundedModule",
    "Dataset",
    "Schedule",
    "load_dataset",
    "pgd_attack",
    "robust_loss",
    "verified_error",
]
