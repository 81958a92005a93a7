"""ONNX -> fxq IR.

`load(path)` reads a model file, validates it (onnx's checker and strict shape inference),
folds every node whose inputs are all constants (with onnx's reference evaluator, so any
op onnx knows may appear in constant subgraphs), the Shape of a tensor of known per-sample
shape among them (the batch left as what it is: a reshape to (batch, ...) keeps it, any
other use of it is refused), converts the rest through
`fxq.onnx_convert`, and runs the normalizing passes. Every problem is an `FxqError` with
one line naming the file and the node, op, tensor or value at fault; all unsupported ops
are listed in one message.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import external_data_helper, numpy_helper, shape_inference
from onnx.reference import ReferenceEvaluator

from fxq.errors import ModelError, UnsupportedModelError
from fxq.ir import Graph, Node, Op, Tensor
from fxq.onnx_convert import CONVERTERS, refuse
from fxq.ops import lookup

# from 11 to the newest opset the installed onnx defines: no op fxq reads changed its
# attributes or inputs after 21 (later versions add tensor types: bfloat16, float8, int4),
# which tests/test_onnx_import checks against onnx's schemas
OPSET_RANGE = (11, onnx.defs.onnx_opset_version())
DEFAULT_DOMAINS = ("", "ai.onnx")
FLOAT_TYPES = (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16)
# shape computations (x.view(x.size(0), -1) exported by TorchScript: Shape, Gather,
# Unsqueeze, Concat) are folded once per batch size: what differs depends on the batch
SHAPE_BATCHES = (2, 3)


def supported_op_types() -> list[str]:
    return sorted(set(CONVERTERS) | {"Constant"})


# -- reading the file ------------------------------------------------------------------

def read_model(path: str | os.PathLike) -> onnx.ModelProto:
    """Parse an ONNX file, loading external data only from inside the model's directory."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ModelError(f"{path}: no such file")
    if os.path.isdir(path):
        raise ModelError(f"{path}: is a directory, expected an .onnx file")
    if os.path.getsize(path) == 0:
        raise ModelError(f"{path}: empty file, not an ONNX model")
    try:
        model = onnx.load(path, load_external_data=False)
    except (DecodeError, ValueError, OSError) as exc:
        raise ModelError(f"{path}: not an ONNX model, or truncated ({exc})") from None
    if model.ir_version <= 0 or not model.HasField("graph"):
        raise ModelError(f"{path}: not an ONNX model (no IR version or no graph)")
    _load_external_data(model, path)
    return model


def _load_external_data(model: onnx.ModelProto, path: str) -> None:
    base = os.path.realpath(os.path.dirname(os.path.abspath(path)))
    for tensor in external_data_helper._get_all_tensors(model):
        if not external_data_helper.uses_external_data(tensor):
            continue
        info = external_data_helper.ExternalDataInfo(tensor)
        target = os.path.realpath(os.path.join(base, info.location))
        if os.path.commonpath([base, target]) != base:
            raise ModelError(f"{path}: tensor {tensor.name!r} refers to external data "
                             f"{info.location!r} outside the model's directory; refused")
        if not os.path.isfile(target):
            raise ModelError(f"{path}: external data {info.location!r} of tensor "
                             f"{tensor.name!r} is missing")
    try:
        external_data_helper.load_external_data_for_model(model, base)
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: cannot read external data ({exc})") from None


# -- the conversion context ------------------------------------------------------------

