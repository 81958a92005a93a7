"""Max, average and global pooling: shape rules, float and fixed kernels.

The fixed kernels mirror hls4ml's pooling templates, which differ by io type:
io_parallel (nnet_pooling.h) casts the window's maximum to accum_t, and sums average windows
one element at a time with each partial sum in accum_t; io_stream (nnet_pooling_stream.h)
casts every element to accum_t first, then reduces. Both divide by the element count with
the quotient rounded toward zero, then cast accum_t to the result type.
"""
from __future__ import annotations

import numpy as np

from fxq.op import Op
from fxq.fixed import MAX_WIDTH, FixedType, cast, requantize
from fxq.layer import LayerTypes
from fxq.ops.fixed_math import (add_in, aligned_sum, raw_bound, tree_reduce,
                                truncating_divide)
from fxq.ops.registry import fixed_kernel, float_kernel, rule, shape_rule
from fxq.ops.windows import offset_slices, pad_spatial, spatial_output_shape, windows


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


# -- bit-accurate kernels ------------------------------------------------------------------

def _flat_windows(x, kernel, strides, pads, value):
    """(N, C, *out, k) windows over x padded with the raw `value`."""
    win = windows(pad_spatial(x, pads, value), kernel, strides)
    return win.reshape(win.shape[:2 + len(kernel)] + (-1,))


def _max_of(win, fx):
    """Max over the last axis of raw `win` (the input type), as the io type computes it."""
    data_t, accum = fx.inputs[0], fx.layer.accum or fx.inputs[0]
    if fx.io_type == "io_stream":
        return cast(cast(win, data_t, accum).max(axis=-1), accum, fx.result)
    return cast(cast(win.max(axis=-1), data_t, accum), accum, fx.result)


def _average_of(win, count, fx, *, global_pool=False):
    """Sum over the last axis of raw `win`, divided by `count` (array or int), cast to result.

    io_parallel adds element by element (y += x[i]) with each partial sum in accum_t. io_stream
    casts each element to accum_t and adds them in a balanced tree (windows) or one pixel at
    a time (global pooling), each partial sum in accum_t.
    """
    data_t, accum = fx.inputs[0], fx.layer.accum
    add_in_accum = add_in(accum)
    if fx.io_type == "io_stream":
        elements = cast(win, data_t, accum)
        if global_pool:
            total = np.zeros(win.shape[:-1], dtype=np.int64)
            for i in range(win.shape[-1]):
                total = add_in_accum(total, elements[..., i])
        else:
            total = tree_reduce(elements, add_in_accum)
    else:
        total = np.zeros(win.shape[:-1], dtype=np.int64)
        for i in range(win.shape[-1]):
            step, frac = aligned_sum(total, accum.frac, win[..., i], data_t.frac)
            total = requantize(step, frac, accum, 64)
    return cast(truncating_divide(total, count), accum, fx.result)


def _reduce_slices(x, kernel, strides, pads, value, combine):
    """combine() over every window offset of strided slices of x padded with the raw
    `value`: a reduction over each window without materializing the windows."""
    xp = pad_spatial(x, pads, value)
    out = spatial_output_shape(x.shape[2:], kernel, strides, pads)
    total = None
    for offset in np.ndindex(*kernel):
        index = (slice(None), slice(None)) + offset_slices(offset, strides, out)
        total = xp[index].copy() if total is None else combine(total, xp[index], out=total)
    return total


def _exact_in_accum(fx, count: int) -> bool:
    """True when accum_t holds every element and every partial sum of `count` elements
    exactly: then the io_parallel and io_stream sums both equal the plain sum."""
    data_t, accum = fx.inputs[0], fx.layer.accum
    shift = accum.frac - data_t.frac
    bound = count * raw_bound(data_t) << max(shift, 0)
    return shift >= 0 and bound <= accum.raw_max and -bound >= accum.raw_min and shift < 62


