"""torch.nn.Module -> Graph, keeping the module's layer names.

The module is traced once with ``torch.fx`` and its shapes propagated on the example input
(in eval mode, so BatchNorm uses its running statistics and no statistic is updated).  Each
traced layer becomes one Graph node named like the layer ("0", "fc1", "layer1.conv"); functions
called in ``forward`` (``x + y``, ``torch.relu``, ``x.view(...)``) keep fx's node names ("add",
"relu", "view").  Supported: Linear, Conv2d, ReLU, Sigmoid, Tanh, Flatten / view / reshape,
BatchNorm1d/2d (running statistics), Identity, Dropout (as identity), and additions of two
tensors (residual blocks).

``load_torch`` also exports the module to ONNX (``dynamo=False``) and attaches that model to
the Graph, so that every ``sat`` is replayed in an independent runtime, as for ONNX inputs.

``TorchTrace.live_params`` gives the per-node parameters as differentiable functions of the
module's current parameters, which is how the training losses reach the weights.
"""

from __future__ import annotations

import contextlib
import io
import operator
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from .errors import ModelError, UnsupportedOperatorError
from .graph import Add as AddOp
from .graph import Conv, Graph, Input, Linear, Node, Relu, Reshape, Scale, Shape, Sigmoid, Tanh

ParamFn = Callable[[nn.Module, torch.dtype], dict]


@dataclass(frozen=True)
class TorchTrace:
    """A traced module: its Graph and, per node, how to read its parameters from the module.

    ``bindings[i]`` is None for nodes without parameters, else a function
    (module, dtype) -> parameter dict in the layout of ``graph.params`` (differentiable).
    """

    graph: Graph
    module: nn.Module
    bindings: tuple[ParamFn | None, ...]

    def live_params(self, dtype: torch.dtype = torch.float32) -> list[dict]:
        """Per-node parameters computed from the module's live tensors (autograd reaches them)."""
        fixed = self.graph.params(dtype)
        return [
            fixed[i] if fn is None else fn(self.module, dtype) for i, fn in enumerate(self.bindings)
        ]


def _module_dtype(module: nn.Module) -> torch.dtype:
    """The floating type of the module's first parameter (float32 when it has none)."""
    p = next(iter(module.parameters()), None)
    return p.dtype if p is not None and p.dtype.is_floating_point else torch.float32


