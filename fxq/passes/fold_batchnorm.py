"""Fold a BatchNorm scale-and-shift into the Conv or Dense that feeds it."""
from __future__ import annotations

import numpy as np

from fxq.ir import Graph, Node, Op
from fxq.passes.base import Edit, Pass, sole_consumer


class FoldBatchNorm(Pass):
    """CONV/DENSE -> BATCH_NORM becomes one CONV/DENSE with scaled weights and bias.

    Applies when the BatchNorm is the only reader of the layer's output, and, for Dense,
    when the normalized axis (1) is the Dense feature axis (per-sample rank 1). A BatchNorm
    with nothing to fold into stays as a scale-and-shift layer.
    """

    def match(self, graph: Graph, node: Node) -> tuple[Node, Node] | None:
        if node.op is not Op.BATCH_NORM:
            return None
        layer = graph.producer(node.inputs[0])
        if layer is None or layer.op not in (Op.CONV, Op.DENSE):
            return None
        if sole_consumer(graph, layer.output) is not node:
            return None
        if layer.op is Op.DENSE and len(graph.shape(layer.output)) != 1:
            return None
        return layer, node

    def rewrite(self, graph: Graph, match: tuple[Node, Node]) -> Edit:
        layer, bn = match
        scale, shift = graph.params[bn.inputs[1]], graph.params[bn.inputs[2]]
        w = graph.params[layer.inputs[1]]
        b = graph.params[layer.inputs[2]] if len(layer.inputs) > 2 else np.zeros_like(scale)
        if layer.op is Op.CONV:
            w = w * scale.reshape((-1,) + (1,) * (w.ndim - 1))
        else:
            w = w * scale.reshape(1, -1)
        w_name, b_name = f"{layer.name}/weight_bn", f"{layer.name}/bias_bn"
        fused = layer.with_(inputs=(layer.inputs[0], w_name, b_name), outputs=bn.outputs)
        return Edit(remove=(layer, bn), insert=(fused,),
                    params={w_name: w, b_name: b * scale + shift})
