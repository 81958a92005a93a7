"""Dense, convolution and batch-norm scale-and-shift: shape rules, float and fixed kernels."""
from __future__ import annotations

import numpy as np

from fxq.op import Op
from fxq.fixed import Overflow, requantize, requantize_exact_float
from fxq.layer import LayerTypes
from fxq.ops import torch_conv
from fxq.ops.fixed_math import (aligned_sum, exact_float_dtype, multiply_accumulate, raw_bound,
                                signed_weight_sums)
from fxq.ops.registry import fixed_kernel, float_kernel, rule, shape_rule
from fxq.ops.windows import offset_slices, pad_spatial, spatial_output_shape, windows


def _per_channel(shape, n: int, what: str) -> None:
    """A parameter of one value per channel: shape (n,), else ValueError."""
    if shape is not None and tuple(shape) != (n,):
        raise ValueError(f"{what} of shape {tuple(shape)} for {n} channels")


@shape_rule(Op.DENSE)
def dense_shape(x, w, b=None):
    _per_channel(b, w[1], "bias")
    return tuple(x[:-1]) + (w[1],)


@float_kernel(Op.DENSE)
def dense(x, w, b=None):
    # a contiguous x: BLAS's summation order then depends on the values alone, not on
    # whether the producer left a transposed view (as a Conv's channels-first view is)
    y = np.ascontiguousarray(x) @ np.ascontiguousarray(w)
    return y if b is None else y + b


@shape_rule(Op.CONV)
def conv_shape(x, w, b=None, *, strides, pads, groups):
    _per_channel(b, w[0], "bias")
    return (x[0], w[0]) + spatial_output_shape(x[2:], w[2:], strides, pads)


@float_kernel(Op.CONV)
def conv(x, w, b=None, *, strides, pads, groups):
    """Grouped N-d convolution (cross-correlation, as ONNX) in float64, channels-last, one
    pass per kernel offset over strided input slices: a product per channel for depthwise,
    else a matmul per group (few input channels: one matmul over the gathered patches)."""
    n, c = x.shape[:2]
    o = w.shape[0]
    out_spatial = spatial_output_shape(x.shape[2:], w.shape[2:], strides, pads)
    xl = _channels_last_float(x, pads, np.float64)
    offsets = list(np.ndindex(*w.shape[2:]))
    slices = [(slice(None),) + offset_slices(k, strides, out_spatial) for k in offsets]
    wk = [w[(slice(None), slice(None)) + k].astype(np.float64) for k in offsets]   # O, C/G
    shape = (n,) + out_spatial + (o,)
    if groups == c == o:                                   # depthwise
        total = np.zeros(shape)
        part = np.empty(shape)
        for where, wo in zip(slices, wk):
            total += np.multiply(xl[where], wo[:, 0], out=part)
    else:
        rows = n * int(np.prod(out_spatial, dtype=np.int64))
        cg, og = c // groups, o // groups
        total = np.zeros((rows, o))
        for g in range(groups):
            ci, co = slice(g * cg, (g + 1) * cg), slice(g * og, (g + 1) * og)
            if cg * len(offsets) <= 64:                    # few inputs: one matmul
                patches = np.empty((rows, len(offsets), cg))
                for i, where in enumerate(slices):
                    patches[:, i, :] = xl[where + (ci,)].reshape(rows, cg)
                kernel = np.stack([wo[co].T for wo in wk])                 # k, C/G, O/G
                total[:, co] = patches.reshape(rows, -1) @ kernel.reshape(-1, og)
            else:
                for where, wo in zip(slices, wk):
                    win = np.ascontiguousarray(xl[where + (ci,)]).reshape(rows, cg)
                    total[:, co] += win @ wo[co].T
        total = total.reshape(shape)
    if b is not None:
        total += b
    return np.moveaxis(total, -1, 1)


@shape_rule(Op.BATCH_NORM)
def batch_norm_shape(x, scale, shift):
    _per_channel(scale, x[1], "scale")
    _per_channel(shift, x[1], "shift")
    return tuple(x)


@float_kernel(Op.BATCH_NORM)
def batch_norm(x, scale, shift):
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return x * scale.reshape(shape) + shift.reshape(shape)


# -- bit-accurate kernels (hls4ml nnet_dense_latency.h, nnet_conv2d_latency.h, ...) -------

