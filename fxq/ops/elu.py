"""Elu: y = x for x >= 0, alpha * (exp(x) - 1) below, ONNX's alpha (default 1).

Every stage's rule of the op is here. hls4ml implements it as its ELU layer
(nnet_activation.h `elu`, a ParametrizedActivation): below zero it looks up
`elu_table[index]`, index = int(x * table_size / -8) capped at table_size - 1 (the table
holds exp(x) - 1 over (-8, 0], computed in float, tables.elu_table), and assigns
`alpha * elu_table[index]`, the exact product of alpha (a constant of its own type, role
"alpha") and the table value, to the result type; at and above zero it assigns x.

The table type is signed with one integer bit (its values lie in (-1, 0]), not hls4ml's
default <18,8>, which spends 7 bits on a range the values never use.
"""
from __future__ import annotations

import numpy as np

from fxq.cost import memory
from fxq.fixed import FixedType, Overflow, Rounding, cast, quantize, requantize, to_float
from fxq.layer import LayerTypes
from fxq.native.cpp import NativeUnsupported, at, elementwise, lit, rq
from fxq.onnx_convert import attrs_of
from fxq.op import Op
from fxq.ops import tables
from fxq.ops.registry import converter, rule

ELU = Op.define("ELU", kind="activation", constants=("alpha",))

# exp(x) - 1 over (-8, 0] lies in (-1, 0]: one integer bit (the sign), 17 fractional ones
ELU_TABLE = FixedType(18, 17, True, Rounding.RND, Overflow.SAT)
INPUT_RANGE = 8                  # the table spans (-8, 0]: index = int(x * size / -8)


@converter("Elu")
def convert_elu(ctx, node):
    alpha = float(attrs_of(node).get("alpha", np.float32(1.0)))
    ctx.emit(node, ELU, [node.input[0]], alpha=alpha)


@rule("onnx", ELU)
def export_elu(ex, node):
    ex.node("Elu", [node.inputs[0]], [node.output], node.name, alpha=float(node.attrs["alpha"]))


@rule("shape", ELU)
def same_shape(x, **_):
    return tuple(x)


@rule("float", ELU)
def elu(x, *, alpha):
    return np.where(x >= 0, x, alpha * np.expm1(np.minimum(x, 0.0)))


# -- the lookup, as ap_fixed computes it -----------------------------------------------------

def _index_bound(x_t: FixedType, size: int) -> int:
    """The largest index before the cap: int(x * size / -8) at the type's most negative
    value (0 for an unsigned type: the table is never read)."""
    scaled = -x_t.raw_min * size // INPUT_RANGE
    return scaled >> x_t.frac if x_t.frac >= 0 else scaled << -x_t.frac


def elu_check(x_t: FixedType, layer: LayerTypes) -> str | None:
    if layer.table is None or layer.param("alpha") is None:
        return "no table or alpha type"
    if x_t.width + layer.table_size.bit_length() > 62:
        return f"input type {x_t} is too wide for a table of {layer.table_size}"
    if _index_bound(x_t, layer.table_size) >= 1 << 31:
        return (f"input type {x_t} reaches table indices beyond the C int hls4ml computes "
                "them in; narrow the input's integer bits")
    return None


def _index(x: np.ndarray, x_t: FixedType, size: int) -> np.ndarray:
    """int(x * size / -8), capped at size - 1, for x < 0 (0 elsewhere): ap_fixed * unsigned
    (exact), / -8 toward zero at x's fraction (the quotient is >= 0: a floor), then to int
    (a floor again)."""
    q = np.maximum(-x, 0) * size // INPUT_RANGE
    whole = q >> x_t.frac if x_t.frac >= 0 else q << -x_t.frac
    return np.minimum(whole, size - 1)


def _alpha(fx) -> tuple[int, FixedType]:
    alpha_t = fx.layer.param("alpha")
    return int(quantize(fx.node.attrs["alpha"], alpha_t)), alpha_t


