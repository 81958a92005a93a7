"""Element-wise activations and softmax: shape rules and float kernels."""
from __future__ import annotations

import numpy as np

from fxq.ir import Op
from fxq.ops.registry import float_kernel, shape_rule


@shape_rule(Op.RELU, Op.LEAKY_RELU, Op.CLIP, Op.SIGMOID, Op.TANH, Op.SOFTMAX)
def same_shape(x, **_):
    return tuple(x)


@float_kernel(Op.RELU)
def relu(x):
    return np.maximum(x, 0.0)


@float_kernel(Op.LEAKY_RELU)
def leaky_relu(x, *, alpha):
    return np.where(x >= 0, x, alpha * x)


@float_kernel(Op.CLIP)
def clip(x, *, lo, hi):
    return np.minimum(np.maximum(x, lo), hi)


@float_kernel(Op.SIGMOID)
def sigmoid(x):
    # exp of -|x| never overflows; both branches give 1 / (1 + e^-x)
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


@float_kernel(Op.TANH)
def tanh(x):
    return np.tanh(x)


@float_kernel(Op.SOFTMAX)
def softmax(x, *, axes):
    e = np.exp(x - np.max(x, axis=axes, keepdims=True))
    return e / np.sum(e, axis=axes, keepdims=True)
