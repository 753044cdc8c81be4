"""Verdicts, counterexamples, and the independent replay that every `sat` must pass.

The replay runs the ORIGINAL ONNX model through onnxruntime (a core dependency) or
onnx's reference evaluator; neither shares code with the project's Graph.  A
counterexample counts only if its input lies in the box (after the cast to the
model's float type) and its replayed output satisfies one unsafe polytope with
zero tolerance.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Optional, cast

import numpy as np
import onnx

from .errors import ModelError, ReplayMismatchError


class Status(str, enum.Enum):
    """The four answers."""

    SAT = "sat"
    UNSAT = "unsat"
    UNKNOWN = "unknown"
    TIMEOUT = "timeout"

    def __str__(self) -> str:
        """The bare word."""
        return self.value


@dataclass(frozen=True)
class Counterexample:
    """A replayed witness: input and output in the ONNX model's own shapes."""

    input: np.ndarray
    output: np.ndarray
    case: int = 0
    polytope: int = 0


@dataclass
class Result:
    """The outcome of one verification call."""

    status: Status
    counterexample: Optional[Counterexample] = None
    stats: dict = field(default_factory=dict)
    message: str = ""

    def to_vnncomp(self) -> str:
        """The VNN-COMP result-file text."""
        if self.status != Status.SAT or self.counterexample is None:
            return f"{self.status.value}\n"
        xs = np.asarray(self.counterexample.input, dtype=np.float64).reshape(-1)
        ys = np.asarray(self.counterexample.output, dtype=np.float64).reshape(-1)
        lines = [f"(X_{i} {float(v)!r})" for i, v in enumerate(xs)]
        lines += [f"(Y_{j} {float(v)!r})" for j, v in enumerate(ys)]
        return "sat\n(" + "\n ".join(lines) + ")\n"

    def to_dict(self) -> dict:
        """A JSON-ready summary."""
        out = {
            "status": self.status.value,
            "seconds": self.stats.get("total", None),
            "stats": self.stats,
        }
        if self.message:
            out["message"] = self.message
        if self.counterexample is not None:
            out["counterexample"] = {
                "input": np.asarray(self.counterexample.input, dtype=np.float64)
                .reshape(-1)
                .tolist(),
                "output": np.asarray(self.counterexample.output, dtype=np.float64)
                .reshape(-1)
                .tolist(),
                "input_shape": list(np.shape(self.counterexample.input)),
                "output_shape": list(np.shape(self.counterexample.output)),
            }
        return out


_NP_TYPES = {onnx.TensorProto.FLOAT: np.float32, onnx.TensorProto.DOUBLE: np.float64}


