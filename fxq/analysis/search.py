"""Dynamic fixed point (Qiu et al., FPGA 2016): every tensor's format chosen from data.

Per node, in topological order:

* weights (and every other parameter): the fractional length that minimizes the summed
  absolute (or squared) error between the float values and their quantization at the
  layer's weight width;
* accumulators: products kept exact (fractional bits of input + weight) and enough integer
  bits that no input of the declared input type can overflow them, bounded from the actual
  quantized weights; biases at the accumulator's resolution;
* with `weight_rounding = "adaround"` (BitConfig), each Dense and Conv weight rounded to
  the grid value below or above it that AdaRound (Nagel et al., ICML 2020) finds best for
  the layer's output on the calibration data (fxq.analysis.adaround), kept when it lowers
  the node's error after the clamp that reads it;
* bias correction (Nagel et al., ICCV 2019, on by default): a Dense or Conv bias less its
  sums' mean error per output channel (against the float model's output of the node, every
  earlier node fixed), kept when it lowers the node's error after the ReLU or Softmax that
  reads it;
* the output (feature map): with every earlier node already fixed and simulated bit for bit,
  the fractional length whose result is closest to the float model's output of the same
  node on the calibration data. The greedy step therefore sees the errors of earlier layers.
  A tensor read only by a ReLU (or Clip from >= 0) is compared after that clamp, and is
  unsigned when results saturate (the clamp discards what its sign bit would hold). A
  softmax's input holds its logits' spread (at most SOFTMAX_SPREAD); a graph output holds
  its whole calibrated range unless the outputs are class scores (BitConfig.class_scores).

`method="static"` gives one fractional length to every weight and one to every feature map
(the baseline the paper improves on; a StaticPlan replayed through the same type rules);
accumulators and biases are sized the same way. A replay of an Assignment (every fractional
length given) is how fxq.analysis.refine re-simulates its candidates.

Memory: the walk holds the float and raw values of the tensors live at once (each dropped
after its last reader) and runs kernels SAMPLE_BLOCK samples at a time; what the report
needs of each tensor is gathered as it passes (fxq.analysis.stats).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any, Callable, Mapping

import numpy as np

from fxq.analysis.bits import ACCUMULATING_KINDS, BitConfig, ConfigError
from fxq.analysis.stats import TensorStats
from fxq.data import bind_inputs
from fxq.errors import FxqError
from fxq.fixed import (MAX_WIDTH, FixedType, Overflow, Rounding, quantize, requantize,
                       requantized_real, requantizes_in_float, to_float)
from fxq.ir import FrozenMap, Graph, Node, Op
from fxq.layer import IO_TYPES, LayerTypes, QuantizationError, fixed_node
from fxq.memory import check_live_fits
from fxq.ops.activation import SOFTMAX_DIFF_BITS
from fxq.ops.registry import lookup
from fxq.quantized import QuantizedGraph
from fxq.reference import run_node
from fxq.reference import walk as float_walk

METHODS = ("dynamic", "static")
BELOW, ABOVE = 1, 4           # candidates: from 1 fractional bit coarser than the range
                              # needs, to 4 finer (saturating the largest values)
AP_WIDTH_LIMIT = MAX_WIDTH     # the widest ap_fixed fxq's int64 arithmetic holds
SOFTMAX_SPREAD = float(2 ** SOFTMAX_DIFF_BITS)   # logit differences a softmax's input holds
SAMPLE_BLOCK = 64              # samples per kernel call and error sum in the search


@dataclass(frozen=True)
class NodeChoice:
    """What the search tried for one node's output: error per fractional length."""

    node: str
    errors: Mapping[int, float]
    frac: int


