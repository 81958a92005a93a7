"""The float reference: run a Graph with the float kernels, batch-vectorized, in float64."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator, Mapping

import numpy as np

from fxq.data import bind_inputs
from fxq.ops.registry import lookup

if TYPE_CHECKING:
    from fxq.ir import Graph, Node


def apply_float(node: Node, params: Mapping[str, np.ndarray],
                values: Mapping[str, np.ndarray]) -> np.ndarray:
    """One node's float kernel on its inputs (each a parameter or an earlier value).
    Parameters reach the kernel as C-contiguous float64, so a result depends on their
    values, never on how they are laid out in memory (BLAS picks another kernel, with
    another summation order, for a transposed operand)."""
    args = [np.ascontiguousarray(params[n], dtype=np.float64) if n in params
            else np.asarray(values[n], dtype=np.float64) for n in node.inputs]
    return lookup("float", node.op, node.name)(*args, **node.attrs)


def run_node(graph: Graph, node: Node, values: dict[str, np.ndarray]) -> np.ndarray:
    """Apply one node's float kernel (float64), checking the result's shape against the IR."""
    y = apply_float(node, graph.params, values)
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


def walk(graph: Graph, x: Any) -> Iterator[tuple[str, np.ndarray]]:
    """Every activation tensor's float value (inputs first, then each node's output in
    order), each dropped once its last reader has run: the memory follows the widest cut
    of the graph, not the sum of its tensors."""
    return walk_bound(graph, bind_inputs(graph, x))


def walk_bound(graph: Graph, bound: dict[str, np.ndarray]) -> Iterator[tuple[str, np.ndarray]]:
    """`walk` of inputs already bound and checked (fxq.data.bind_inputs)."""
    values = {k: v.astype(np.float64, copy=False) for k, v in bound.items()}
    last = graph.last_readers()
    keep = set(graph.outputs)
    yield from values.items()
    for i, node in enumerate(graph.nodes):
        values[node.output] = run_node(graph, node, values)
        yield node.output, values[node.output]
        for name in graph.activation_inputs(node):
            if last[name] == i and name not in keep:
                values.pop(name, None)
        if node.output not in last and node.output not in keep:
            values.pop(node.output)


RUN_BATCH = 256        # samples per pass of run_graph (its memory follows the batch)


def run_graph(graph: Graph, x: Any) -> np.ndarray | dict[str, np.ndarray]:
    """Graph outputs (float64, exact reference): one array for single-output graphs, else a
    dict. Runs RUN_BATCH samples at a time (each sample is independent)."""
    bound = bind_inputs(graph, x)
    n = next(iter(bound.values())).shape[0]
    wanted = set(graph.outputs)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in graph.outputs}
    for start in range(0, max(n, 1), RUN_BATCH):
        part = {k: v[start:start + RUN_BATCH] for k, v in bound.items()}
        for name, v in walk_bound(graph, part):
            if name in wanted:
                parts[name].append(v)
    outputs = {name: np.concatenate(p) if len(p) > 1 else p[0] for name, p in parts.items()}
    return outputs[graph.outputs[0]] if len(outputs) == 1 else outputs
