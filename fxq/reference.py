"""The float reference: run a Graph with the float kernels, batch-vectorized, in float64."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from fxq.data import bind_inputs
from fxq.ops.registry import lookup

if TYPE_CHECKING:
    from fxq.ir import Graph, Node


def run_node(graph: Graph, node: Node, values: dict[str, np.ndarray]) -> np.ndarray:
    """Apply one node's float kernel, checking the result's shape against the IR."""
    args = [graph.params[n] if n in graph.params else values[n] for n in node.inputs]
    args = [np.asarray(a, dtype=np.float64) for a in args]
    y = lookup("float", node.op, node.name)(*args, **node.attrs)
    batch = next(iter(values.values())).shape[0] if values else 1
    expected = (batch,) + graph.shape(node.output)
    if y.shape != expected:
        raise AssertionError(f"kernel {node.op.name} of node {node.name!r} returned shape "
                             f"{y.shape}, the IR says {expected}")
    return y


def evaluate(graph: Graph, x: Any) -> dict[str, np.ndarray]:
    """Every activation tensor of the graph (inputs included), float64, batch first."""
    values = bind_inputs(graph, x)
    for node in graph.nodes:
        values[node.output] = run_node(graph, node, values)
    return values


def run_graph(graph: Graph, x: Any) -> np.ndarray | dict[str, np.ndarray]:
    """Graph outputs (float64, exact reference): one array for single-output graphs, else a dict."""
    values = evaluate(graph, x)
    outputs = {name: values[name] for name in graph.outputs}
    return outputs[graph.outputs[0]] if len(outputs) == 1 else outputs
