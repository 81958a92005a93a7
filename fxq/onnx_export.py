"""fxq IR -> ONNX: a plain float32 ONNX model any tool can read (what `fxq compress` writes).

`to_onnx(graph)` writes each node through its op's "onnx" rule (fxq.ops.registry), one
place per op like every other stage; the rules of the core ops are here, an op module
registers its own. A rule gets an `Exporter` and the node, and adds ONNX nodes and
initializers with `ex.node(...)` and `ex.const(...)`. Node and tensor names are the IR's,
so importing the written model gives the same node names (its importer names parameters
after their node and role again).

Parameters are written in float32, the ONNX model's type: a graph whose parameters are all
float32 values (an imported one, and every compression transform's result: fxq.compress
rounds what it changes) exports exactly, and importing the file gives the same float
function. A parameter or float attribute (a slope, a bound) that is not a float32 value (a
folded BatchNorm's product) is rounded to the nearest float32, the one change export makes.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from fxq.errors import FxqError
from fxq.ir import Graph, Node, Op
from fxq.ops.registry import lookup, rule

OPSET = 17          # Softmax over one axis (13), HardSwish (14), onnxruntime-supported


class Exporter:
    """The ONNX graph being written: nodes, initializers and fresh names."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: dict[str, onnx.TensorProto] = {}
        self._taken = set(graph.tensors) | set(graph.params) | {n.name for n in graph.nodes}

    def fresh(self, base: str) -> str:
        name, i = base, 1
        while name in self._taken:
            i += 1
            name = f"{base}_{i}"
        self._taken.add(name)
        return name

    def const(self, value: Any, name: str | None = None, dtype=np.float32) -> str:
        """An initializer holding `value` (float32 unless told), under `name` or a fresh one."""
        name = name if name is not None else self.fresh("const")
        self._taken.add(name)
        self.initializers[name] = numpy_helper.from_array(np.asarray(value, dtype=dtype), name)
        return name

    def param(self, node: Node, role: str) -> str | None:
        """The initializer of `node`'s `role` parameter (None when it has none)."""
        name = dict(self.graph.param_inputs(node)).get(role)
        return None if name is None else self.const(self.graph.params[name], name)

    def node(self, op_type: str, inputs: list[str], outputs: list[str], name: str,
             **attrs: Any) -> None:
        self.nodes.append(helper.make_node(op_type, inputs, outputs, name=name, **attrs))

    def activations(self, node: Node) -> list[str]:
        return self.graph.activation_inputs(node)


def as_float32(graph: Graph) -> Graph:
    """`graph` with every parameter and float attribute rounded to float32: the function
    its ONNX export computes (float32 parameters keep their encodings)."""
    def rounded(v):
        return float(np.float32(v)) if isinstance(v, float) and np.isfinite(v) else v

    params = {k: np.asarray(v, dtype=np.float32).astype(np.float64)
              for k, v in graph.params.items()}
    changed = {k: v for k, v in params.items() if not np.array_equal(v, graph.params[k])}
    nodes = [n.with_(attrs={k: rounded(v) for k, v in n.attrs.items()}) for n in graph.nodes]
    return graph.rebuild(nodes, params=changed)


def _value_info(graph: Graph, name: str) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT,
                                         ["N", *graph.shape(name)])


def to_onnx(graph: Graph, producer: str = "fxq") -> onnx.ModelProto:
    """`graph` as a checked float32 ONNX model (batch axis "N")."""
    ex = Exporter(graph)
    for node in graph.nodes:
        lookup("onnx", node.op, node.name)(ex, node)
    body = helper.make_graph(ex.nodes, graph.name,
                             [_value_info(graph, n) for n in graph.inputs],
                             [_value_info(graph, n) for n in graph.outputs],
                             initializer=list(ex.initializers.values()))
    model = helper.make_model(body, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name=producer)
    model.ir_version = 8                         # what onnxruntime of these machines reads
    onnx.checker.check_model(model, full_check=True)
    return model


def save_onnx(graph: Graph, path: str | os.PathLike, *, overwrite: bool = False) -> str:
    """Write `graph` to `path` as ONNX; refuses an existing file unless `overwrite`."""
    path = os.fspath(path)
    if os.path.exists(path) and not overwrite:
        raise FxqError(f"{path}: exists (--force replaces it)")
    model = to_onnx(graph)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    onnx.save(model, path)
    return path


# -- the core ops' rules ---------------------------------------------------------------

@rule("onnx", Op.DENSE)
def export_dense(ex, node):
    (x,) = ex.activations(node)
    w, b = ex.param(node, "weight"), ex.param(node, "bias")
    if len(ex.graph.shape(x)) == 1:
        ex.node("Gemm", [x, w] + ([b] if b else []), [node.output], node.name)
        return
    if b is None:
        ex.node("MatMul", [x, w], [node.output], node.name)
        return
    product = ex.fresh(f"{node.output}/product")
    ex.node("MatMul", [x, w], [product], node.name)
    ex.node("Add", [product, b], [node.output], ex.fresh(f"{node.name}/bias"))


@rule("onnx", Op.CONV)
def export_conv(ex, node):
    (x,) = ex.activations(node)
    w, b = ex.param(node, "weight"), ex.param(node, "bias")
    kernel = list(ex.graph.params[dict(ex.graph.param_inputs(node))["weight"]].shape[2:])
    ex.node("Conv", [x, w] + ([b] if b else []), [node.output], node.name,
            kernel_shape=kernel, strides=list(node.attrs["strides"]),
            pads=list(node.attrs["pads"]), group=int(node.attrs["groups"]))


