"""Planted-witness verdict fuzzing of torch modules passed straight to ``cv.verify``.

usage: python tests/property/fuzz/planted_torch.py OUT_DIR [--seconds S] [--timeout T]
       [--first N] [--config NAME ...]

The ONNX fuzzer (planted.py) reaches the ONNX importer; programs that use completeverify as a
backend pass a ``torch.nn.Module`` instead, which ``torch_import`` traces with torch.fx. Here
each seed draws a random module, written the ways people write them: ``nn.Sequential`` and
custom ``forward`` code, Linear / Conv2d (stride, padding, dilation, groups, no bias),
BatchNorm1d / 2d in eval mode with random running statistics (affine or not), ReLU / Sigmoid /
Tanh as modules, functions and methods, Dropout / Identity, flattening by ``nn.Flatten``,
``torch.flatten``, ``view`` and ``reshape``, residual additions (``x + y``, ``torch.add``,
``+=``); float32 or float64 parameters; an example input with batch 1 or more.

The truth at the planted point is the module itself, run by torch in float64 (not by
completeverify). The property comes from ``planted.random_property``: `unsat` on a planted
instance is wrong, and a `sat` must replay with zero tolerance in onnxruntime on the module's
ONNX export made here (torch's exporter, as the verifier's replay does).
"""

from __future__ import annotations

import copy
import dataclasses
import io
import sys
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import planted
import torch
import torch.nn.functional as F
from torch import nn

import completeverify as cv
from completeverify.config import VerifyConfig
from completeverify.onnx_reference import reference_evaluator


