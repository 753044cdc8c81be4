"""Where the bound engine and branch and bound put their tensors (``VerifyConfig.device``).

The whole of one ``verify_graph`` call runs inside ``device_scope``: torch's default device is
set there, so every tensor the bound engine, the searches and PGD create lands on that device
(parameters are cached per dtype and device in ``Graph.params``).  Values cross to numpy only at
the host boundaries (MILP encoding, ONNX replay, numpy results), each through ``.cpu()``.

The soundness rules do not depend on the device: the engine stays in float64 with the same
outward margins, and every ``sat`` is still replayed by onnxruntime on the host.  On ``cpu``
no device mode is entered at all (it would add a dispatch step to every torch call) unless
``force`` is set, which tests use to run the device-specific path on the CPU.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from .errors import InputError

DEVICES = ("cpu", "cuda")


def check_device_name(name: str) -> None:
    """Raise InputError unless name is 'cpu', 'cuda' or 'cuda:N' (no torch needed)."""
    base, _, index = name.partition(":")
    if base not in DEVICES or (index and (base != "cuda" or not index.isdigit())):
        raise InputError(f"unknown device '{name}' (choose cpu, cuda or cuda:N)")


def resolve_device(name: str):
    """The torch.device for name; InputError when CUDA is asked for but not available."""
    import torch

    check_device_name(name)
    dev = torch.device(name)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(
                f"device '{name}' requested but this torch build sees no CUDA device "
                f"(torch {torch.__version__}); use --device cpu"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise InputError(
                f"device '{name}' requested but only {torch.cuda.device_count()} CUDA "
                "device(s) exist"
            )
    return dev


@contextmanager
def device_scope(name: str, force: bool = False) -> Iterator[None]:
    """Make ``name`` torch's default device for the duration (a no-op on cpu unless force)."""
    dev = resolve_device(name)
    if dev.type == "cpu" and not force:
        yield
        return
    import torch

    with torch.device(dev):
        yield
