"""HardSwish: y = x * HardSigmoid(x) with slope 1/6 and shift 1/2 (MobileNetV3's h-swish).

Every stage's rule of the op is here. hls4ml has no HardSwish layer, so the op is emitted as
the two layers whose arithmetic it is: the HardActivation gate of fxq.ops.hard_sigmoid into
its own type (role "gate"), and a Merge multiply of x by the gate (nnet_merge.h `multiply`:
the exact product, assigned to the result type). The kernels compute the same two steps,
so the one IR node is verified at its output against the multiply's trace.
"""
from __future__ import annotations

import numpy as np

from fxq.cost import add_ns, csd_digits, dsps_for
from fxq.fixed import FixedType, Overflow, Rounding, quantize, requantize
from fxq.layer import LayerTypes
from fxq.native.cpp import NativeUnsupported, at, elementwise, rq
from fxq.op import Op
from fxq.ops.hard_sigmoid import (constant_types, emit_gate, gate_check, gate_cpp, gate_raw,
                                  hard_sigmoid)
from fxq.ops.registry import converter, rule

HARD_SWISH = Op.define("HARD_SWISH", kind="activation", constants=("slope", "shift", "gate"))
# fixed by the ONNX operator, whose function body is HardSigmoid(alpha=1/6, beta=0.5) * x
# with float32 attributes
SLOPE, SHIFT = float(np.float32(1 / 6)), 0.5


@converter("HardSwish")
def convert_hard_swish(ctx, node):
    ctx.emit(node, HARD_SWISH, [node.input[0]], slope=SLOPE, shift=SHIFT)


@rule("onnx", HARD_SWISH)
def export_hard_swish(ex, node):
    if (node.attrs["slope"], node.attrs["shift"]) != (SLOPE, SHIFT):
        raise ValueError(f"node {node.name!r}: a HardSwish with its own slope and shift")
    ex.node("HardSwish", [node.inputs[0]], [node.output], node.name)


@rule("shape", HARD_SWISH)
def same_shape(x, **_):
    return tuple(x)


@rule("float", HARD_SWISH)
def hard_swish(x, *, slope, shift):
    return x * hard_sigmoid(x, slope=slope, shift=shift)


def _gate(fx, x: np.ndarray) -> np.ndarray:
    """The gate's raw values in its own type (the HardActivation layer's output)."""
    raw, sum_t = gate_raw(fx, x)
    return requantize(raw, sum_t.frac, fx.layer.param("gate"), sum_t.width)


@rule("fixed", HARD_SWISH)
def hard_swish_fixed(fx, x):
    gate_t = fx.layer.param("gate")
    return requantize(x * _gate(fx, x), fx.inputs[0].frac + gate_t.frac, fx.result, 64)


def _check(x_t: FixedType, layer: LayerTypes) -> str | None:
    gate_t = layer.param("gate")
    if gate_t is None:
        return "no gate type"
    if x_t.width + gate_t.width > 62:
        return f"x * gate needs {x_t.width + gate_t.width} bits (at most 62)"
    return gate_check(x_t, layer)


@rule("check", HARD_SWISH)
def hard_swish_check(node, ins, layer, graph):
    return _check(ins[0], layer)


@rule("types", HARD_SWISH)
def hard_swish_types(search, node, ins, widths):
    """The gate lies in [0, 1]: unsigned with one integer bit, the finest type holding 1."""
    gate = FixedType(widths.act, widths.act - 1, False, Rounding.RND, Overflow.SAT)
    constants = {**constant_types(search, node, widths), "gate": gate}
    return search.choose(node, ins, widths.act, True,
                         lambda t: LayerTypes(result=t, params=constants))


@rule("hls", HARD_SWISH)
def hard_swish_hls(builder, node, fx):
    x = builder.g.activation_inputs(node)[0]
    gate = emit_gate(builder, node, fx, fx.layer.param("gate"), internal="gate")
    builder.add(node, {"class_name": "Merge", "op": "multiply"},
                builder.precisions(result=fx.result), builder.layout(x),
                inputs=[builder.e.layer_of[x], gate])


@rule("native", HARD_SWISH)
def hard_swish_native(g, fx, x, y):
    why = _check(fx.inputs[0], fx.layer)
    if why:
        raise NativeUnsupported(why)
    gate_t = fx.layer.param("gate")
    expr, frac = gate_cpp(fx, at(x))
    gate = rq(frac - gate_t.frac, gate_t, expr)
    elementwise(g, y, rq(fx.inputs[0].frac + gate_t.frac - fx.result.frac, fx.result,
                         f"{at(x)} * (fxq::i64){gate}", count=True))


@rule("rtl", HARD_SWISH)
def hard_swish_rtl(tracer, node, fx, x):
    """The open RTL path: a table of this kernel over every input value."""
    from fxq.rtl.trace import elementwise_table
    return elementwise_table(tracer, node, fx, x)


@rule("cost", HARD_SWISH)
def hard_swish_cost(estimator, node, fx):
    """The gate (a constant multiplier, an adder, two compares) and one general multiplier
    of x by the gate per element: DSPs past the LUT-product width, else LUTs."""
    slope_t, gate_t, x_t = fx.layer.param("slope"), fx.layer.param("gate"), fx.inputs[0]
    digits = csd_digits(int(quantize(node.attrs["slope"], slope_t)))
    c = estimator.c["multiply"]
    wide = x_t.width + gate_t.width > c["dsp_product_bits"]

    def fill(cost, n):
        cost.lut = n.out * ((x_t.width + slope_t.width) * (digits + 1) + n.width)
        if wide:
            cost.dsp = n.out * dsps_for(x_t.width, gate_t.width, estimator.device)
        else:
            cost.lut += n.out * x_t.width * gate_t.width * c["lut_per_partial_product_bit"]
        clk = estimator.c["clock"]
        cost.latency = estimator.cycles(clk["lut_mult_ns"] + add_ns(n.width) + clk["select_ns"]
                                        + (clk["dsp_mult_ns"] if wide else clk["lut_mult_ns"]))
    return estimator.per_element(node, fx, fill)
