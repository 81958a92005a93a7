"""QuantizedGraph: a Graph with a fixed-point type on every tensor, and its bit-accurate run.

`q.simulate(x)` returns what the hls4ml project emitted from `q` computes, bit for bit: every
node runs its integer kernel (fxq/ops, registered in FIXED_KERNELS) on int64 raw values.
The few places where hls4ml's io_parallel and io_stream implementations round differently
(pooling) follow `q.io_type`.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property
from types import MappingProxyType
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from fxq.data import bind_inputs
from fxq.errors import FxqError
from fxq.fixed import FixedType, Overflow, Rounding, quantize, to_float
from fxq.ir import ACCUMULATING, LAYOUT, Graph, Node, Op

IO_TYPES = ("io_parallel", "io_stream")

# hls4ml's defaults for the lookup-table activations (backends/fpga/fpga_backend.py)
DEFAULT_TABLE = FixedType(18, 10)
DEFAULT_SOFTMAX_TABLE = FixedType(18, 10, True, Rounding.RND, Overflow.SAT)
DEFAULT_TABLE_SIZE = 1024
DEFAULT_SOFTMAX_ACCUM = FixedType(22, 10, True, Rounding.RND, Overflow.SAT)
CHUNK_ELEMENTS = 1 << 17          # per-chunk size of the largest array simulate builds
ENGINES = ("auto", "numpy", "native")
NATIVE_MIN_SAMPLES = 2048         # engine="auto" compiles from this batch size on (a build
                                  # takes about 0.5 s, NumPy ~10-100 us per sample)


class QuantizationError(FxqError):
    """The fixed-point types given for a graph are incomplete or cannot be implemented."""


@dataclass(frozen=True)
class LayerTypes:
    """The fixed-point types of one node, as hls4ml names them.

    result: the node's output. weight/bias: its parameters (Dense, Conv; scale/shift for
    BatchNorm; the constant of an Add/Mul). accum: the accumulator of Dense, Conv and
    average pooling (and the exp-sum of Softmax). table/table_size: the lookup table of
    Sigmoid, Tanh (table_t) and Softmax (exp_table_t); inv_table and inv_inp: Softmax's
    reciprocal table and its index type.
    """

    result: FixedType
    weight: FixedType | None = None
    bias: FixedType | None = None
    accum: FixedType | None = None
    table: FixedType | None = None
    table_size: int = DEFAULT_TABLE_SIZE
    inv_table: FixedType | None = None
    inv_inp: FixedType | None = None


@dataclass(frozen=True)
class FixedNode:
    """Everything a bit-accurate kernel knows about one node."""

    node: Node
    inputs: tuple[FixedType, ...]          # types of the activation inputs, in order
    layer: LayerTypes
    params: tuple[np.ndarray, ...]         # raw parameter values, in input order
    param_types: tuple[FixedType, ...]
    io_type: str
    # constants a kernel derives from the above once (weight sums, limb plans), by name
    derived: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def result(self) -> FixedType:
        return self.layer.result

    def derive(self, name: str, make: Callable[[], Any]) -> Any:
        """make(), computed on the first call for this name and kept."""
        if name not in self.derived:
            self.derived[name] = make()
        return self.derived[name]


def typed_params(node: Node, graph: Graph,
                  layer: LayerTypes) -> list[tuple[str, FixedType | None]]:
    """Each parameter input of `node` with its type: the first is the weight, the second
    the bias (BatchNorm: scale and shift); a third has none."""
    names = [n for n in node.inputs if graph.is_param(n)]
    return list(zip(names, [layer.weight, layer.bias] + [None] * max(0, len(names) - 2)))


def fixed_node(graph: Graph, node: Node, inputs: tuple[FixedType, ...], layer: LayerTypes,
               io_type: str = "io_parallel",
               raw_params: Mapping[str, np.ndarray] | None = None) -> FixedNode:
    """The FixedNode of one node with the given types. Parameters come from `raw_params`
    (a QuantizedGraph's) or are quantized here (the analysis tries candidate types node by
    node, outside any QuantizedGraph)."""
    pairs = typed_params(node, graph, layer)
    params = tuple(raw_params[n] if raw_params is not None else quantize(graph.params[n], t)
                   for n, t in pairs)
    return FixedNode(node=node, inputs=tuple(inputs), layer=layer, params=params,
                     param_types=tuple(t for _, t in pairs), io_type=io_type)


def softmax_layer(result: FixedType) -> LayerTypes:
    """Softmax with hls4ml's default table, reciprocal and sum types."""
    return LayerTypes(result=result, table=DEFAULT_SOFTMAX_TABLE,
                      inv_table=DEFAULT_SOFTMAX_TABLE, inv_inp=DEFAULT_SOFTMAX_TABLE,
                      accum=DEFAULT_SOFTMAX_ACCUM)


