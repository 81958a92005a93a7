"""Dynamic fixed point (Qiu et al., FPGA 2016): every tensor's format chosen from data.

Per node, in topological order:

* weights (and every other parameter): the fractional length that minimizes the summed
  absolute (or squared) error between the float values and their quantization at the
  layer's weight width;
* accumulators: products kept exact (fractional bits of input + weight) and enough integer
  bits that no input of the declared input type can overflow them, bounded from the actual
  quantized weights; biases at the accumulator's resolution;
* the output (feature map): with every earlier node already fixed and simulated bit for bit,
  the fractional length whose result is closest to the float model's output of the same
  node on the calibration data. The greedy step therefore sees the errors of earlier layers.

`method="static"` gives one fractional length to every weight and one to every feature map
(the baseline the paper improves on); accumulators and biases are sized the same way.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

from fxq.analysis.bits import BitConfig
from fxq.data import bind_inputs
from fxq.errors import FxqError
from fxq.fixed import FixedType, Overflow, Rounding, quantize, requantize, to_float
from fxq.ir import ACCUMULATING, LAYOUT, Graph, Node, Op
from fxq.memory import check_batch_fits
from fxq.ops import FIXED_KERNELS
from fxq.ops.fixed_math import raw_bound
from fxq.quantized import (DEFAULT_TABLE, IO_TYPES, LayerTypes, QuantizationError,
                           QuantizedGraph, fixed_node)
from fxq.reference import evaluate as float_evaluate

METHODS = ("dynamic", "static")
BELOW, ABOVE = 1, 4           # candidates: from 1 fractional bit coarser than the range
                              # needs, to 4 finer (saturating the largest values)
NONNEGATIVE = frozenset({Op.RELU, Op.SIGMOID, Op.SOFTMAX})
AP_WIDTH_LIMIT = 64


@dataclass(frozen=True)
class NodeChoice:
    """What the search tried for one node's output: error per fractional length."""

    node: str
    errors: Mapping[int, float]
    frac: int


@dataclass(frozen=True)
class SearchResult:
    q: QuantizedGraph
    choices: tuple[NodeChoice, ...]
    floats: Mapping[str, np.ndarray]      # the float model's every tensor on the calibration data


def frac_to_hold(magnitude: float, width: int, signed: bool) -> int:
    """The largest fractional length whose type of `width` bits still holds `magnitude`."""
    raw_max = (1 << (width - 1)) - 1 if signed else (1 << width) - 1
    if magnitude <= 0 or raw_max == 0:
        return width - 1
    frac = int(np.floor(np.log2(raw_max / magnitude)))
    while magnitude > raw_max * 2.0 ** -frac:        # guard log2's rounding
        frac -= 1
    while magnitude <= raw_max * 2.0 ** -(frac + 1):
        frac += 1
    return frac


def _error(a: np.ndarray, b: np.ndarray, objective: str) -> float:
    d = a - b
    return float(np.mean(np.abs(d)) if objective == "l1" else np.mean(d * d))


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


def best_param_type(values: np.ndarray, width: int, objective: str = "l1") -> FixedType:
    """The weight format of Qiu et al.: the fractional length minimizing the quantization
    error of `values` at `width` bits (round to nearest, saturate)."""
    values = np.asarray(values, dtype=np.float64)
    base = frac_to_hold(float(np.max(np.abs(values), initial=0.0)), width, True)
    best = None
    for frac in range(base - BELOW, base + ABOVE + 1):
        t = FixedType(width, frac, True, Rounding.RND, Overflow.SAT)
        err = _error(to_float(quantize(values, t), t), values, objective)
        if best is None or err < best[0]:
            best = (err, t)
    return best[1]