class Context:
    """What converters see: constants, per-sample shapes, and `emit` to add IR nodes."""

    def __init__(self, path: str, opset: int, consts: dict[str, np.ndarray],
                 input_shapes: dict[str, tuple[int, ...]], declared_batch: int | None,
                 onnx_shapes: dict[str, tuple[Any, ...]], node_names: dict[int, str]):
        self.path = path
        self.opset = opset
        self.consts = consts
        self.shapes = dict(input_shapes)
        self.declared_batch = declared_batch
        self.onnx_shapes = onnx_shapes
        self.node_names = node_names
        self.nodes: list[Node] = []
        self.params: dict[str, np.ndarray] = {}
        # folded values that depend on the batch size: the shape vectors (batch, dims...)
        # with 0 (ONNX Reshape's "copy this axis") for the batch, other values None
        self.batch_dependent: dict[str, np.ndarray | None] = {}

    def name_of(self, node: onnx.NodeProto) -> str:
        return self.node_names[id(node)]

    def is_const(self, name: str) -> bool:
        return name in self.consts

    def shape(self, name: str) -> tuple[int, ...]:
        return self.shapes[name]

    def batched_rank(self, name: str) -> int:
        return len(self.shapes[name]) + 1

    def describe(self, name: str) -> str:
        if name in self.consts:
            return f"{name!r} {tuple(self.consts[name].shape)}"
        return f"{name!r} (N, {', '.join(map(str, self.shapes[name]))})".replace(", )", ")")

    def require_const(self, node: onnx.NodeProto, index: int, what: str,
                      batch_first: bool = False) -> np.ndarray:
        """The constant value of input `index`; with batch_first, also a folded shape
        vector whose first entry is the batch size (that entry then 0)."""
        name = node.input[index] if index < len(node.input) else ""
        if not name:
            raise refuse(self, node, f"the {what} input is missing")
        if name in self.batch_dependent:
            value = self.batch_dependent[name]
            if batch_first and value is not None:
                return value
            raise refuse(self, node, f"the {what} {name!r} depends on the batch size")
        if name not in self.consts:
            raise refuse(self, node, f"the {what} {name!r} is not a constant")
        return self.consts[name]

    def param(self, node: onnx.NodeProto, value: np.ndarray, role: str) -> str:
        name = f"{self.name_of(node)}/{role}"
        self.params[name] = np.asarray(value, dtype=np.float64)
        return name

    def emit(self, node: onnx.NodeProto, op: Op, inputs: list[str], **attrs: Any) -> None:
        """Add the IR node computing `node`'s (first) output."""
        self.emit_part(node, op, inputs, node.output[0], self.name_of(node), **attrs)

    def fresh(self, base: str) -> str:
        """`base`, or `base` with a number, not yet a tensor or node name of the model."""
        taken = set(self.shapes) | set(self.consts) | set(self.node_names.values()) | \
            {n.name for n in self.nodes}
        name, i = base, 1
        while name in taken:
            i += 1
            name = f"{base}_{i}"
        return name

    def emit_part(self, node: onnx.NodeProto, op: Op, inputs: list[str], output: str,
                  name: str, **attrs: Any) -> None:
        """Add one IR node of the several an ONNX node becomes: `output` and `name` are the
        intermediate tensor's and node's (the last part writes `node.output[0]`)."""
        for tensor in inputs:
            if tensor not in self.params and tensor not in self.shapes:
                raise refuse(self, node, f"input {tensor!r} is not computed by the graph")
        shapes = [self.params[n].shape if n in self.params else (1,) + self.shapes[n]
                  for n in inputs]
        try:
            batched = lookup("shape", op, name)(*shapes, **attrs)
        except ValueError as exc:
            raise refuse(self, node, f"input shapes {shapes} do not fit ({exc})") from None
        if batched[0] != 1:
            raise refuse(self, node, f"result shape {batched} broadcasts over the batch axis")
        if any(d <= 0 for d in batched):
            raise refuse(self, node, f"result shape {batched} is empty")
        self._check_against_onnx(node, output, tuple(batched[1:]))
        self.shapes[output] = tuple(int(d) for d in batched[1:])
        self.nodes.append(Node(name, op, tuple(inputs), (output,), attrs))

    def _check_against_onnx(self, node, output: str, shape: tuple[int, ...]) -> None:
        inferred = self.onnx_shapes.get(output)
        if inferred is None or len(inferred) != len(shape) + 1:
            if inferred is not None:
                raise ModelError(f"{self.path}: tensor {output!r} of node "
                                 f"{self.name_of(node)!r}: onnx infers rank {len(inferred)},"
                                 f" fxq computes (N, {shape})")
            return
        for got, want in zip(inferred[1:], shape):
            if isinstance(got, int) and got != want:
                raise ModelError(f"{self.path}: tensor {output!r} of node "
                                 f"{self.name_of(node)!r}: onnx infers shape {inferred}, "
                                 f"fxq computes (N, {', '.join(map(str, shape))})")


