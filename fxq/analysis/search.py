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

Memory: the walk holds the float and raw values of the tensors live at once (each dropped
after its last reader) and runs kernels SAMPLE_BLOCK samples at a time; what the report
needs of each tensor is gathered as it passes (fxq.analysis.stats).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

from fxq.analysis.bits import BitConfig
from fxq.analysis.stats import TensorStats
from fxq.data import bind_inputs
from fxq.errors import FxqError
from fxq.fixed import MAX_WIDTH, FixedType, Overflow, Rounding, quantize, to_float
from fxq.ir import Graph, Node, Op
from fxq.layer import IO_TYPES, LayerTypes, QuantizationError, fixed_node
from fxq.memory import check_live_fits
from fxq.ops.fixed_math import raw_bound
from fxq.ops.registry import lookup
from fxq.quantized import QuantizedGraph
from fxq.reference import run_node
from fxq.reference import walk as float_walk

METHODS = ("dynamic", "static")
BELOW, ABOVE = 1, 4           # candidates: from 1 fractional bit coarser than the range
                              # needs, to 4 finer (saturating the largest values)
AP_WIDTH_LIMIT = MAX_WIDTH     # the widest ap_fixed fxq's int64 arithmetic holds
SAMPLE_BLOCK = 64              # samples per kernel call and error sum in the search


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
    stats: Mapping[str, TensorStats]      # every tensor's float range, SQNR and histogram


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


def blockwise(fn: Callable[..., np.ndarray], *arrays: np.ndarray) -> np.ndarray:
    """fn over `arrays` (batch first, each sample independent), SAMPLE_BLOCK samples at a
    time, into one output: the temporaries of fn follow the block, not the batch."""
    n = arrays[0].shape[0]
    if n <= SAMPLE_BLOCK:
        return fn(*arrays)
    out = None
    for start in range(0, n, SAMPLE_BLOCK):
        y = fn(*(a[start:start + SAMPLE_BLOCK] for a in arrays))
        if out is None:
            out = np.empty((n,) + y.shape[1:], dtype=y.dtype)
        out[start:start + len(y)] = y
    return out


