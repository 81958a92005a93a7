"""Fuse an Add of a constant into the bias of the Dense or Conv before it."""
from __future__ import annotations

import numpy as np

from fxq.ir import Graph, Node, Op
from fxq.passes.base import Edit, Pass, sole_consumer


def _as_bias(c: np.ndarray, layer: Node, graph: Graph) -> np.ndarray | None:
    """`c` as a per-output-channel vector, if adding it is adding a bias."""
    out_shape = (1,) + graph.shape(layer.output)
    channel_axis = len(out_shape) - 1 if layer.op is Op.DENSE else 1
    channels = out_shape[channel_axis]
    if c.size == 1:
        return np.full(channels, float(c.reshape(())))
    aligned = (1,) * (len(out_shape) - c.ndim) + c.shape
    if len(aligned) != len(out_shape):
        return None
    if all(d == 1 for i, d in enumerate(aligned) if i != channel_axis) and \
            aligned[channel_axis] == channels:
        return c.reshape(-1)
    return None


class FuseBias(Pass):
    """DENSE/CONV -> ADD(constant bias) becomes one layer with the bias (MatMul+Add -> Dense)."""

    def match(self, graph: Graph, node: Node) -> tuple[Node, Node, np.ndarray] | None:
        if node.op is not Op.ADD:
            return None
        params = [n for n in node.inputs if graph.is_param(n)]
        acts = [n for n in node.inputs if not graph.is_param(n)]
        if len(params) != 1 or len(acts) != 1:
            return None
        layer = graph.producer(acts[0])
        if layer is None or layer.op not in (Op.DENSE, Op.CONV):
            return None
        if sole_consumer(graph, layer.output) is not node:
            return None
        bias = _as_bias(graph.params[params[0]], layer, graph)
        return None if bias is None else (layer, node, bias)

    def rewrite(self, graph: Graph, match) -> Edit:
        layer, add, bias = match
        if len(layer.inputs) > 2:
            bias = bias + graph.params[layer.inputs[2]]
        b_name = f"{layer.name}/bias_fused"
        fused = layer.with_(inputs=(layer.inputs[0], layer.inputs[1], b_name),
                            outputs=add.outputs)
        return Edit(remove=(layer, add), insert=(fused,), params={b_name: bias})