@fixed_kernel(Op.MAX_POOL)
def max_pool_fixed(fx, x):
    kernel, strides, pads = (fx.node.attrs[k] for k in ("kernel", "strides", "pads"))
    pad = fx.inputs[0].raw_min
    if fx.layer.accum is None or fx.io_type == "io_parallel":
        # the window maximum first, then the casts: what io_parallel computes, and io_stream
        # too when accum_t is the data type (the casts are then the identity)
        top = _reduce_slices(x, kernel, strides, pads, pad, np.maximum)
        data_t, accum = fx.inputs[0], fx.layer.accum or fx.inputs[0]
        return cast(cast(top, data_t, accum), accum, fx.result)
    return _max_of(_flat_windows(x, kernel, strides, pads, pad), fx)


def window_count(spatial, kernel, strides, pads, count_include_pad: bool):
    """The elements each average window divides by: the window size, or, when padding is
    not counted, an int64 array (1, 1, *out) of each window's elements inside the input."""
    if count_include_pad or not any(pads):
        return int(np.prod(kernel))
    ones = np.ones((1, 1) + tuple(spatial), dtype=np.int64)
    return _flat_windows(ones, kernel, strides, pads, 0).sum(axis=-1)


def _divide_exact_sum(total, count, fx):
    """The result of an average whose plain sum `total` (raw, on the input's grid; `total`
    is overwritten) accum_t holds exactly (_exact_in_accum)."""
    total <<= fx.layer.accum.frac - fx.inputs[0].frac
    return cast(truncating_divide(total, count), fx.layer.accum, fx.result)


@fixed_kernel(Op.AVG_POOL)
def avg_pool_fixed(fx, x):
    kernel, strides, pads = (fx.node.attrs[k] for k in ("kernel", "strides", "pads"))
    count = window_count(x.shape[2:], kernel, strides, pads, fx.node.attrs["count_include_pad"])
    if _exact_in_accum(fx, int(np.prod(kernel))):
        return _divide_exact_sum(_reduce_slices(x, kernel, strides, pads, 0, np.add), count, fx)
    return _average_of(_flat_windows(x, kernel, strides, pads, 0), count, fx)


@fixed_kernel(Op.GLOBAL_MAX_POOL)
def global_max_pool_fixed(fx, x):
    return _max_of(x.reshape(x.shape[:2] + (-1,)), fx).reshape(x.shape[:2] + (1,) * (x.ndim - 2))


@fixed_kernel(Op.GLOBAL_AVG_POOL)
def global_avg_pool_fixed(fx, x):
    win = x.reshape(x.shape[:2] + (-1,))
    count = win.shape[-1]
    if _exact_in_accum(fx, count):
        y = _divide_exact_sum(win.sum(axis=-1), count, fx)
    else:
        y = _average_of(win, count, fx, global_pool=True)
    return y.reshape(x.shape[:2] + (1,) * (x.ndim - 2))


@rule("check", Op.AVG_POOL, Op.GLOBAL_AVG_POOL)
def average_check(node, ins, layer, graph):
    return None if layer.accum is not None else "no accumulator type"


# -- the search's type rules ---------------------------------------------------------------

def pool_accumulator(count: int, x_t: FixedType) -> FixedType:
    """Average pooling's accum_t: the sum of a window never overflows, and log2(count)
    extra fractional bits keep the integer division from dropping precision."""
    grow = max(1, (count - 1).bit_length())
    width = min(MAX_WIDTH, x_t.width + 2 * grow + (0 if x_t.signed else 1))
    return FixedType(width, x_t.frac + grow)


@rule("types", Op.MAX_POOL, Op.GLOBAL_MAX_POOL)
def max_types(search, node, ins, widths):
    return search.choose(node, ins, widths.act, ins[0].signed,
                         lambda t: LayerTypes(result=t))


@rule("types", Op.AVG_POOL, Op.GLOBAL_AVG_POOL)
def average_types(search, node, ins, widths):
    if node.op is Op.GLOBAL_AVG_POOL:
        count = int(np.prod(search.graph.shape(node.inputs[0])[1:], dtype=np.int64))
    else:
        count = int(np.prod(node.attrs["kernel"], dtype=np.int64))
    accum = pool_accumulator(count, ins[0])
    return search.choose(node, ins, widths.act, ins[0].signed,
                         lambda t: LayerTypes(result=t, accum=accum))