def _example(example_input: Any, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A zero tensor with batch dimension 1 shaped like ``example_input`` (tensor or shape)."""
    if example_input is None:
        raise ModelError(
            "a torch module needs an example input (a tensor or its shape, batch "
            "dimension included), e.g. cv.load_torch(model, (1, 64))"
        )
    if isinstance(example_input, torch.Tensor):
        shape = tuple(example_input.shape)
    else:
        try:
            shape = tuple(int(d) for d in example_input)
        except (TypeError, ValueError):
            raise ModelError(
                f"example input must be a tensor or a shape tuple, got "
                f"{type(example_input).__name__}"
            ) from None
    if len(shape) < 2 or any(d < 1 for d in shape):
        raise ModelError(
            f"example input shape {shape} must be (batch, features...) with positive dimensions"
        )
    return torch.zeros((1,) + shape[1:], dtype=dtype)


def _np(t: torch.Tensor | None, like: int) -> np.ndarray:
    """A float64 numpy copy of a parameter (zeros of length ``like`` when absent)."""
    if t is None:
        return np.zeros(like)
    return t.detach().to(torch.float64).cpu().numpy().copy()


def _lin_fn(name: str) -> ParamFn:
    """Live parameters of a Linear or Conv2d layer."""

    def fn(root: nn.Module, dtype: torch.dtype) -> dict:
        """weight and bias (zeros when the layer has none), in ``dtype``."""
        m = root.get_submodule(name)
        w = m.weight.to(dtype)
        b = m.bias.to(dtype) if m.bias is not None else w.new_zeros(w.shape[0])
        return {"weight": w, "bias": b}

    return fn


def _bn_affine(m: Any, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel (mul, add) of a BatchNorm with its running statistics."""
    if m.running_var is None or m.running_mean is None:
        raise ModelError(
            "BatchNorm without running statistics (track_running_stats=False) is not supported"
        )
    inv = (m.running_var.to(dtype) + m.eps).rsqrt()
    mul = inv * m.weight.to(dtype) if m.weight is not None else inv
    add = -m.running_mean.to(dtype) * mul
    if m.bias is not None:
        add = add + m.bias.to(dtype)
    return mul, add


def _bn_fn(name: str, per_channel: int) -> ParamFn:
    """Live flat Scale parameters of a BatchNorm layer (each channel repeated per_channel times)."""

    def fn(root: nn.Module, dtype: torch.dtype) -> dict:
        """mul and add over the node's flat view."""
        mul, add = _bn_affine(root.get_submodule(name), dtype)
        return {
            "mul": mul.repeat_interleave(per_channel),
            "add": add.repeat_interleave(per_channel),
        }

    return fn


class _Tracer:
    """Walks an fx graph with propagated shapes and builds the Graph nodes."""

    def __init__(self, module: nn.Module, source: str) -> None:
        """Start with no nodes."""
        self.module = module
        self.source = source
        self.nodes: list[Node] = []
        self.bindings: list[ParamFn | None] = []
        self.index: dict[str, int] = {}  # fx node name -> Graph node index (aliases allowed)
        self.unsupported: list[tuple[str, str]] = []

    def error(self, layer: str, message: str) -> ModelError:
        """A ModelError naming the layer."""
        return ModelError(f"{self.source}: layer '{layer}': {message}")

    def add(
        self, name: str, op: Any, inputs: list[int], shape: Shape, binding: ParamFn | None = None
    ) -> int:
        """Append one Graph node; returns its index."""
        self.nodes.append(Node(name, op, tuple(inputs), tuple(int(d) for d in shape)))
        self.bindings.append(binding)
        return len(self.nodes) - 1

    def tensor_args(self, fx_node: Any) -> list[int]:
        """Graph indices of the fx node's tensor arguments, in order."""
        out = []
        for a in fx_node.all_input_nodes:
            if a.name in self.index:
                out.append(self.index[a.name])
        return out

    def module_node(self, fx_node: Any, shape: Shape, in_shape: Shape, src: int) -> None:
        """Convert one call_module node."""
        name = str(fx_node.target)
        m = self.module.get_submodule(name)
        if isinstance(m, (nn.Identity, nn.Dropout)):
            self.index[fx_node.name] = src
            return
        if isinstance(m, nn.Linear):
            if len(in_shape) != 2:
                raise self.error(
                    name,
                    f"Linear on an input of shape {in_shape}; flatten it first "
                    "(only (batch, features) inputs are supported)",
                )
            op: Any = Linear(_np(m.weight, 0), _np(m.bias, m.out_features))
            self.index[fx_node.name] = self.add(name, op, [src], shape, _lin_fn(name))
        elif isinstance(m, nn.Conv2d):
            if m.padding_mode != "zeros" or isinstance(m.padding, str) and m.padding != "valid":
                raise self.error(name, "only zero padding given as numbers is supported")
            ph, pw = (0, 0) if isinstance(m.padding, str) else m.padding
            c, h, w = (int(d) for d in in_shape[1:])
            op = Conv(
                _np(m.weight, 0),
                _np(m.bias, m.out_channels),
                (int(m.stride[0]), int(m.stride[1])),
                (ph, pw, ph, pw),
                (int(m.dilation[0]), int(m.dilation[1])),
                int(m.groups),
                (c, h, w),
            )
            self.index[fx_node.name] = self.add(name, op, [src], shape, _lin_fn(name))
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            if len(in_shape) not in (2, 4):
                raise self.error(name, f"BatchNorm on shape {in_shape} is not supported")
            per = int(np.prod(in_shape[2:])) if len(in_shape) == 4 else 1
            fn = _bn_fn(name, per)
            with torch.no_grad():
                p = fn(self.module, torch.float64)
            op = Scale(p["mul"].numpy().reshape(shape), p["add"].numpy().reshape(shape))
            self.index[fx_node.name] = self.add(name, op, [src], shape, fn)
        elif isinstance(m, (nn.ReLU, nn.Sigmoid, nn.Tanh)):
            cls = {nn.ReLU: Relu, nn.Sigmoid: Sigmoid, nn.Tanh: Tanh}[type(m)]
            self.index[fx_node.name] = self.add(name, cls(), [src], shape)
        elif isinstance(m, nn.Flatten):
            if m.start_dim not in (1, -len(in_shape) + 1):
                raise self.error(name, "Flatten must keep the batch dimension (start_dim=1)")
            self.index[fx_node.name] = self.add(name, Reshape(), [src], shape)
        else:
            self.unsupported.append((type(m).__name__, name))
            self.index[fx_node.name] = src

    def function_node(self, fx_node: Any, shape: Shape) -> None:
        """Convert one call_function / call_method node."""
        target = fx_node.target
        ins = self.tensor_args(fx_node)
        name = fx_node.name
        kind = target if isinstance(target, str) else getattr(target, "__name__", str(target))
        if target in (operator.add, torch.add, operator.iadd) or kind in ("add", "add_"):
            consts = [a for a in fx_node.args if not hasattr(a, "op")]
            if len(ins) != 2 or consts or fx_node.kwargs:
                raise self.error(name, "only the sum of two tensors is supported (residual add)")
            if any(self.nodes[j].size != int(np.prod(shape)) for j in ins):
                raise self.error(name, "the summands must have the same shape (no broadcasting)")
            self.index[name] = self.add(name, AddOp(), ins, shape)
        elif kind in ("relu", "relu_"):
            self.index[name] = self.add(name, Relu(), ins[:1], shape)
        elif kind in ("sigmoid", "tanh"):
            self.index[name] = self.add(
                name, Sigmoid() if kind == "sigmoid" else Tanh(), ins[:1], shape
            )
        elif kind in ("flatten", "view", "reshape", "contiguous"):
            self.index[name] = self.add(name, Reshape(), ins[:1], shape)
        elif kind in ("size", "dim"):
            return
        elif kind == "getattr" or target is getattr:  # a tensor attribute: x.T, x.mT, x.data
            attr = fx_node.args[1] if len(fx_node.args) > 1 else "?"
            self.unsupported.append((f"tensor attribute .{attr}", name))
            if ins:  # carry on, so that every unsupported layer is listed
                self.index[name] = ins[0]
        else:
            self.unsupported.append((str(kind), name))
            if ins:
                self.index[name] = ins[0]


def trace_torch(module: nn.Module, example_input: Any, source: str | None = None) -> TorchTrace:
    """Trace ``module`` once at ``example_input`` (tensor or shape, batch dim included).

    Returns a TorchTrace whose Graph has per-sample shapes with a leading 1 (like an ONNX
    export); raises UnsupportedOperatorError listing every layer it cannot convert.
    """
    import torch.fx
    from torch.fx.passes.shape_prop import ShapeProp

    if not isinstance(module, nn.Module):
        raise ModelError(f"expected a torch.nn.Module, got {type(module).__name__}")
    source = source or f"<torch {type(module).__name__}>"
    x = _example(example_input, _module_dtype(module))
    try:
        gm = torch.fx.symbolic_trace(module)
    except Exception as exc:  # noqa: BLE001 (fx raises many types on control flow)
        raise ModelError(
            f"{source}: cannot trace the module with torch.fx "
            f"({exc.__class__.__name__}: {str(exc).splitlines()[0]})"
        ) from None
    for name, m in module.named_modules():
        if (
            isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d))
            and m.running_mean is None
        ):
            raise ModelError(
                f"{source}: layer '{name}': BatchNorm without running statistics "
                "(track_running_stats=False) normalises by each batch's own statistics, "
                "which is not a function of one input; it is not supported"
            )
    modes = {name: m.training for name, m in module.named_modules()}
    try:
        module.eval()
        # ShapeProp prints the traceback of a failing layer before raising; the one-line
        # error below says what failed
        with torch.no_grad(), contextlib.redirect_stderr(io.StringIO()):
            ShapeProp(gm).propagate(x)
    except Exception as exc:  # noqa: BLE001 (any failure of user code is bad input)
        cause = exc.__cause__ if exc.__cause__ is not None else exc
        raise ModelError(
            f"{source}: the module fails on an input of shape {tuple(x.shape)} "
            f"({cause.__class__.__name__}: {str(cause).splitlines()[0]})"
        ) from None
    finally:
        for name, m in module.named_modules():
            m.training = modes[name]
    t = _Tracer(module, source)
    out_fx: Any = None
    for fx_node in gm.graph.nodes:
        meta = fx_node.meta.get("tensor_meta")
        shape = (1,) + tuple(meta.shape[1:]) if hasattr(meta, "shape") else None
        if fx_node.op == "placeholder":
            if t.nodes:
                raise ModelError(f"{source}: the module takes more than one input")
            t.index[fx_node.name] = t.add(fx_node.name, Input(), [], (1,) + tuple(x.shape[1:]))
        elif fx_node.op == "output":
            out_fx = fx_node.args[0]
        elif fx_node.op == "get_attr":
            t.unsupported.append(("get_attr", fx_node.name))
        elif shape is None:
            continue
        elif fx_node.op == "call_module":
            src = t.tensor_args(fx_node)
            if not src:  # a layer applied to a parameter or buffer
                raise t.error(
                    str(fx_node.target),
                    "its input is a constant of the module, not computed from the module's "
                    "input; not supported",
                )
            in_shape = fx_node.all_input_nodes[0].meta["tensor_meta"].shape
            t.module_node(fx_node, shape, (1,) + tuple(in_shape[1:]), src[0])
        else:
            t.function_node(fx_node, shape)
    if t.unsupported:
        raise UnsupportedOperatorError(t.unsupported, source)
    if not hasattr(out_fx, "name") or out_fx.name not in t.index:
        raise ModelError(f"{source}: the module must return one tensor")
    out = t.index[out_fx.name]
    if out != len(t.nodes) - 1 or out == 0:
        t.add("output", Reshape(), [out], t.nodes[out].shape)
    graph = Graph(tuple(t.nodes), input_name="input", output_name="output", source=source)
    pruned, bindings = _prune(graph, t.bindings)
    return TorchTrace(pruned, module, bindings)


