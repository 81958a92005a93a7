"""A QuantizedGraph as da4ml combinational logic: the arithmetic fxq simulates, traced
operation by operation into adder graphs.

Each tensor is a da4ml FixedVariableArray holding the real values of its raw integers;
every node ends with a conversion to its result type (rounding, then overflow), so the
logic computes exactly what fxq's bit-accurate kernels compute (fxq/ops). Constant
multiplications (Dense, Conv, BatchNorm, constant Mul) become shift-and-add graphs through
da4ml's constant-matrix-vector solver; an accumulator with fewer fractional bits than the
products rounds each product first, as hls4ml's kernels do, and then has no shared adders.

Per-op rules are registered under the "rtl" stage (fxq.ops.registry); an op without one, a
rounding or overflow mode da4ml lacks (it has TRN and RND; WRAP, SAT and SAT_SYM), or a
type of more than 32 bits at the design's edge is refused with the node named.
"""
from __future__ import annotations

import decimal
from typing import Any

import numpy as np

from fxq.errors import FxqError
from fxq.fixed import FixedType, Overflow, Rounding, quantize, requantize
from fxq.ir import Node
from fxq.layer import FixedNode
from fxq.op import Op
from fxq.ops.registry import find, lookup, rule
from fxq.quantized import QuantizedGraph

ROUNDING = {Rounding.TRN: "TRN", Rounding.RND: "RND"}
OVERFLOW = {Overflow.WRAP: "WRAP", Overflow.SAT: "SAT", Overflow.SAT_SYM: "SAT_SYM"}
EDGE_BITS = 32          # da4ml's emulator passes each input and output as an int32


class RtlError(FxqError):
    """The graph cannot be written as RTL (an op, a type or a tool is missing)."""


def kif(t: FixedType) -> tuple[int, int, int]:
    """da4ml's (sign, integer bits without the sign, fractional bits) of a type."""
    k = int(t.signed)
    return k, t.width - t.frac - k, t.frac


def real(raw: np.ndarray, t: FixedType) -> np.ndarray:
    """Exact real values of raw integers (float64 holds them: widths up to 53 bits)."""
    return np.ldexp(np.asarray(raw, dtype=np.float64), -t.frac)


def _modes(t: FixedType, where: str) -> tuple[str, str]:
    if t.rounding not in ROUNDING or t.overflow not in OVERFLOW:
        raise RtlError(f"{where}: type {t} has a mode da4ml cannot build (rounding "
                       f"{'/'.join(r.value for r in ROUNDING)}, overflow "
                       f"{'/'.join(o.value for o in OVERFLOW)})")
    return OVERFLOW[t.overflow], ROUNDING[t.rounding]


def to_type(v, t: FixedType, where: str):
    """v converted to t as ap_fixed converts: rounding first, then overflow."""
    overflow, rounding = _modes(t, where)
    k, i, f = kif(t)
    return v.quantize(k, i, f, overflow, rounding)