class Net(nn.Module):
    """A module run by a plan: a list of (step, argument) interpreted in ``forward``.

    torch.fx traces through the Python loop, so the traced graph holds only the tensor
    operations, in the forms the plan names (modules, functions, methods)."""

    def __init__(self, layers: list[nn.Module], plan: list[tuple[str, int]]) -> None:
        """``layers[i]`` is called by the plan's ("mod", i) steps."""
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.plan = plan

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run the plan."""
        saved = []
        for step, arg in self.plan:
            if step == "mod":
                x = self.layers[arg](x)
            elif step == "relu":
                x = [torch.relu, F.relu, lambda t: t.relu()][arg](x)
            elif step == "sigmoid":
                x = torch.sigmoid(x)
            elif step == "tanh":
                x = torch.tanh(x)
            elif step == "flatten":
                x = [
                    lambda t: torch.flatten(t, 1),
                    lambda t: t.view(t.size(0), -1),
                    lambda t: t.reshape(t.shape[0], -1),
                    lambda t: t.flatten(1),
                ][arg](x)
            elif step == "save":
                saved.append(x)
            elif step == "add":
                y = saved.pop()
                if arg == 0:
                    x = x + y
                elif arg == 1:
                    x = torch.add(y, x)
                else:
                    x += y
        return x


class Builder:
    """Draws layers and plan steps, tracking the (per-sample) shape."""

    def __init__(self, rng: np.random.Generator, shape: tuple[int, ...]) -> None:
        """Start from an input of ``shape`` (batch 1 included)."""
        self.rng = rng
        self.layers: list[nn.Module] = []
        self.plan: list[tuple[str, int]] = []
        self.shape = shape

    def mod(self, m: nn.Module, shape: tuple[int, ...]) -> None:
        """Call module ``m``, wrapped in an nn.Sequential now and then."""
        if self.rng.random() < 0.15:
            m = nn.Sequential(m, nn.Identity()) if self.rng.random() < 0.5 else nn.Sequential(m)
        self.layers.append(m)
        self.plan.append(("mod", len(self.layers) - 1))
        self.shape = shape

    def linear(self, n_out: int, scale: float = 1.0) -> None:
        """nn.Linear with random weights (maybe without bias)."""
        n_in = self.shape[-1]
        m = nn.Linear(n_in, n_out, bias=bool(self.rng.random() < 0.85))
        with torch.no_grad():
            m.weight.copy_(
                torch.tensor(self.rng.normal(size=(n_out, n_in)) * scale / np.sqrt(n_in))
            )
            if m.bias is not None:
                m.bias.copy_(torch.tensor(self.rng.normal(size=n_out) * 0.3))
        self.mod(m, (1, n_out))

    def conv(self, c_out: int, same: bool = False) -> None:
        """nn.Conv2d with random kernel, stride, padding, dilation and groups."""
        _, c, h, w = self.shape
        if same:
            k, s, p, d, g = int(self.rng.choice([1, 3])), 1, 0, 1, 1
            p = k // 2
            c_out = c
        else:
            k = int(self.rng.choice([1, 2, 3]))
            s = int(self.rng.choice([1, 1, 2]))
            p = int(self.rng.integers(0, k))
            d = int(self.rng.choice([1, 1, 2])) if k > 1 else 1
            g = c if c > 1 and self.rng.random() < 0.3 else 1
            c_out = c_out * g
        ho = (h + 2 * p - d * (k - 1) - 1) // s + 1
        wo = (w + 2 * p - d * (k - 1) - 1) // s + 1
        if ho < 1 or wo < 1:
            k, s, p, d, ho, wo = 1, 1, 0, 1, h, w
        padding: object = (p, p) if self.rng.random() < 0.5 else p
        if p == 0 and self.rng.random() < 0.3:
            padding = "valid"
        m = nn.Conv2d(c, c_out, k, s, padding, d, g, bias=bool(self.rng.random() < 0.85))
        with torch.no_grad():
            fan = c // g * k * k
            m.weight.copy_(torch.tensor(self.rng.normal(size=tuple(m.weight.shape)) / np.sqrt(fan)))
            if m.bias is not None:
                m.bias.copy_(torch.tensor(self.rng.normal(size=c_out) * 0.3))
        self.mod(m, (1, c_out, ho, wo))

    def batchnorm(self) -> None:
        """BatchNorm1d / 2d with random running statistics (eval mode), affine or not."""
        c = self.shape[1]
        cls = nn.BatchNorm1d if len(self.shape) == 2 else nn.BatchNorm2d
        m = cls(c, eps=float(self.rng.choice([1e-5, 1e-3])), affine=bool(self.rng.random() < 0.8))
        with torch.no_grad():
            m.running_mean.copy_(torch.tensor(self.rng.normal(size=c) * 0.2))
            m.running_var.copy_(torch.tensor(self.rng.uniform(0.5, 1.5, c)))
            if m.affine:
                m.weight.copy_(torch.tensor(self.rng.uniform(0.5, 1.5, c)))
                m.bias.copy_(torch.tensor(self.rng.normal(size=c) * 0.2))
        self.mod(m, self.shape)

    def activation(self, smooth: bool) -> None:
        """ReLU (module, function or method), or when ``smooth`` sometimes Sigmoid / Tanh."""
        kinds = ["relu-mod", "relu-fn", "relu-fn"] + (["sigmoid", "tanh"] if smooth else [])
        kind = kinds[int(self.rng.integers(len(kinds)))]
        if kind == "relu-mod":
            self.mod(nn.ReLU(), self.shape)
        elif kind == "relu-fn":
            self.plan.append(("relu", int(self.rng.integers(3))))
        elif self.rng.random() < 0.5:
            self.mod(nn.Sigmoid() if kind == "sigmoid" else nn.Tanh(), self.shape)
        else:
            self.plan.append((kind, 0))
        if self.rng.random() < 0.1:
            self.mod(nn.Dropout(0.5) if self.rng.random() < 0.5 else nn.Identity(), self.shape)

    def residual(self, body) -> None:
        """x + body(x), ``body`` keeping the shape."""
        self.plan.append(("save", 0))
        body()
        self.plan.append(("add", int(self.rng.integers(3))))

    def flatten(self) -> None:
        """To (1, n), by nn.Flatten or one of four tensor calls."""
        n = int(np.prod(self.shape[1:]))
        if self.rng.random() < 0.3:
            self.mod(nn.Flatten(), (1, n))
        else:
            self.plan.append(("flatten", int(self.rng.integers(4))))
            self.shape = (1, n)


class Mirror:
    """What planted.random_property needs: shapes and the module's float64 forward."""

    def __init__(self, module64: nn.Module, input_shape: tuple, n_out: int) -> None:
        """Wrap a float64 copy of the module."""
        self.module64 = module64
        self.input_shape = input_shape
        self.shape = (1, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The module in float64 on a batch."""
        return self.module64(x)

    def f64(self, x: np.ndarray) -> np.ndarray:
        """The truth at a flat point."""
        with torch.no_grad():
            y = self.module64(torch.tensor(x, dtype=torch.float64).reshape(self.input_shape))
        return y.numpy().reshape(-1)


def draw(seed: int) -> tuple[Net, tuple[int, ...], str]:
    """The seed's module (eval mode) and input shape (batch 1)."""
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    mlp = rng.random() < 0.5
    rng = np.random.default_rng([seed, 1])
    if mlp:
        shape: tuple[int, ...] = (1, int(rng.choice([1, 2, 3, 5, 8, 12])))
    else:
        c, h = int(rng.integers(1, 3)), int(rng.integers(4, 8))
        shape = (1, c, h, h)
    smooth = rng.random() < 0.2
    b = Builder(rng, shape)
    if mlp:
        for _ in range(int(rng.integers(1, 4))):
            if rng.random() < 0.25 and b.shape[1] >= 2:
                n = b.shape[1]
                b.residual(lambda n=n: (b.linear(n), b.activation(smooth), b.linear(n)))
            else:
                b.linear(int(rng.integers(3, 13)), scale=float(rng.choice([1.0, 1.0, 3.0])))
            if rng.random() < 0.3:
                b.batchnorm()
            b.activation(smooth)
    else:
        for _ in range(int(rng.integers(1, 3))):
            if rng.random() < 0.2:
                b.residual(lambda: (b.conv(0, same=True), b.activation(smooth), b.conv(0, True)))
            else:
                b.conv(int(rng.integers(1, 4)))
            if rng.random() < 0.3:
                b.batchnorm()
            b.activation(smooth)
        b.flatten()
        if rng.random() < 0.5:
            b.linear(int(rng.integers(3, 9)))
            b.activation(smooth)
    b.linear(int(rng.integers(2, 5)))
    return Net(b.layers, b.plan).eval(), shape, "mlp" if mlp else "cnn"


def export(module: nn.Module, shape: tuple[int, ...]) -> bytes:
    """torch's own ONNX export of the module (in its dtype), for the replay check."""
    buf = io.BytesIO()
    m = copy.deepcopy(module).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            m,
            (torch.zeros(shape, dtype=module_dtype(module)),),
            buf,
            input_names=["input"],
            output_names=["output"],
            opset_version=13,
            dynamo=False,
        )
    return buf.getvalue()