@dataclass(frozen=True, eq=False)
class Assignment:
    """Every fractional length the search chose: of each tensor it typed (graph inputs and
    the results of non-layout nodes), and of each parameter and constant by (node, role);
    and the value of each parameter the search changed (a corrected bias, adaptively
    rounded weights), by parameter name.
    Replaying an assignment through the type rules gives the same QuantizedGraph: the
    accumulators, the biases' types and the tables follow from these."""

    results: Mapping[str, int]
    params: Mapping[tuple[str, str], int]
    values: Mapping[str, np.ndarray] = field(default_factory=dict)

    def with_(self, key: str | tuple[str, str], frac: int) -> "Assignment":
        if isinstance(key, tuple):
            return Assignment(self.results, {**self.params, key: frac}, self.values)
        return Assignment({**self.results, key: frac}, self.params, self.values)

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Assignment) and self.results == other.results
                and self.params == other.params and self.values.keys() == other.values.keys()
                and all(np.array_equal(v, other.values[k]) for k, v in self.values.items()))

    def frac(self, key: str | tuple[str, str]) -> int:
        return self.params[key] if isinstance(key, tuple) else self.results[key]

    # what a replay asks (the static baseline's plan answers the same questions by rule)
    def result_frac(self, tensor: str, width: int, signed: bool) -> int:
        return self.results[tensor]

    def param_frac(self, key: tuple[str, str], width: int) -> int:
        return self.params[key]


@dataclass(frozen=True)
class StaticPlan:
    """The static baseline as a replay: per weight width the one fractional length of
    minimum total error over every parameter of that width, and for every feature map the
    fractional length holding the largest magnitude of any."""

    weight_frac: Mapping[int, int]
    magnitude: float
    values: Mapping[str, np.ndarray] = field(default_factory=dict)   # none: the float model's

    def result_frac(self, tensor: str, width: int, signed: bool) -> int:
        return frac_to_hold(self.magnitude, width, signed)

    def param_frac(self, key: tuple[str, str], width: int) -> int:
        return self.weight_frac[width]


def static_plan(graph: Graph, bound: Mapping[str, np.ndarray], config: BitConfig) -> StaticPlan:
    by_width: dict[int, list[np.ndarray]] = {}
    for node in graph.nodes:
        width = config.widths(node).weight
        for name in node.inputs:
            if graph.is_param(name):
                by_width.setdefault(width, []).append(
                    np.ravel(graph.params[name]).astype(np.float64))
    weight_frac = {width: best_param_type(np.concatenate(arrays), width, config.objective).frac
                   for width, arrays in by_width.items()}
    # one format for every feature map: the largest magnitude of any (a float pass of its
    # own, tensor by tensor)
    magnitude = max((float(np.max(np.abs(v), initial=0.0)) for _, v in float_walk(graph, bound)),
                    default=0.0)
    return StaticPlan(weight_frac, magnitude)


@dataclass(frozen=True)
class SearchResult:
    q: QuantizedGraph
    choices: tuple[NodeChoice, ...]
    stats: Mapping[str, TensorStats]      # every tensor's float range, SQNR and histogram
    assignment: Assignment
    refinement: Any = None                # fxq.analysis.refine.Refinement, when refined
    # per graph output, its float and fixed-point real values on the calibration data (the
    # float model's and q.simulate's, computed by the walk), when the walk measured them
    outputs: Mapping[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)


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


def _error_sum(d: np.ndarray, objective: str) -> float:
    """The summed absolute ("l1") or squared ("l2") differences `d`."""
    return float(np.sum(np.abs(d)) if objective == "l1" else np.sum(d * d))


def _error(a: np.ndarray, b: np.ndarray, objective: str) -> float:
    return _error_sum(a - b, objective) / max(a.size, 1)


def blockwise(fn: Callable[..., np.ndarray], *arrays: np.ndarray,
              block: int = SAMPLE_BLOCK) -> np.ndarray:
    """fn over `arrays` (batch first, each sample independent), `block` samples at a
    time, into one output: the temporaries of fn follow the block, not the batch."""
    n = arrays[0].shape[0]
    if n <= block:
        return fn(*arrays)
    out = None
    for start in range(0, n, block):
        y = fn(*(a[start:start + block] for a in arrays))
        if out is None:
            out = np.empty((n,) + y.shape[1:], dtype=y.dtype)
        out[start:start + len(y)] = y
    return out


def _identity(v: np.ndarray) -> np.ndarray:
    return v


