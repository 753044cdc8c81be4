"""Checks on an untrusted ONNX model made before any tensor is materialised.

Every check raises ModelError naming the file and the initializer or node, and
what to fix.  Sizes are computed from declared dimensions with Python integers,
so a model that declares 10^12 elements is refused without allocating them.
External data is resolved against the model file's own folder, never the current
directory, and must stay inside that folder.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import onnx

from .config import Limits
from .errors import ModelError

_TYPED_FIELDS = (
    "float_data",
    "double_data",
    "int32_data",
    "int64_data",
    "uint64_data",
    "string_data",
)
_COMPLEX = (onnx.TensorProto.COMPLEX64, onnx.TensorProto.COMPLEX128)
_FLOATS = (
    onnx.TensorProto.FLOAT,
    onnx.TensorProto.DOUBLE,
    onnx.TensorProto.FLOAT16,
    onnx.TensorProto.BFLOAT16,
)


def declared_elements(dims, what: str, source: str, limit: int) -> int:
    """The element count of declared ``dims``, refused when negative or over ``limit``."""
    count = 1
    for d in dims:
        d = int(d)
        if d < 0:
            raise ModelError(f"{source}: {what} has a negative dimension {d} in {list(dims)}")
        count *= d
    if count > limit:
        raise ModelError(
            f"{source}: {what} has shape {list(dims)} = {count} elements, over the "
            f"limit of {limit} (limits; a model this large is not supported)"
        )
    return count


def _itemsize(tensor: onnx.TensorProto, what: str, source: str) -> int:
    """Bytes per element of the tensor's declared data type."""
    try:
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type)
    except Exception:  # noqa: BLE001 - an unknown or undefined type code
        raise ModelError(
            f"{source}: {what} has an unknown data type code {tensor.data_type}"
        ) from None
    if dtype.kind in "OSU":
        raise ModelError(f"{source}: {what} holds strings; only numeric tensors are supported")
    return int(np.dtype(dtype).itemsize)


def check_tensor(
    tensor: onnx.TensorProto, what: str, source: str, limits: Limits, folder: Path | None
) -> int:
    """Validate one tensor's declared size and data (inlining external data); its element count.

    ``folder`` is the model file's folder, or None when the model did not come from a file.
    """
    count = declared_elements(tensor.dims, what, source, limits.max_tensor_elements)
    itemsize = _itemsize(tensor, what, source)
    if tensor.data_location == onnx.TensorProto.EXTERNAL:
        _inline_external(tensor, what, source, folder, count * itemsize)
    if tensor.HasField("raw_data"):
        if len(tensor.raw_data) != count * itemsize:
            raise ModelError(
                f"{source}: {what}: raw_data has {len(tensor.raw_data)} bytes but "
                f"shape {list(tensor.dims)} needs {count * itemsize} (truncated or "
                "corrupt tensor data)"
            )
        return count
    per = 2 if tensor.data_type in _COMPLEX else 1
    lengths = [len(getattr(tensor, f)) for f in _TYPED_FIELDS if len(getattr(tensor, f))]
    have = sum(lengths)
    if have != count * per and not (count == 0 and have == 0):
        raise ModelError(
            f"{source}: {what} declares shape {list(tensor.dims)} ({count} elements) "
            f"but holds {have} values (missing or truncated tensor data)"
        )
    return count


def check_finite(array: np.ndarray, what: str, source: str, allow_inf: bool = False) -> None:
    """Refuse NaN (and, unless ``allow_inf``, infinite) values in a floating-point tensor."""
    if array.dtype.kind != "f" or not array.size:
        return
    flat = array.reshape(-1)
    bad = np.flatnonzero(np.isnan(flat) if allow_inf else ~np.isfinite(flat))
    if bad.size:
        kind = "NaN" if np.isnan(flat[bad[0]]) else "infinite"
        raise ModelError(
            f"{source}: {what} contains {bad.size} non-finite value(s) ({kind} at "
            f"flat index {int(bad[0])}); weights must be finite numbers"
        )


def is_float_tensor(tensor: onnx.TensorProto) -> bool:
    """True for the floating-point data types (finiteness is checked for these)."""
    return tensor.data_type in _FLOATS