class Tracer:
    """Walks the graph in node order, one FixedVariableArray per tensor (batch axis of 1)."""

    def __init__(self, q: QuantizedGraph):
        from da4ml.trace import FixedVariableArrayInput

        self.q, self.g = q, q.graph
        self.inputs = {}
        self.values: dict[str, Any] = {}
        for name in self.g.inputs:
            t = q.types[name]
            edge(t, f"input {name!r}")
            x = FixedVariableArrayInput((1,) + tuple(self.g.shape(name)))
            self.inputs[name] = x
            # the input arrives as raw words of its type: its width, no conversion
            self.values[name] = x.quantize(*kif(t), "WRAP", "TRN")

    def run(self):
        for node in self.g.nodes:
            fx = self.q.fixed_node(node)
            xs = [self.values[n] for n in self.g.activation_inputs(node)]
            fn = find("rtl", node.op)
            if fn is None and node.op.is_layout:
                fn = _layout
            fn = fn or lookup("rtl", node.op, node.name)
            self.values[node.output] = fn(self, node, fx, *xs)
        outs = []
        for name in self.g.outputs:
            edge(self.q.types[name], f"output {name!r}")
            outs.append(self.values[name])
        return outs

    def cmvm(self, w: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """rows @ w, rows an (M, K) object array of variables, as da4ml's constant-matrix
        adder graph: solved once for all M rows (the pixels of a convolution) on the hull
        of each column's value ranges and its latest arrival, then applied to each row
        (which traces the adders at that row's own widths)."""
        from da4ml.cmvm import solve
        from da4ml.types import QInterval

        qints, lats = [], []
        for column in rows.T:
            qints.append(QInterval(min(float(v.low) for v in column),
                                   max(float(v.high) for v in column),
                                   min(float(v.step) for v in column)))
            lats.append(max(float(v.latency) for v in column))
        hw = rows.ravel()[0].hwconf
        sol = solve(np.ascontiguousarray(w.astype(np.float32)), qintervals=qints,
                    latencies=lats, adder_size=hw.adder_size, carry_size=hw.carry_size)
        return np.array([sol(row) for row in rows])

    def constant(self, value: float):
        from da4ml.trace import FixedVariable

        hw = next(iter(self.inputs.values()))._vars.ravel()[0].hwconf
        return FixedVariable.from_const(float(value), hw, 1)

    def array(self, objects: np.ndarray):
        from da4ml.trace import FixedVariableArray

        hw = next(iter(self.inputs.values())).hwconf
        return FixedVariableArray(objects, hwconf=hw)


def edge(t: FixedType, what: str) -> None:
    if t.width > EDGE_BITS:
        raise RtlError(f"{what}: type {t} is wider than the {EDGE_BITS} bits da4ml's "
                       "emulator passes at the design's edge")


# da4ml keeps scale factors and constants as Decimals in the thread's context: at the
# default 28 digits a factor such as 2^-51 (36 digits) is inexact, and so is a bias added
# to a value carrying it (seen: one output in 1,000 off by one step). Every da4ml step runs
# with enough digits for any power of two it meets.
DECIMAL_DIGITS = 160


def exact_decimals():
    """The Decimal context every da4ml call of fxq runs in."""
    return decimal.localcontext(prec=DECIMAL_DIGITS)


def trace(q: QuantizedGraph):
    """The da4ml CombLogic of the whole graph: inputs in graph order, each flattened."""
    with exact_decimals():
        return _trace(q)


def _trace(q: QuantizedGraph):
    from da4ml.trace import comb_trace

    if q.io_type != "io_parallel":
        q = q.with_io_type("io_parallel")
    tracer = Tracer(q)
    outs = tracer.run()
    ins = [tracer.inputs[n] for n in q.graph.inputs]
    flat_in = np.concatenate([x._vars.ravel() for x in ins])
    flat_out = np.concatenate([y._vars.ravel() for y in outs])
    return comb_trace(list(flat_in), list(flat_out))


# -- rules ---------------------------------------------------------------------------------

def _where(node: Node) -> str:
    return f"node {node.name!r} ({node.op.name})"


def _bias_in_accum(fx: FixedNode) -> np.ndarray | None:
    """The bias on the accumulator's grid (hls4ml casts it to accum_t first)."""
    if len(fx.params) < 2:
        return None
    b, b_t = fx.params[1], fx.param_types[1]
    return real(requantize(b, b_t.frac, fx.layer.accum, b_t.width), fx.layer.accum)


def _weighted_sum(tr: Tracer, node: Node, fx: FixedNode, x, w_raw: np.ndarray,
                  bias: np.ndarray | None):
    """sum_k cast<accum>(x[m, k] * w[k, o]) + bias[o], wrapped in accum, cast to the result;
    x is an (M, K) FixedVariableArray, w_raw the (K, O) raw weights."""
    accum, w_t, x_t = fx.layer.accum, fx.param_types[0], fx.inputs[0]
    where = _where(node)
    _modes(accum, where)
    w = real(w_raw, w_t)
    if w_t.width > 24:
        raise RtlError(f"{where}: weight type {w_t} is wider than the 24 bits da4ml's "
                       "constant-matrix solver holds exactly (float32)")
    if accum.frac >= x_t.frac + w_t.frac:
        total = tr.array(tr.cmvm(w, x._vars))                   # exact
    else:
        # each product rounded onto the accumulator's grid before the sum
        k, i, f = kif(accum)
        rounding = ROUNDING[accum.rounding]
        rows = []
        for m in range(x.shape[0]):
            cols = []
            for o in range(w.shape[1]):
                terms = [(x[m, j] * float(w[j, o])).quantize(k, i + 64, f, "WRAP", rounding)
                         for j in np.flatnonzero(w[:, o])]
                cols.append(sum(terms[1:], terms[0]) if terms else tr.constant(0.0))
            rows.append(cols)
        total = tr.array(np.array(rows, dtype=object))
    if bias is not None:
        total = total + bias
    k, i, f = kif(accum)
    total = total.quantize(k, i, f, "WRAP", "TRN")      # on its grid already: the wrap
    return to_type(total, fx.result, where)


@rule("rtl", Op.DENSE)
def _dense(tr, node, fx, x):
    w = fx.params[0]
    lead = x.shape[:-1]
    y = _weighted_sum(tr, node, fx, x.reshape(-1, w.shape[0]), w, _bias_in_accum(fx))
    return y.reshape(*lead, w.shape[1])


def _gather(tr: Tracer, x, index: np.ndarray, fill: float = 0.0):
    """Elements of x at `index` (flat positions); index -1 is the constant `fill`."""
    flat = np.append(x._vars.ravel(), tr.constant(fill))
    return tr.array(flat[index])


@rule("rtl", Op.CONV)
def _conv(tr, node, fx, x):
    """im2col of the (padded) input as index arithmetic, then one weighted sum per group."""
    from fxq.ops.windows import pad_spatial, windows

    strides, pads, groups = (node.attrs[k] for k in ("strides", "pads", "groups"))
    w = fx.params[0]                                          # O, C/G, *k
    n, c = x.shape[:2]
    o = w.shape[0]
    positions = np.arange(x._vars.size).reshape(x.shape)
    win = windows(pad_spatial(positions, pads, value=-1), w.shape[2:], strides)
    nd = w.ndim - 2
    out_spatial = win.shape[2:2 + nd]
    pixels = int(np.prod(out_spatial))
    k = int(np.prod(w.shape[2:]))
    win = win.reshape((n, groups, c // groups, pixels, k))
    patches = win.transpose(1, 0, 3, 2, 4).reshape(groups, n * pixels, (c // groups) * k)
    wg = w.reshape(groups, o // groups, -1).transpose(0, 2, 1)   # G, C/G*k, O/G
    bias = _bias_in_accum(fx)
    parts = []
    for gi in range(groups):
        b = None if bias is None else bias.reshape(groups, o // groups)[gi]
        parts.append(_weighted_sum(tr, node, fx, _gather(tr, x, patches[gi]), wg[gi], b)._vars)
    y = np.stack(parts).reshape(groups, n, pixels, o // groups)
    y = y.transpose(1, 0, 3, 2).reshape((n, o) + tuple(out_spatial))
    return tr.array(y)


@rule("rtl", Op.BATCH_NORM)
def _batch_norm(tr, node, fx, x):
    (scale, shift), (scale_t, shift_t) = fx.params, fx.param_types
    shape = (1, -1) + (1,) * (len(x.shape) - 2)
    y = x * np.broadcast_to(real(scale, scale_t).reshape(shape), x.shape) \
        + np.broadcast_to(real(shift, shift_t).reshape(shape), x.shape)
    return to_type(y, fx.result, _where(node))


@rule("rtl", Op.RELU)
def _relu(tr, node, fx, x):
    return to_type(x.relu(), fx.result, _where(node))


@rule("rtl", Op.LEAKY_RELU)
def _leaky_relu(tr, node, fx, x):
    alpha_t = fx.layer.param("alpha")
    alpha = float(real(quantize(node.attrs["alpha"], alpha_t), alpha_t))
    return sloped(tr, node, fx, x, np.full(x.shape, alpha))


def sloped(tr, node, fx, x, slope: np.ndarray):
    """x > 0 ? cast(x) : cast(slope * x), slope real per element (LeakyReLU, PReLU): the
    sign selects (at 0 both are 0)."""
    where = _where(node)
    pos = to_type(x, fx.result, where)._vars.ravel()
    objs = [if_negative(v, to_type(v * float(a), fx.result, where), p)
            for v, p, a in zip(x._vars.ravel(), pos, slope.ravel())]
    return tr.array(np.array(objs, dtype=object).reshape(x.shape))


def if_negative(cond, a, b):
    """a where cond < 0, else b. da4ml's msb_mux tests the top bit, which is the sign only
    for a variable whose range holds both signs: the one-signed cases are decided here."""
    if float(cond.low) >= 0:
        return b
    if float(cond.high) < 0:
        return a
    return cond.msb_mux(a, b)


@rule("rtl", Op.CLIP)
def _clip(tr, node, fx, x):
    """cast(x), or a bound cast to the result type where x is beyond it (clip_fixed). The
    bounds are moved onto the input's grid first (x < lo exactly when x < ceil(lo) there,
    x > hi when x >= floor(hi) + one step), so every comparison is exact."""
    lo, hi = node.attrs["lo"], node.attrs["hi"]
    step = fx.inputs[0].resolution
    objs = to_type(x, fx.result, _where(node))._vars.ravel().copy()
    for j, v in enumerate(x._vars.ravel()):
        if np.isfinite(hi):
            top = float(real(quantize(hi, fx.result), fx.result))
            edge_hi = np.floor(hi / step) * step
            objs[j] = if_negative(v - (edge_hi + step), objs[j], tr.constant(top))
        if np.isfinite(lo):
            bottom = float(real(quantize(lo, fx.result), fx.result))
            edge_lo = np.ceil(lo / step) * step
            objs[j] = if_negative(v - edge_lo, tr.constant(bottom), objs[j])
    return tr.array(objs.reshape(x.shape))


@rule("rtl", Op.ADD)
def _add(tr, node, fx, *xs):
    a, b = _operands(tr, fx, xs)
    return to_type(a + b, fx.result, _where(node))


@rule("rtl", Op.SUB)
def _sub(tr, node, fx, *xs):
    a, b = _operands(tr, fx, xs)
    return to_type(a - b, fx.result, _where(node))


@rule("rtl", Op.MUL)
def _mul(tr, node, fx, *xs):
    a, b = _operands(tr, fx, xs)
    return to_type(a * b, fx.result, _where(node))


def _operands(tr, fx, xs):
    """The two operands, a parameter (constant) second, broadcast to one shape."""
    if len(xs) == 2:
        a, b = xs
        shape = np.broadcast_shapes(a.shape, b.shape)
        return (tr.array(np.broadcast_to(a._vars, shape)),
                tr.array(np.broadcast_to(b._vars, shape)))
    const = real(fx.params[0], fx.param_types[0])[None]
    a = xs[0]
    shape = np.broadcast_shapes(a.shape, const.shape)
    return tr.array(np.broadcast_to(a._vars, shape).copy()), np.broadcast_to(const, shape)


@rule("rtl", Op.MAX_POOL)
def _max_pool(tr, node, fx, x):
    from fxq.ops.windows import pad_spatial, windows

    kernel, strides, pads = (node.attrs[k] for k in ("kernel", "strides", "pads"))
    positions = np.arange(x._vars.size).reshape(x.shape)
    win = windows(pad_spatial(positions, pads, value=-1), kernel, strides)
    lowest = float(fx.inputs[0].min)                   # padding: the type's minimum
    flat = np.append(x._vars.ravel(), tr.constant(lowest))
    picked = flat[win.reshape(win.shape[:2 + len(kernel)] + (-1,))]
    top = np.empty(picked.shape[:-1], dtype=object)
    for idx in np.ndindex(top.shape):
        vals = picked[idx]
        m = vals[0]
        for v in vals[1:]:
            m = m.max_of(v)
        top[idx] = m
    accum = fx.layer.accum or fx.inputs[0]
    y = to_type(tr.array(top), accum, _where(node))
    return to_type(y, fx.result, _where(node))


def _divide(tr, total, count: int, accum: FixedType, where: str):
    """truncating_divide of a raw accum value by a positive integer: the quotient toward
    zero on the same grid. |T| * m / 2^k floors to |T| // count for every |T| the value
    can reach when m = ceil(2^k / count) and (m * count - 2^k) * max|T| < 2^k."""
    k_, i_, f = kif(accum)
    if count == 1:
        return total
    mag = if_negative(total, -total, total)
    top = int(round(max(abs(float(total.low)), abs(float(total.high))) * 2 ** f))
    shift = (count - 1).bit_length()
    while True:
        m = -(-(1 << shift) // count)
        if (m * count - (1 << shift)) * top < (1 << shift):
            break
        shift += 1
    q = (mag * float(m) * 2.0 ** -shift).quantize(0, i_ + 1, f, "WRAP", "TRN")
    return if_negative(total, -q, q)


def _averages(tr, node, fx, windows_: np.ndarray, counts: np.ndarray):
    """io_parallel average: a running sum in accum_t (each partial sum converted), then
    the truncating division by each window's count, then the cast to the result."""
    accum, where = fx.layer.accum, _where(node)
    out = np.empty(windows_.shape[:-1], dtype=object)
    counts = np.broadcast_to(counts, out.shape)
    for idx in np.ndindex(out.shape):
        total = None
        for v in windows_[idx]:
            total = to_type(v if total is None else total + v, accum, where)
        out[idx] = _divide(tr, total, int(counts[idx]), accum, where)
    return to_type(tr.array(out), fx.result, where)


@rule("rtl", Op.AVG_POOL)
def _avg_pool(tr, node, fx, x):
    from fxq.ops.pool import window_count
    from fxq.ops.windows import pad_spatial, windows

    kernel, strides, pads = (node.attrs[k] for k in ("kernel", "strides", "pads"))
    positions = np.arange(x._vars.size).reshape(x.shape)
    win = windows(pad_spatial(positions, pads, value=-1), kernel, strides)
    flat = np.append(x._vars.ravel(), tr.constant(0.0))
    picked = flat[win.reshape(win.shape[:2 + len(kernel)] + (-1,))]
    count = window_count(x.shape[2:], kernel, strides, pads, node.attrs["count_include_pad"])
    return _averages(tr, node, fx, picked, np.asarray(count))


@rule("rtl", Op.GLOBAL_AVG_POOL)
def _global_avg_pool(tr, node, fx, x):
    flat = x._vars.reshape(x.shape[:2] + (-1,))
    y = _averages(tr, node, fx, flat, np.asarray(flat.shape[-1]))
    return tr.array(y._vars.reshape(x.shape[:2] + (1,) * (len(x.shape) - 2)))


@rule("rtl", Op.GLOBAL_MAX_POOL)
def _global_max_pool(tr, node, fx, x):
    flat = x._vars.reshape(x.shape[:2] + (-1,))
    top = np.empty(flat.shape[:2], dtype=object)
    for idx in np.ndindex(top.shape):
        vals = flat[idx]
        m = vals[0]
        for v in vals[1:]:
            m = m.max_of(v)
        top[idx] = m
    # io_parallel: the maximum, then the casts through accum_t (global_max_pool_fixed)
    y = tr.array(top.reshape(x.shape[:2] + (1,) * (len(x.shape) - 2)))
    if fx.layer.accum is not None:
        y = to_type(y, fx.layer.accum, _where(node))
    return to_type(y, fx.result, _where(node))


@rule("rtl", Op.CONCAT)
def _concat(tr, node, fx, *xs):
    parts = [to_type(x, fx.result, _where(node))._vars for x in xs]
    return tr.array(np.concatenate(parts, axis=node.attrs["axis"]))


@rule("rtl", Op.PAD)
def _pad(tr, node, fx, x):
    from fxq.ops.layout import pad

    value = float(real(quantize(node.attrs["value"], fx.result), fx.result))
    positions = np.arange(x._vars.size).reshape(x.shape)
    index = pad(positions, pads=node.attrs["pads"], value=-1)
    return to_type(_gather(tr, x, index, value), fx.result, _where(node))


def _layout(tr, node, fx, x):
    """An op that only moves elements: its own kernel applied to the elements' positions."""
    positions = np.arange(x._vars.size, dtype=np.int64).reshape(x.shape)
    index = lookup("fixed", node.op, node.name)(fx, positions)
    return tr.array(x._vars.ravel()[index])


# -- lookup tables: per-element functions and softmax ----------------------------------------

TABLE_LIMIT = 1 << 16           # entries of one table (a wider input is refused)


def _values(v) -> np.ndarray:
    """Every value a da4ml variable can take, lowest first."""
    low, high, step = float(v.low), float(v.high), float(v.step)
    return low + step * np.arange(round((high - low) / step) + 1)


def _lookup(v, fn, where: str):
    """v mapped through `fn` (real values -> real values) as a table over v's values."""
    values = _values(v)
    if len(values) > TABLE_LIMIT:
        raise RtlError(f"{where}: a table over {len(values)} input values (more than "
                       f"{TABLE_LIMIT}); narrow its input type")
    return v.lookup(np.asarray(fn(values), dtype=np.float64))


@rule("rtl", Op.SIGMOID, Op.TANH)
def elementwise_table(tr, node, fx, x):
    """A per-element function of one input (sigmoid, tanh, hard sigmoid/swish) as the
    table of fxq's own bit-accurate kernel over every value the input can take."""
    kernel, t_in, t_out = lookup("fixed", node.op, node.name), fx.inputs[0], fx.result

    def fn(values):
        raw = np.round(np.ldexp(values, t_in.frac)).astype(np.int64)
        return real(kernel(fx, raw[None]), t_out)[0]
    where = _where(node)
    objs = [_lookup(v, fn, where) for v in x._vars.ravel()]
    return tr.array(np.array(objs, dtype=object).reshape(x.shape))


def _top_bits(v, t: FixedType, bits: int, table: np.ndarray, out_t: FixedType, where: str):
    """table[top `bits` bits of v's raw word in t] (tables.index_from_top_bits), as real
    values of out_t: the low bits dropped first, then a table over what is left."""
    from fxq.ops.tables import index_from_top_bits

    k, i, f = kif(t)
    top = v.quantize(k, i, f - (t.width - bits), "WRAP", "TRN")

    def fn(values):
        raw = np.round(np.ldexp(values, t.frac)).astype(np.int64)
        return real(table[index_from_top_bits(raw, t, bits)], out_t)
    return _lookup(top, fn, where)


def _tree(values: list, combine):
    """hls4ml's balanced reduce (fxq.ops.fixed_math.tree_reduce) over a list."""
    n = len(values)
    if n == 1:
        return values[0]
    if n == 2:
        return combine(values[0], values[1])
    left = 1 << ((n - 1).bit_length() - 1)
    return combine(_tree(values[:left], combine), _tree(values[left:], combine))


@rule("rtl", Op.SOFTMAX)
def _softmax(tr, node, fx, x):
    """softmax_stable as softmax_fixed computes it: the row maximum, exp of the difference
    by table, the sum in accum_t, its reciprocal by table, one product per element."""
    from fxq.fixed import cast
    from fxq.ops import tables
    from fxq.ops.activation import softmax_table_sizes

    layer, data_t, where = fx.layer, fx.inputs[0], _where(node)
    exp_size, inv_size, inp_norm = softmax_table_sizes(data_t, layer)
    exp_bits, inv_bits = (exp_size - 1).bit_length(), (inv_size - 1).bit_length()
    exp_table = cast(tables.softmax_exp_table(exp_size, inp_norm, layer.table, True),
                     layer.table, layer.accum)
    inv_table = tables.softmax_invert_table(inv_size, layer.inv_inp, layer.inv_table)
    accum = layer.accum
    rows = x._vars.reshape(-1, x.shape[-1])
    out = np.empty(rows.shape, dtype=object)
    for r, row in enumerate(rows):
        top = _tree(list(row), lambda a, b: a.max_of(b))
        exp_res = [_top_bits(to_type(top - v, inp_norm, where), inp_norm, exp_bits,
                             exp_table, accum, where) for v in row]
        total = _tree(exp_res, lambda a, b: to_type(a + b, accum, where))
        inv = _top_bits(to_type(total, layer.inv_inp, where), layer.inv_inp, inv_bits,
                        inv_table, layer.inv_table, where)
        for j, e in enumerate(exp_res):
            out[r, j] = to_type(e * inv, fx.result, where)
    return tr.array(out.reshape(x.shape))