# -- the stages ------------------------------------------------------------------------------

@rule("fixed", ELU)
def elu_fixed(fx, x):
    x_t, layer = fx.inputs[0], fx.layer
    alpha, alpha_t = _alpha(fx)
    table = tables.elu_table(layer.table_size, layer.table)
    below = requantize(alpha * table[_index(x, x_t, layer.table_size)],
                       alpha_t.frac + layer.table.frac, fx.result, 64)
    return np.where(x >= 0, cast(x, x_t, fx.result), below)


@rule("check", ELU)
def elu_check_rule(node, ins, layer, graph):
    return elu_check(ins[0], layer)


@rule("types", ELU)
def elu_types(search, node, ins, widths):
    alpha = {"alpha": search.param_type(np.array([node.attrs["alpha"]]), widths.weight, "alpha")}
    return search.choose(node, ins, widths.act, True,
                         lambda t: LayerTypes(result=t, params=alpha, table=ELU_TABLE))


@rule("hls", ELU)
def elu_hls(builder, node, fx):
    x = builder.g.activation_inputs(node)[0]
    alpha, alpha_t = _alpha(fx)
    layer = {"class_name": "ELU", "activation": "elu", "n_in": int(np.prod(builder.shape(x))),
             # an exact binary fraction: printed in full, parsed back to the same value
             "activ_param": float(to_float(alpha, alpha_t))}
    builder.add(node, layer, builder.precisions(result=fx.result, param=alpha_t),
                builder.layout(x),
                # hls4ml takes the table's type from the layer config's "table_t" key
                {"TableSize": fx.layer.table_size, "table_t": fx.layer.table.hls()})


@rule("native", ELU)
def elu_native(g, fx, x, y):
    """Both branches aligned to one fraction (exact left shifts), then one conversion."""
    x_t, layer = fx.inputs[0], fx.layer
    why = elu_check(x_t, layer)
    if why:
        raise NativeUnsupported(why)
    alpha, alpha_t = _alpha(fx)
    table = g.param(tables.elu_table(layer.table_size, layer.table), "int64_t")
    f_above, f_below = x_t.frac, alpha_t.frac + layer.table.frac
    frac = max(f_above, f_below)
    if max(x_t.width + frac - f_above, layer.table.width + alpha_t.width + frac - f_below) > 62:
        raise NativeUnsupported(f"ELU's aligned values need more than 62 bits ({x_t}, "
                                f"{layer.table}, {alpha_t})")
    v = at(x)
    q = f"((-{v}) * {layer.table_size} / {INPUT_RANGE})"
    whole = f"({q} >> {x_t.frac})" if x_t.frac >= 0 else f"({q} << {-x_t.frac})"
    index = f"std::min<fxq::i64>({whole}, {layer.table_size - 1})"
    below = f"(({lit(alpha)} * {table}[{v} < 0 ? {index} : 0]) << {frac - f_below})"
    value = f"({v} >= 0 ? ({v} << {frac - f_above}) : {below})"
    elementwise(g, y, rq(frac - fx.result.frac, fx.result, value, count=True))


@rule("rtl", ELU)
def elu_rtl(tracer, node, fx, x):
    """The open RTL path: a table of this kernel over every input value."""
    from fxq.rtl.trace import elementwise_table
    return elementwise_table(tracer, node, fx, x)


@rule("cost", ELU)
def elu_cost(estimator, node, fx):
    """The table (as sigmoid's), a product by the constant alpha, and the select."""
    def fill(cost, n):
        bram, lut = memory(fx.layer.table_size * fx.layer.table.width, ports=n.out)
        alpha_t = fx.layer.param("alpha")
        cost.bram18 = bram
        cost.lut = lut + n.out * (n.width + fx.layer.table.width * alpha_t.width // 2)
        clk = estimator.c["clock"]
        cost.latency = 1 + estimator.cycles(clk["lut_mult_ns"] + clk["select_ns"])
    return estimator.per_element(node, fx, fill)