class Replayer:
    """Runs the original ONNX model, independently of the project's Graph."""

    def __init__(self, model: onnx.ModelProto, backend: str = "auto") -> None:
        """Prepare onnxruntime or the reference evaluator for ``model``."""
        inits = {i.name for i in model.graph.initializer}
        inputs = [vi for vi in model.graph.input if vi.name not in inits]
        if len(inputs) != 1:
            raise ModelError("replay needs a model with exactly one input")
        self.input_name = inputs[0].name
        self.dtype = _NP_TYPES.get(inputs[0].type.tensor_type.elem_type, np.float32)
        self.shape = tuple(
            d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else 1
            for d in inputs[0].type.tensor_type.shape.dim
        )
        self.output_name = model.graph.output[0].name
        self.backend = backend
        self._run: Callable[[np.ndarray], Any] | None = None
        if backend in ("auto", "onnxruntime"):
            try:
                import onnxruntime as ort

                opts = ort.SessionOptions()
                opts.log_severity_level = 3
                opts.intra_op_num_threads = 1
                sess = ort.InferenceSession(
                    model.SerializeToString(), opts, providers=["CPUExecutionProvider"]
                )
                self._run = lambda x: sess.run([self.output_name], {self.input_name: x})[0]
                self.backend = "onnxruntime"
            except ImportError:
                if backend == "onnxruntime":
                    raise ModelError(
                        "onnxruntime is not installed (pip install onnxruntime)"
                    ) from None
            except Exception as exc:  # onnxruntime rejects some models the reference accepts
                if backend == "onnxruntime":
                    raise ModelError(f"onnxruntime cannot load the model: {exc}") from None
        if self._run is None:
            from .onnx_reference import reference_evaluator

            try:
                ref = reference_evaluator(model)
            except Exception as exc:  # noqa: BLE001 - a model the reference cannot even load
                raise ModelError(
                    f"the ONNX reference implementation cannot load the model "
                    f"({exc.__class__.__name__}: {' '.join(str(exc).split())[:200]})"
                ) from None
            # run() with a list of output names returns a list of arrays
            self._run = lambda x: cast(list, ref.run([self.output_name], {self.input_name: x}))[0]
            self.backend = "reference"

    def run(self, x: np.ndarray) -> np.ndarray:
        """Output of the ONNX model for one input already in the model's dtype and shape."""
        assert self._run is not None  # set by __init__
        return np.asarray(
            self._run(np.ascontiguousarray(x.reshape(self.shape).astype(self.dtype, copy=False)))
        )

    def cast_into_box(self, x: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
        """x clipped into [lower, upper] and cast to the model dtype, staying inside where
        representable."""
        x = np.clip(np.asarray(x, dtype=np.float64).reshape(-1), lower, upper)
        xc = x.astype(self.dtype)
        inf = np.array(np.inf, dtype=self.dtype)
        low = xc.astype(np.float64) < lower
        xc[low] = np.nextafter(xc[low], inf)
        high = xc.astype(np.float64) > upper
        xc[high] = np.nextafter(xc[high], -inf)
        return xc


def violates(y: np.ndarray, polytopes) -> int:
    """Index of the first polytope C y <= d that y satisfies exactly, or -1."""
    yf = np.asarray(y, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(yf)):
        return -1
    for k, poly in enumerate(polytopes):
        if poly.C.shape[0] == 0 or np.all(poly.C @ yf <= poly.d):
            return k
    return -1


def confirm(
    replayer: Replayer, x: np.ndarray, case, case_index: int = 0
) -> Optional[Counterexample]:
    """Replay x in the ONNX model; return a Counterexample only if it really violates the
    property."""
    xc = replayer.cast_into_box(x, case.lower, case.upper)
    flat = xc.astype(np.float64).reshape(-1)
    outside = (flat < case.lower) | (flat > case.upper)
    # only a zero-width interval at a value the model's float type cannot represent has no
    # point inside; there the nearest representable value is the only possible input
    if np.any(outside & (case.lower != case.upper)):
        return None
    y = replayer.run(xc)
    k = violates(y, case.polytopes)
    if k < 0:
        return None
    return Counterexample(xc.reshape(replayer.shape), y, case_index, k)


def check_graph_against_model(
    graph,
    replayer: Replayer,
    lower: np.ndarray,
    upper: np.ndarray,
    n_points: int,
    rng: np.random.Generator,
) -> None:
    """Compare the Graph's forward pass with the ONNX replay on random points of the box."""
    import torch

    if n_points <= 0:
        return
    pts = [lower, upper, (lower + upper) / 2] + [
        rng.uniform(lower, upper) for _ in range(max(0, n_points - 3))
    ]
    for p in pts:
        xc = replayer.cast_into_box(p, lower, upper)
        try:
            ref = replayer.run(xc).astype(np.float64).reshape(-1)
        except Exception as exc:  # noqa: BLE001 - malformed input the importer accepted
            raise ModelError(
                f"{graph.source}: the ONNX model cannot be run by its reference "
                f"({replayer.backend}): {exc.__class__.__name__}: "
                f"{' '.join(str(exc).split())[:200]}"
            ) from None
        ours = graph.forward(
            torch.as_tensor(xc.astype(np.float64).reshape((1,) + graph.input_shape))
        )
        ours = ours.detach().cpu().numpy().reshape(-1)
        if ref.shape != ours.shape:
            raise ReplayMismatchError(
                f"{graph.source}: imported graph has {ours.size} outputs, ONNX model has {ref.size}"
            )
        scale = 1.0 + np.abs(ref).max()
        tol = (1e-3 if replayer.dtype == np.float32 else 1e-8) * scale
        err = np.abs(ref - ours).max()
        if not np.isfinite(err) or err > tol:
            raise ReplayMismatchError(
                f"{graph.source}: imported graph disagrees with the ONNX model by {err:.3g} "
                f"(tolerance {tol:.3g}); refusing to verify"
            )
