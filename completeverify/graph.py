"""The project's own network representation: a closed set of ops in a validated DAG.

Every tensor in the graph has a per-sample *shape* equal to its ONNX shape
(including a leading ONNX batch dimension of 1 when the model has one).  At run
time a further batch dimension B is prepended, so a node of shape ``s`` holds a
tensor of shape ``(B, *s)``.  Each node's value can also be seen as a flat
vector of ``prod(shape)`` entries in C order; linear ops are defined on that
flat view, which is what bounds and the MILP encoding work with.

The op set is closed and grouped by property:

* affine, one input:   Linear, Conv, Scale, Gather, Reshape
* affine, many inputs: Add, Concat
* piecewise linear:    Relu, LeakyRelu, MaxPool
* smooth (bounds only): Sigmoid, Tanh

What an op can do is declared on its class as ``caps`` (a frozen ``Capabilities``); the stages
look an op up by its type in their tables (``IBP``, ``BACKWARD``, ``RELAX``, ``ALPHA``,
``FORWARD``, ``ENCODERS``) and never test ``isinstance`` for a capability.  ``OPS`` is the closed
op set; tests/unit/test_op_tables.py checks that every op has a row (or an explicit
``NOT_SUPPORTED``) in every table and that the tables agree with the declared capabilities.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Union, get_args

import numpy as np
import torch
import torch.nn.functional as F

from .errors import InternalError

if TYPE_CHECKING:
    import onnx

Shape = tuple[int, ...]


def numel(shape: Shape) -> int:
    """Number of entries of a tensor of this shape."""
    return int(math.prod(shape))


@dataclass(frozen=True)
class Capabilities:
    """What an op can do, declared once on its class (``Op.caps``).

    affine: an exact linear map of its inputs (a CROWN ``BACKWARD`` step, no relaxation).
    activation: nonlinear with one input; CROWN relaxes it (a ``RELAX`` row), so the bound
        engine computes intermediate bounds of its input node.
    piecewise_linear: the exact MILP encodes it (an ``ENCODERS`` row); a network whose ops all
        have it is decided completely.
    optimisable_slopes: alpha-CROWN optimises its lower slopes (an ``ALPHA`` row).
    splittable: two linear pieces meeting at input 0, so branch and bound may split its input
        at 0 (ReLU splitting, beta-CROWN multipliers, split rows in the MILP).
    """

    affine: bool = False
    activation: bool = False
    piecewise_linear: bool = False
    optimisable_slopes: bool = False
    splittable: bool = False


AFFINE = Capabilities(affine=True, piecewise_linear=True)
SMOOTH = Capabilities(activation=True)
RELU_LIKE = Capabilities(
    activation=True, piecewise_linear=True, optimisable_slopes=True, splittable=True
)


class NotSupported:
    """The row of a stage table for an op the stage does not handle (see ``NOT_SUPPORTED``)."""

    def __repr__(self) -> str:
        """Readable in test failures."""
        return "NOT_SUPPORTED"


NOT_SUPPORTED = NotSupported()  # explicit "not supported in this stage" marker in stage tables


@dataclass(frozen=True, eq=False)
class Input:
    """The network input."""

    caps: ClassVar[Capabilities] = Capabilities(piecewise_linear=True)

    def forward(self, _params: dict, *xs: torch.Tensor) -> torch.Tensor:
        """Inputs are fed, never computed."""
        raise RuntimeError("Input has no forward")


@dataclass(frozen=True, eq=False)
class Linear:
    """y_flat = weight @ x_flat + bias.  weight: (n_out, n_in), bias: (n_out,)."""

    caps: ClassVar[Capabilities] = AFFINE

    weight: np.ndarray
    bias: np.ndarray

    def tensors(self) -> dict[str, np.ndarray]:
        """Parameters to move to torch."""
        return {"weight": self.weight, "bias": self.bias}

    def forward(self, p: dict, x: torch.Tensor) -> torch.Tensor:
        """Batched forward on (B, *in_shape) -> (B, n_out) flat."""
        return x.reshape(x.shape[0], -1) @ p["weight"].T + p["bias"]


@dataclass(frozen=True, eq=False)
class Conv:
    """2-D convolution on a (C, H, W) sample (an ONNX (1, C, H, W) tensor works too).

    weight: (C_out, C_in/groups, kh, kw); bias: (C_out,); padding: (top, left, bottom, right).
    1-D convolutions are imported as 2-D ones with a unit dimension.
    """

    caps: ClassVar[Capabilities] = AFFINE

    weight: np.ndarray
    bias: np.ndarray
    stride: tuple[int, int]
    padding: tuple[int, int, int, int]
    dilation: tuple[int, int]
    groups: int
    in_chw: tuple[int, int, int]

    def tensors(self) -> dict[str, np.ndarray]:
        """Parameters to move to torch."""
        return {"weight": self.weight, "bias": self.bias}

    def pad_input(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the (possibly asymmetric) zero padding to (N, C, H, W)."""
        t, l, b, r = self.padding
        if t == b and l == r:
            return x
        return F.pad(x, (l, r, t, b))

    def torch_padding(self) -> tuple[int, int]:
        """The symmetric padding left for conv2d after pad_input."""
        t, l, b, r = self.padding
        return (t, l) if (t == b and l == r) else (0, 0)

    def forward(self, p: dict, x: torch.Tensor) -> torch.Tensor:
        """Batched forward; returns (B, C_out, H_out, W_out)."""
        x = self.pad_input(x.reshape(x.shape[0], *self.in_chw))
        return F.conv2d(
            x, p["weight"], p["bias"], self.stride, self.torch_padding(), self.dilation, self.groups
        )