# -- the import --------------------------------------------------------------------------

def load(path: str | os.PathLike, *, normalize: bool = True) -> Graph:
    """Read an ONNX file into an fxq Graph (normalized by the standard passes by default)."""
    model = read_model(path)
    graph = import_model(model, os.fspath(path))
    if normalize:
        from fxq.passes import normalize as run_passes

        graph = run_passes(graph)
    return graph


def import_model(model: onnx.ModelProto, path: str) -> Graph:
    """Convert a parsed ONNX model; `path` only names the source in messages."""
    opset = _default_opset(model, path)
    try:
        onnx.checker.check_model(model)
    except Exception as exc:  # ValidationError, and e.g. UnicodeDecodeError on bad names
        raise ModelError(f"{path}: invalid ONNX model: {_first_line(exc)}") from None
    g = model.graph
    initializers = {t.name: _initializer(t, path) for t in g.initializer}
    inputs = [i for i in g.input if i.name not in initializers]
    if not inputs:
        raise UnsupportedModelError(f"{path}: the graph has no non-constant inputs")
    input_shapes, declared_batch = _input_shapes(inputs, path)
    onnx_shapes = _infer_shapes(model, path)
    # protobuf hands out a new wrapper per access: hold one list so id() keys stay valid
    onnx_nodes = list(g.node)
    node_names = _unique_node_names(onnx_nodes)

    shapes_read = _shapes_read(onnx_nodes, input_shapes, onnx_shapes)
    foldable = _constant_nodes(onnx_nodes, set(initializers), set(shapes_read))
    _refuse_unsupported(path, [n for n in onnx_nodes if id(n) not in foldable], node_names)
    consts = dict(initializers)
    folded, batch_dependent = _fold_per_batch(
        model, [n for n in onnx_nodes if id(n) in foldable], shapes_read, path, node_names)
    consts.update(folded)

    ctx = Context(path, opset, consts, input_shapes, declared_batch, onnx_shapes, node_names)
    ctx.batch_dependent.update(batch_dependent)
    for node in onnx_nodes:
        if id(node) not in foldable:
            CONVERTERS[node.op_type](ctx, node)
    outputs = [o.name for o in g.output]
    for name in outputs:
        if name not in ctx.shapes or name in consts:
            raise UnsupportedModelError(f"{path}: graph output {name!r} is not computed from "
                                        "the inputs")
    tensors = {name: Tensor(name, shape) for name, shape in ctx.shapes.items()}
    return Graph.build(g.name or Path(path).stem, [i.name for i in inputs], outputs,
                       ctx.nodes, tensors, ctx.params)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _default_opset(model: onnx.ModelProto, path: str) -> int:
    versions = [o.version for o in model.opset_import if o.domain in DEFAULT_DOMAINS]
    if not versions:
        raise ModelError(f"{path}: the model imports no default-domain opset")
    lo, hi = OPSET_RANGE
    if not lo <= versions[0] <= hi:
        raise UnsupportedModelError(f"{path}: opset {versions[0]} is not supported "
                                    f"(fxq reads opsets {lo} to {hi})")
    return versions[0]


