"""Max, average and global pooling: shape rules and float kernels."""
from __future__ import annotations

import numpy as np

from fxq.ir import Op
from fxq.ops.registry import float_kernel, shape_rule
from fxq.ops.windows import pad_spatial, spatial_output_shape, windows


@shape_rule(Op.MAX_POOL, Op.AVG_POOL)
def pool_shape(x, *, kernel, strides, pads, count_include_pad=False):
    return tuple(x[:2]) + spatial_output_shape(x[2:], kernel, strides, pads)


def _window_axes(kernel) -> tuple[int, ...]:
    nd = len(kernel)
    return tuple(range(2 + nd, 2 + 2 * nd))


@float_kernel(Op.MAX_POOL)
def max_pool(x, *, kernel, strides, pads):
    win = windows(pad_spatial(x, pads, -np.inf), kernel, strides)
    return win.max(axis=_window_axes(kernel))


@float_kernel(Op.AVG_POOL)
def avg_pool(x, *, kernel, strides, pads, count_include_pad):
    total = windows(pad_spatial(x, pads), kernel, strides).sum(axis=_window_axes(kernel))
    if count_include_pad or not any(pads):
        return total / float(np.prod(kernel))
    ones = np.ones((1, 1) + x.shape[2:])
    count = windows(pad_spatial(ones, pads), kernel, strides).sum(axis=_window_axes(kernel))
    return total / count


@shape_rule(Op.GLOBAL_AVG_POOL, Op.GLOBAL_MAX_POOL)
def global_pool_shape(x):
    return tuple(x[:2]) + (1,) * (len(x) - 2)


@float_kernel(Op.GLOBAL_AVG_POOL)
def global_avg_pool(x):
    return x.mean(axis=tuple(range(2, x.ndim)), keepdims=True)


@float_kernel(Op.GLOBAL_MAX_POOL)
def global_max_pool(x):
    return x.max(axis=tuple(range(2, x.ndim)), keepdims=True)
