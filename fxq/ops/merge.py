"""Add, Mul and Concat: shape rules and float kernels."""
from __future__ import annotations

import numpy as np

from fxq.ir import Op
from fxq.ops.registry import float_kernel, shape_rule


@shape_rule(Op.ADD, Op.MUL)
def broadcast_shape(a, b):
    return tuple(np.broadcast_shapes(tuple(a), tuple(b)))


@float_kernel(Op.ADD)
def add(a, b):
    return a + b


@float_kernel(Op.MUL)
def mul(a, b):
    return a * b


@shape_rule(Op.CONCAT)
def concat_shape(*shapes, axis):
    out = list(shapes[0])
    out[axis] = sum(s[axis] for s in shapes)
    return tuple(out)


@float_kernel(Op.CONCAT)
def concat(*arrays, axis):
    return np.concatenate(arrays, axis=axis)