def _inline_external(
    tensor: onnx.TensorProto, what: str, source: str, folder: Path | None, nbytes: int
) -> None:
    """Read a tensor's external data from inside ``folder`` into raw_data."""
    info = {e.key: e.value for e in tensor.external_data}
    location = info.get("location", "")
    if folder is None:
        raise ModelError(
            f"{source}: {what} keeps its data in the external file '{location}'; "
            "load the model from its path so the file can be found next to it"
        )
    if not location:
        raise ModelError(f"{source}: {what} is marked as external data but names no file")
    if os.path.isabs(location) or Path(location).drive or location.startswith(("/", "\\")):
        raise ModelError(
            f"{source}: {what}: external data path '{location}' is absolute; it "
            "must be relative to the model's folder"
        )
    base = folder.resolve()
    target = (base / location).resolve()
    if target != base and base not in target.parents:
        raise ModelError(
            f"{source}: {what}: external data path '{location}' leaves the model's "
            f"folder {base}; keep the data file next to the model"
        )
    if not target.is_file():
        raise ModelError(f"{source}: {what}: external data file '{location}' not found in {base}")
    try:
        offset = int(info.get("offset", "0") or 0)
        length = int(info["length"]) if info.get("length") else nbytes
    except ValueError:
        raise ModelError(
            f"{source}: {what}: external data offset/length are not integers"
        ) from None
    if length != nbytes:
        raise ModelError(
            f"{source}: {what}: external data length {length} bytes does not match "
            f"shape {list(tensor.dims)} ({nbytes} bytes)"
        )
    size = target.stat().st_size
    if offset < 0 or offset + nbytes > size:
        raise ModelError(
            f"{source}: {what}: external data file '{location}' has {size} bytes, "
            f"too short for {nbytes} bytes at offset {offset}"
        )
    with open(target, "rb") as handle:
        handle.seek(offset)
        data = handle.read(nbytes)
    if len(data) != nbytes:
        raise ModelError(f"{source}: {what}: external data file '{location}' ended early")
    tensor.raw_data = data
    tensor.data_location = onnx.TensorProto.DEFAULT
    del tensor.external_data[:]


def predicted_elements(op: str, ins: list) -> int | None:
    """Elements the output of a size-creating op will have, from its constant inputs.

    Covers ConstantOfShape, Expand, Tile and Range (the ops whose output size is set by
    an input value rather than an input size); None when not predictable here.
    """

    def const(k: int) -> np.ndarray | None:
        """Constant input k, or None."""
        if len(ins) > k and isinstance(ins[k], np.ndarray):
            return ins[k]
        return None

    def size_of(k: int) -> tuple[int, ...] | None:
        """The shape of input k (constant or variable)."""
        if len(ins) <= k or ins[k] is None:
            return None
        return tuple(int(s) for s in (ins[k].shape))

    if op == "ConstantOfShape":
        shape = const(0)
        return None if shape is None else math.prod(abs(int(v)) for v in shape.reshape(-1))
    if op == "Expand":
        shape, x = const(1), size_of(0)
        if shape is None or x is None:
            return None
        dims = [abs(int(v)) for v in shape.reshape(-1)]
        rank = max(len(dims), len(x))
        a = [1] * (rank - len(x)) + list(x)
        b = [1] * (rank - len(dims)) + dims
        return math.prod(max(p, q) for p, q in zip(a, b))
    if op == "Tile":
        reps, x = const(1), size_of(0)
        if reps is None or x is None:
            return None
        return math.prod(x) * math.prod(abs(int(v)) for v in reps.reshape(-1))
    if op == "Range":
        start, limit, delta = const(0), const(1), const(2)
        if start is None or limit is None or delta is None:
            return None
        d = float(delta.reshape(-1)[0])
        span = float(limit.reshape(-1)[0]) - float(start.reshape(-1)[0])
        if d == 0 or not math.isfinite(d) or not math.isfinite(span):
            return None  # refused by the reference evaluator itself
        return max(0, math.ceil(span / d))
    return None
