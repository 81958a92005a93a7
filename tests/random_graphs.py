"""Randomized small graphs with random fixed-point types, built directly in the IR.

Each builder takes a numpy Generator and an io type and returns (QuantizedGraph, input batch). Shapes,
weights, types (widths, fractional bits below 0 and above the width, every rounding and
overflow mode on results) are drawn from the generator, so a seed fixes a case.
"""
from __future__ import annotations

import numpy as np

from fxq.fixed import FixedType, Overflow, Rounding
from fxq.ir import Graph, Node, Op, Tensor
from fxq.quantized import DEFAULT_SOFTMAX_TABLE, LayerTypes, QuantizedGraph

ROUNDINGS = [r for r in Rounding if r is not Rounding.TRN_ZERO]   # hls4ml spells these six
OVERFLOWS = list(Overflow)


def _result(rng, width=(6, 16), integer=(1, 7), signed=True) -> FixedType:
    w = int(rng.integers(*width))
    i = int(rng.integers(*integer))
    return FixedType(w, w - i, signed, ROUNDINGS[rng.integers(len(ROUNDINGS))],
                     OVERFLOWS[rng.integers(len(OVERFLOWS))])


def _weight(rng) -> FixedType:
    w = int(rng.integers(4, 12))
    return FixedType(w, w - int(rng.integers(-1, 3)))      # frac may exceed the width


def _accum(rng, data: FixedType, weight: FixedType, narrow: bool) -> FixedType:
    frac = data.frac + weight.frac - (int(rng.integers(1, 4)) if narrow else 0)
    # ap_fixed's C model asserts when a conversion drops more bits than the source holds,
    # so the accumulator keeps at least a few integer bits
    width = max(int(rng.integers(10, 16)), frac + 2) if narrow else data.width + weight.width + 10
    return FixedType(width, frac, True, ROUNDINGS[rng.integers(len(ROUNDINGS))])


class _Builder:
    def __init__(self, rng, name):
        self.rng, self.name = rng, name
        self.nodes, self.tensors, self.params, self.layers = [], {}, {}, {}

    def node(self, op, inputs, out_shape, layer, **attrs):
        name = f"n{len(self.nodes)}_{op.name.lower()}"
        out = f"t{len(self.nodes)}"
        self.nodes.append(Node(name, op, tuple(inputs), (out,), attrs))
        self.tensors[out] = Tensor(out, tuple(out_shape))
        self.layers[name] = layer
        return out

    def param(self, values):
        name = f"p{len(self.params)}"
        self.params[name] = values
        return name

    def finish(self, inputs, input_types, output, io_type):
        graph = Graph.build(self.name, inputs, [output], self.nodes, self.tensors, self.params)
        return QuantizedGraph(graph, input_types, self.layers, io_type)


def _dense(b: _Builder, x, x_t, n_in, n_out, narrow):
    rng = b.rng
    w_t, data = _weight(rng), x_t
    w = b.param(rng.normal(0, 0.5, (n_in, n_out)))
    bias = b.param(rng.normal(0, 0.5, n_out))
    layer = LayerTypes(result=_result(rng), params={"weight": w_t, "bias": _weight(rng)},
                       accum=_accum(rng, data, w_t, narrow))
    return b.node(Op.DENSE, [x, w, bias], (n_out,), layer), layer.result


def _bounds(rng) -> tuple[float, float]:
    """Clip bounds: finite or not, on a fine grid or not, possibly beyond any type's range."""
    lo = float(rng.choice([-np.inf, -1e9, rng.uniform(-3, 0.5), -0.25]))
    hi = float(rng.choice([np.inf, 1e9, rng.uniform(0.5, 3), 1.5]))
    return lo, hi