def _output_error(raw: np.ndarray, t: FixedType, target: np.ndarray, objective: str,
                  after: Callable[[np.ndarray], np.ndarray] = _identity) -> float:
    """_error of raw values of type t against the float target, both seen through `after`
    (the clamp that reads the tensor, if any), a block of samples at a time (the
    temporaries stay small; the sum is the whole one's up to rounding)."""
    return _real_error(lambda rows: to_float(raw[rows], t), _seen(target, after), objective,
                       after)


def _seen(target: np.ndarray, after: Callable[[np.ndarray], np.ndarray]) \
        -> list[tuple[slice, np.ndarray]]:
    """The float target as `after` sees it, a block of samples at a time (computed once
    for every candidate a scan scores)."""
    blocks = (slice(start, start + SAMPLE_BLOCK)
              for start in range(0, target.shape[0], SAMPLE_BLOCK))
    return [(rows, after(target[rows])) for rows in blocks]


def _real_error(real: Callable[[slice], np.ndarray], seen: list[tuple[slice, np.ndarray]],
                objective: str, after: Callable[[np.ndarray], np.ndarray]) -> float:
    """_output_error of the values `real(rows)` gives against the target `seen` (_seen)."""
    total, size = 0.0, 0
    for rows, target in seen:
        total += _error_sum(after(real(rows)) - target, objective)
        size += target.size
    return total / max(size, 1)


@dataclass(frozen=True)
class Clamp:
    """The float function of a clamp reading a tensor (a ReLU: [0, inf)), which the scan
    can also fold into a candidate conversion's saturation (requantized_real)."""
    lo: float
    hi: float

    def __call__(self, v: np.ndarray) -> np.ndarray:
        if self.hi == np.inf:              # a ReLU: one compare per value, not two
            return np.maximum(v, self.lo)
        return np.clip(v, self.lo, self.hi)


