"""Fold a zero Pad into the Conv that reads it (Keras-style 'same' padding written as
ZeroPad2d then Conv): the Conv pads its input with zeros itself."""
from __future__ import annotations

from fxq.ir import Graph, Node, Op
from fxq.passes.base import Edit, Pass, sole_consumer


class FoldPad(Pass):
    """PAD(value 0, spatial axes only) -> CONV becomes one CONV with the pads added."""

    def match(self, graph: Graph, node: Node) -> tuple[Node, Node] | None:
        if node.op is not Op.PAD or node.attrs["value"] != 0:
            return None
        pads = node.attrs["pads"]
        nd = len(pads) // 2
        if pads[0] or pads[nd]:                       # the channel axis is padded
            return None
        conv = sole_consumer(graph, node.output)
        if conv is None or conv.op is not Op.CONV or conv.inputs[0] != node.output:
            return None
        return node, conv

    def rewrite(self, graph: Graph, match) -> Edit:
        pad, conv = match
        pads = pad.attrs["pads"]
        nd = len(pads) // 2
        spatial = tuple(pads[1:nd]) + tuple(pads[nd + 1:])
        merged = tuple(a + b for a, b in zip(conv.attrs["pads"], spatial))
        folded = conv.with_(inputs=(pad.inputs[0],) + conv.inputs[1:],
                            attrs={**conv.attrs, "pads": merged})
        return Edit(remove=(pad, conv), insert=(folded,),
                    what=f"{pad.name}: zero padding folded into {conv.name}")