def _input_shapes(inputs, path: str) -> tuple[dict[str, tuple[int, ...]], int | None]:
    shapes, batches = {}, set()
    for value in inputs:
        t = value.type.tensor_type
        if not value.type.HasField("tensor_type") or t.elem_type not in FLOAT_TYPES:
            raise UnsupportedModelError(f"{path}: input {value.name!r} is not a float tensor")
        if not t.HasField("shape") or len(t.shape.dim) == 0:
            raise UnsupportedModelError(f"{path}: input {value.name!r} has no shape with a "
                                        "batch axis")
        dims = list(t.shape.dim)
        for axis, dim in enumerate(dims[1:], start=1):
            if not dim.HasField("dim_value") or dim.dim_value <= 0:
                what = dim.dim_param or "unknown"
                raise UnsupportedModelError(
                    f"{path}: input {value.name!r} dimension {axis} is {what!r} (dynamic); "
                    "only the batch (first) dimension may be dynamic")
        if dims[0].HasField("dim_value") and dims[0].dim_value > 0:
            batches.add(dims[0].dim_value)
        shapes[value.name] = tuple(d.dim_value for d in dims[1:])
    return shapes, (batches.pop() if len(batches) == 1 else None)


def _infer_shapes(model: onnx.ModelProto, path: str) -> dict[str, tuple[Any, ...]]:
    try:
        inferred = shape_inference.infer_shapes(model, check_type=True, strict_mode=True,
                                                data_prop=True)
    except (shape_inference.InferenceError, onnx.checker.ValidationError) as exc:
        raise ModelError(f"{path}: shape inference failed: {_first_line(exc)}") from None
    shapes = {}
    g = inferred.graph
    for value in list(g.value_info) + list(g.output):
        t = value.type.tensor_type
        if t.HasField("shape"):
            shapes[value.name] = tuple(d.dim_value if d.HasField("dim_value") else None
                                       for d in t.shape.dim)
    return shapes


def _unique_node_names(nodes: Iterable[onnx.NodeProto]) -> dict[int, str]:
    names: dict[int, str] = {}
    taken: set[str] = set()
    for index, node in enumerate(nodes):
        base = node.name or f"{node.op_type}_{index}"
        name, k = base, 1
        while name in taken:
            name, k = f"{base}_{k}", k + 1
        taken.add(name)
        names[id(node)] = name
    return names


def _shapes_read(nodes, input_shapes: dict[str, tuple[int, ...]],
                 onnx_shapes: dict[str, tuple[Any, ...]]) -> dict[int, tuple[int, ...]]:
    """id -> the per-sample shape it reads, of each Shape node whose input's per-sample
    shape is known (a graph input's, or onnx's shape inference's)."""
    read = {}
    for node in nodes:
        if node.op_type != "Shape" or node.domain not in DEFAULT_DOMAINS:
            continue
        name = node.input[0]
        if name in input_shapes:
            read[id(node)] = input_shapes[name]
        elif name in onnx_shapes and onnx_shapes[name] and all(
                isinstance(d, int) and d > 0 for d in onnx_shapes[name][1:]):
            read[id(node)] = tuple(onnx_shapes[name][1:])
    return read


def _constant_nodes(nodes, constants: set[str], shape_nodes: set[int] = frozenset()) \
        -> set[int]:
    """ids of nodes whose inputs are all constants (Constant nodes included), or that are
    in `shape_nodes` (Shape nodes of known shapes), or read only such nodes' outputs."""
    known = set(constants)
    foldable = set()
    for node in nodes:
        has_subgraph = any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
                           for a in node.attribute)
        if id(node) in shape_nodes or not has_subgraph and all(n in known
                                                                for n in node.input if n):
            foldable.add(id(node))
            known.update(n for n in node.output if n)
    return foldable


def _refuse_unsupported(path: str, nodes, node_names: dict[int, str]) -> None:
    missing: dict[str, list[str]] = {}
    for node in nodes:
        key = node.op_type if node.domain in DEFAULT_DOMAINS else f"{node.domain}.{node.op_type}"
        if node.domain not in DEFAULT_DOMAINS or node.op_type not in CONVERTERS:
            missing.setdefault(key, []).append(node_names[id(node)])
    if missing:
        listed = "; ".join(f"{op} (node{'s' if len(ns) > 1 else ''} {', '.join(ns)})"
                           for op, ns in sorted(missing.items()))
        raise UnsupportedModelError(f"{path}: unsupported ops: {listed}. Supported: "
                                    f"{', '.join(supported_op_types())}")


