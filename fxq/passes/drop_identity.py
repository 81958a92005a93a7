"""Remove Identity (and inference-mode Dropout) nodes."""
from __future__ import annotations

from fxq.ir import Graph, Node, Op
from fxq.passes.base import Pass, rename_input


class DropIdentity(Pass):
    """y = IDENTITY(x): readers of y read x instead. When y is a graph output, x's producer
    writes y directly; an identity from a graph input straight to an output stays."""

    def match(self, graph: Graph, node: Node) -> Node | None:
        if node.op is not Op.IDENTITY:
            return None
        source = node.inputs[0]
        if node.output in graph.outputs and (source in graph.inputs or source in graph.outputs):
            return None
        return node

    def rewrite(self, graph: Graph, node: Node) -> Graph:
        source, target = node.inputs[0], node.output
        if target in graph.outputs:
            old, new = source, target      # the producer takes the output's name
        else:
            old, new = target, source      # readers take the input's name
        nodes = []
        for other in graph.nodes:
            if other is node:
                continue
            other = rename_input(other, old, new)
            if old in other.outputs:
                other = other.with_(outputs=tuple(new if n == old else n for n in other.outputs))
            nodes.append(other)
        return graph.rebuild(nodes)