def _output_error(raw: np.ndarray, t: FixedType, target: np.ndarray, objective: str) -> float:
    """_error of raw values of type t against the float target, a block of samples at a
    time (the temporaries stay small; the sum is the whole one's up to rounding)."""
    total = 0.0
    for start in range(0, raw.shape[0], SAMPLE_BLOCK):
        d = to_float(raw[start:start + SAMPLE_BLOCK], t) - target[start:start + SAMPLE_BLOCK]
        total += float(np.sum(np.abs(d)) if objective == "l1" else np.sum(d * d))
    return total / max(raw.size, 1)


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
        if next(iter(bound.values())).shape[0] == 0:
            raise FxqError("calibration data holds no samples")
        # the float and raw values of the tensors live at once, and a candidate's and the
        # best one's outputs: each tensor is dropped after its last reader
        check_live_fits(graph, bound, 8 * 2, 8 * 3, "the analysis")
        self.floats: dict[str, np.ndarray] = dict(bound)
        self.last = graph.last_readers()
        self.stats: dict[str, TensorStats] = {}
        self.raw: dict[str, np.ndarray] = {}
        self.types: dict[str, FixedType] = {}
        self.layers: dict[str, LayerTypes] = {}
        self.choices: list[NodeChoice] = []
        self.padded_max_pool_inputs = {n.inputs[0] for n in graph.nodes
                                       if n.op is Op.MAX_POOL and any(n.attrs["pads"])}
        if method == "static":
            self.static_weight_frac = self._static_weight_frac()
            # one format for every feature map: the largest magnitude of any (a float pass
            # of its own, tensor by tensor)
            self.static_act_magnitude = max(
                (float(np.max(np.abs(v), initial=0.0)) for _, v in float_walk(graph, bound)),
                default=0.0)

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
        winner are kept for the nodes downstream. Signed where `signed` or a consumer
        needs it. A graph output never takes a type narrower than its calibrated range."""
        signed = signed or self.needs_signed(name)
        target = self.floats[name]
        if self.method == "static":
            candidates = [frac_to_hold(self.static_act_magnitude, width, signed)]
        else:
            base = frac_to_hold(float(np.max(np.abs(target), initial=0.0)), width, signed)
            # a graph output holds its whole calibrated range: what the design returns is
            # not clipped (a regression output or an anomaly score, not only a logit)
            top = base if name in self.graph.outputs else base + ABOVE
            candidates = range(base - BELOW, top + 1)
        best = None
        errors = {}
        for frac in candidates:
            t = self.result_type(width, frac, signed)
            raw = run(t)
            errors[frac] = _output_error(raw, t, target, self.config.objective)
            if best is None or errors[frac] < errors[best[1].frac]:
                best = (raw, t)
            del raw                        # only the best candidate's values are kept
        self.raw[name], self.types[name] = best
        self.choices.append(NodeChoice(name, errors, best[1].frac))
        self._observe(name)
        return best[1]

    def _observe(self, name: str) -> None:
        """The statistics of tensor `name`, once its type and raw values are fixed."""
        t = self.types[name]
        stats = self.stats.setdefault(name, TensorStats())
        f, raw = self.floats[name], self.raw[name]
        for start in range(0, max(len(f), 1), SAMPLE_BLOCK):
            block = slice(start, start + SAMPLE_BLOCK)
            stats.add(f[block], t, to_float(raw[block], t))

    def needs_signed(self, tensor: str) -> bool:
        """A tensor read by hls4ml's io_parallel padded max pooling must be signed (it pads
        with the sign bit, which unsigned types do not have), whatever its values. (In
        io_stream the padding is a ZeroPadding layer, exact for unsigned types.)"""
        return self.io_type == "io_parallel" and tensor in self.padded_max_pool_inputs

    blockwise = staticmethod(blockwise)     # for the ops' type rules

    def params_of(self, node: Node) -> dict[str, np.ndarray]:
        """The float value of each parameter input of `node`, by role."""
        return {role: self.graph.params[name] for role, name in self.graph.param_inputs(node)}

    def choose(self, node: Node, ins: list[FixedType], width: int, signed: bool,
               layer_with: Callable[[FixedType], LayerTypes]) -> LayerTypes:
        """The node's types `layer_with(result)`, its result type chosen by running the
        node's kernel with each candidate (the rule of most ops)."""
        result = self.choose_output(node.output, width, signed,
                                    lambda t: self.kernel_output(node, ins, layer_with(t)))
        return layer_with(result)

    # -- the walk --------------------------------------------------------------------

    def run(self) -> SearchResult:
        g = self.graph
        for name in g.inputs:
            f = self.floats[name]
            signed = bool(np.min(f, initial=0.0) < 0) or self.needs_signed(name)
            self.choose_output(name, self.config.act_bits, signed,
                               lambda t, f=f: blockwise(lambda v: quantize(v, t), f))
            del f                          # (the input's values go after its last reader)
        inputs = {name: self.types[name] for name in g.inputs}
        last = self.last
        for i, node in enumerate(g.nodes):
            self.progress(node.name)
            self.floats[node.output] = self.float_output(node)
            self.layers[node.name] = self.node_types(node)
            self.types[node.output] = self.layers[node.name].result
            # float and raw values are only read by later nodes: each is dropped after
            # its last reader
            for name in g.activation_inputs(node) + [node.output]:
                if last.get(name, -1) <= i:
                    self.raw.pop(name, None)
                    self.floats.pop(name, None)
        q = QuantizedGraph(g, inputs, self.layers, self.io_type)
        return SearchResult(q, tuple(self.choices), self.stats)

    def float_output(self, node: Node) -> np.ndarray:
        """The node's float kernel on the calibration data, a block of samples at a time."""
        names = self.graph.activation_inputs(node)
        return blockwise(lambda *a: run_node(self.graph, node, dict(zip(names, a))),
                         *(self.floats[n] for n in names))

    def kernel_output(self, node: Node, ins: list[FixedType], layer: LayerTypes) -> np.ndarray:
        """The node's fixed kernel on the calibration data, a block of samples at a time
        (each sample is independent; a kernel's temporaries follow the block)."""
        fx = fixed_node(self.graph, node, tuple(ins), layer, self.io_type)
        kernel = lookup("fixed", node.op, node.name)
        return blockwise(lambda *a: kernel(fx, *a),
                         *(self.raw[n] for n in self.graph.activation_inputs(node)))

    def node_types(self, node: Node) -> LayerTypes:
        """The types of `node`: layout ops keep their input's; every other op's own type
        rule ("types" in fxq.ops.registry) decides."""
        ins = [self.types[n] for n in self.graph.activation_inputs(node)]
        if node.op.is_layout:
            layer = LayerTypes(result=ins[0])
            self.raw[node.output] = self.kernel_output(node, ins, layer)
            self.types[node.output] = ins[0]
            self._observe(node.output)
            return layer
        rule = lookup("types", node.op, node.name)
        return rule(self, node, ins, self.config.widths(node))

    # -- accumulators and biases -----------------------------------------------------

    def fine_type(self, values: np.ndarray, frac: int) -> FixedType:
        """A type holding `values` at resolution 2^-frac (fewer fractional bits only when
        that would need more than 64 bits)."""
        magnitude = float(np.max(np.abs(values), initial=0.0))
        integer = max(1, int(np.ceil(np.log2(magnitude + 2.0 ** -frac))) + 2)  # sign + margin
        frac = min(frac, AP_WIDTH_LIMIT - integer)
        return FixedType(integer + frac, frac, True, Rounding.RND, Overflow.SAT)

    def accumulator(self, node: Node, x_t: FixedType, w_t: FixedType,
                    weight_matrix: Callable[[np.ndarray], np.ndarray]) \
            -> tuple[FixedType, FixedType | None]:
        """(accum, bias type) of a weighted sum: products exact, no overflow for any input of
        type x_t. `weight_matrix(raw weights)` gives them as (inputs, outputs)."""
        where = f"node {node.name!r} ({node.op.name})"
        params = self.params_of(node)
        frac = x_t.frac + w_t.frac
        w_raw = weight_matrix(quantize(params["weight"], w_t))
        per_output = np.abs(w_raw).sum(axis=0, dtype=object) * raw_bound(x_t)
        bias_t = None
        if "bias" in params:
            bias_t = self.fine_type(params["bias"], frac)
            b_raw = quantize(params["bias"], bias_t).astype(object)
            per_output = per_output + np.abs(b_raw) * (1 << max(0, frac - bias_t.frac))
        bound = int(max(per_output, default=0))
        width = max(bound.bit_length() + 1, 2)
        if width > AP_WIDTH_LIMIT:
            raise QuantizationError(
                f"{where}: an accumulator that cannot overflow needs {width} bits, more than "
                f"{AP_WIDTH_LIMIT}; use fewer bits for this layer")
        return FixedType(width, frac), bias_t


def quantize_graph(graph: Graph, calib: Any, config: BitConfig | None = None, *,
                   method: str = "dynamic", io_type: str = "io_parallel",
                   progress: Callable[[str], None] | None = None) -> SearchResult:
    """Choose every format of `graph` from calibration data `calib` (an array or a mapping
    by input name, batch first). `progress(node_name)` is called as each node starts."""
    return _Search(graph, calib, config or BitConfig(), method, io_type, progress).run()