class _Search:
    """The greedy walk: float values of every tensor, raw values of the fixed ones so far."""

    def __init__(self, graph: Graph, calib: Any, config: BitConfig, method: str,
                 io_type: str, progress: Callable[[str], None] | None):
        if method not in METHODS:
            raise FxqError(f"method {method!r}: expected one of {METHODS}")
        if io_type not in IO_TYPES:
            raise QuantizationError(f"io_type {io_type!r}: expected one of {IO_TYPES}")
        config.check_layers({n.name for n in graph.nodes})
        self.graph, self.config, self.method, self.io_type = graph, config, method, io_type
        self.progress = progress or (lambda _: None)
        bound = bind_inputs(graph, calib, source="calibration data")
        # float values and raw values of every tensor, and a few candidates' working copies
        check_batch_fits(graph, bound, 8 * 4, "the analysis")
        self.floats = float_evaluate(graph, bound)
        if next(iter(self.floats.values())).shape[0] == 0:
            raise FxqError("calibration data holds no samples")
        self.raw: dict[str, np.ndarray] = {}
        self.types: dict[str, FixedType] = {}
        self.layers: dict[str, LayerTypes] = {}
        self.choices: list[NodeChoice] = []
        self.padded_max_pool_inputs = {n.inputs[0] for n in graph.nodes
                                       if n.op is Op.MAX_POOL and any(n.attrs["pads"])}
        if method == "static":
            self.static_weight_frac = self._static_weight_frac()
            self.static_act_magnitude = max(float(np.max(np.abs(v), initial=0.0))
                                            for v in self.floats.values())

    # -- per tensor ------------------------------------------------------------------

    def result_type(self, width: int, frac: int, signed: bool) -> FixedType:
        return FixedType(width, frac, signed, self.config.rounding, self.config.overflow)

    def param_type(self, values: np.ndarray, width: int) -> FixedType:
        if self.method == "static":
            return FixedType(width, self.static_weight_frac[width], True, Rounding.RND,
                             Overflow.SAT)
        return best_param_type(values, width, self.config.objective)

    def _static_weight_frac(self) -> dict[int, int]:
        """Per weight width in use, the one fractional length minimizing the total error
        over every parameter of that width."""
        by_width: dict[int, list[np.ndarray]] = {}
        for node in self.graph.nodes:
            width = self.config.widths(node).weight
            for name in node.inputs:
                if self.graph.is_param(name):
                    by_width.setdefault(width, []).append(
                        np.ravel(self.graph.params[name]).astype(np.float64))
        out = {}
        for width, arrays in by_width.items():
            values = np.concatenate(arrays)
            out[width] = best_param_type(values, width, self.config.objective).frac
        return out

    def choose_output(self, name: str, width: int, signed: bool,
                      run: Callable[[FixedType], np.ndarray]) -> FixedType:
        """The output type of tensor `name`: each candidate fractional length is simulated
        by `run(type) -> raw` and compared with the float values; the raw values of the
        winner are kept for the nodes downstream."""
        target = self.floats[name]
        if self.method == "static":
            candidates = [frac_to_hold(self.static_act_magnitude, width, signed)]
        else:
            base = frac_to_hold(float(np.max(np.abs(target), initial=0.0)), width, signed)
            candidates = range(base - BELOW, base + ABOVE + 1)
        best = None
        errors = {}
        for frac in candidates:
            t = self.result_type(width, frac, signed)
            raw = run(t)
            errors[frac] = _error(to_float(raw, t), target, self.config.objective)
            if best is None or errors[frac] < errors[best[1].frac]:
                best = (raw, t)
        self.raw[name], self.types[name] = best
        self.choices.append(NodeChoice(name, errors, best[1].frac))
        return best[1]

    def signed_output(self, node: Node, ins: list[FixedType]) -> bool:
        """Unsigned where the op cannot go negative, except where hls4ml's padded max
        pooling follows (it pads with the sign bit, which unsigned types do not have)."""
        if node.output in self.padded_max_pool_inputs:
            return True
        if node.op in NONNEGATIVE or (node.op is Op.CLIP and node.attrs["lo"] >= 0):
            return False
        if node.op in (Op.MAX_POOL, Op.AVG_POOL, Op.GLOBAL_AVG_POOL, Op.GLOBAL_MAX_POOL,
                       Op.CONCAT):
            return any(t.signed for t in ins)
        return True

    # -- the walk --------------------------------------------------------------------

    def run(self) -> SearchResult:
        g = self.graph
        for name in g.inputs:
            f = self.floats[name]
            signed = bool(np.min(f, initial=0.0) < 0)
            self.choose_output(name, self.config.act_bits, signed,
                               lambda t, f=f: quantize(f, t))
        inputs = {name: self.types[name] for name in g.inputs}
        for node in g.nodes:
            self.progress(node.name)
            self.layers[node.name] = self.node_types(node)
            self.types[node.output] = self.layers[node.name].result
        q = QuantizedGraph(g, inputs, self.layers, self.io_type)
        return SearchResult(q, tuple(self.choices), self.floats)

    def kernel_output(self, node: Node, ins: list[FixedType], layer: LayerTypes) -> np.ndarray:
        fx = fixed_node(self.graph, node, tuple(ins), layer, self.io_type)
        return FIXED_KERNELS[node.op](fx, *(self.raw[n] for n in self.graph.activation_inputs(node)))

    def node_types(self, node: Node) -> LayerTypes:
        g = self.graph
        ins = [self.types[n] for n in g.activation_inputs(node)]
        widths = self.config.widths(node)
        if node.op in LAYOUT:
            layer = LayerTypes(result=ins[0])
            self.raw[node.output] = self.kernel_output(node, ins, layer)
            return layer
        params = [g.params[n] for n in node.inputs if g.is_param(n)]
        signed = self.signed_output(node, ins)
        where = f"node {node.name!r} ({node.op.name})"

        if node.op in ACCUMULATING:
            w_t = self.param_type(params[0], widths.weight)
            accum, bias_t = self.accumulator(node, ins[0], params, w_t, where)
            partial = LayerTypes(result=accum, weight=w_t, bias=bias_t, accum=accum)
            acc = self.kernel_output(node, ins, partial)    # result = accum: the raw sums
            result = self.choose_output(
                node.output, widths.act, signed,
                lambda t: requantize(acc, accum.frac, t, accum.width))
            return LayerTypes(result=result, weight=w_t, bias=bias_t, accum=accum)

        extra: dict[str, Any] = {}
        if node.op is Op.BATCH_NORM:
            scale_t = self.param_type(params[0], widths.weight)
            extra = {"weight": scale_t,
                     "bias": self.fine_type(params[1], ins[0].frac + scale_t.frac)}
        elif node.op in (Op.ADD, Op.MUL) and params:
            extra = {"weight": self.param_type(params[0], widths.weight)}
        elif node.op is Op.LEAKY_RELU:
            extra = {"weight": self.param_type(np.array([node.attrs["alpha"]]), widths.weight)}
        elif node.op in (Op.SIGMOID, Op.TANH):
            extra = {"table": DEFAULT_TABLE}
        elif node.op in (Op.AVG_POOL, Op.GLOBAL_AVG_POOL):
            extra = {"accum": self.pool_accumulator(node, ins[0])}

        def layer_with(result: FixedType) -> LayerTypes:
            if node.op is Op.SOFTMAX:
                return softmax_types(result, g.shape(node.output)[-1])
            return LayerTypes(result=result, **extra)

        result = self.choose_output(node.output, widths.act, signed,
                                    lambda t: self.kernel_output(node, ins, layer_with(t)))
        return layer_with(result)

    # -- accumulators and biases -----------------------------------------------------

    def fine_type(self, values: np.ndarray, frac: int) -> FixedType:
        """A type holding `values` at resolution 2^-frac (fewer fractional bits only when
        that would need more than 64 bits)."""
        magnitude = float(np.max(np.abs(values), initial=0.0))
        integer = max(1, int(np.ceil(np.log2(magnitude + 2.0 ** -frac))) + 2)  # sign + margin
        frac = min(frac, AP_WIDTH_LIMIT - integer)
        return FixedType(integer + frac, frac, True, Rounding.RND, Overflow.SAT)

    def accumulator(self, node: Node, x_t: FixedType, params: list[np.ndarray],
                    w_t: FixedType, where: str) -> tuple[FixedType, FixedType | None]:
        """(accum, bias type): products exact, no overflow for any input of type x_t."""
        frac = x_t.frac + w_t.frac
        w_raw = quantize(params[0], w_t)
        w_raw = w_raw if node.op is Op.DENSE else w_raw.reshape(w_raw.shape[0], -1).T
        per_output = np.abs(w_raw).sum(axis=0, dtype=object) * raw_bound(x_t)
        bias_t = None
        if len(params) > 1:
            bias_t = self.fine_type(params[1], frac)
            b_raw = quantize(params[1], bias_t).astype(object)
            per_output = per_output + np.abs(b_raw) * (1 << max(0, frac - bias_t.frac))
        bound = int(max(per_output, default=0))
        width = max(bound.bit_length() + 1, 2)
        if width > AP_WIDTH_LIMIT:
            raise QuantizationError(
                f"{where}: an accumulator that cannot overflow needs {width} bits, more than "
                f"{AP_WIDTH_LIMIT}; use fewer bits for this layer")
        return FixedType(width, frac), bias_t

    def pool_accumulator(self, node: Node, x_t: FixedType) -> FixedType:
        """Average pooling: the sum of a window never overflows, and log2(count) extra
        fractional bits keep the integer division from dropping precision."""
        if node.op is Op.GLOBAL_AVG_POOL:
            count = int(np.prod(self.graph.shape(node.inputs[0])[1:], dtype=np.int64))
        else:
            count = int(np.prod(node.attrs["kernel"], dtype=np.int64))
        grow = max(1, (count - 1).bit_length())
        width = min(AP_WIDTH_LIMIT, x_t.width + 2 * grow + (0 if x_t.signed else 1))
        return FixedType(width, x_t.frac + grow)


def quantize_graph(graph: Graph, calib: Any, config: BitConfig | None = None, *,
                   method: str = "dynamic", io_type: str = "io_parallel",
                   progress: Callable[[str], None] | None = None) -> SearchResult:
    """Choose every format of `graph` from calibration data `calib` (an array or a mapping
    by input name, batch first). `progress(node_name)` is called as each node starts."""
    return _Search(graph, calib, config or BitConfig(), method, io_type, progress).run()
