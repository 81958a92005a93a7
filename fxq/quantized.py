"""QuantizedGraph: a Graph with a fixed-point type on every tensor, and its bit-accurate run.

`q.simulate(x)` returns what the hls4ml project emitted from `q` computes, bit for bit: every
node runs its integer kernel (its op's "fixed" rule in fxq.ops.registry) on int64 raw values.
The few places where hls4ml's io_parallel and io_stream implementations round differently
(pooling) follow `q.io_type`.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any, Mapping, Sequence

import numpy as np

from fxq.data import bind_inputs
from fxq.errors import FxqError
from fxq.fixed import FixedType, Overflow, outside_type, pow2_factor, quantize, to_float, widened
from fxq.ir import FrozenMap, Graph, Node, Op
from fxq.layer import (DEFAULT_SOFTMAX_ACCUM, DEFAULT_SOFTMAX_TABLE, DEFAULT_TABLE,  # noqa: F401
                       DEFAULT_TABLE_SIZE, IO_TYPES, FixedNode, LayerTypes, QuantizationError,
                       fixed_node, softmax_layer, typed_params)
from fxq.ops.registry import find, lookup

CHUNK_ELEMENTS = 1 << 17          # per-chunk size of the largest array simulate builds
ENGINES = ("auto", "numpy", "native")
NATIVE_MIN_SAMPLES = 2048         # engine="auto" compiles from this batch size on (a build
                                  # takes 0.5-4 s, NumPy ~10-1000 us per sample); it runs a
                                  # build already cached for any batch


@dataclass(frozen=True, eq=False)
class QuantizedGraph:
    """A graph, the fixed-point type of each input and the `LayerTypes` of every node."""

    graph: Graph
    inputs: Mapping[str, FixedType]
    layers: Mapping[str, LayerTypes]
    io_type: str = "io_parallel"

    def __post_init__(self) -> None:
        object.__setattr__(self, "inputs", FrozenMap(self.inputs))
        object.__setattr__(self, "layers", FrozenMap(self.layers))
        self._check()

    def __getstate__(self) -> dict:
        """The four fields only: caches (raw params, kernels' constants, the compiled native
        library) are rebuilt on use, so a QuantizedGraph pickles and deep-copies."""
        return {f: self.__dict__[f] for f in ("graph", "inputs", "layers", "io_type")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)

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
            for role, pname, ptype in typed_params(node, g, layer):
                if ptype is None:
                    raise QuantizationError(f"{where}: parameter {pname!r} ({role}) has no "
                                            "type")
            for role in node.op.constants:
                if layer.param(role) is None:
                    raise QuantizationError(f"{where}: its {role} has no type")
            if node.op.is_layout and layer.result != ins[0]:
                raise QuantizationError(f"{where}: a layout op keeps its input type {ins[0]},"
                                        f" got result {layer.result}")
            lookup("fixed", node.op, node.name)          # an op fxq cannot simulate
            check = find("check", node.op)
            why = check(node, ins, layer, g) if check is not None else None
            if why:
                raise QuantizationError(f"{where}: {why}")
            types[node.output] = layer.result

    # -- views -----------------------------------------------------------------------

    @cached_property
    def types(self) -> Mapping[str, FixedType]:
        """Tensor name -> FixedType, for every input, activation and parameter."""
        out = dict(self.inputs)
        for node in self.graph.nodes:
            layer = self.layers[node.name]
            out[node.output] = layer.result
            out.update((name, t) for _, name, t in typed_params(node, self.graph, layer))
        return FrozenMap(out)

    @cached_property
    def params(self) -> Mapping[str, np.ndarray]:
        """Raw int64 value of every parameter in its type."""
        return FrozenMap({name: quantize(value, self.types[name])
                          for name, value in self.graph.params.items()})

    def counted_sides(self, tensor: str) -> tuple[bool, bool]:
        """Which overflows of `tensor`'s conversion to its type the range check counts:
        (those below its range, those above). Both, unless the clamp that alone reads the
        tensor (Graph.clamp_reader: a ReLU, a Clip from lo >= 0) maps the value the overflow
        mode gave and the value itself alike, so nothing downstream changes: below the range
        when the type does not wrap (saturated to its minimum or zeroed, both <= 0 <= lo: the
        clamp gives lo either way), above it when the type saturates (SAT, SAT_SYM) to a
        maximum at least the clamp's upper bound. An unsigned type read by a ReLU drops the
        negative values on purpose (the analysis chooses it so)."""
        clamp = self.graph.clamp_reader(tensor)
        if clamp is None:
            return True, True
        t = self.types[tensor]
        hi = clamp.attrs["hi"] if clamp.op is Op.CLIP else np.inf
        return (t.overflow is Overflow.WRAP,
                not (t.overflow in (Overflow.SAT, Overflow.SAT_SYM) and hi <= t.max))

    def fixed_node(self, node: Node) -> FixedNode:
        return self._fixed_nodes[node.name]

    @cached_property
    def _fixed_nodes(self) -> Mapping[str, FixedNode]:
        return FrozenMap({
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
        return FrozenMap(last)

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
        return self._quantize_counting(bind_inputs(self.graph, x), None)

    def _quantize_counting(self, bound: Mapping[str, np.ndarray],
                           overflows: dict[str, int] | None) -> dict[str, np.ndarray]:
        """quantize_inputs of bound inputs; with `overflows`, each input's count of values
        its type's overflow mode changed is added there."""
        raw = {}
        for name in self.graph.inputs:
            t = self.inputs[name]
            raw[name] = quantize(bound[name], t)
            if overflows is not None:
                wide = quantize(bound[name], widened(t))
                overflows[name] = overflows.get(name, 0) + int(np.count_nonzero(
                    outside_type(wide, t, *self.counted_sides(name))))
        return raw

    def evaluate(self, x: Any, keep: Sequence[str] | None = None,
                 overflows: dict[str, int] | None = None) -> dict[str, np.ndarray]:
        """Raw int64 value of every activation tensor, inputs included, batch first; only
        those named in `keep` when given. Runs the batch in chunks of `chunk_rows`.
        overflows: a dict that gains, per tensor, the count of its values whose conversion
        to its type overflowed (the NumPy reference of the native engine's counts; each
        node then runs twice)."""
        raw = self._quantize_counting(bind_inputs(self.graph, x), overflows)
        wanted = list(raw) + [n.output for n in self.graph.nodes] if keep is None \
            else list(keep)
        n = next(iter(raw.values())).shape[0]
        parts: dict[str, list[np.ndarray]] = {name: [] for name in wanted}
        for start in range(0, max(n, 1), self.chunk_rows):
            values = self._run({k: v[start:start + self.chunk_rows] for k, v in raw.items()},
                               set(wanted), overflows)
            for name in wanted:
                parts[name].append(values[name])
        return {name: np.concatenate(p) if len(p) > 1 else p[0] for name, p in parts.items()}

    def _run(self, values: dict[str, np.ndarray], keep: set[str],
             overflows: dict[str, int] | None = None) -> dict[str, np.ndarray]:
        """Every node's integer kernel in order on one chunk; tensors not in `keep` are
        dropped after their last reader. With `overflows`, each node that converts to its
        result type also runs with that type widened (fxq.fixed.widened: the same rounding,
        no overflow) to count the values its overflow mode changes."""
        for i, node in enumerate(self.graph.nodes):
            fx = self._fixed_nodes[node.name]
            names = self.graph.activation_inputs(node)
            args = [values[n] for n in names]
            kernel = lookup("fixed", node.op, node.name)
            y = kernel(fx, *args)
            expected = (args[0].shape[0],) + self.graph.shape(node.output)
            if y.dtype != np.int64 or y.shape != expected:
                raise AssertionError(f"fixed kernel {node.op.name} of {node.name!r} returned "
                                     f"{y.dtype}{y.shape}, the IR says int64{expected}")
            t = fx.result
            if y.size and (y.min() < t.raw_min or y.max() > t.raw_max):
                raise AssertionError(f"fixed kernel {node.op.name} of {node.name!r} returned "
                                     f"values outside {t}")
            if overflows is not None:
                outside = 0 if node.op.is_layout else int(np.count_nonzero(outside_type(
                    kernel(self._widened_node(node), *args), t,
                    *self.counted_sides(node.output))))
                overflows[node.output] = overflows.get(node.output, 0) + outside
            values[node.output] = y
            for name in names:
                if self._last_use[name] == i and name not in keep:
                    del values[name]
        return values

    def _widened_node(self, node: Node) -> FixedNode:
        fx = self._fixed_nodes[node.name]
        return replace(fx, layer=replace(fx.layer, result=widened(fx.result)), derived={})

    def simulate(self, x: Any, raw: bool = False, engine: str = "auto") -> Any:
        """Bit-accurate outputs: real values (float64), or with raw=True the int64 integers
        the hardware holds. One array for single-output graphs, else a dict by name.

        engine: "numpy" runs the integer kernels of fxq/ops (the reference); "native" the
        same arithmetic as generated C++, compiled with g++ and cached (fxq.native; an
        FxqError if the graph or machine does not allow it); "auto" (the default) the
        native engine when its build is cached (any batch) or the batch has
        NATIVE_MIN_SAMPLES or more (building it), when it can; else NumPy.
        Both give the same raw values (tests/test_native.py)."""
        return self._simulate(x, raw, engine, count=False)[0]

    def simulate_overflows(self, x: Any, raw: bool = False,
                           engine: str = "auto") -> tuple[Any, dict[str, int]]:
        """simulate's outputs, and per tensor (graph inputs and node outputs) how many of
        its values overflowed where the hardware converts them to their type: the values
        of `x` the formats chosen on the calibration data could not hold, which the
        type's overflow mode saturated, wrapped or zeroed, less those a clamp reading the
        tensor would have mapped alike (counted_sides). Layout ops convert nothing.
        The native engine counts as it simulates (one compare per output value); NumPy
        runs each node twice. Both give the same counts (tests/test_native.py), and the
        counts worked out by hand (tests/test_overflows.py)."""
        return self._simulate(x, raw, engine, count=True)

    def _simulate(self, x: Any, raw: bool, engine: str, count: bool):
        if engine not in ENGINES:
            raise FxqError(f"engine {engine!r}: expected one of {ENGINES}")
        bound = bind_inputs(self.graph, x, keep_float32=True)   # float32: NumPy converts
        out = overflows = None
        samples = next(iter(bound.values())).shape[0] if bound else 0
        if engine == "native" or (engine == "auto" and (
                samples >= NATIVE_MIN_SAMPLES or self.native_is_built)):
            # real outputs scaled in C++ by the factors to_float multiplies by
            factors = [pow2_factor(-self.types[name].frac) for name in self.graph.outputs]
            scales = None if raw or None in factors else factors
            run = self._simulate_native(bound, required=engine == "native", count=count,
                                        scales=scales)
            if run is not None:
                overflows = run.overflows if count else None
                out = {name: run.outputs[name] if raw or scales else
                       to_float(run.outputs[name], self.types[name])
                       for name in self.graph.outputs}
        if out is None:
            overflows = {} if count else None
            values = self.evaluate(bound, keep=self.graph.outputs, overflows=overflows)
            out = {name: values[name] if raw else to_float(values[name], self.types[name])
                   for name in self.graph.outputs}
        result = out[self.graph.outputs[0]] if len(out) == 1 else out
        return result, overflows

    @cached_property
    def _program(self):
        """The native engine's generated C++ of this graph, or NativeUnsupported."""
        from fxq.native import generate

        try:
            return generate(self)
        except FxqError as exc:
            return exc

    @property
    def native_is_built(self) -> bool:
        """Whether the native simulation of this graph is loaded or in the build cache (then
        engine="auto" runs it for any batch)."""
        if "_native" in self.__dict__:
            return not isinstance(self._native, FxqError)
        from fxq.native import is_built

        return not isinstance(self._program, FxqError) and is_built(self._program.source)

    def prepare_native(self, progress=None) -> FxqError | None:
        """Build (or load) the native simulation now, saying so through `progress` when a
        build is needed; the FxqError saying why there is none, else None."""
        if progress is not None and not isinstance(self._program, FxqError) \
                and not self.native_is_built:
            progress(f"compiling the native simulation ({len(self.graph.nodes)} nodes, g++; "
                     "once per design)")
        return self._native if isinstance(self._native, FxqError) else None

    @cached_property
    def _native(self):
        """The compiled native simulation of this graph, or the FxqError saying why there
        is none (built on first use, then kept)."""
        from fxq.native import native_simulator

        if isinstance(self._program, FxqError):
            return self._program
        try:
            return native_simulator(self, self._program)
        except FxqError as exc:
            return exc

    def _simulate_native(self, bound: dict[str, np.ndarray], required: bool, count: bool,
                         scales: list[float] | None = None):
        """The native engine's Run (outputs: raw, or real ones scaled by `scales`; with
        `count` the overflow counts); None (NumPy then runs) when it cannot run and is
        not `required`."""
        if isinstance(self._native, FxqError):
            if required:
                raise self._native
            return None

        def quantize_counting(real):
            counts: dict[str, int] = {}
            return self._quantize_counting(real, counts), counts

        return self._native.run(bound, quantize_counting, count, scales)

    def __str__(self) -> str:
        lines = [f"quantized {self.graph.name} ({self.io_type})"]
        lines += [f"  input {n}: {t}" for n, t in self.inputs.items()]
        for node in self.graph.nodes:
            layer = self.layers[node.name]
            extra = "".join(f" {k}={v}" for k, v in layer.params.items())
            extra += "".join(f" {k}={v}" for k in ("accum", "table")
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
        if node.op.is_layout:
            layer = LayerTypes(result=src)
        elif node.op is Op.SOFTMAX:
            layer = softmax_layer(data)
        else:
            roles = {"weight": weight, "bias": bias, "scale": weight, "shift": bias,
                     "operand": weight, "alpha": weight}
            layer = LayerTypes(result=data, params={r: roles.get(r, weight)
                                                    for r in node.op.roles},
                               accum=accum, table=table)
        layers[node.name] = layer
        types[node.output] = layer.result
    return QuantizedGraph(graph, {name: data for name in graph.inputs}, layers, io_type)