def mlp_with_activations(rng, io_type) -> tuple[QuantizedGraph, np.ndarray]:
    """Dense layers (accumulators that round and wrap), ReLU, LeakyReLU, Sigmoid, Tanh, a
    standalone scale-and-shift, a product merge, ReLU6 or a Clip of random bounds, and
    Softmax."""
    b = _Builder(rng, "mlp_random")
    n = [int(v) for v in rng.integers(3, 20, 4)]
    x_t = _result(rng, integer=(2, 5))
    b.tensors["x"] = Tensor("x", (n[0],))
    h, h_t = _dense(b, "x", x_t, n[0], n[1], narrow=True)
    relu = LayerTypes(result=_result(rng, signed=False))
    h = b.node(Op.RELU, [h], (n[1],), relu)
    h, h_t = _dense(b, h, relu.result, n[1], n[2], narrow=False)
    leaky = LayerTypes(result=_result(rng), params={"alpha": FixedType(10, 8)})
    a = b.node(Op.LEAKY_RELU, [h], (n[2],), leaky, alpha=float(rng.uniform(0.05, 0.4)))
    sig = LayerTypes(result=_result(rng), table=_result(rng, (8, 19), (1, 3)),
                     table_size=int(2 ** rng.integers(8, 11)))
    s = b.node(Op.SIGMOID, [h], (n[2],), sig)
    prod = b.node(Op.MUL, [a, s], (n[2],), LayerTypes(result=_result(rng)))
    bn = LayerTypes(result=_result(rng), params={"scale": _weight(rng), "shift": _weight(rng)})
    scale, shift = b.param(rng.normal(1, 0.3, n[2])), b.param(rng.normal(0, 0.5, n[2]))
    h = b.node(Op.BATCH_NORM, [prod, scale, shift], (n[2],), bn)
    th = b.node(Op.TANH, [h], (n[2],), LayerTypes(result=_result(rng),
                                                 table=_result(rng, (8, 19), (1, 3))))
    lo, hi = (0.0, 6.0) if rng.integers(2) else _bounds(rng)
    r6_t = _result(rng, signed=lo < 0)
    th = b.node(Op.CLIP, [th], (n[2],), LayerTypes(result=r6_t), lo=lo, hi=hi)
    h, h_t = _dense(b, th, r6_t, n[2], n[3], narrow=True)
    if rng.integers(2):
        soft = LayerTypes(result=FixedType(16, 12, False), table=DEFAULT_SOFTMAX_TABLE,
                          inv_table=DEFAULT_SOFTMAX_TABLE, inv_inp=DEFAULT_SOFTMAX_TABLE,
                          accum=FixedType(22, 10, True, Rounding.RND, Overflow.SAT))
    else:   # tables of other widths, unsigned, a sum type fitted to the class count
        width = int(rng.integers(10, 19))
        unit = FixedType(width, width - 1, False, ROUNDINGS[rng.integers(len(ROUNDINGS))],
                         Overflow.SAT)                                  # [0, 2)
        soft = LayerTypes(result=_result(rng, signed=False), table=unit, inv_table=unit,
                          inv_inp=_result(rng, (12, 19), (3, 6), signed=False),
                          accum=FixedType(unit.width + 5, unit.frac, False, Rounding.RND,
                                          Overflow.SAT))
    y = b.node(Op.SOFTMAX, [h], (n[3],), soft, axes=(1,))
    x = rng.normal(0, 2, (64, n[0]))
    return b.finish(["x"], {"x": x_t}, y, io_type), x


