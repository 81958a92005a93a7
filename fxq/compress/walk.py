"""One pass of a compression method over a graph, on calibration data, layer after layer.

`lockstep(graph, reference, data, visit)` runs `graph` (the network compressed so far) node
by node on the data, and beside it the float `reference` model. At each node `visit` sees
the node, its inputs as the compressed network computes them and the reference's value of
its output (when the reference has that tensor), and may return a `Replacement`: the nodes
that compute the node's output instead, with their new parameters. The walk runs the
replacement on the same inputs and goes on with its result, so every later layer is
compressed against what the earlier compressed layers really produce (their errors are
refit away where they can be). A visit may also revise an earlier node (structured pruning
removes a producer's channels when it sees who reads them); a revision must compute what
the walk saw there, restricted to what the later nodes read.

Tensors are dropped after their last reader in both walks, so memory follows the widest
cut of the graph. The result is the rebuilt graph and what each replacement did.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping

import numpy as np

from fxq.data import bind_inputs
from fxq.ir import Graph, Node, Tensor
from fxq.reference import apply_float, walk_bound


@dataclass(frozen=True)
class Replacement:
    """Nodes computing a node's output (the last one writes it), their new or changed
    parameters, tensors (new, or old ones with a new shape) and parameter encodings, and a
    line saying what changed."""

    nodes: tuple[Node, ...]
    params: Mapping[str, np.ndarray] = field(default_factory=dict)
    tensors: Mapping[str, Tensor] = field(default_factory=dict)
    encodings: Mapping[str, Any] = field(default_factory=dict)
    what: str = ""


@dataclass
class Visit:
    """What a method sees at one node."""

    graph: Graph                       # the graph being walked (before this pass's changes)
    node: Node
    inputs: list[np.ndarray]           # its activation inputs as the compressed network has them
    target: np.ndarray | None          # the float reference's value of its output, if any
    revisions: dict[str, Replacement]

    def param(self, role: str) -> np.ndarray | None:
        name = dict(self.graph.param_inputs(self.node)).get(role)
        return None if name is None else self.graph.params[name]

    def param_name(self, role: str) -> str | None:
        return dict(self.graph.param_inputs(self.node)).get(role)

    def revise(self, name: str, replacement: Replacement) -> None:
        """Replace the earlier node `name` (see the module's note)."""
        self.revisions[name] = replacement


def run_nodes(nodes: tuple[Node, ...], params: Mapping[str, np.ndarray],
              values: Mapping[str, np.ndarray]) -> np.ndarray:
    """The float result of `nodes` in order (each reading params or earlier results)."""
    local = dict(values)
    y = None
    for node in nodes:
        y = local[node.output] = apply_float(node, params, local)
    return y


def _reference_values(reference: Graph, bound: dict) -> Callable[[str], np.ndarray | None]:
    """The reference's value of a tensor, asked for in the reference's node order."""
    names = set(reference.inputs) | {n.output for n in reference.nodes}
    stream: Iterator = walk_bound(reference, dict(bound))

    def value(name: str) -> np.ndarray | None:
        if name not in names:
            return None
        for got, v in stream:
            if got == name:
                return v
        return None

    return value


def lockstep(graph: Graph, reference: Graph, data: Any,
             visit: Callable[[Visit], Replacement | None]) -> tuple[Graph, list[tuple[str, str]]]:
    """Walk `graph` with `visit` at every node (see the module's note); the new graph and
    (node, what changed) for every replacement."""
    bound = bind_inputs(graph, data)
    values = {k: np.asarray(v, dtype=np.float64) for k, v in bound.items()}
    target_of = _reference_values(reference, bound)
    last = graph.last_readers()
    keep = set(graph.outputs)
    done: dict[str, Replacement] = {}
    revisions: dict[str, Replacement] = {}
    for i, node in enumerate(graph.nodes):
        acts = graph.activation_inputs(node)
        seen = Visit(graph, node, [values[n] for n in acts], target_of(node.output), revisions)
        found = visit(seen)
        if found is None:
            values[node.output] = apply_float(node, graph.params, values)
        else:
            done[node.name] = found
            params = {**graph.params, **found.params}
            values[node.output] = run_nodes(found.nodes, params, values)
        for name in acts:
            if last[name] == i and name not in keep:
                values.pop(name, None)
        if node.output not in last and node.output not in keep:
            values.pop(node.output, None)
    done.update(revisions)
    changes = [(node.name, done[node.name].what) for node in graph.nodes
               if node.name in done and done[node.name].what]
    return apply(graph, done), changes


def apply(graph: Graph, replacements: Mapping[str, Replacement]) -> Graph:
    """`graph` with each named node replaced."""
    nodes: list[Node] = []
    tensors: dict[str, Tensor] = {}
    params: dict[str, np.ndarray] = {}
    encodings: dict[str, Any] = {}
    for node in graph.nodes:
        r = replacements.get(node.name)
        if r is None:
            nodes.append(node)
            continue
        nodes.extend(r.nodes)
        tensors.update(r.tensors)
        params.update(r.params)
        encodings.update(r.encodings)
    return graph.rebuild(nodes, tensors=tensors, params=params, encodings=encodings)
