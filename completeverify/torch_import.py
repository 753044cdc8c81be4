"""torch.nn.Module -> Graph (placeholder; the training work implements it)."""

from __future__ import annotations

from typing import Any

from .errors import ModelError
from .graph import Graph


def load_torch(module: Any, example_input: Any) -> Graph:
    """A verifiable Graph of ``module`` at an input shaped like ``example_input``."""
    raise ModelError("torch modules are not supported yet; export the model to ONNX first")