@dataclass(frozen=True, eq=False)
class QuantizedGraph:
    """A graph, the fixed-point type of each input and the `LayerTypes` of every node."""

    graph: Graph
    inputs: Mapping[str, FixedType]
    layers: Mapping[str, LayerTypes]
    io_type: str = "io_parallel"

    def __post_init__(self) -> None:
        object.__setattr__(self, "inputs", MappingProxyType(dict(self.inputs)))
        object.__setattr__(self, "layers", MappingProxyType(dict(self.layers)))
        self._check()

    def with_io_type(self, io_type: str) -> "QuantizedGraph":
        return replace(self, io_type=io_type)

    # -- validation ------------------------------------------------------------------

    def _check(self) -> None:
        g = self.graph
        if self.io_type not in IO_TYPES:
            raise QuantizationError(f"io_type {self.io_type!r}: expected one of {IO_TYPES}")
        for name in g.inputs:
            if name not in self.inputs:
                raise QuantizationError(f"graph input {name!r} has no fixed-point type")
        types = dict(self.inputs)
        for node in g.nodes:
            layer = self.layers.get(node.name)
            if layer is None:
                raise QuantizationError(f"node {node.name!r} ({node.op.name}) has no types")
            where = f"node {node.name!r} ({node.op.name})"
            ins = [types[n] for n in g.activation_inputs(node)]
            for i, (pname, ptype) in enumerate(typed_params(node, g, layer)):
                if ptype is None:
                    raise QuantizationError(f"{where}: parameter {pname!r} has no type")
                if node.op in ACCUMULATING and i == 0 and ptype.width + ins[0].width > 63:
                    raise QuantizationError(
                        f"{where}: input {ins[0]} times weight {ptype} needs more than 63 "
                        "bits per product")
            if node.op in ACCUMULATING or node.op is Op.AVG_POOL \
                    or node.op is Op.GLOBAL_AVG_POOL:
                if layer.accum is None:
                    raise QuantizationError(f"{where}: no accumulator type")
                if node.op in ACCUMULATING and layer.accum.overflow is not Overflow.WRAP:
                    raise QuantizationError(
                        f"{where}: accumulator {layer.accum} must wrap (AP_WRAP); a "
                        "saturating accumulator's result depends on the summation order, "
                        "which differs between hls4ml's strategies")
            if node.op in LAYOUT and layer.result != ins[0]:
                raise QuantizationError(f"{where}: a layout op keeps its input type {ins[0]},"
                                        f" got result {layer.result}")
            if node.op in (Op.SIGMOID, Op.TANH, Op.SOFTMAX) and layer.table is None:
                raise QuantizationError(f"{where}: no lookup table type")
            if node.op is Op.SOFTMAX and (layer.inv_table is None or layer.accum is None
                                          or layer.inv_inp is None):
                raise QuantizationError(f"{where}: softmax needs inv_table, inv_inp and "
                                        "accum types")
            last = len(g.shape(node.output))           # batched axis index of the last axis
            if node.op is Op.SOFTMAX and tuple(node.attrs["axes"]) != (last,):
                raise QuantizationError(
                    f"{where}: softmax over axes {tuple(node.attrs['axes'])}; hls4ml's "
                    f"softmax tables run over the last axis ({last}) only")
            if node.op is Op.MAX_POOL and any(node.attrs["pads"]) and not ins[0].signed:
                raise QuantizationError(
                    f"{where}: padded max pooling of the unsigned type {ins[0]}: hls4ml pads "
                    "with the sign bit set, a large positive value for unsigned types")
            types[node.output] = layer.result

    # -- views -----------------------------------------------------------------------

    @cached_property
    def types(self) -> Mapping[str, FixedType]:
        """Tensor name -> FixedType, for every input, activation and parameter."""
        out = dict(self.inputs)
        for node in self.graph.nodes:
            layer = self.layers[node.name]
            out[node.output] = layer.result
            out.update(typed_params(node, self.graph, layer))
        return MappingProxyType(out)

    @cached_property
    def params(self) -> Mapping[str, np.ndarray]:
        """Raw int64 value of every parameter in its type."""
        return MappingProxyType({name: quantize(value, self.types[name])
                                 for name, value in self.graph.params.items()})

    def fixed_node(self, node: Node) -> FixedNode:
        return self._fixed_nodes[node.name]

    @cached_property
    def _fixed_nodes(self) -> Mapping[str, FixedNode]:
        return MappingProxyType({
            node.name: fixed_node(
                self.graph, node,
                tuple(self.types[n] for n in self.graph.activation_inputs(node)),
                self.layers[node.name], self.io_type, self.params)
            for node in self.graph.nodes})

    @cached_property
    def _last_use(self) -> Mapping[str, int]:
        """Tensor name -> index of the last node reading it (freed after that node)."""
        last: dict[str, int] = {}
        for i, node in enumerate(self.graph.nodes):
            for name in self.graph.activation_inputs(node):
                last[name] = i
        return MappingProxyType(last)

    @cached_property
    def chunk_rows(self) -> int:
        """Samples simulated at once: enough to amortize numpy's per-call cost, few enough
        that the largest feature map of a chunk stays in cache (measured on the zoo)."""
        largest = max((int(np.prod(self.graph.shape(n.output), dtype=np.int64))
                       for n in self.graph.nodes), default=1)
        return int(np.clip(CHUNK_ELEMENTS // max(largest, 1), 16, 4096))

    # -- running ---------------------------------------------------------------------

    def quantize_inputs(self, x: Any) -> dict[str, np.ndarray]:
        """Raw values of the graph inputs, converted to their declared types."""
        bound = bind_inputs(self.graph, x)
        return {name: quantize(bound[name], self.inputs[name]) for name in self.graph.inputs}

    def evaluate(self, x: Any, keep: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """Raw int64 value of every activation tensor, inputs included, batch first; only
        those named in `keep` when given. Runs the batch in chunks of `chunk_rows`."""
        raw = self.quantize_inputs(x)
        wanted = list(raw) + [n.output for n in self.graph.nodes] if keep is None \
            else list(keep)
        n = next(iter(raw.values())).shape[0]
        parts: dict[str, list[np.ndarray]] = {name: [] for name in wanted}
        for start in range(0, max(n, 1), self.chunk_rows):
            values = self._run({k: v[start:start + self.chunk_rows] for k, v in raw.items()},
                               set(wanted))
            for name in wanted:
                parts[name].append(values[name])
        return {name: np.concatenate(p) if len(p) > 1 else p[0] for name, p in parts.items()}

    def _run(self, values: dict[str, np.ndarray], keep: set[str]) -> dict[str, np.ndarray]:
        """Every node's integer kernel in order on one chunk; tensors not in `keep` are
        dropped after their last reader."""
        from fxq.ops import FIXED_KERNELS

        for i, node in enumerate(self.graph.nodes):
            fx = self._fixed_nodes[node.name]
            names = self.graph.activation_inputs(node)
            args = [values[n] for n in names]
            y = FIXED_KERNELS[node.op](fx, *args)
            expected = (args[0].shape[0],) + self.graph.shape(node.output)
            if y.dtype != np.int64 or y.shape != expected:
                raise AssertionError(f"fixed kernel {node.op.name} of {node.name!r} returned "
                                     f"{y.dtype}{y.shape}, the IR says int64{expected}")
            t = fx.result
            if y.size and (y.min() < t.raw_min or y.max() > t.raw_max):
                raise AssertionError(f"fixed kernel {node.op.name} of {node.name!r} returned "
                                     f"values outside {t}")
            values[node.output] = y
            for name in names:
                if self._last_use[name] == i and name not in keep:
                    del values[name]
        return values

    def simulate(self, x: Any, raw: bool = False, engine: str = "auto") -> Any:
        """Bit-accurate outputs: real values (float64), or with raw=True the int64 integers
        the hardware holds. One array for single-output graphs, else a dict by name.

        engine: "numpy" runs the integer kernels of fxq/ops (the reference); "native" the
        same arithmetic as generated C++, compiled with g++ and cached (fxq.native; an
        FxqError if the graph or machine does not allow it); "auto" (the default) the
        native engine for batches of NATIVE_MIN_SAMPLES or more when it can, else NumPy.
        Both give the same raw values (tests/test_native.py)."""
        if engine not in ENGINES:
            raise FxqError(f"engine {engine!r}: expected one of {ENGINES}")
        bound = bind_inputs(self.graph, x)
        values = None
        samples = next(iter(bound.values())).shape[0] if bound else 0
        if engine == "native" or (engine == "auto" and samples >= NATIVE_MIN_SAMPLES):
            values = self._simulate_native(bound, required=engine == "native")
        if values is None:
            values = self.evaluate(bound, keep=self.graph.outputs)
        out = {name: values[name] if raw else to_float(values[name], self.types[name])
               for name in self.graph.outputs}
        return out[self.graph.outputs[0]] if len(out) == 1 else out

    @cached_property
    def _native(self):
        """The compiled native simulation of this graph, or the FxqError saying why there
        is none (built on first use, then kept)."""
        from fxq.native import native_simulator

        try:
            return native_simulator(self)
        except FxqError as exc:
            return exc

    def _simulate_native(self, bound: dict[str, np.ndarray],
                         required: bool) -> dict[str, np.ndarray] | None:
        """The outputs from the native engine; None (NumPy then runs) when it cannot run
        and is not `required`."""
        if isinstance(self._native, FxqError):
            if required:
                raise self._native
            return None
        return self._native.run(bound, self.quantize_inputs)

    def __str__(self) -> str:
        lines = [f"quantized {self.graph.name} ({self.io_type})"]
        lines += [f"  input {n}: {t}" for n, t in self.inputs.items()]
        for node in self.graph.nodes:
            layer = self.layers[node.name]
            extra = "".join(f" {k}={v}" for k in ("weight", "bias", "accum", "table")
                            if (v := getattr(layer, k)) is not None)
            lines.append(f"  {node.name} {node.op.name}: result={layer.result}{extra}")
        return "\n".join(lines)


def uniform(graph: Graph, *, data: FixedType, weight: FixedType,
            bias: FixedType | None = None, accum: FixedType | None = None,
            table: FixedType = DEFAULT_TABLE, io_type: str = "io_parallel") -> QuantizedGraph:
    """One type for every feature map (`data`), weight, bias and accumulator: the uniform
    baseline, and a quick way to build a QuantizedGraph by hand. Layout ops keep their input
    type; the accumulator defaults to one that holds every product of data and weight
    exactly with 12 guard bits; the bias defaults to the weight type."""
    bias = bias or weight
    if accum is None:
        frac = data.frac + weight.frac
        accum = FixedType(min(64, data.width + weight.width + 12), frac)
    layers: dict[str, LayerTypes] = {}
    types = {name: data for name in graph.inputs}
    for node in graph.nodes:
        src = types[graph.activation_inputs(node)[0]]
        if node.op in LAYOUT:
            layer = LayerTypes(result=src)
        elif node.op is Op.SOFTMAX:
            layer = softmax_layer(data)
        else:
            layer = LayerTypes(result=data, weight=weight, bias=bias, accum=accum, table=table)
        layers[node.name] = layer
        types[node.output] = layer.result
    return QuantizedGraph(graph, {name: data for name in graph.inputs}, layers, io_type)