@dataclass(frozen=True, eq=False)
class Scale:
    """Elementwise affine y = x * mul + add; mul and add have the node's full shape."""

    caps: ClassVar[Capabilities] = AFFINE

    mul: np.ndarray
    add: np.ndarray

    def tensors(self) -> dict[str, np.ndarray]:
        """Parameters to move to torch (flat)."""
        return {"mul": self.mul.reshape(-1), "add": self.add.reshape(-1)}

    def forward(self, p: dict, x: torch.Tensor) -> torch.Tensor:
        """Batched forward on the flat view."""
        return x.reshape(x.shape[0], -1) * p["mul"] + p["add"]


@dataclass(frozen=True, eq=False)
class Gather:
    """y_flat[i] = x_flat[index[i]], or 0 where index[i] == -1 (padding)."""

    caps: ClassVar[Capabilities] = AFFINE

    index: np.ndarray

    def tensors(self) -> dict[str, np.ndarray]:
        """Index (clamped) and the mask of real entries."""
        idx = self.index.reshape(-1)
        return {"index": np.maximum(idx, 0), "mask": (idx >= 0).astype(np.float64)}

    def forward(self, p: dict, x: torch.Tensor) -> torch.Tensor:
        """Batched forward on the flat view."""
        flat = x.reshape(x.shape[0], -1)
        return flat[:, p["index"]] * p["mask"]


@dataclass(frozen=True, eq=False)
class Reshape:
    """Shape-only op: the flat view is unchanged."""

    caps: ClassVar[Capabilities] = AFFINE

    def forward(self, _p: dict, x: torch.Tensor) -> torch.Tensor:
        """Identity on the flat view."""
        return x.reshape(x.shape[0], -1)


@dataclass(frozen=True, eq=False)
class Add:
    """Sum of two or more variable tensors of the same number of entries."""

    caps: ClassVar[Capabilities] = AFFINE

    def forward(self, _p: dict, *xs: torch.Tensor) -> torch.Tensor:
        """Batched forward."""
        out = xs[0].reshape(xs[0].shape[0], -1)
        for x in xs[1:]:
            out = out + x.reshape(x.shape[0], -1)
        return out


