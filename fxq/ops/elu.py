"""Elu and Selu, hls4ml's two activations that look up exp(x) - 1 below zero.

Elu: y = x for x >= 0, alpha * (exp(x) - 1) below, ONNX's alpha (default 1). hls4ml
implements it as its ELU layer (nnet_activation.h `elu`, a ParametrizedActivation): below
zero it looks up `elu_table[index]`, index = int(x * table_size / -8) capped at
table_size - 1 (the table holds exp(x) - 1 over (-8, 0], computed in float,
tables.elu_table), and assigns `alpha * elu_table[index]`, the exact product of alpha (a
constant of its own type, role "alpha") and the table value, to the result type; at and
above zero it assigns x.

Selu: y = gamma * x for x > 0, gamma * alpha * (exp(x) - 1) below. hls4ml's `selu` has
the standard constants compiled in (alpha 1.6732632..., gamma 1.0507009...), so other
values are refused. Below zero it looks its table up the same way (the table holds
gamma * alpha * (exp(x) - 1)); at and above zero it multiplies x by gamma held in
ap_ufixed<16,1> in io_parallel, and in x's own type in io_stream (nnet_activation_stream.h
casts the constant to the input's type), and assigns the exact product.

Every stage's rule of both ops is here. The table types are signed with the integer bits
their values need (Elu's lie in (-1, 0], Selu's in (-1.76, 0]), not hls4ml's default
<18,8>, which spends bits on a range the values never reach.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fxq.cost import memory
from fxq.fixed import FixedType, Overflow, Rounding, quantize, requantize, to_float
from fxq.layer import LayerTypes
from fxq.native.cpp import NativeUnsupported, at, elementwise, lit, rq
from fxq.onnx_convert import attrs_of, refuse
from fxq.op import Op
from fxq.ops import tables
from fxq.ops.registry import converter, rule

ELU = Op.define("ELU", kind="activation", constants=("alpha",))
SELU = Op.define("SELU", kind="activation")

# exp(x) - 1 over (-8, 0] lies in (-1, 0]: one integer bit (the sign), 17 fractional ones
ELU_TABLE = FixedType(18, 17, True, Rounding.RND, Overflow.SAT)
# gamma * alpha * (exp(x) - 1) over (-8, 0] lies in (-1.76, 0]: two integer bits
SELU_TABLE = FixedType(18, 16, True, Rounding.RND, Overflow.SAT)
INPUT_RANGE = 8                  # the tables span (-8, 0]: index = int(x * size / -8)
# ONNX Selu's default attributes (float32), the constants hls4ml's selu has compiled in
SELU_ALPHA, SELU_GAMMA = 1.67326319217681884765625, 1.05070102214813232421875
# hls4ml's gamma for x >= 0 in io_parallel: `static const ap_ufixed<16, 1> lambda`
SELU_GAMMA_TYPE = FixedType(16, 15, False)
SELU_GAMMA_C = 1.0507009873554805


@converter("Elu")
def convert_elu(ctx, node):
    alpha = float(attrs_of(node).get("alpha", np.float32(1.0)))
    ctx.emit(node, ELU, [node.input[0]], alpha=alpha)


@converter("Selu")
def convert_selu(ctx, node):
    attrs = attrs_of(node)
    alpha = float(attrs.get("alpha", np.float32(SELU_ALPHA)))
    gamma = float(attrs.get("gamma", np.float32(SELU_GAMMA)))
    if (alpha, gamma) != (SELU_ALPHA, SELU_GAMMA):
        raise refuse(ctx, node, f"alpha {alpha} and gamma {gamma}: hls4ml's selu has the "
                     f"standard constants ({SELU_ALPHA}, {SELU_GAMMA}) compiled in")
    ctx.emit(node, SELU, [node.input[0]])


@rule("onnx", SELU)
def export_selu(ex, node):
    ex.node("Selu", [node.inputs[0]], [node.output], node.name)


@rule("onnx", ELU)
def export_elu(ex, node):
    ex.node("Elu", [node.inputs[0]], [node.output], node.name, alpha=float(node.attrs["alpha"]))


@rule("shape", ELU, SELU)
def same_shape(x, **_):
    return tuple(x)


@rule("float", ELU)
def elu(x, *, alpha):
    return np.where(x >= 0, x, alpha * np.expm1(np.minimum(x, 0.0)))


@rule("float", SELU)
def selu(x):
    return SELU_GAMMA * np.where(x > 0, x, SELU_ALPHA * np.expm1(np.minimum(x, 0.0)))


# -- the lookup, as ap_fixed computes it -----------------------------------------------------

def _index_bound(x_t: FixedType, size: int) -> int:
    """The largest index before the cap: int(x * size / -8) at the type's most negative
    value (0 for an unsigned type: the table is never read)."""
    scaled = -x_t.raw_min * size // INPUT_RANGE
    return scaled >> x_t.frac if x_t.frac >= 0 else scaled << -x_t.frac


def exp_table_check(x_t: FixedType, layer: LayerTypes, constants=()) -> str | None:
    if layer.table is None or any(layer.param(role) is None for role in constants):
        return "no table type" + "".join(f" or {role} type" for role in constants)
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


def _selu_gamma_type(fx) -> FixedType:
    """The type gamma is held in for x >= 0: ap_ufixed<16,1> in io_parallel, the input's
    own type in io_stream."""
    return fx.inputs[0] if fx.io_type == "io_stream" else SELU_GAMMA_TYPE


@dataclass(frozen=True)
class Branches:
    """Both branches as integer products: x >= 0 gives x * above (at fraction f_above),
    x < 0 gives below * table[index(x)] (at f_below); each then converted to the result."""

    table: np.ndarray
    above: int
    f_above: int
    below: int
    f_below: int


def branches(fx) -> Branches:
    x_t, layer = fx.inputs[0], fx.layer
    if fx.node.op is ELU:
        alpha, alpha_t = _alpha(fx)
        return Branches(tables.elu_table(layer.table_size, layer.table), 1, x_t.frac,
                        alpha, alpha_t.frac + layer.table.frac)
    gamma_t = _selu_gamma_type(fx)
    return Branches(tables.selu_table(layer.table_size, layer.table),
                    int(quantize(SELU_GAMMA_C, gamma_t)), x_t.frac + gamma_t.frac,
                    1, layer.table.frac)


def _constants(op) -> tuple[str, ...]:
    return ("alpha",) if op is ELU else ()


# -- the stages ------------------------------------------------------------------------------

@rule("fixed", ELU, SELU)
def exp_table_fixed(fx, x):
    x_t, b = fx.inputs[0], branches(fx)
    above = requantize(x * b.above, b.f_above, fx.result, 64)
    below = requantize(b.below * b.table[_index(x, x_t, fx.layer.table_size)], b.f_below,
                       fx.result, 64)
    return np.where(x >= 0, above, below)


@rule("check", ELU, SELU)
def exp_table_check_rule(node, ins, layer, graph):
    return exp_table_check(ins[0], layer, _constants(node.op))


@rule("types", ELU)
def elu_types(search, node, ins, widths):
    alpha = {"alpha": search.param_type(np.array([node.attrs["alpha"]]), widths.weight, "alpha")}
    return search.choose(node, ins, widths.act, True,
                         lambda t: LayerTypes(result=t, params=alpha, table=ELU_TABLE))


@rule("types", SELU)
def selu_types(search, node, ins, widths):
    return search.choose(node, ins, widths.act, True,
                         lambda t: LayerTypes(result=t, table=SELU_TABLE))


@rule("hls", ELU, SELU)
def exp_table_hls(builder, node, fx):
    x = builder.g.activation_inputs(node)[0]
    layer = {"n_in": int(np.prod(builder.shape(x)))}
    if node.op is ELU:
        alpha, alpha_t = _alpha(fx)
        # alpha an exact binary fraction: printed in full, parsed back to the same value
        layer.update({"class_name": "ELU", "activation": "elu",
                      "activ_param": float(to_float(alpha, alpha_t))})
        precisions = builder.precisions(result=fx.result, param=alpha_t)
    else:
        layer.update({"class_name": "Activation", "activation": "selu"})
        precisions = builder.precisions(result=fx.result)
    builder.add(node, layer, precisions, builder.layout(x),
                # hls4ml takes the table's type from the layer config's "table_t" key
                {"TableSize": fx.layer.table_size, "table_t": fx.layer.table.hls()})


@rule("native", ELU, SELU)
def exp_table_native(g, fx, x, y):
    """Both branches aligned to one fraction (exact left shifts), then one conversion."""
    x_t, layer = fx.inputs[0], fx.layer
    why = exp_table_check(x_t, layer, _constants(fx.node.op))
    if why:
        raise NativeUnsupported(why)
    b = branches(fx)
    frac = max(b.f_above, b.f_below)
    bits = max(x_t.width + abs(b.above).bit_length() + frac - b.f_above,
               layer.table.width + abs(b.below).bit_length() + frac - b.f_below)
    if bits > 62:
        raise NativeUnsupported(f"{fx.node.op.name}'s aligned values need {bits} bits")
    table = g.param(b.table, "int64_t")
    v = at(x)
    q = f"((-{v}) * {layer.table_size} / {INPUT_RANGE})"
    whole = f"({q} >> {x_t.frac})" if x_t.frac >= 0 else f"({q} << {-x_t.frac})"
    index = f"std::min<fxq::i64>({whole}, {layer.table_size - 1})"
    below = f"(({lit(b.below)} * {table}[{v} < 0 ? {index} : 0]) << {frac - b.f_below})"
    above = f"(({v} * {lit(b.above)}) << {frac - b.f_above})"
    value = f"({v} >= 0 ? {above} : {below})"
    elementwise(g, y, rq(frac - fx.result.frac, fx.result, value, count=True))


@rule("rtl", ELU, SELU)
def exp_table_rtl(tracer, node, fx, x):
    """The open RTL path: a table of this kernel over every input value."""
    from fxq.rtl.trace import elementwise_table
    return elementwise_table(tracer, node, fx, x)


@rule("cost", ELU, SELU)
def exp_table_cost(estimator, node, fx):
    """The table (as sigmoid's), a product by a constant (ELU's alpha below zero, SELU's
    gamma above), and the select."""
    constant = fx.layer.param("alpha") if node.op is ELU else _selu_gamma_type(fx)

    def fill(cost, n):
        bram, lut = memory(fx.layer.table_size * fx.layer.table.width, ports=n.out)
        cost.bram18 = bram
        cost.lut = lut + n.out * (n.width + fx.layer.table.width * constant.width // 2)
        clk = estimator.c["clock"]
        cost.latency = 1 + estimator.cycles(clk["lut_mult_ns"] + clk["select_ns"])
    return estimator.per_element(node, fx, fill)
