"""PRelu: y = x for x >= 0, slope * x below, with a learned slope per channel (or any shape
that broadcasts to the input's).

Every stage's rule of the op is here. The slope is the op's one parameter (role "slope"),
quantized to its own type. hls4ml's PReLU layer (nnet_activation.h `prelu`) takes a slope
per element: the emitter broadcasts it over the tensor in the project's element order.
Below zero the exact product slope * x is assigned to the result type; above, x is.
"""
from __future__ import annotations

import numpy as np

from fxq.cost import csd_digits
from fxq.fixed import cast, requantize
from fxq.layer import LayerTypes
from fxq.native.cpp import NativeUnsupported, at, broadcast_index, elementwise, rq
from fxq.native.cpp import cast as cast_cpp
from fxq.onnx_convert import refuse
from fxq.op import Op
from fxq.ops.registry import converter, rule

PRELU = Op.define("PRELU", kind="activation", params=("slope",))


@converter("PRelu")
def convert_prelu(ctx, node):
    """The slope as a parameter of the input's per-sample rank (ONNX broadcasts it from the
    right, batch axis included; a slope along the batch axis is refused)."""
    slope = np.asarray(ctx.require_const(node, 1, "slope"), dtype=np.float64)
    shape = ctx.shape(node.input[0])
    lead = slope.ndim - len(shape)
    if lead > 0:
        if any(d != 1 for d in slope.shape[:lead]):
            raise refuse(ctx, node, f"slope of shape {slope.shape} varies along the batch axis")
        slope = slope.reshape(slope.shape[lead:])
    slope = slope.reshape((1,) * (len(shape) - slope.ndim) + slope.shape)
    if np.broadcast_shapes(slope.shape, shape) != tuple(shape):
        raise refuse(ctx, node, f"slope of shape {slope.shape} does not broadcast to the "
                     f"input {ctx.describe(node.input[0])}")
    ctx.emit(node, PRELU, [node.input[0], ctx.param(node, slope, "slope")])


@rule("onnx", PRELU)
def export_prelu(ex, node):
    ex.node("PRelu", [node.inputs[0], ex.param(node, "slope")], [node.output], node.name)


@rule("shape", PRELU)
def prelu_shape(x, slope):
    return tuple(x)


@rule("float", PRELU)
def prelu(x, slope):
    return np.where(x >= 0, x, slope * x)


def _slope(fx, shape) -> np.ndarray:
    """The raw slope broadcast to the batched input shape."""
    raw, _ = fx.param("slope")
    return np.broadcast_to(raw, (1,) + tuple(shape[1:]))


@rule("rtl", PRELU)
def prelu_rtl(tracer, node, fx, x):
    """The open RTL path: x > 0 ? cast(x) : cast(slope * x), the slope per element."""
    from fxq.rtl.trace import real, sloped
    raw, slope_t = fx.param("slope")
    return sloped(tracer, node, fx, x, np.broadcast_to(real(raw, slope_t), x.shape))


@rule("fixed", PRELU)
def prelu_fixed(fx, x):
    _, slope_t = fx.param("slope")
    scaled = requantize(x * _slope(fx, x.shape), fx.inputs[0].frac + slope_t.frac, fx.result, 64)
    return np.where(x > 0, cast(x, fx.inputs[0], fx.result), scaled)


@rule("check", PRELU)
def prelu_check(node, ins, layer, graph):
    slope_t = layer.param("slope")
    if ins[0].width + slope_t.width > 62:
        return f"slope * x needs {ins[0].width + slope_t.width} bits (at most 62)"
    return None


@rule("types", PRELU)
def prelu_types(search, node, ins, widths):
    params = search.params_of(node)
    slope = {"slope": search.param_type(params["slope"], widths.weight, "slope")}
    return search.choose(node, ins, widths.act, True,
                         lambda t: LayerTypes(result=t, params=slope))


@rule("hls", PRELU)
def prelu_hls(builder, node, fx):
    x, slope_name = node.inputs
    shape = builder.shape(x)
    order = builder.e.order(x)
    slope = np.broadcast_to(builder.param(slope_name), shape).ravel()[order]
    layer = {"class_name": "PReLU", "activation": "prelu", "n_in": int(slope.size),
             "param_data": slope}
    builder.add(node, layer, builder.precisions(result=fx.result, param=fx.param("slope")[1]),
                builder.layout(x))


@rule("native", PRELU)
def prelu_native(g, fx, x, y):
    raw, slope_t = fx.param("slope")
    if fx.inputs[0].width + slope_t.width > 62:
        raise NativeUnsupported(f"PRelu of {fx.inputs[0]} by {slope_t}")
    slope = g.param(raw.ravel(), "int64_t")
    index = broadcast_index(g, raw.size, raw.shape, y.shape)
    scaled = rq(fx.inputs[0].frac + slope_t.frac - fx.result.frac, fx.result,
                f"{at(x)} * {slope}[{index}]", count=True)
    elementwise(g, y, f"({at(x)} > 0 ? {cast_cpp(fx.inputs[0], fx.result, at(x), count=True)} "
                      f": {scaled})")


@rule("cost", PRELU)
def prelu_cost(estimator, node, fx):
    """A compare and a multiplexer per element, and a multiplier by the element's slope: a
    constant (shift-and-add, one adder per extra CSD digit) in the latency strategy. Uses
    the mean digit count over the slopes: the elements of one step are any of them."""
    raw, slope_t = fx.param("slope")
    digits = float(np.mean([csd_digits(v) for v in np.ravel(raw)]))

    def fill(cost, n):
        cost.lut = n.out * (fx.inputs[0].width + slope_t.width) * (1 + digits) \
            + n.out * n.width
        clk = estimator.c["clock"]
        cost.latency = estimator.cycles(clk["lut_mult_ns"] + clk["select_ns"])
    return estimator.per_element(node, fx, fill)