@dataclass(frozen=True, eq=False)
class Concat:
    """Concatenation of the inputs' flat views (axis handling is a Gather after it)."""

    caps: ClassVar[Capabilities] = AFFINE

    def forward(self, _p: dict, *xs: torch.Tensor) -> torch.Tensor:
        """Batched forward."""
        return torch.cat([x.reshape(x.shape[0], -1) for x in xs], dim=1)


@dataclass(frozen=True, eq=False)
class Relu:
    """max(x, 0) elementwise."""

    caps: ClassVar[Capabilities] = RELU_LIKE

    def forward(self, _p: dict, x: torch.Tensor) -> torch.Tensor:
        """Batched forward."""
        return torch.relu(x)


@dataclass(frozen=True, eq=False)
class LeakyRelu:
    """x for x >= 0, alpha * x for x < 0, elementwise, with 0 <= alpha <= 1 (so max(x, alpha x)).

    Two linear pieces meeting at 0, like Relu (alpha = 0): it is relaxed, split and encoded
    exactly in the same way, with the inactive slope alpha instead of 0.
    """

    alpha: float

    caps: ClassVar[Capabilities] = RELU_LIKE

    def forward(self, _p: dict, x: torch.Tensor) -> torch.Tensor:
        """Batched forward."""
        return torch.where(x >= 0, x, x * self.alpha)


@dataclass(frozen=True, eq=False)
class Sigmoid:
    """Logistic sigmoid (bounds only; not piecewise linear)."""

    caps: ClassVar[Capabilities] = SMOOTH

    def forward(self, _p: dict, x: torch.Tensor) -> torch.Tensor:
        """Batched forward."""
        return torch.sigmoid(x)


@dataclass(frozen=True, eq=False)
class Tanh:
    """Hyperbolic tangent (bounds only; not piecewise linear)."""

    caps: ClassVar[Capabilities] = SMOOTH

    def forward(self, _p: dict, x: torch.Tensor) -> torch.Tensor:
        """Batched forward."""
        return torch.tanh(x)


@dataclass(frozen=True, eq=False)
class MaxPool:
    """Max pooling over windows; each output is the max of the inputs listed in ``windows``.

    windows: (n_out, k) int64 flat input indices; -1 marks padding (never the max).
    Stored as explicit windows so that bounds and MILP treat it as a max of k inputs.
    """

    caps: ClassVar[Capabilities] = Capabilities(activation=True, piecewise_linear=True)

    windows: np.ndarray

    def tensors(self) -> dict[str, np.ndarray]:
        """Window indices (padding slots point at a real entry of the same window)."""
        w = self.windows.copy()
        first = w.max(axis=1, keepdims=True)
        w = np.where(w < 0, first, w)
        return {"windows": w}

    def forward(self, p: dict, x: torch.Tensor) -> torch.Tensor:
        """Batched forward: (B, n_in) -> (B, n_out)."""
        flat = x.reshape(x.shape[0], -1)
        return flat[:, p["windows"]].amax(dim=2)


Op = Union[
    Input,
    Linear,
    Conv,
    Scale,
    Gather,
    Reshape,
    Add,
    Concat,
    Relu,
    LeakyRelu,
    Sigmoid,
    Tanh,
    MaxPool,
]
OPS: tuple[Any, ...] = get_args(Op)  # the closed op set (classes with .caps)
AFFINE_OPS = tuple(o for o in OPS if o.caps.affine)
PIECEWISE_LINEAR_OPS = tuple(o for o in OPS if o.caps.piecewise_linear and o is not Input)
ACTIVATION_OPS = tuple(o for o in OPS if o.caps.activation)


@dataclass(frozen=True, eq=False)
class Node:
    """One op applied to the outputs of earlier nodes (by index)."""

    name: str
    op: Op
    inputs: tuple[int, ...]
    shape: Shape

    @property
    def size(self) -> int:
        """Number of entries of this node's value."""
        return numel(self.shape)