def cnn_with_pooling(rng, io_type) -> tuple[QuantizedGraph, np.ndarray]:
    """Conv (with padding and stride), depthwise conv, max and average pooling (average
    accumulators coarser than the data, so partial sums round), concat, add and subtract merges,
    global average pooling, flatten and a dense head."""
    b = _Builder(rng, "cnn_random")
    c, h, w = int(rng.integers(1, 4)), int(rng.integers(6, 11)), int(rng.integers(6, 11))
    x_t = _result(rng, integer=(2, 4))
    b.tensors["x"] = Tensor("x", (c, h, w))
    f = int(rng.integers(2, 6))
    k = int(rng.integers(1, 4))
    w_t = _weight(rng)
    conv = LayerTypes(result=_result(rng), params={"weight": w_t, "bias": _weight(rng)},
                      accum=_accum(rng, x_t, w_t, narrow=True))
    wk = b.param(rng.normal(0, 0.5, (f, c, k, k)))
    bk = b.param(rng.normal(0, 0.5, f))
    pad = k // 2
    t = b.node(Op.CONV, ["x", wk, bk], (f, h, w), conv, strides=(1, 1),
               pads=(pad, pad, k - 1 - pad, k - 1 - pad), groups=1)
    t = b.node(Op.RELU, [t], (f, h, w), LayerTypes(result=_result(rng, signed=False)))
    t_t = b.layers[b.nodes[-1].name].result
    dw_t = _weight(rng)
    dw = LayerTypes(result=_result(rng), params={"weight": dw_t, "bias": _weight(rng)},
                    accum=_accum(rng, t_t, dw_t, narrow=False))
    d = b.node(Op.CONV, [t, b.param(rng.normal(0, 0.5, (f, 1, 3, 3))),
                         b.param(rng.normal(0, 0.5, f))], (f, h, w), dw,
               strides=(1, 1), pads=(1, 1, 1, 1), groups=f)
    cat_t = _result(rng)
    t = b.node(Op.CONCAT, [t, d], (2 * f, h, w), LayerTypes(result=cat_t), axis=1)
    ho, wo = h // 2, w // 2
    mp_t = _result(rng)
    mp = b.node(Op.MAX_POOL, [t], (2 * f, ho, wo),
                LayerTypes(result=mp_t, accum=_result(rng, integer=(3, 8))),
                kernel=(2, 2), strides=(2, 2), pads=(0, 0, 0, 0))
    ap_acc = FixedType(16, cat_t.frac - int(rng.integers(0, 3)), True,
                       ROUNDINGS[rng.integers(len(ROUNDINGS))])
    ap = b.node(Op.AVG_POOL, [t], (2 * f, ho, wo),
                LayerTypes(result=_result(rng), accum=ap_acc),
                kernel=(2, 2), strides=(2, 2), pads=(0, 0, 0, 0), count_include_pad=False)
    s = b.node(Op.ADD, [mp, ap], (2 * f, ho, wo), LayerTypes(result=_result(rng)))
    g = b.node(Op.GLOBAL_AVG_POOL, [s], (2 * f, 1, 1),
               LayerTypes(result=_result(rng), accum=FixedType(24, 12)))
    flat_t = b.layers[b.nodes[-1].name].result
    flat = b.node(Op.FLATTEN, [g], (2 * f,), LayerTypes(result=flat_t))
    flat2 = b.node(Op.FLATTEN, [mp], (2 * f * ho * wo,), LayerTypes(result=mp_t))
    y1, _ = _dense(b, flat, flat_t, 2 * f, 4, narrow=False)
    y2, _ = _dense(b, flat2, mp_t, 2 * f * ho * wo, 4, narrow=True)
    y = b.node(Op.SUB, [y1, y2], (4,), LayerTypes(result=_result(rng)))
    x = rng.normal(0, 1.5, (32, c, h, w))
    return b.finish(["x"], {"x": x_t}, y, io_type), x


