"""Dense, convolution and batch-norm scale-and-shift: shape rules, float and fixed kernels."""
from __future__ import annotations

import numpy as np

from fxq.ir import Op
from fxq.fixed import requantize
from fxq.ops.fixed_math import aligned_sum, multiply_accumulate
from fxq.ops.registry import fixed_kernel, float_kernel, shape_rule
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


# -- bit-accurate kernels (hls4ml nnet_dense_latency.h, nnet_conv2d_latency.h, ...) -------

def _finish(acc: np.ndarray, fx) -> np.ndarray:
    return requantize(acc, fx.layer.accum.frac, fx.result, fx.layer.accum.width)


@fixed_kernel(Op.DENSE)
def dense_fixed(fx, x):
    w = fx.params[0]
    b = fx.params[1][None] if len(fx.params) > 1 else None
    lead = x.shape[:-1]
    acc = multiply_accumulate(x.reshape(1, -1, x.shape[-1]), fx.inputs[0], w[None],
                              fx.param_types[0], b, fx.param_types[1] if b is not None else None,
                              fx.layer.accum)
    return _finish(acc[0], fx).reshape(lead + (w.shape[1],))


@fixed_kernel(Op.CONV)
def conv_fixed(fx, x):
    """Grouped convolution as one multiply-accumulate per group over im2col patches."""
    strides, pads, groups = (fx.node.attrs[k] for k in ("strides", "pads", "groups"))
    w = fx.params[0]
    nd = w.ndim - 2
    n, c = x.shape[:2]
    o = w.shape[0]
    win = windows(pad_spatial(x, pads), w.shape[2:], strides)        # N, C, *out, *k
    out_spatial = win.shape[2:2 + nd]
    pixels = int(np.prod(out_spatial, dtype=np.int64))
    k = int(np.prod(w.shape[2:], dtype=np.int64))
    # patches: (G, N * pixels, C/G * k) in the weight's (C/G, *k) order
    win = win.reshape((n, groups, c // groups, pixels, k))
    patches = win.transpose(1, 0, 3, 2, 4).reshape(groups, n * pixels, (c // groups) * k)
    wg = w.reshape(groups, o // groups, -1).transpose(0, 2, 1)        # G, C/G*k, O/G
    b = fx.params[1].reshape(groups, o // groups) if len(fx.params) > 1 else None
    acc = multiply_accumulate(patches, fx.inputs[0], wg, fx.param_types[0], b,
                              fx.param_types[1] if b is not None else None, fx.layer.accum)
    y = _finish(acc, fx).reshape(groups, n, pixels, o // groups)
    return y.transpose(1, 0, 3, 2).reshape((n, o) + out_spatial)


@fixed_kernel(Op.BATCH_NORM)
def batch_norm_fixed(fx, x):
    """hls4ml normalize: data * scale + bias, exact, then one cast to the result type."""
    (scale, shift), (scale_t, shift_t) = fx.params, fx.param_types
    shape = (1, -1) + (1,) * (x.ndim - 2)
    total, frac = aligned_sum(x * scale.reshape(shape), fx.inputs[0].frac + scale_t.frac,
                              shift.reshape(shape), shift_t.frac)
    return requantize(total, frac, fx.result, 64)