@dataclass(frozen=True, eq=False)
class Graph:
    """A topologically sorted DAG with one input (node 0) and one output (the last node)."""

    nodes: tuple[Node, ...]
    input_name: str = "input"
    output_name: str = "output"
    input_dtype: str = "float32"
    onnx_model: onnx.ModelProto | None = field(default=None, repr=False, compare=False)
    source: str = "<model>"
    _torch_cache: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Check the invariants once."""
        if not self.nodes or not isinstance(self.nodes[0].op, Input):
            raise InternalError("graph must start with its input")
        for i, node in enumerate(self.nodes):
            if any(j >= i or j < 0 for j in node.inputs):
                raise InternalError(f"graph is not topologically sorted at node '{node.name}'")

    @property
    def input_shape(self) -> Shape:
        """Per-sample input shape (the ONNX input shape)."""
        return self.nodes[0].shape

    @property
    def output_shape(self) -> Shape:
        """Per-sample output shape (the ONNX output shape)."""
        return self.nodes[-1].shape

    @property
    def n_inputs(self) -> int:
        """Number of scalar inputs (X variables)."""
        return numel(self.input_shape)

    @property
    def n_outputs(self) -> int:
        """Number of scalar outputs (Y variables)."""
        return numel(self.output_shape)

    def with_nodes(self, nodes: "tuple[Node, ...]") -> "Graph":
        """A copy with other nodes and the same metadata."""
        return Graph(
            tuple(nodes),
            self.input_name,
            self.output_name,
            self.input_dtype,
            self.onnx_model,
            self.source,
        )

    def live_nodes(self) -> list[int]:
        """Sorted indices of the input (node 0), the output and every node the output reads."""
        live = {len(self.nodes) - 1, 0}
        for i in range(len(self.nodes) - 1, -1, -1):
            if i in live:
                live.update(self.nodes[i].inputs)
        return sorted(live)

    def restricted(self, keep: list[int]) -> "Graph":
        """The graph on the nodes ``keep`` (sorted; input and output among them), renumbered."""
        remap = {old: new for new, old in enumerate(keep)}
        nodes = tuple(
            Node(n.name, n.op, tuple(remap[j] for j in n.inputs), n.shape)
            for n in (self.nodes[i] for i in keep)
        )
        return self.with_nodes(nodes)

    def has_convolutions(self) -> bool:
        """True when some node is a convolution (several search defaults differ for CNNs)."""
        return any(isinstance(n.op, Conv) for n in self.nodes)

    def is_piecewise_linear(self) -> bool:
        """True when every op is affine or piecewise linear (the MILP is exact)."""
        return all(n.op.caps.piecewise_linear for n in self.nodes)

    def consumers(self) -> list[list[int]]:
        """For each node, the indices of the nodes that read it."""
        out: list[list[int]] = [[] for _ in self.nodes]
        for i, node in enumerate(self.nodes):
            for j in node.inputs:
                out[j].append(i)
        return out

    def params(self, dtype: torch.dtype = torch.float64) -> list[dict]:
        """Per-node torch parameters in ``dtype``, cached."""
        key = (dtype, str(torch.get_default_device()))  # device.py: one cache per device
        if key not in self._torch_cache:
            plist = []
            for node in self.nodes:
                tens = node.op.tensors() if hasattr(node.op, "tensors") else {}
                plist.append(
                    {
                        k: torch.as_tensor(
                            np.array(v), dtype=torch.int64 if v.dtype.kind in "iu" else dtype
                        )
                        for k, v in tens.items()
                    }
                )
            self._torch_cache[key] = plist
        return self._torch_cache[key]

    def forward_all(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Values of every node, each flat (B, size), for a batch x of shape (B, *input_shape)."""
        params = self.params(x.dtype)
        vals: list[torch.Tensor] = [x.reshape(x.shape[0], -1)]
        for node, p in zip(self.nodes[1:], params[1:]):
            out = node.op.forward(p, *(vals[j] for j in node.inputs))
            vals.append(out.reshape(out.shape[0], -1))
        return vals

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Network output (B, *output_shape) for x of shape (B, *input_shape)."""
        return self.forward_all(x)[-1].reshape(x.shape[0], *self.output_shape)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Same as forward."""
        return self.forward(x)