def conv1d_chain(rng, io_type) -> tuple[QuantizedGraph, np.ndarray]:
    """Conv1D with stride, 1-D max pooling, 1-D global max pooling."""
    b = _Builder(rng, "conv1d_random")
    c, n = int(rng.integers(1, 4)), int(rng.integers(12, 30))
    x_t = _result(rng, integer=(2, 4))
    b.tensors["x"] = Tensor("x", (c, n))
    f, k, s = int(rng.integers(2, 6)), int(rng.integers(1, 5)), int(rng.integers(1, 3))
    out = (n - k) // s + 1
    w_t = _weight(rng)
    conv = LayerTypes(result=_result(rng), params={"weight": w_t, "bias": _weight(rng)},
                      accum=_accum(rng, x_t, w_t, narrow=True))
    t = b.node(Op.CONV, ["x", b.param(rng.normal(0, 0.5, (f, c, k))),
                         b.param(rng.normal(0, 0.5, f))], (f, out), conv,
               strides=(s,), pads=(0, 0), groups=1)
    t = b.node(Op.MAX_POOL, [t], (f, out // 2),
               LayerTypes(result=_result(rng), accum=_result(rng, integer=(3, 8))),
               kernel=(2,), strides=(2,), pads=(0, 0))
    y = b.node(Op.GLOBAL_MAX_POOL, [t], (f, 1),
               LayerTypes(result=_result(rng), accum=_result(rng, integer=(3, 8))))
    x = rng.normal(0, 1.5, (32, c, n))
    return b.finish(["x"], {"x": x_t}, y, io_type), x


def _small_conv(rng, name: str, k: int):
    """A builder with input x (c, h, w) of a random type and a k x k 'same' Conv to f
    channels: (builder, input type, conv output, (c, f, h, w))."""
    b = _Builder(rng, name)
    c, h, w = int(rng.integers(1, 3)), int(rng.integers(3, 6)), int(rng.integers(3, 6))
    x_t = _result(rng, integer=(2, 4))
    b.tensors["x"] = Tensor("x", (c, h, w))
    f = int(rng.integers(2, 4))
    w_t = _weight(rng)
    conv = LayerTypes(result=_result(rng), params={"weight": w_t, "bias": _weight(rng)},
                      accum=_accum(rng, x_t, w_t, narrow=False))
    p = k // 2
    t = b.node(Op.CONV, ["x", b.param(rng.normal(0, 0.5, (f, c, k, k))),
                         b.param(rng.normal(0, 0.5, f))], (f, h, w), conv, strides=(1, 1),
               pads=(p, p, p, p), groups=1)
    return b, x_t, t, (c, f, h, w)


def added_ops(rng, io_type) -> tuple[QuantizedGraph, np.ndarray]:
    """The ops added one file each: Conv -> PRelu (a slope per channel) -> Resize (integer
    upscale, nearest) -> HardSwish, and HardSigmoid; slopes, shifts, gates and results of
    random types in every rounding and overflow mode."""
    b, x_t, t, (c, f, h, w) = _small_conv(rng, "added_random", 3)
    slope = b.param(rng.uniform(-0.3, 0.6, (f, 1, 1)))
    prelu = LayerTypes(result=_result(rng), params={"slope": _weight(rng)})
    t = b.node(Op.PRELU, [t, slope], (f, h, w), prelu)
    sh, sw = int(rng.integers(1, 4)), int(rng.integers(2, 4))
    index = (tuple(i // sh for i in range(h * sh)), tuple(i // sw for i in range(w * sw)))
    t = b.node(Op.RESIZE, [t], (f, h * sh, w * sw), LayerTypes(result=prelu.result),
               index=index)
    gate_w = int(rng.integers(4, 12))
    swish = LayerTypes(result=_result(rng), params={
        "slope": FixedType(int(rng.integers(6, 12)), int(rng.integers(7, 13))),
        "shift": FixedType(4, 2), "gate": _result(rng, (gate_w, gate_w + 1), (1, 2),
                                                  signed=False)})
    s = b.node(Op.HARD_SWISH, [t], (f, h * sh, w * sw), swish, slope=float(np.float32(1 / 6)),
               shift=0.5)
    hsig = LayerTypes(result=_result(rng, signed=bool(rng.integers(2))), params={
        "slope": FixedType(int(rng.integers(4, 12)), int(rng.integers(3, 10))),
        "shift": FixedType(6, 4, True)})
    y = b.node(Op.HARD_SIGMOID, [s], (f, h * sh, w * sw), hsig,
               slope=float(rng.uniform(0.1, 0.5)), shift=float(rng.uniform(0.2, 0.8)))
    x = rng.normal(0, 1.5, (32, c, h, w))
    return b.finish(["x"], {"x": x_t}, y, io_type), x


def pads_and_constants(rng, io_type) -> tuple[QuantizedGraph, np.ndarray]:
    """Conv -> Tanh -> Mul by a per-channel constant -> zero Pad -> MaxPool -> Add of a
    per-element constant: constant operands and padding of random types."""
    b, x_t, t, (c, f, h, w) = _small_conv(rng, "pads_random", 1)
    t = b.node(Op.TANH, [t], (f, h, w), LayerTypes(result=_result(rng),
                                                   table=_result(rng, (8, 19), (1, 3))))
    scale = b.param(rng.uniform(-2, 2, (f, 1, 1)))
    t = b.node(Op.MUL, [t, scale], (f, h, w),
               LayerTypes(result=_result(rng), params={"operand": _weight(rng)}))
    top, left, bottom, right = (int(v) for v in rng.integers(0, 3, 4))
    pad_t = b.layers[b.nodes[-1].name].result
    hp, wp = h + top + bottom, w + left + right
    t = b.node(Op.PAD, [t], (f, hp, wp), LayerTypes(result=pad_t),
               pads=(0, top, left, 0, bottom, right), value=0.0)
    t = b.node(Op.MAX_POOL, [t], (f, hp // 2, wp // 2),
               LayerTypes(result=_result(rng), accum=_result(rng, integer=(3, 8))),
               kernel=(2, 2), strides=(2, 2), pads=(0, 0, 0, 0))
    shift = b.param(rng.normal(0, 1, (f, hp // 2, wp // 2)))
    y = b.node(Op.ADD, [shift, t], (f, hp // 2, wp // 2),
               LayerTypes(result=_result(rng), params={"operand": _weight(rng)}))
    x = rng.normal(0, 1.5, (32, c, h, w))
    return b.finish(["x"], {"x": x_t}, y, io_type), x


def layouts_and_broadcasts(rng, io_type) -> tuple[QuantizedGraph, np.ndarray]:
    """Grouped Conv -> Transpose (H and W swapped) -> Mul by its own global average after a
    Sigmoid (a squeeze-and-excite broadcast over the map) -> Clip of random bounds -> Add of
    a one-channel map broadcast over the channels -> Reshape to (channels, H*W) -> Conv1d:
    layouts, broadcasts and clips of random types."""
    b = _Builder(rng, "layouts_random")
    c, f = 2 * int(rng.integers(1, 3)), 2 * int(rng.integers(1, 3))
    h, w = int(rng.integers(3, 6)), int(rng.integers(3, 6))
    x_t = _result(rng, integer=(2, 4))
    b.tensors["x"] = Tensor("x", (c, h, w))
    w_t = _weight(rng)
    conv = LayerTypes(result=_result(rng), params={"weight": w_t, "bias": _weight(rng)},
                      accum=_accum(rng, x_t, w_t, narrow=bool(rng.integers(2))))
    t = b.node(Op.CONV, ["x", b.param(rng.normal(0, 0.5, (f, c // 2, 3, 3))),
                         b.param(rng.normal(0, 0.5, f))], (f, h, w), conv, strides=(1, 1),
               pads=(1, 1, 1, 1), groups=2)
    t_t = conv.result
    t = b.node(Op.TRANSPOSE, [t], (f, w, h), LayerTypes(result=t_t), perm=(0, 1, 3, 2))
    g = b.node(Op.GLOBAL_AVG_POOL, [t], (f, 1, 1),
               LayerTypes(result=_result(rng), accum=FixedType(24, 12)))
    g = b.node(Op.SIGMOID, [g], (f, 1, 1), LayerTypes(
        result=_result(rng), table=_result(rng, (8, 19), (1, 3)), table_size=1024))
    t = b.node(Op.MUL, [t, g] if rng.integers(2) else [g, t], (f, w, h),
               LayerTypes(result=_result(rng)))
    lo, hi = _bounds(rng)
    t = b.node(Op.CLIP, [t], (f, w, h), LayerTypes(result=_result(rng, signed=lo < 0)),
               lo=lo, hi=hi)
    one = b.node(Op.CONV, ["x", b.param(rng.normal(0, 0.5, (1, c, 1, 1)))], (1, h, w),
                 LayerTypes(result=_result(rng), params={"weight": w_t},
                            accum=_accum(rng, x_t, w_t, narrow=False)),
                 strides=(1, 1), pads=(0, 0, 0, 0), groups=1)
    one = b.node(Op.TRANSPOSE, [one], (1, w, h), LayerTypes(result=b.layers[
        b.nodes[-1].name].result), perm=(0, 1, 3, 2))
    t = b.node(Op.ADD, [t, one], (f, w, h), LayerTypes(result=_result(rng)))
    t = b.node(Op.RESHAPE, [t], (f, w * h), LayerTypes(result=b.layers[b.nodes[-1].name]
                                                         .result), shape=(f, w * h))
    r_t = b.layers[b.nodes[-1].name].result
    conv1 = LayerTypes(result=_result(rng), params={"weight": w_t},
                       accum=_accum(rng, r_t, w_t, narrow=False))
    y = b.node(Op.CONV, [t, b.param(rng.normal(0, 0.5, (2, f, 2)))], (2, w * h - 1), conv1,
               strides=(1,), pads=(0, 0), groups=1)
    x = rng.normal(0, 1.5, (32, c, h, w))
    return b.finish(["x"], {"x": x_t}, y, io_type), x


BUILDERS = {"mlp": mlp_with_activations, "cnn": cnn_with_pooling, "conv1d": conv1d_chain,
            "added_ops": added_ops, "pads_and_constants": pads_and_constants,
            "layouts_and_broadcasts": layouts_and_broadcasts}