def _bias(fx):
    return (fx.params[1], fx.param_types[1]) if len(fx.params) > 1 else (None, None)


@fixed_kernel(Op.DENSE)
def dense_fixed(fx, x):
    w = fx.params[0]
    b, b_t = _bias(fx)
    lead = x.shape[:-1]
    y = multiply_accumulate(x.reshape(1, -1, x.shape[-1]), fx.inputs[0], w[None],
                            fx.param_types[0], None if b is None else b[None], b_t,
                            fx.layer.accum, fx.result)
    return y[0].reshape(lead + (w.shape[1],))


def _as_exact_float(x, t):
    """x as float64 when every value of type t is exact there (the BLAS path then needs no
    further conversion of the larger im2col patches), else unchanged."""
    return x.astype(np.float64) if t.width <= 53 else x


@fixed_kernel(Op.CONV)
def conv_fixed(fx, x):
    """Grouped convolution as one multiply-accumulate per group over im2col patches;
    depthwise convolution as a sum of shifted slices."""
    strides, pads, groups = (fx.node.attrs[k] for k in ("strides", "pads", "groups"))
    w = fx.params[0]
    nd = w.ndim - 2
    n, c = x.shape[:2]
    o = w.shape[0]
    y = _conv_torch(fx, x)
    if y is None:
        fast = _depthwise_float if groups == c == o else _conv_float if groups == 1 else None
        y = fast(fx, x) if fast is not None else None
    if y is not None:
        return y
    win = windows(pad_spatial(_as_exact_float(x, fx.inputs[0]), pads), w.shape[2:], strides)
    out_spatial = win.shape[2:2 + nd]
    pixels = int(np.prod(out_spatial, dtype=np.int64))
    k = int(np.prod(w.shape[2:], dtype=np.int64))
    # patches: (G, N * pixels, C/G * k) in the weight's (C/G, *k) order
    win = win.reshape((n, groups, c // groups, pixels, k))
    patches = win.transpose(1, 0, 3, 2, 4).reshape(groups, n * pixels, (c // groups) * k)
    wg = w.reshape(groups, o // groups, -1).transpose(0, 2, 1)        # G, C/G*k, O/G
    b, b_t = _bias(fx)
    y = multiply_accumulate(patches, fx.inputs[0], wg, fx.param_types[0],
                            None if b is None else b.reshape(groups, o // groups), b_t,
                            fx.layer.accum, fx.result)
    y = y.reshape(groups, n, pixels, o // groups)
    return y.transpose(1, 0, 3, 2).reshape((n, o) + out_spatial)


def _float_setup(fx):
    """(accum, shift scale, dtype, bias on accum's grid in dtype or None) when a float
    path is exact for this node (see exact_float_dtype), else None. The weights are
    (outputs, ...): each output sums the products of its row."""
    return fx.derive("float_setup", lambda: _make_float_setup(fx))


def _make_float_setup(fx):
    w = fx.params[0]
    b, b_t = _bias(fx)
    accum, x_t, w_t = fx.layer.accum, fx.inputs[0], fx.param_types[0]
    b_acc = requantize(b, b_t.frac, accum, b_t.width) if b is not None else None
    dtype = exact_float_dtype(x_t, signed_weight_sums(w.reshape(w.shape[0], -1).T), w_t,
                              b_acc, accum)
    if dtype is None:
        return None
    return accum, 2.0 ** (accum.frac - x_t.frac - w_t.frac), dtype, \
        None if b_acc is None else b_acc.astype(dtype)


def _conv_torch(fx, x):
    """Any convolution through PyTorch's float32 kernels split into exact limbs
    (torch_conv), when the float path is provably exact and PyTorch computes it exactly;
    None otherwise. The result is a channels-first view of a channels-last array."""
    if not torch_conv.available() or x.shape[0] == 0:
        return None
    setup = _float_setup(fx)
    if setup is None:
        return None
    plan = fx.derive("torch_plan", lambda: torch_conv.make_plan(
        raw_bound(fx.inputs[0]), fx.params[0], setup[1]))
    if plan is None:
        return None
    if plan.convolutions > 1 and fx.node.attrs["groups"] == 1:
        return None          # several limbs lose to one float64 BLAS pass over the channels
    accum, _, dtype, bias = setup
    attrs = fx.node.attrs
    total = torch_conv.conv_sum(plan, x, attrs["strides"], attrs["pads"], attrs["groups"],
                                dtype, bias)
    if total is None:
        return None
    return requantize_exact_float(total, accum.frac, fx.result)


FEW_CHANNELS = 8                 # below this, one im2col matmul beats a matmul per offset


def _conv_float(fx, x):
    """Ordinary convolution in float64, channels last: for each kernel offset, the strided
    input slice (pixels, C) times that offset's (C, O) weights, summed. No im2col copy; every
    partial sum is bounded like the whole (see exact_float_dtype), so it is exact.
    Returns a channels-first view of the channels-last result, None when not provably exact."""
    strides, pads = fx.node.attrs["strides"], fx.node.attrs["pads"]
    w = fx.params[0]                                             # O, C, *k
    o, c = w.shape[:2]
    setup = _float_setup(fx)
    if setup is None:
        return None
    accum, scale, dtype, bias = setup
    out_spatial = spatial_output_shape(x.shape[2:], w.shape[2:], strides, pads)
    xl = _channels_last_float(x, pads, dtype)
    # *k, C, O; contiguous, as BLAS needs its operands
    wl = np.ascontiguousarray(np.moveaxis(w, (0, 1), (-1, -2)), dtype=dtype) * dtype(scale)
    rows = x.shape[0] * int(np.prod(out_spatial, dtype=np.int64))
    offsets = list(np.ndindex(*w.shape[2:]))
    if c < FEW_CHANNELS:
        # few channels: one matmul over patches gathered offset by offset (K = k * C)
        patches = np.empty((rows, len(offsets), c), dtype=dtype)
        for i, offset in enumerate(offsets):
            window = xl[(slice(None),) + offset_slices(offset, strides, out_spatial)]
            patches[:, i, :] = window.reshape(rows, c)
        total = patches.reshape(rows, -1) @ wl.reshape(-1, o)
    else:
        total = np.zeros((rows, o), dtype=dtype)
        part = np.empty((rows, o), dtype=dtype)
        for offset in offsets:
            window = xl[(slice(None),) + offset_slices(offset, strides, out_spatial)]
            total += np.matmul(np.ascontiguousarray(window).reshape(rows, c), wl[offset],
                               out=part)
    if bias is not None:
        total += bias
    y = requantize_exact_float(total, accum.frac, fx.result)
    return np.moveaxis(y.reshape((x.shape[0],) + out_spatial + (o,)), -1, 1)


def _depthwise_float(fx, x):
    """Depthwise convolution (one filter per channel) as sum over kernel offsets of
    strided input slices times the per-channel weight, in float64, when that is provably
    exact (see exact_float_dtype); None otherwise."""
    strides, pads = fx.node.attrs["strides"], fx.node.attrs["pads"]
    w = fx.params[0]                                             # C, 1, *k
    setup = _float_setup(fx)
    if setup is None:
        return None
    accum, scale, dtype, bias = setup
    xl = _channels_last_float(x, pads, dtype)
    out_spatial = spatial_output_shape(x.shape[2:], w.shape[2:], strides, pads)
    wl = np.moveaxis(w[:, 0], 0, -1).astype(dtype) * dtype(scale)          # *k, C
    total = np.zeros((x.shape[0],) + out_spatial + (w.shape[0],), dtype=dtype)
    part = np.empty_like(total)
    for offset in np.ndindex(*w.shape[2:]):
        window = xl[(slice(None),) + offset_slices(offset, strides, out_spatial)]
        total += np.multiply(window, wl[offset], out=part)
    if bias is not None:
        total += bias
    return np.moveaxis(requantize_exact_float(total, accum.frac, fx.result), -1, 1)


def _channels_last_float(x, pads, dtype):
    """x (N, C, *spatial) raw values as a contiguous float (N, *padded spatial, C) array of
    `dtype` (the moveaxis is free when x is the channels-first view of a channels-last
    result)."""
    xl = np.moveaxis(x, 1, -1)
    nd = x.ndim - 2
    if any(pads):
        width = [(0, 0)] + [(pads[i], pads[i + nd]) for i in range(nd)] + [(0, 0)]
        xl = np.pad(xl, width)
    return np.ascontiguousarray(xl, dtype=dtype)


@fixed_kernel(Op.BATCH_NORM)
def batch_norm_fixed(fx, x):
    """hls4ml normalize: data * scale + bias, exact, then one cast to the result type."""
    (scale, shift), (scale_t, shift_t) = fx.params, fx.param_types
    shape = (1, -1) + (1,) * (x.ndim - 2)
    total, frac = aligned_sum(x * scale.reshape(shape), fx.inputs[0].frac + scale_t.frac,
                              shift.reshape(shape), shift_t.frac)
    return requantize(total, frac, fx.result, 64)


@rule("check", Op.DENSE, Op.CONV)
def weighted_sum_check(node, ins, layer, graph):
    """Products must fit int64 and the accumulator must wrap (a saturating accumulator's
    result depends on the summation order, which differs between hls4ml's strategies)."""
    w_t = layer.param("weight")
    if w_t.width + ins[0].width > 63:
        return f"input {ins[0]} times weight {w_t} needs more than 63 bits per product"
    if layer.accum is None:
        return "no accumulator type"
    if layer.accum.overflow is not Overflow.WRAP:
        return (f"accumulator {layer.accum} must wrap (AP_WRAP); a saturating accumulator's "
                "result depends on the summation order, which differs between hls4ml's "
                "strategies")
    return None


# -- the search's type rules ---------------------------------------------------------------

def _weight_matrix(node):
    """Raw weights as (inputs, outputs): Dense's as they are, Conv's (O, C/G, *k) flattened."""
    if node.op is Op.DENSE:
        return lambda w: w
    return lambda w: w.reshape(w.shape[0], -1).T


@rule("types", Op.DENSE, Op.CONV)
def weighted_sum_types(search, node, ins, widths):
    """Weights by minimum error (their fractional length; with AdaRound, each weight's
    rounding), an accumulator that cannot overflow, the bias at its resolution (corrected);
    the result chosen from the exact sums."""
    params = search.params_of(node)
    w_t = search.param_type(params["weight"], widths.weight, "weight")

    def sums():
        accum, bias_t = search.accumulator(node, ins[0], w_t, _weight_matrix(node),
                                           widths.accum_drop)
        types = {"weight": w_t} if bias_t is None else {"weight": w_t, "bias": bias_t}
        partial = LayerTypes(result=accum, params=types, accum=accum)
        return accum, types, search.kernel_output(node, ins, partial)  # the raw sums

    def rounded(accum, acc):
        return search.conversion(acc, accum)

    through = search.reader_function(node.output)

    def error(accum, acc):
        """The output's least error as the network reads it (after the ReLU or Softmax)."""
        return search.output_error(node.output, widths.act, True, rounded(accum, acc), through)

    def keep_if_better(role, value, current):
        """Make `value` the parameter `role` when that lowers error(); the sums of the
        parameters kept."""
        before = error(current[0], current[2])
        search.set_param(node, role, value)
        changed = sums()
        if error(changed[0], changed[2]) < before:
            return changed
        search.set_param(node, role, None)
        return current

    current = sums()
    # adaptive rounding of the weights (AdaRound), then bias correction: the bias less the
    # sums' mean error per output channel (then the accumulator and bias types of the
    # corrected bias); each kept when it lowers the output's error
    adapted = search.adaptive_weights(node, ins[0], w_t)
    if adapted is not None:
        current = keep_if_better("weight", adapted, current)
    accum, types, acc = current
    fix = search.bias_correction(node, acc, accum, -1 if node.op is Op.DENSE else 1,
                                 types.get("bias"))
    if fix is not None:
        accum, types, acc = keep_if_better("bias", fix, current)
    result = search.choose_output(node.output, widths.act, True, rounded(accum, acc))
    return LayerTypes(result=result, params=types, accum=accum)


@rule("types", Op.BATCH_NORM)
def batch_norm_types(search, node, ins, widths):
    """The scale by minimum error; the shift at the resolution of the products."""
    params = search.params_of(node)
    scale_t = search.param_type(params["scale"], widths.weight, "scale")
    types = {"scale": scale_t,
             "shift": search.fine_type(params["shift"], ins[0].frac + scale_t.frac)}
    return search.choose(node, ins, widths.act, True,
                         lambda t: LayerTypes(result=t, params=types))
