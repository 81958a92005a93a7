"""Flatten, Reshape, Transpose, Pad and Identity: shape rules, float and fixed kernels.

These ops move values without arithmetic; their result type is their input type, so the
fixed kernels are the float ones applied to raw integers (Pad's value quantized first).
"""
from __future__ import annotations

import numpy as np

from fxq.op import Op
from fxq.fixed import quantize
from fxq.ops.registry import fixed_kernel, float_kernel, shape_rule


@shape_rule(Op.IDENTITY)
def identity_shape(x):
    return tuple(x)


@float_kernel(Op.IDENTITY)
def identity(x):
    return x


@shape_rule(Op.FLATTEN)
def flatten_shape(x):
    return (x[0], int(np.prod(x[1:], dtype=np.int64)))


@float_kernel(Op.FLATTEN)
def flatten(x):
    return x.reshape(x.shape[0], -1)


@shape_rule(Op.RESHAPE)
def reshape_shape(x, *, shape):
    return (x[0],) + tuple(shape)


@float_kernel(Op.RESHAPE)
def reshape(x, *, shape):
    return x.reshape((x.shape[0],) + tuple(shape))


@shape_rule(Op.TRANSPOSE)
def transpose_shape(x, *, perm):
    return tuple(x[p] for p in perm)


@float_kernel(Op.TRANSPOSE)
def transpose(x, *, perm):
    return np.transpose(x, perm)


@shape_rule(Op.PAD)
def pad_shape(x, *, pads, value):
    nd = len(x) - 1
    return (x[0],) + tuple(x[1 + i] + pads[i] + pads[i + nd] for i in range(nd))


@float_kernel(Op.PAD)
def pad(x, *, pads, value):
    nd = x.ndim - 1
    width = [(0, 0)] + [(pads[i], pads[i + nd]) for i in range(nd)]
    return np.pad(x, width, mode="constant", constant_values=value)


# -- bit-accurate kernels ------------------------------------------------------------------

def _same(kernel):
    def fixed(fx, x):
        return kernel(x, **fx.node.attrs)
    return fixed


for _op, _kernel in ((Op.IDENTITY, identity), (Op.FLATTEN, flatten), (Op.RESHAPE, reshape),
                     (Op.TRANSPOSE, transpose)):
    fixed_kernel(_op)(_same(_kernel))


@fixed_kernel(Op.PAD)
def pad_fixed(fx, x):
    value = int(quantize(fx.node.attrs["value"], fx.result))
    return pad(x, pads=fx.node.attrs["pads"], value=value)