def replays(module: nn.Module, shape: tuple, p: planted.Planted, result, backend: str) -> str:
    """'' when a sat's witness lies in its box and violates the property with zero tolerance
    on the module's export in the module's own precision, run by the verifier's replay
    backend (onnxruntime, or onnx's reference evaluator when ``backend`` says so)."""
    cex = result.counterexample
    problem = planted.witness_in_box(p, cex)
    if problem:
        return problem
    x = np.asarray(cex.input, dtype=np.float64).reshape(-1)
    np_dtype = np.float64 if module_dtype(module) == torch.float64 else np.float32
    x_in = x.astype(np_dtype)
    if not np.array_equal(x_in.astype(np.float64), x):
        return f"witness not a {np_dtype.__name__} point"
    model = export(module, shape)
    run = None
    if backend != "reference":
        try:
            run = onnxruntime.InferenceSession(model).run
        except onnxruntime.capi.onnxruntime_pybind11_state.NotImplemented:
            pass  # no float64 Conv in onnxruntime: the verifier replays in the reference too
    if run is None:  # onnx's reference evaluator, inference-mode BatchNormalization
        run = reference_evaluator(onnx.load_from_string(model)).run
    y = np.asarray(run(None, {"input": x_in.reshape(shape)})[0], dtype=np.float64)
    if not any(np.all(C @ y.reshape(-1) <= d) for C, d in p.polytopes):
        return "witness does not violate the property"
    return ""