def _initializer(tensor: onnx.TensorProto, path: str) -> np.ndarray:
    """An initializer's values; a damaged one (unknown data type, data not matching its
    shape) is one ModelError naming it."""
    try:
        return numpy_helper.to_array(tensor)
    except Exception as exc:  # onnx raises KeyError, ValueError, TypeError, ... here
        raise ModelError(f"{path}: initializer {tensor.name!r} cannot be read: "
                         f"{type(exc).__name__}: {_first_line(exc)}") from None


def _fold_per_batch(model: onnx.ModelProto, nodes: list[onnx.NodeProto],
                    shapes_read: dict[int, tuple[int, ...]], path: str,
                    node_names: dict[int, str]) \
        -> tuple[dict[str, np.ndarray], dict[str, np.ndarray | None]]:
    """(constants, batch-dependent values: Context.batch_dependent) of the foldable
    `nodes`, their Shape nodes (`shapes_read`) replaced by constants of each batch size of
    SHAPE_BATCHES in turn."""
    if not any(id(n) in shapes_read for n in nodes):
        return _fold(model, nodes, path, node_names), {}
    runs = []
    for batch in SHAPE_BATCHES:
        names = dict(node_names)
        replaced = []
        for original in nodes:
            node = original
            if id(original) in shapes_read:
                node = _shape_constant(original, (batch,) + shapes_read[id(original)])
                names[id(node)] = node_names[id(original)]
            replaced.append(node)
        runs.append(_fold(model, replaced, path, names))
    constants, dependent = {}, {}
    for name, first in runs[0].items():
        values = [run[name] for run in runs]
        if all(v.shape == first.shape and np.array_equal(v, first) for v in values):
            constants[name] = first
            continue
        # a shape vector (batch, dims...): the batch in front, every other entry fixed
        batch_first = all(v.ndim == 1 and v.shape == first.shape and v.size
                          and v[0] == b and np.array_equal(v[1:], first[1:])
                          for v, b in zip(values, SHAPE_BATCHES))
        dependent[name] = np.concatenate([[0], first[1:]]).astype(first.dtype) \
            if batch_first else None
    return constants, dependent


def _shape_constant(node: onnx.NodeProto, shape: tuple[int, ...]) -> onnx.NodeProto:
    """A Constant node giving what Shape `node` gives on a tensor of `shape` (its start
    and end attributes, opset 15, slice it as ONNX says: clamped, negative from the end)."""
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    start, end = attrs.get("start", 0), attrs.get("end", None)
    value = np.array(shape, dtype=np.int64)[slice(start, end)]
    return onnx.helper.make_node("Constant", [], [node.output[0]],
                                 value=numpy_helper.from_array(value))


def _fold(model: onnx.ModelProto, nodes: list[onnx.NodeProto], path: str,
          node_names: dict[int, str]) -> dict[str, np.ndarray]:
    """Evaluate constant-only nodes with onnx's reference evaluator."""
    if not nodes:
        return {}
    outputs = [n for node in nodes for n in node.output if n]
    graph = onnx.helper.make_graph(
        nodes, "fold", [], [onnx.helper.make_empty_tensor_value_info(n) for n in outputs],
        initializer=list(model.graph.initializer))
    sub = onnx.helper.make_model(graph, opset_imports=model.opset_import,
                                 ir_version=model.ir_version)
    try:
        values = ReferenceEvaluator(sub).run(None, {})
    except Exception as exc:  # the evaluator raises many types; report, never trace back
        raise ModelError(f"{path}: cannot fold the constant nodes "
                         f"{', '.join(node_names[id(n)] for n in nodes)}: "
                         f"{_first_line(exc)}") from None
    return {name: np.asarray(value) for name, value in zip(outputs, values)}
