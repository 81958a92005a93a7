"""Magnitude pruning (Han et al. 2015), one layer at a time: zero the smallest weights.

Each Dense and Conv node (or the ones named in `layers`) has its `sparsity` fraction of
weights with the smallest magnitudes set to zero, ties broken by position so the result is
deterministic. A layer already that sparse is left alone, so the transform reaches its
fixed point in one round. Biases are kept. Zero weights then cost nothing in the latency
strategy: the estimator and HLS both drop the product. This is the plain post-training
method without retraining or correction; the sensitivity-driven thresholds, structured
pruning and refits of the compression issue build on it.
"""
from __future__ import annotations

import numpy as np

from fxq.ir import Graph, Node, Op
from fxq.passes.base import Edit
from fxq.transforms.registry import LAYERS, LayerTransform, Setting, register

PRUNABLE = (Op.DENSE, Op.CONV)


class MagnitudePrune(LayerTransform):
    OPS = PRUNABLE
    WHAT = "only Dense and Conv are pruned"

    def __init__(self, sparsity: float, layers: list[str] | None = None):
        super().__init__(layers)
        self.sparsity = float(sparsity)

    @property
    def name(self) -> str:
        return "prune"

    def match(self, graph: Graph, node: Node):
        if not self.selects(node):
            return None
        weight = self.weight(graph, node)
        w = graph.params[weight]
        target = int(round(self.sparsity * w.size))
        if int(np.count_nonzero(w == 0)) >= target:
            return None
        return node, weight, target

    def rewrite(self, graph: Graph, match) -> Edit:
        node, weight, target = match
        w = graph.params[weight]
        before = int(np.count_nonzero(w == 0))
        smallest = np.argsort(np.abs(w).ravel(), kind="stable")[:target]
        pruned = w.copy().ravel()
        threshold = float(np.abs(pruned[smallest[-1]]))
        pruned[smallest] = 0.0
        return Edit(params={weight: pruned.reshape(w.shape)},
                    what=f"{node.name}: {target - before} of {w.size} weights zeroed "
                         f"(|w| <= {threshold:.4g}), sparsity {target / w.size:.1%}")


def _fraction(v) -> str | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < 1:
        return "expected a fraction in [0, 1)"
    return None


register("prune", MagnitudePrune, {
    "sparsity": Setting(float, _fraction, required=True, help="a fraction in [0, 1)"),
    "layers": LAYERS,
}, help="zero the smallest-magnitude weights of Dense and Conv layers")
