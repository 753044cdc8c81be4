"""onnx's reference evaluator, with the operators it gets wrong for inference replaced.

The reference evaluator is one of the two independent forward passes a witness is replayed in
(the other is onnxruntime), and constant folding uses it too. Replaced here:

- ``BatchNormalization`` before opset 14. The evaluator fills in the schema's default
  ``momentum`` (0.9) and then takes that as training mode: it mixes the batch's own mean and
  variance into the running statistics (opsets 9-13) or returns the training outputs
  (opsets 6-8, an error). The ONNX specification decides the mode by the node's outputs: with
  the single output ``Y`` the node is in inference mode, ``Y = scale (X - mean) / sqrt(var +
  epsilon) + B`` with the stored statistics, which is what onnxruntime computes and what
  completeverify imports. A model exported at opset 13 with a BatchNormalization layer was
  therefore refused ("imported graph disagrees with the ONNX model") whenever the reference
  replayed it, and a smaller disagreement could have confirmed or rejected a witness on the
  wrong outputs.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx.reference import ReferenceEvaluator
from onnx.reference.op_run import OpRun


class BatchNormalization(OpRun):
    """Inference-mode BatchNormalization for every opset (training mode is an error)."""

    op_domain = ""

    def _run(self, x, scale, bias, mean, var, epsilon=None, training_mode=None, **_):
        """Y = scale (x - mean) / sqrt(var + epsilon) + B, in x's dtype."""
        if training_mode or len([o for o in self.onnx_node.output if o]) > 1:
            raise ValueError("BatchNormalization in training mode is not supported")
        eps = np.float32(1e-5) if epsilon is None else epsilon
        if np.ndim(scale) == 1:  # per channel (axis 1)
            shape = (-1,) + (1,) * (x.ndim - 2)
            scale, bias, mean, var = (np.reshape(v, shape) for v in (scale, bias, mean, var))
        # spatial=0 (opsets 7-8): the statistics have shape (C, D1, ...) and broadcast as is
        y = scale * (x - mean) / np.sqrt(var + np.asarray(eps, dtype=x.dtype)) + bias
        return (y.astype(x.dtype),)


REPLACED_OPS: tuple[type[OpRun], ...] = (BatchNormalization,)


def reference_evaluator(model: onnx.ModelProto, **kwargs: Any) -> ReferenceEvaluator:
    """``onnx.reference.ReferenceEvaluator(model)`` with ``REPLACED_OPS`` in place."""
    return ReferenceEvaluator(model, new_ops=list(REPLACED_OPS), **kwargs)
