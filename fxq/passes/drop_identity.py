"""Remove Identity (and inference-mode Dropout) nodes."""
from __future__ import annotations

from fxq.ir import Graph, Node, Op
from fxq.passes.base import Edit, Pass


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

    def rewrite(self, graph: Graph, node: Node) -> Edit:
        source, target = node.inputs[0], node.output
        if target in graph.outputs:
            return Edit(remove=(node,), rename={source: target})   # producer takes the name
        return Edit(remove=(node,), rename={target: source})       # readers take the input's