def _prune(graph: Graph, bindings: list) -> tuple[Graph, tuple]:
    """Drop nodes the output does not depend on (keeping bindings aligned)."""
    keep = graph.live_nodes()
    return graph.restricted(keep), tuple(bindings[i] for i in keep)


def export_onnx(module: nn.Module, example_input: Any) -> bytes:
    """The module exported to ONNX (TorchScript exporter, opset 13) with a dynamic batch."""
    x = _example(example_input, _module_dtype(module))
    modes = {name: m.training for name, m in module.named_modules()}
    buf = io.BytesIO()
    with warnings.catch_warnings():
        return _export(module, x, buf, modes)


def _export(module: nn.Module, x: torch.Tensor, buf: io.BytesIO, modes: dict) -> bytes:
    """torch.onnx.export into buf (module in eval mode meanwhile); returns the bytes."""
    try:
        module.eval()
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            module,
            (x,),
            buf,  # type: ignore[arg-type]
            input_names=["input"],
            output_names=["output"],
            opset_version=13,
            dynamo=False,
            dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
        )
    except Exception as exc:  # noqa: BLE001 (any failure of user code is bad input)
        raise ModelError(
            f"<torch {type(module).__name__}>: ONNX export failed "
            f"({exc.__class__.__name__}: {str(exc).splitlines()[0]})"
        ) from None
    finally:
        for name, m in module.named_modules():
            m.training = modes[name]
    return buf.getvalue()


def load_torch(module: Any, example_input: Any) -> Graph:
    """A verifiable Graph of ``module`` at an input shaped like ``example_input``.

    example_input: a tensor or a shape tuple, batch dimension included (e.g. (1, 1, 8, 8)).
    Graph node names are the module's layer names.  BatchNorm uses its running statistics
    (eval semantics).  The ONNX export of the module is attached for counterexample replay.
    """
    import onnx

    trace = trace_torch(module, example_input)
    model = onnx.load_from_string(export_onnx(module, example_input))
    g = trace.graph
    dtype = "float64" if _module_dtype(module) == torch.float64 else "float32"
    return Graph(g.nodes, g.input_name, g.output_name, dtype, model, g.source)
