"""HardSigmoid: y = max(0, min(1, slope * x + shift)), ONNX's alpha and beta.

Every stage's rule of the op is here. hls4ml implements it as its HardActivation layer
(nnet_activation.h `hard_sigmoid`): `auto datareg = slope * data + shift`, in the exact
ap_fixed type of that product and sum, clamped to [0, 1] and assigned to the result type.
slope and shift are constants of their own types (roles "slope" and "shift"), so the kernel
computes with their quantized values, as the C++ does. MobileNetV3's h-sigmoid is
HardSigmoid(alpha=1/6, beta=0.5); HardSwish (fxq.ops.hard_swish) reuses the gate below.
"""
from __future__ import annotations

import numpy as np

from fxq.cost import add_ns, csd_digits
from fxq.fixed import FixedType, quantize, requantize, to_float
from fxq.layer import LayerTypes
from fxq.native.cpp import NativeUnsupported, at, elementwise, lit, rq
from fxq.onnx_convert import attrs_of
from fxq.op import Op
from fxq.ops.registry import converter, rule

HARD_SIGMOID = Op.define("HARD_SIGMOID", kind="activation", constants=("slope", "shift"))


@converter("HardSigmoid")
def convert_hard_sigmoid(ctx, node):
    attrs = attrs_of(node)                       # float32 attributes, ONNX's defaults
    ctx.emit(node, HARD_SIGMOID, [node.input[0]],
             slope=float(attrs.get("alpha", np.float32(0.2))),
             shift=float(attrs.get("beta", np.float32(0.5))))


@rule("onnx", HARD_SIGMOID)
def export_hard_sigmoid(ex, node):
    ex.node("HardSigmoid", [node.inputs[0]], [node.output], node.name,
            alpha=float(node.attrs["slope"]), beta=float(node.attrs["shift"]))


@rule("shape", HARD_SIGMOID)
def same_shape(x, **_):
    return tuple(x)


@rule("float", HARD_SIGMOID)
def hard_sigmoid(x, *, slope, shift):
    return np.minimum(np.maximum(slope * x + shift, 0.0), 1.0)


# -- the gate, as ap_fixed computes it -------------------------------------------------------

def gate_sum_type(x_t: FixedType, slope_t: FixedType, shift_t: FixedType) -> FixedType:
    """The ap_fixed type of `slope * x + shift`: a product keeps every bit (widths and
    integer bits add), a sum takes the finer fraction and one more integer bit than the
    larger operand (plus one when only the other is signed)."""
    p_int, p_signed = x_t.integer + slope_t.integer, x_t.signed or slope_t.signed
    p_frac = x_t.frac + slope_t.frac
    integer = max(p_int + int(shift_t.signed and not p_signed),
                  shift_t.integer + int(p_signed and not shift_t.signed)) + 1
    frac = max(p_frac, shift_t.frac)
    return FixedType(integer + frac, frac, p_signed or shift_t.signed)


def gate_check(x_t: FixedType, layer: LayerTypes) -> str | None:
    slope_t, shift_t = layer.param("slope"), layer.param("shift")
    if slope_t is None or shift_t is None:
        return "no slope or shift type"
    s = gate_sum_type(x_t, slope_t, shift_t)
    if s.integer - int(s.signed) < 1 or s.frac < 0:
        return (f"slope * x + shift is computed in {s}, which cannot hold 1, the upper "
                "clamp; widen the slope's or shift's integer bits")
    if s.width > 62:
        return f"slope * x + shift needs {s.width} bits (at most 62)"
    return None


def _gate_terms(fx) -> tuple[FixedType, int, int, int]:
    """(the sum's type, raw slope, the product's left shift to the sum's fraction, raw
    shift aligned to it): slope * x + shift as integers in the sum's type."""
    x_t, slope_t, shift_t = fx.inputs[0], fx.layer.param("slope"), fx.layer.param("shift")
    sum_t = gate_sum_type(x_t, slope_t, shift_t)
    slope = int(quantize(fx.node.attrs["slope"], slope_t))
    shift = int(quantize(fx.node.attrs["shift"], shift_t))
    return (sum_t, slope, sum_t.frac - x_t.frac - slope_t.frac,
            shift << (sum_t.frac - shift_t.frac))


