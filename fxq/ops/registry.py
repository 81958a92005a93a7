"""Explicit registries of per-op functions, filled by the op modules at import.

Two tables, one entry per `Op` each, duplicates refused:

* shape rules: ``rule(*shapes, **attrs) -> shape``. Shapes are *batched* with a batch of 1
  for activations and the real shape for parameters, so rules follow ONNX semantics
  directly; the caller strips the batch axis.
* float kernels: ``kernel(*arrays, **attrs) -> ndarray``, batched float64 in and out.
* fixed kernels: ``kernel(fx, *raws) -> ndarray``, the bit-accurate integer kernel: `fx` is
  the node's `FixedNode` (its types and raw parameters), `raws` the int64 raw values of its
  activation inputs, batch first; it returns the raw int64 values of its result type.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from fxq.ir import Op

ShapeRule = Callable[..., tuple[int, ...]]
FloatKernel = Callable[..., np.ndarray]

SHAPE_RULES: dict[Op, ShapeRule] = {}
FLOAT_KERNELS: dict[Op, FloatKernel] = {}
FIXED_KERNELS: dict[Op, Callable[..., np.ndarray]] = {}


def _registrar(table: dict, kind: str, *ops: Op) -> Callable:
    def register(fn: Callable) -> Callable:
        for op in ops:
            if op in table:
                raise RuntimeError(f"two {kind}s registered for {op.name}")
            table[op] = fn
        return fn

    return register


def shape_rule(*ops: Op) -> Callable[[ShapeRule], ShapeRule]:
    return _registrar(SHAPE_RULES, "shape rule", *ops)


def float_kernel(*ops: Op) -> Callable[[FloatKernel], FloatKernel]:
    return _registrar(FLOAT_KERNELS, "float kernel", *ops)


def fixed_kernel(*ops: Op) -> Callable:
    return _registrar(FIXED_KERNELS, "fixed kernel", *ops)
