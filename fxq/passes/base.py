"""The pass contract and the driver.

A pass is a small rewrite with two halves:

* ``match(graph, node)`` looks at one node (and its neighbours) and returns whatever the
  rewrite needs, or None when the pass does not apply there. It never changes anything.
* ``rewrite(graph, match)`` returns a new Graph computing the same function (same float
  outputs up to rounding) with the match rewritten. Graph outputs keep their names.

`Pass.run` rewrites the first match until none is left; `normalize` runs a pipeline of
passes until a whole sweep changes nothing.
"""
from __future__ import annotations

from typing import Any, Iterable

from fxq.ir import Graph, Node


class Pass:
    def match(self, graph: Graph, node: Node) -> Any | None:
        raise NotImplementedError

    def rewrite(self, graph: Graph, match: Any) -> Graph:
        raise NotImplementedError

    def run(self, graph: Graph) -> Graph:
        while True:
            for node in graph.nodes:
                found = self.match(graph, node)
                if found is not None:
                    graph = self.rewrite(graph, found)
                    break
            else:
                return graph

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def normalize(graph: Graph, pipeline: Iterable[Pass] | None = None) -> Graph:
    """Run `pipeline` (the standard one by default) to a fixed point."""
    from fxq.passes import PIPELINE

    passes = tuple(PIPELINE if pipeline is None else pipeline)
    while True:
        before = graph
        for p in passes:
            graph = p.run(graph)
        if graph is before:
            return graph


def sole_consumer(graph: Graph, tensor: str) -> Node | None:
    """The one node reading `tensor`, if exactly one does and it is not a graph output."""
    users = graph.consumers(tensor)
    if len(users) != 1 or tensor in graph.outputs:
        return None
    return users[0]


def rename_input(node: Node, old: str, new: str) -> Node:
    return node.with_(inputs=tuple(new if n == old else n for n in node.inputs))


def replace_nodes(graph: Graph, remove: Iterable[Node], insert: Node | None = None,
                  at: Node | None = None, **updates: Any) -> Graph:
    """Drop `remove`; put `insert` where `at` stood; rebuild with tensor/param updates."""
    removed = {n.name for n in remove}
    nodes = []
    for node in graph.nodes:
        if at is not None and node.name == at.name and insert is not None:
            nodes.append(insert)
        elif node.name not in removed:
            nodes.append(node)
    return graph.rebuild(nodes, **updates)