def module_dtype(module: nn.Module) -> torch.dtype:
    """The dtype of the module's parameters."""
    return next(iter(module.parameters())).dtype


@dataclasses.dataclass
class Instance:
    """One seed's module, its property and how it is verified."""

    module: nn.Module
    shape: tuple[int, ...]
    kind: str
    p: planted.Planted
    text: str
    example: object
    config_name: str
    config: VerifyConfig


def instance(seed: int, seconds: float, only: list[str] | None = None) -> Instance:
    """The seed's module, planted property, example input and configuration."""
    module, shape, kind = draw(seed)
    rng = np.random.default_rng([seed, 2])
    module64 = copy.deepcopy(module).double()
    with torch.no_grad():
        n_out = int(module64(torch.zeros(shape, dtype=torch.float64)).numel())
    mirror = Mirror(module64, shape, n_out)
    p = planted.random_property(mirror, mirror.f64, rng)
    if rng.random() < 0.25:
        module = module.double()
    batch = int(rng.choice([1, 1, 4]))
    example: object = (batch,) + shape[1:]
    if rng.random() < 0.3:
        example = torch.zeros((batch,) + shape[1:], dtype=module_dtype(module))
    pool = [(n, c) for n, c in planted.configs(seconds) if not only or n in only]
    name, config = pool[seed % len(pool)]
    text = planted.vnnlib(p, int(np.prod(shape)), n_out)
    return Instance(module, shape, kind, p, text, example, name, config)


def run_one(seed: int, seconds: float, out: Path, only: list[str] | None = None) -> dict:
    """Draw, verify and judge one module and property (configuration by seed)."""
    inst = instance(seed, seconds, only)
    module, shape, p, text = inst.module, inst.shape, inst.p, inst.text
    config, name, kind = inst.config, inst.config_name, inst.kind
    verdict = planted.judge(
        lambda: cv.verify(module, text, config=config, example_input=inst.example),
        p,
        lambda result: replays(module, shape, p, result, config.replay),
    )
    row = dict(
        seed=seed,
        kind=kind,
        dtype=str(module_dtype(module)).removeprefix("torch."),
        plan=sorted({s for s, _ in module.plan}),
        config=name,
        **verdict,
    )
    if row["status"] == "error" and not any(
        w in row["message"] for w in ("not supported", "piecewise")
    ):
        row["wrong"] = "error: " + row["message"][:120]  # every drawn module is supported
    if row["wrong"]:
        planted.save_wrong(out, row, text)
    return row


def main() -> None:
    """Run seeds from --first until --seconds have passed; one JSON line per instance."""
    ap = planted.campaign_args(__doc__)
    ap.add_argument("--config", action="append", help="run only these configurations (repeatable)")
    args = ap.parse_args()
    rows = planted.campaign(
        args.out / "results.jsonl",
        args.seconds,
        args.first,
        lambda seed: run_one(seed, args.timeout, args.out, args.config),
        lambda r: (
            f"{r['seed']} {r['kind']} {r['dtype']} {r['config']} {r['direction']} "
            f"gap={r['gap']:.1e} {r['status']} {r['seconds']}s {r['wrong']}"
        ),
    )
    wrong = [r for r in rows if r["wrong"]]
    print(f"{len(rows)} instances, {len(wrong)} wrong")
    sys.exit(1 if wrong else 0)


if __name__ == "__main__":
    main()
