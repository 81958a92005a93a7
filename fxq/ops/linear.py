"""Dense, convolution and batch-norm scale-and-shift: shape rules and float kernels."""
from __future__ import annotations

import numpy as np

from fxq.ir import Op
from fxq.ops.registry import float_kernel, shape_rule
from fxq.ops.windows import pad_spatial, spatial_output_shape, windows


@shape_rule(Op.DENSE)
def dense_shape(x, w, b=None):
    return tuple(x[:-1]) + (w[1],)


@float_kernel(Op.DENSE)
def dense(x, w, b=None):
    y = x @ w
    return y if b is None else y + b


@shape_rule(Op.CONV)
def conv_shape(x, w, b=None, *, strides, pads, groups):
    return (x[0], w[0]) + spatial_output_shape(x[2:], w[2:], strides, pads)


@float_kernel(Op.CONV)
def conv(x, w, b=None, *, strides, pads, groups):
    """Grouped N-d convolution (cross-correlation, as ONNX) by sliding windows."""
    nd = w.ndim - 2
    win = windows(pad_spatial(x, pads), w.shape[2:], strides)     # N, C, *out, *k
    out_spatial = win.shape[2:2 + nd]
    n, c = x.shape[:2]
    o = w.shape[0]
    k_axes = tuple(range(2 + nd, 2 + 2 * nd))
    if groups == 1:
        y = np.tensordot(win, w, axes=((1,) + k_axes, (1,) + tuple(range(2, 2 + nd))))
        y = np.moveaxis(y, -1, 1)                                  # N, O, *out
    else:
        # (N, G, C/G, *out, *k) x (G, O/G, C/G, *k) -> (N, G, O/G, *out)
        win = win.reshape((n, groups, c // groups) + win.shape[2:])
        wg = w.reshape((groups, o // groups) + w.shape[1:])
        letters = "xyz"[:nd]          # disjoint from n, g, c, o and the kernel letters
        kl = "ijk"[:nd]
        y = np.einsum(f"ngc{letters}{kl},goc{kl}->ngo{letters}", win, wg, optimize=True)
        y = y.reshape((n, o) + out_spatial)
    if b is not None:
        y = y + b.reshape((1, o) + (1,) * nd)
    return y


@shape_rule(Op.BATCH_NORM)
def batch_norm_shape(x, scale, shift):
    return tuple(x)


@float_kernel(Op.BATCH_NORM)
def batch_norm(x, scale, shift):
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return x * scale.reshape(shape) + shift.reshape(shape)