def gate_raw(fx, x: np.ndarray) -> tuple[np.ndarray, FixedType]:
    """(raw values, the sum's type) of clamp(slope * x + shift, 0, 1) in the sum's type."""
    sum_t, slope, left, shift = _gate_terms(fx)
    return np.clip((x * slope << left) + shift, 0, 1 << sum_t.frac), sum_t


def gate_cpp(fx, x: str) -> tuple[str, int]:
    """gate_raw's C++ for the raw input expression `x`: (expression, fractional bits)."""
    sum_t, slope, left, shift = _gate_terms(fx)
    total = f"(({x} * {lit(slope)}) << {left}) + {lit(shift)}"
    return (f"std::min<fxq::i64>(std::max<fxq::i64>({total}, 0), {lit(1 << sum_t.frac)})",
            sum_t.frac)


def constant_types(search, node, widths) -> dict[str, FixedType]:
    """slope and shift in the parameter width, each at its best fractional length."""
    return {role: search.param_type(np.array([node.attrs[role]]), widths.weight, role)
            for role in ("slope", "shift")}


def emit_gate(builder, node, fx, result: FixedType, internal: str | None = None) -> str:
    """The HardActivation layer computing the gate of `node` into `result`; its name."""
    x = builder.g.activation_inputs(node)[0]
    slope_t, shift_t = fx.layer.param("slope"), fx.layer.param("shift")
    layer = {"class_name": "HardActivation", "activation": "hard_sigmoid",
             "n_in": int(np.prod(builder.shape(x))),
             # exact binary fractions: printed in full, parsed back to the same value
             "slope": float(to_float(quantize(node.attrs["slope"], slope_t), slope_t)),
             "shift": float(to_float(quantize(node.attrs["shift"], shift_t), shift_t)),
             "slope_prec": builder.hls_type(slope_t), "shift_prec": builder.hls_type(shift_t)}
    return builder.add(node, layer, builder.precisions(result=result),
                       builder.layout(x), internal=internal)


# -- the stages ------------------------------------------------------------------------------

@rule("fixed", HARD_SIGMOID)
def hard_sigmoid_fixed(fx, x):
    raw, sum_t = gate_raw(fx, x)
    return requantize(raw, sum_t.frac, fx.result, sum_t.width)


@rule("check", HARD_SIGMOID)
def hard_sigmoid_check(node, ins, layer, graph):
    return gate_check(ins[0], layer)


@rule("types", HARD_SIGMOID)
def hard_sigmoid_types(search, node, ins, widths):
    constants = constant_types(search, node, widths)
    return search.choose(node, ins, widths.act, False,
                         lambda t: LayerTypes(result=t, params=constants))


@rule("hls", HARD_SIGMOID)
def hard_sigmoid_hls(builder, node, fx):
    emit_gate(builder, node, fx, fx.result)


@rule("native", HARD_SIGMOID)
def hard_sigmoid_native(g, fx, x, y):
    why = gate_check(fx.inputs[0], fx.layer)
    if why:
        raise NativeUnsupported(why)
    expr, frac = gate_cpp(fx, at(x))
    elementwise(g, y, rq(frac - fx.result.frac, fx.result, expr, count=True))


@rule("rtl", HARD_SIGMOID)
def hard_sigmoid_rtl(tracer, node, fx, x):
    """The open RTL path: a table of this kernel over every input value."""
    from fxq.rtl.trace import elementwise_table
    return elementwise_table(tracer, node, fx, x)


@rule("cost", HARD_SIGMOID)
def hard_sigmoid_cost(estimator, node, fx):
    """A constant multiplier (one adder per extra CSD digit of the slope), the shift's
    adder and two compares, per element."""
    slope_t = fx.layer.param("slope")
    digits = csd_digits(int(quantize(node.attrs["slope"], slope_t)))

    def fill(cost, n):
        cost.lut = n.out * (fx.inputs[0].width + slope_t.width) * (digits + 1) + n.out * n.width
        clk = estimator.c["clock"]
        cost.latency = estimator.cycles(clk["lut_mult_ns"] + add_ns(n.width) + clk["select_ns"])
    return estimator.per_element(node, fx, fill)