@dataclass(frozen=True)
class Conversion:
    """A node's candidate outputs that are each one conversion of the same exact values
    `raw` (int64 of at most `bits` bits, `frac` fractional ones) to the candidate type, as
    a weighted sum's result is its accumulator's: called with a type it gives the raw values
    (as any candidate function), and the scan scores a candidate by `real` where float64
    gives the same values, computing the integers only for the type it keeps."""
    raw: np.ndarray
    frac: int
    bits: int
    block: int

    def __call__(self, t: FixedType) -> np.ndarray:
        return blockwise(lambda a: requantize(a, self.frac, t, self.bits), self.raw,
                         block=self.block)

    def exact_in_float(self, t: FixedType) -> bool:
        return requantizes_in_float(self.bits, t)

    @cached_property
    def floats(self) -> np.ndarray:
        """raw in float64 (exact: at most 53 bits), converted once for every candidate."""
        return self.raw.astype(np.float64)

    def real(self, t: FixedType, rows: slice, clamp: Clamp | None = None) -> np.ndarray:
        """The real values of rows `rows` converted to t, seen through `clamp` if given
        (folded into the saturation where it can be: one clip, not two)."""
        return requantized_real(self.floats[rows], self.frac, t,
                                None if clamp is None else (clamp.lo, clamp.hi))


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
                 io_type: str, progress: Callable[[str], None] | None,
                 replay: Assignment | StaticPlan | None = None, measure: bool = True,
                 keep: frozenset[str] = frozenset(), correct_bias: bool = False):
        """With `replay`, every fractional length comes from it, nothing is searched; without
        `measure` (replays only) the float model is not run and no statistics are kept.
        The raw values of the tensors in `keep` stay after their last reader (what the
        refinement compares with the float model). With `correct_bias` (a search, not a
        replay: a replay takes the biases its assignment holds), each bias may be corrected
        by its layer's mean error on the calibration data (bias_correction)."""
        if method not in METHODS:
            raise FxqError(f"method {method!r}: expected one of {METHODS}")
        if io_type not in IO_TYPES:
            raise QuantizationError(f"io_type {io_type!r}: expected one of {IO_TYPES}")
        config.check_layers({n.name for n in graph.nodes} | set(graph.inputs))
        for node in graph.nodes:
            if "accum_drop" in config.layers.get(node.name, {}) and \
                    node.op.kind not in ACCUMULATING_KINDS:
                raise ConfigError(f"layer {node.name!r} ({node.op.name}): accum_drop applies "
                                  f"to the accumulators of Dense and Conv layers only")
        self.graph, self.config, self.io_type = graph, config, io_type
        self.progress = progress or (lambda _: None)
        self.replay = replay
        self.measure = measure or replay is None
        # the graph outputs' values stay too when measured (SearchResult.outputs)
        self.keep = keep | frozenset(graph.outputs) if self.measure else keep
        # a replay that measures nothing runs on few samples (the refinement's): one block
        self.block = SAMPLE_BLOCK if self.measure else max(1, len(next(iter(calib.values()))))
        self.node: Node | None = None                 # the node being typed
        self.result_fracs: dict[str, int] = {}
        self.param_fracs: dict[tuple[str, str], int] = {}
        bound = calib if replay is not None else \
            bind_inputs(graph, calib, source="calibration data")
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
        if method == "static" and replay is None:
            self.replay = static_plan(graph, bound, config)
        self.corrects = correct_bias and self.replay is None
        self.adapts = config.weight_rounding == "adaround" and self.replay is None
        # the graph the fixed kernels compute: the float model's, with the parameters the
        # search changed (corrected biases, adaptively rounded weights)
        self.corrected: dict[str, np.ndarray] = dict(getattr(self.replay, "values", {}))
        self.fixed_graph = graph if not self.corrected else \
            replace(graph, params=FrozenMap({**graph.params, **self.corrected}))

    # -- per tensor ------------------------------------------------------------------

    def result_type(self, width: int, frac: int, signed: bool) -> FixedType:
        return FixedType(width, frac, signed, self.config.rounding, self.config.overflow)

    def param_type(self, values: np.ndarray, width: int, role: str) -> FixedType:
        """The type of the current node's parameter (or constant) `role` of float `values`."""
        key = (self.node.name, role)
        if self.replay is not None:
            t = FixedType(width, self.replay.param_frac(key, width), True, Rounding.RND,
                          Overflow.SAT)
        else:
            t = best_param_type(values, width, self.config.objective)
        self.param_fracs[key] = t.frac
        return t

    def choose_output(self, name: str, width: int, signed: bool,
                      run: Callable[[FixedType], np.ndarray]) -> FixedType:
        """The output type of tensor `name`: each candidate fractional length is simulated
        by `run(type) -> raw` and compared with the float values; the raw values of the
        winner are kept for the nodes downstream. Signed where `signed` or a consumer
        needs it. A graph output never takes a type narrower than its calibrated range."""
        signed, after = self._scoring(name, signed)
        if self.replay is not None:
            t = self.result_type(width, self.replay.result_frac(name, width, signed), signed)
            self.raw[name], self.types[name] = run(t), t
            self.result_fracs[name] = t.frac
            if self.measure:
                error = _output_error(self.raw[name], t, self.floats[name],
                                      self.config.objective, after)
                self.choices.append(NodeChoice(name, {t.frac: error}, t.frac))
                self._observe(name)
            return t
        raw, t, errors = self._scan(name, width, signed, run, after)
        self.raw[name], self.types[name] = raw, t
        self.result_fracs[name] = t.frac
        self.choices.append(NodeChoice(name, errors, t.frac))
        self._observe(name)
        return t

    def output_error(self, name: str, width: int, signed: bool,
                     run: Callable[[FixedType], np.ndarray],
                     through: Callable[[np.ndarray], np.ndarray] | None = None) -> float:
        """The least error over choose_output's candidate types (nothing is kept), measured
        through `through` when given (else as choose_output scores it): what the node's
        output can achieve, for comparing two ways of computing it."""
        signed, after = self._scoring(name, signed)
        _, t, errors = self._scan(name, width, signed, run, through or after, keep=False)
        return errors[t.frac]

    def _scoring(self, name: str, signed: bool) -> tuple[bool, Callable]:
        """(signed, the function the error is measured after) of tensor `name`."""
        clamp = self.clamp_reading(name)
        if clamp is not None:
            # read only by a clamp to [lo, ...] with lo >= 0: an unsigned saturating type
            # turns every negative value into 0, which the clamp maps where it maps them;
            # the error that matters is the one after the clamp
            return self.needs_signed(name), clamp
        return signed or self.needs_signed(name), _identity

    def _scan(self, name: str, width: int, signed: bool, run: Callable[[FixedType], np.ndarray],
              after: Callable[[np.ndarray], np.ndarray], keep: bool = True) \
            -> tuple[np.ndarray | None, FixedType, dict[int, float]]:
        """(raw values, type, error per fractional length) of the best candidate (without
        `keep`, its raw values may be None)."""
        target = self.floats[name]
        base = frac_to_hold(float(np.max(np.abs(target), initial=0.0)), width, signed)
        # a graph output holds its whole calibrated range: what the design returns is
        # not clipped (a regression output or an anomaly score), unless it is class scores
        holds_range = name in self.graph.outputs and not self.config.class_scores
        top = base if holds_range else base + ABOVE
        spread = self.softmax_spread(name)
        if spread is not None:
            top = min(top, frac_to_hold(spread, width, signed))
        best = None
        errors = {}
        objective = self.config.objective
        seen = _seen(target, after)
        for frac in range(min(base, top) - BELOW, top + 1):
            t = self.result_type(width, frac, signed)
            if isinstance(run, Conversion) and run.exact_in_float(t):
                raw = None                 # scored in float; the integers when kept
                if isinstance(after, Clamp):
                    errors[frac] = _real_error(lambda rows: run.real(t, rows, after), seen,
                                               objective, _identity)
                else:
                    errors[frac] = _real_error(lambda rows: run.real(t, rows), seen,
                                               objective, after)
            else:
                raw = run(t)
                errors[frac] = _real_error(lambda rows: to_float(raw[rows], t), seen,
                                           objective, after)
            if best is None or errors[frac] < errors[best[1].frac]:
                best = (raw, t)
            del raw                        # only the best candidate's values are kept
        raw, t = best
        if raw is None and keep:
            raw = run(t)
        return raw, t, errors

    def _observe(self, name: str) -> None:
        """The statistics of tensor `name`, once its type and raw values are fixed."""
        t = self.types[name]
        stats = self.stats.setdefault(name, TensorStats())
        f, raw = self.floats[name], self.raw[name]
        # a tensor read only by a clamp is measured as that clamp sees it (its unsigned type
        # drops the negative values on purpose)
        after = self.clamp_reading(name) or _identity
        for start in range(0, max(len(f), 1), SAMPLE_BLOCK):
            block = slice(start, start + SAMPLE_BLOCK)
            stats.add(after(f[block]), t, after(to_float(raw[block], t)))

    def softmax_spread(self, tensor: str) -> float | None:
        """When a softmax reads `tensor`: the largest spread (max - min over the last axis)
        of its calibrated values, at most SOFTMAX_SPREAD, which the tensor's type must hold.
        The error after the softmax, summed over its outputs, can prefer a finer type that
        saturates the largest logits (logits within [-0.2, 0.3] in ap_fixed<8,-1>), while
        logits tied at the top cost top-1. Differences past SOFTMAX_SPREAD change exp by
        less than 2^-23 (x_max - x saturates there: fxq.ops.activation.softmax_inp_norm)."""
        if not any(n.op is Op.SOFTMAX for n in self.graph.consumers(tensor)):
            return None
        f = self.floats[tensor]
        if f.size == 0:
            return None
        spread = float(np.max(f.max(axis=-1) - f.min(axis=-1)))
        return min(spread, SOFTMAX_SPREAD)

    def clamp_bounds(self, tensor: str) -> tuple[float, float] | None:
        """(lo, hi) of the clamp (ReLU, or Clip with a lower bound >= 0) that is the only
        reader of `tensor`, when results saturate; else None."""
        node = self.graph.clamp_reader(tensor)
        if self.config.overflow is not Overflow.SAT or node is None:
            return None
        if node.op is Op.RELU:
            return 0.0, np.inf
        return node.attrs["lo"], node.attrs["hi"]           # (bounds absent are infinite)

    def clamp_reading(self, tensor: str) -> Callable[[np.ndarray], np.ndarray] | None:
        """The float function of clamp_bounds' clamp, else None. Such a tensor is scored
        after the clamp and may be unsigned: values the clamp discards cost no range."""
        bounds = self.clamp_bounds(tensor)
        if bounds is None:
            return None
        return Clamp(float(bounds[0]), float(bounds[1]))

    def needs_signed(self, tensor: str) -> bool:
        """A tensor read by hls4ml's io_parallel padded max pooling must be signed (it pads
        with the sign bit, which unsigned types do not have), whatever its values. (In
        io_stream the padding is a ZeroPadding layer, exact for unsigned types.)"""
        return self.io_type == "io_parallel" and tensor in self.padded_max_pool_inputs

    def blockwise(self, fn: Callable[..., np.ndarray], *arrays: np.ndarray) -> np.ndarray:
        """fn over `arrays` a block of samples at a time (for the ops' type rules)."""
        return blockwise(fn, *arrays, block=self.block)

    def conversion(self, raw: np.ndarray, t: FixedType) -> Conversion:
        """The candidate outputs that are raw values of type t converted to each candidate
        type (a rule's `run` for choose_output and output_error)."""
        return Conversion(raw, t.frac, t.width, self.block)

    def params_of(self, node: Node) -> dict[str, np.ndarray]:
        """The float value of each parameter input of `node`, by role (a bias as corrected)."""
        return {role: self.fixed_graph.params[name]
                for role, name in self.graph.param_inputs(node)}

    def bias_correction(self, node: Node, raw: np.ndarray, t: FixedType, axis: int,
                        bias_t: FixedType | None) -> np.ndarray | None:
        """Bias correction (Nagel et al., ICCV 2019, the empirical form): the node's bias as
        the sums used it (of type `bias_t`) less the mean, per output channel (`axis` of its
        output), of those sums (`raw` of type `t`, every earlier layer already fixed) minus
        the float model's output. None when nothing is to be corrected (not asked, a
        replay, or no bias). set_param(node, "bias", ...) makes it the node's bias."""
        names = dict(self.graph.param_inputs(node))
        if not self.corrects or "bias" not in names or bias_t is None:
            return None
        target = self.floats[node.output]
        axis = axis % target.ndim
        others = tuple(a for a in range(target.ndim) if a != axis)
        total = np.zeros(target.shape[axis])
        for start in range(0, target.shape[0], SAMPLE_BLOCK):
            block = slice(start, start + SAMPLE_BLOCK)
            total += np.sum(to_float(raw[block], t) - target[block], axis=others)
        count = max(target.size // max(target.shape[axis], 1), 1)
        bias = self.fixed_graph.params[names["bias"]]
        used = to_float(quantize(bias, bias_t), bias_t)
        return (used - (total / count).reshape(bias.shape)).astype(bias.dtype)

    def adaptive_weights(self, node: Node, x_t: FixedType, w_t: FixedType) -> np.ndarray | None:
        """The Dense/Conv node's weights rounded onto w_t's grid by AdaRound (see
        fxq.analysis.adaround) from its inputs as the fixed layers before it compute them
        (of type x_t) and the float model's output; None when not asked (or a replay).
        set_param makes them the node's weights."""
        if not self.adapts:
            return None
        from fxq.analysis import adaround as ar

        x = self.raw[self.graph.activation_inputs(node)[0]]
        params = self.params_of(node)
        w, b, target = params["weight"], params.get("bias"), self.floats[node.output]
        if node.op is Op.DENSE:
            problem = ar.dense_problem(x, x_t, w, b, target)
        else:
            problem = ar.conv_problem(x, x_t, w, b, target, **{
                k: node.attrs[k] for k in ("strides", "pads", "groups")})
        rounded = ar.adaround(problem, w_t, self.clamp_bounds(node.output))
        exact = rounded.astype(w.dtype)
        return exact if np.array_equal(exact, rounded) else rounded

    def set_param(self, node: Node, role: str, value: np.ndarray | None) -> None:
        """The node's parameter `role` in the fixed-point design: `value`, or (None) the
        float model's."""
        name = dict(self.graph.param_inputs(node))[role]
        if value is None:
            self.corrected.pop(name, None)
        else:
            self.corrected[name] = value
        self.fixed_graph = replace(self.fixed_graph, params=FrozenMap(
            {**self.fixed_graph.params, name: self.corrected.get(name, self.graph.params[name])}))

    def reader_function(self, tensor: str) -> Callable[[np.ndarray], np.ndarray] | None:
        """The float function of the one node reading `tensor` when it is a Softmax or a
        clamp (what a tensor's error is worth is its error after them); else None."""
        clamp = self.clamp_reading(tensor)
        if clamp is not None:
            return clamp
        readers = self.graph.consumers(tensor)
        if len(readers) == 1 and readers[0].op is Op.SOFTMAX and tensor not in self.graph.outputs:
            reader = readers[0]
            return lambda v: run_node(self.graph, reader, {tensor: v})
        return None

    def choose(self, node: Node, ins: list[FixedType], width: int, signed: bool,
               layer_with: Callable[[FixedType], LayerTypes]) -> LayerTypes:
        """The node's types `layer_with(result)`, its result type chosen by running the
        node's kernel with each candidate (the rule of most ops)."""
        result = self.choose_output(node.output, width, signed,
                                    lambda t: self.kernel_output(node, ins, layer_with(t)))
        return layer_with(result)

    # -- the walk --------------------------------------------------------------------

    def run(self) -> SearchResult:
        self.begin()
        for i in range(len(self.graph.nodes)):
            self.step(i)
        return self.result()

    def begin(self) -> None:
        """Type the graph inputs."""
        for name in self.graph.inputs:
            f = self.floats[name]
            signed = bool(np.min(f, initial=0.0) < 0) or self.needs_signed(name)
            self.choose_output(name, self.config.input_width(name), signed,
                               lambda t, f=f: self.blockwise(lambda v: quantize(v, t), f))
            del f                          # (the input's values go after its last reader)

    def step(self, i: int) -> None:
        """Type node i (every earlier one typed)."""
        g, node = self.graph, self.graph.nodes[i]
        self.progress(node.name)
        self.node = node
        if self.measure:
            self.floats[node.output] = self.float_output(node)
        self.layers[node.name] = self.node_types(node)
        self.types[node.output] = self.layers[node.name].result
        # float and raw values are only read by later nodes: each is dropped after
        # its last reader
        for name in g.activation_inputs(node) + [node.output]:
            if self.last.get(name, -1) <= i and name not in self.keep:
                self.raw.pop(name, None)
                self.floats.pop(name, None)

    def state(self) -> tuple[dict, ...]:
        """What the walk holds between steps (arrays are never written in place, so
        shallow copies do)."""
        return (dict(self.raw), dict(self.types), dict(self.layers), dict(self.floats),
                dict(self.result_fracs), dict(self.param_fracs))

    def restore(self, state: tuple[dict, ...]) -> None:
        (self.raw, self.types, self.layers, self.floats, self.result_fracs,
         self.param_fracs) = (dict(d) for d in state)

    def result(self) -> SearchResult:
        g = self.graph
        inputs = {name: self.types[name] for name in g.inputs}
        q = QuantizedGraph(self.fixed_graph, inputs, self.layers, self.io_type)
        outputs = {name: (self.floats[name], to_float(self.raw[name], self.types[name]))
                   for name in g.outputs} if self.measure else {}
        return SearchResult(q, tuple(self.choices), self.stats,
                            Assignment(dict(self.result_fracs), dict(self.param_fracs),
                                       dict(self.corrected)), outputs=outputs)

    def float_output(self, node: Node) -> np.ndarray:
        """The node's float kernel on the calibration data, a block of samples at a time."""
        names = self.graph.activation_inputs(node)
        return self.blockwise(lambda *a: run_node(self.graph, node, dict(zip(names, a))),
                         *(self.floats[n] for n in names))

    def kernel_output(self, node: Node, ins: list[FixedType], layer: LayerTypes) -> np.ndarray:
        """The node's fixed kernel on the calibration data, a block of samples at a time
        (each sample is independent; a kernel's temporaries follow the block)."""
        fx = fixed_node(self.fixed_graph, node, tuple(ins), layer, self.io_type)
        kernel = lookup("fixed", node.op, node.name)
        return self.blockwise(lambda *a: kernel(fx, *a),
                         *(self.raw[n] for n in self.graph.activation_inputs(node)))

    def node_types(self, node: Node) -> LayerTypes:
        """The types of `node`: layout ops keep their input's; every other op's own type
        rule ("types" in fxq.ops.registry) decides."""
        ins = [self.types[n] for n in self.graph.activation_inputs(node)]
        if node.op.is_layout:
            layer = LayerTypes(result=ins[0])
            self.raw[node.output] = self.kernel_output(node, ins, layer)
            self.types[node.output] = ins[0]
            if self.measure:
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
                    weight_matrix: Callable[[np.ndarray], np.ndarray], drop: int = 0) \
            -> tuple[FixedType, FixedType | None]:
        """(accum, bias type) of a weighted sum: products exact, no overflow for any input of
        type x_t. `weight_matrix(raw weights)` gives them as (inputs, outputs).

        The narrowest such: each output's sums over every input of x_t lie between the sum
        with each input at the end of x_t's range its weight's sign favours and the sum
        with each at the other end (an unsigned input cannot be negative, so a ReLU's
        reader needs about a bit less than sum |w| * max |x| would give it).

        `drop` > 0 (the layer's accum_drop): the accumulator is that many bits coarser than
        the products, each product truncated onto its grid as hls4ml assigns it to accum_t
        (floor: the sum falls by less than one LSB per non-zero product)."""
        where = f"node {node.name!r} ({node.op.name})"
        params = self.params_of(node)
        frac = x_t.frac + w_t.frac - drop
        w_raw = weight_matrix(quantize(params["weight"], w_t))
        positive = np.where(w_raw > 0, w_raw, 0).sum(axis=0, dtype=object)
        negative = np.where(w_raw < 0, w_raw, 0).sum(axis=0, dtype=object)
        lo, hi = int(x_t.raw_min), int(x_t.raw_max)
        largest, smallest = positive * hi + negative * lo, positive * lo + negative * hi
        if drop > 0:
            terms = np.count_nonzero(w_raw, axis=0).astype(object)
            largest = largest // (1 << drop)
            smallest = smallest // (1 << drop) - terms
        bias_t = None
        if "bias" in params:
            bias_t = self.fine_type(params["bias"], frac)
            b_raw = quantize(params["bias"], bias_t).astype(object) \
                * (1 << max(0, frac - bias_t.frac))
            largest, smallest = largest + b_raw, smallest + b_raw
        # a signed W-bit type holds [-2^(W-1), 2^(W-1) - 1]
        top = int(max(largest, default=0))
        bottom = int(min(smallest, default=0))
        width = max(1 + max(top.bit_length(), (-bottom - 1).bit_length() if bottom < 0
                            else 0), 2)
        if width > AP_WIDTH_LIMIT:
            raise QuantizationError(
                f"{where}: an accumulator that cannot overflow needs {width} bits, more than "
                f"{AP_WIDTH_LIMIT}; use fewer bits for this layer")
        return FixedType(width, frac), bias_t


def search_graph(graph: Graph, calib: Any, config: BitConfig | None = None, *,
                 method: str = "dynamic", io_type: str = "io_parallel",
                 progress: Callable[[str], None] | None = None,
                 bias_correction: bool = True) -> SearchResult:
    """The greedy pass (or the static baseline) alone; fxq.analysis.quantize_graph adds the
    refinement. With `bias_correction` (dynamic; on by default), each Dense and Conv bias is
    corrected by its layer's mean error as the walk reaches it (_Search.bias_correction),
    kept when that lowers the layer's error after the ReLU or Softmax reading it; the
    result's graph holds the corrected biases, its float model stays `graph`'s."""
    return _Search(graph, calib, config or BitConfig(), method, io_type, progress,
                   correct_bias=bias_correction and method == "dynamic").run()
