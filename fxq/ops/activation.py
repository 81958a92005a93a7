"""Element-wise activations and softmax: shape rules, float and fixed kernels.

The fixed kernels mirror nnet_activation.h: ReLU and clipping compare exactly and cast to
the result type; Sigmoid and Tanh index a lookup table by the input's value; Softmax is
hls4ml's "stable" implementation (max-normalized, exp and reciprocal tables).
"""
from __future__ import annotations

import numpy as np

from fxq.op import Op
from fxq.errors import FxqError
from fxq.fixed import FixedType, Overflow, Rounding, cast, quantize, requantize, to_float
from fxq.layer import DEFAULT_TABLE, LayerTypes
from fxq.ops import tables
from fxq.ops.fixed_math import add_in, tree_reduce
from fxq.ops.registry import fixed_kernel, float_kernel, rule, shape_rule


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


# -- bit-accurate kernels ------------------------------------------------------------------

def _relu_uncast(x):
    """What ReLU's result is the cast of: max(x, 0) in the input's type."""
    return np.maximum(x, 0)


@fixed_kernel(Op.RELU)
def relu_fixed(fx, x):
    """res = x > 0 ? (res_T) x : 0, computed as the cast of max(x, 0) (a cast maps 0 to 0)."""
    return cast(_relu_uncast(x), fx.inputs[0], fx.result)


@fixed_kernel(Op.LEAKY_RELU)
def leaky_relu_fixed(fx, x):
    """res = alpha * x below zero, alpha in its own type (role "alpha"), product exact."""
    alpha_t = fx.layer.param("alpha")
    alpha = int(quantize(fx.node.attrs["alpha"], alpha_t))
    scaled = requantize(x * alpha, fx.inputs[0].frac + alpha_t.frac, fx.result, 64)
    return np.where(x > 0, cast(x, fx.inputs[0], fx.result), scaled)


@fixed_kernel(Op.CLIP)
def clip_fixed(fx, x):
    """relu_max: below lo gives lo, above hi gives hi (cast to the result), exact compares."""
    real = to_float(x, fx.inputs[0])              # exact for widths <= 53
    lo, hi = fx.node.attrs["lo"], fx.node.attrs["hi"]
    y = cast(x, fx.inputs[0], fx.result)
    if np.isfinite(lo):              # Clip without a min or max has an infinite bound
        y = np.where(real < lo, quantize(lo, fx.result), y)
    if np.isfinite(hi):
        y = np.where(real > hi, quantize(hi, fx.result), y)
    return y