@rule("onnx", Op.BATCH_NORM)
def export_batch_norm(ex, node):
    """y = x * scale + shift as BatchNormalization with mean 0, variance 1 and epsilon 0,
    which the importer reads back as exactly this scale and shift."""
    (x,) = ex.activations(node)
    scale, shift = ex.param(node, "scale"), ex.param(node, "shift")
    channels = ex.graph.shape(x)[0]
    mean = ex.const(np.zeros(channels), ex.fresh(f"{node.name}/mean"))
    var = ex.const(np.ones(channels), ex.fresh(f"{node.name}/var"))
    ex.node("BatchNormalization", [x, scale, shift, mean, var], [node.output], node.name,
            epsilon=0.0)


def _operands(ex, node) -> list[str]:
    """A merge's inputs in order, each parameter as an initializer under its name."""
    return [ex.const(ex.graph.params[n], n) if ex.graph.is_param(n) else n
            for n in node.inputs]


@rule("onnx", Op.ADD, Op.SUB, Op.MUL)
def export_add_mul(ex, node):
    ex.node({Op.ADD: "Add", Op.SUB: "Sub", Op.MUL: "Mul"}[node.op], _operands(ex, node),
            [node.output], node.name)


@rule("onnx", Op.CONCAT)
def export_concat(ex, node):
    ex.node("Concat", list(node.inputs), [node.output], node.name, axis=int(node.attrs["axis"]))


_UNARY = {Op.RELU: "Relu", Op.SIGMOID: "Sigmoid", Op.TANH: "Tanh", Op.IDENTITY: "Identity",
          Op.GLOBAL_AVG_POOL: "GlobalAveragePool", Op.GLOBAL_MAX_POOL: "GlobalMaxPool"}


@rule("onnx", *_UNARY)
def export_unary(ex, node):
    ex.node(_UNARY[node.op], [node.inputs[0]], [node.output], node.name)


@rule("onnx", Op.LEAKY_RELU)
def export_leaky_relu(ex, node):
    ex.node("LeakyRelu", [node.inputs[0]], [node.output], node.name,
            alpha=float(node.attrs["alpha"]))


@rule("onnx", Op.CLIP)
def export_clip(ex, node):
    bounds = [ex.const(np.float32(v), ex.fresh(f"{node.name}/{what}")) if np.isfinite(v) else ""
              for what, v in (("min", node.attrs["lo"]), ("max", node.attrs["hi"]))]
    while bounds and not bounds[-1]:
        bounds.pop()
    ex.node("Clip", [node.inputs[0]] + bounds, [node.output], node.name)


@rule("onnx", Op.SOFTMAX)
def export_softmax(ex, node):
    """One axis as Softmax; several (an old opset's trailing axes, normalized together) as
    Softmax over their flattening, reshaped back."""
    x = node.inputs[0]
    axes = tuple(node.attrs["axes"])
    if len(axes) == 1:
        ex.node("Softmax", [x], [node.output], node.name, axis=axes[0])
        return
    shape = ex.graph.shape(x)
    kept = list(shape[:axes[0] - 1])
    flat, normed = ex.fresh(f"{x}/flat"), ex.fresh(f"{node.output}/flat")
    ex.node("Reshape", [x, ex.const([0] + kept + [-1], ex.fresh(f"{node.name}/flat_shape"),
                                    np.int64)], [flat], ex.fresh(f"{node.name}/flatten"))
    ex.node("Softmax", [flat], [normed], node.name, axis=-1)
    ex.node("Reshape", [normed, ex.const([0, *shape], ex.fresh(f"{node.name}/shape"),
                                         np.int64)], [node.output],
            ex.fresh(f"{node.name}/unflatten"))


@rule("onnx", Op.MAX_POOL, Op.AVG_POOL)
def export_pool(ex, node):
    attrs = dict(kernel_shape=list(node.attrs["kernel"]), strides=list(node.attrs["strides"]),
                 pads=list(node.attrs["pads"]))
    if node.op is Op.AVG_POOL:
        attrs["count_include_pad"] = int(node.attrs["count_include_pad"])
    ex.node("MaxPool" if node.op is Op.MAX_POOL else "AveragePool", [node.inputs[0]],
            [node.output], node.name, **attrs)


@rule("onnx", Op.FLATTEN)
def export_flatten(ex, node):
    ex.node("Flatten", [node.inputs[0]], [node.output], node.name, axis=1)


@rule("onnx", Op.RESHAPE)
def export_reshape(ex, node):
    shape = ex.const([-1, *node.attrs["shape"]], ex.fresh(f"{node.name}/shape"), np.int64)
    ex.node("Reshape", [node.inputs[0], shape], [node.output], node.name)


@rule("onnx", Op.TRANSPOSE)
def export_transpose(ex, node):
    ex.node("Transpose", [node.inputs[0]], [node.output], node.name,
            perm=list(node.attrs["perm"]))


@rule("onnx", Op.PAD)
def export_pad(ex, node):
    pads = list(node.attrs["pads"])
    half = len(pads) // 2
    full = [0] + pads[:half] + [0] + pads[half:]
    ex.node("Pad", [node.inputs[0], ex.const(full, ex.fresh(f"{node.name}/pads"), np.int64),
                    ex.const(np.float32(node.attrs["value"]), ex.fresh(f"{node.name}/value"))],
            [node.output], node.name, mode="constant")