def _table_index(x, t: FixedType, size: int, input_range: int) -> np.ndarray:
    """index = int(x * size / R) + size / 2, clamped, as sigmoid() and tanh() compute it:
    ap_fixed * unsigned, then / R (quotient toward zero), then toward zero to int."""
    scaled = x * size                                           # exact: checked below
    q = np.abs(scaled) // input_range
    q = np.where(scaled < 0, -q, q)                             # / R, toward zero
    if t.frac >= 0:
        whole = np.abs(q) >> t.frac
        whole = np.where(q < 0, -whole, whole)                  # to int, toward zero
    else:
        whole = q << -t.frac
    if np.any(np.abs(whole) >= 1 << 31):
        raise FxqError(f"lookup-table input of type {t} reaches values whose index overflows"
                       " the C int hls4ml computes it in; narrow the input's integer bits")
    return np.clip(whole + size // 2, 0, size - 1)


def _lookup(fx, x, table: np.ndarray, input_range: int) -> np.ndarray:
    """res = (res_T) table[index(x)], the body shared by sigmoid() and tanh()."""
    t, size = fx.inputs[0], fx.layer.table_size
    if t.width + size.bit_length() > 62:
        raise FxqError(f"lookup-table input type {t} is too wide for a table of {size}")
    return cast(table[_table_index(x, t, size, input_range)], fx.layer.table, fx.result)


@fixed_kernel(Op.SIGMOID)
def sigmoid_fixed(fx, x):
    return _lookup(fx, x, tables.sigmoid_table(fx.layer.table_size, fx.layer.table), 16)


@fixed_kernel(Op.TANH)
def tanh_fixed(fx, x):
    return _lookup(fx, x, tables.tanh_table(fx.layer.table_size, fx.layer.table), 8)


SOFTMAX_DIFF_BITS = 4    # x_max - x saturates at 2^4 = 16: exp(-16) < 2^-23, below any table


def softmax_inp_norm(input_t: FixedType) -> FixedType:
    """The type of x_max - x in the stable softmax, which fxq gives hls4ml (inp_norm_t):
    unsigned, the input's resolution (the difference is exact), saturating at
    2^SOFTMAX_DIFF_BITS or at the largest difference two inputs of input_t can have,
    whichever is smaller. hls4ml's own default is ap_ufixed<W - 1, I - 1> of a signed
    input: truncating and wrapping, it holds half of the differences, and a larger one
    wraps to a small one, whose exp is then near 1 (logits 20 and -12 in ap_fixed<6,6>
    gave a difference of 0 and the softmax a three-way tie)."""
    span = input_t.width - input_t.frac        # differences lie in [0, 2^span)
    integer = min(span, max(SOFTMAX_DIFF_BITS, 1 - input_t.frac))
    return FixedType(integer + input_t.frac, input_t.frac, False, Rounding.TRN, Overflow.SAT)


def softmax_table_sizes(input_t: FixedType, layer) -> tuple[int, int, FixedType]:
    """(exp table size, inverse table size, inp_norm_t) of the stable softmax as fxq emits
    it: each table at most layer.table_size entries and at most what the top bits of its
    index type address (the exp table is indexed by inp_norm_t, the inverse table by
    inv_inp_t). fxq passes the sizes and inp_norm_t to hls4ml, so its
    fix_softmax_table_size pass (which would cap the inverse table at 2^(input width) as
    well: 64 entries for a 6-bit input) and its template's own inp_norm_t leave them."""
    inp_norm = softmax_inp_norm(input_t)
    exp_size = min(layer.table_size, 2 ** inp_norm.width)
    inv_size = min(layer.table_size, 2 ** layer.inv_inp.width)
    return exp_size, inv_size, inp_norm


@fixed_kernel(Op.SOFTMAX)
def softmax_fixed(fx, x):
    """softmax_stable over the last axis (the QuantizedGraph emits only that case)."""
    layer, data_t = fx.layer, fx.inputs[0]
    exp_size, inv_size, inp_norm = softmax_table_sizes(data_t, layer)
    exp_bits, inv_bits = (exp_size - 1).bit_length(), (inv_size - 1).bit_length()
    x_max = x.max(axis=-1, keepdims=True)
    d = requantize(x_max - x, data_t.frac, inp_norm, data_t.width + 1)   # x_max - x[i]
    exp_table = tables.softmax_exp_table(exp_size, inp_norm, layer.table, True)
    exp_res = cast(exp_table[tables.index_from_top_bits(d, inp_norm, exp_bits)],
                  layer.table, layer.accum)
    accum = layer.accum
    exp_sum = tree_reduce(exp_res, add_in(accum))
    exp_sum = cast(exp_sum, accum, layer.inv_inp)
    inv_table = tables.softmax_invert_table(inv_size, layer.inv_inp, layer.inv_table)
    inv = inv_table[tables.index_from_top_bits(exp_sum, layer.inv_inp, inv_bits)]
    return requantize(exp_res * inv[..., None], accum.frac + layer.inv_table.frac, fx.result, 64)


@rule("check", Op.SIGMOID, Op.TANH)
def table_check(node, ins, layer, graph):
    return None if layer.table is not None else "no lookup table type"


@rule("check", Op.SOFTMAX)
def softmax_check(node, ins, layer, graph):
    if layer.table is None or layer.inv_table is None or layer.accum is None \
            or layer.inv_inp is None:
        return "softmax needs table, inv_table, inv_inp and accum types"
    last = len(graph.shape(node.output))           # batched axis index of the last axis
    if tuple(node.attrs["axes"]) != (last,):
        return (f"softmax over axes {tuple(node.attrs['axes'])}; hls4ml's softmax tables run "
                f"over the last axis ({last}) only")
    return None


# -- the search's type rules ---------------------------------------------------------------

def softmax_types(result: FixedType, n: int) -> LayerTypes:
    """Softmax tables sized to what they hold, not hls4ml's one-size defaults: exp values and
    reciprocals lie in (0, 1], the exp sum in [1, n]. hls4ml indexes the reciprocal table by
    the top bits of inv_inp_t, so an inv_inp_t whose range is just [0, 2^ceil(log2(n+1)))
    gives that table its full resolution; the default signed <18,8> spends most of its
    entries on sums above n and one bit on a sign."""
    whole = max(1, n.bit_length())                 # integer bits holding n
    unit = FixedType(18, 17, False, Rounding.RND, Overflow.SAT)           # [0, 2)
    return LayerTypes(result=result, table=unit, inv_table=unit,
                      inv_inp=FixedType(18, 18 - whole, False, Rounding.RND, Overflow.SAT),
                      accum=FixedType(17 + whole, 17, False, Rounding.RND, Overflow.SAT))


@rule("types", Op.RELU, Op.CLIP)
def clamp_types(search, node, ins, widths):
    signed = node.op is Op.CLIP and node.attrs["lo"] < 0
    if node.op is Op.RELU:
        # each candidate is one conversion of the same values (relu_fixed): scored in float
        (x,) = search.graph.activation_inputs(node)
        uncast = search.blockwise(_relu_uncast, search.raw[x])
        return LayerTypes(result=search.choose_output(
            node.output, widths.act, signed, search.conversion(uncast, ins[0])))
    return search.choose(node, ins, widths.act, signed, lambda t: LayerTypes(result=t))


@rule("types", Op.LEAKY_RELU)
def leaky_relu_types(search, node, ins, widths):
    alpha = {"alpha": search.param_type(np.array([node.attrs["alpha"]]), widths.weight, "alpha")}
    return search.choose(node, ins, widths.act, True,
                         lambda t: LayerTypes(result=t, params=alpha))


@rule("types", Op.SIGMOID, Op.TANH)
def table_types(search, node, ins, widths):
    """hls4ml's default table (its values are computed for <18,8>-style tables)."""
    return search.choose(node, ins, widths.act, node.op is Op.TANH,
                         lambda t: LayerTypes(result=t, table=DEFAULT_TABLE))


@rule("types", Op.SOFTMAX)
def softmax_rule(search, node, ins, widths):
    n = search.graph.shape(node.output)[-1]
    return search.choose(node, ins, widths.act, False, lambda t: softmax_types(t, n))
