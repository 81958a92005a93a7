"""Weight sharing (Han et al. 2016, Deep Compression's second stage): each layer's weights
clustered by k-means into `clusters` shared values, stored as a codebook and indices.

Initialization is linear over [min, max] of the layer's weights (the paper's best), and
scipy's k-means refines it. A weight that is exactly zero (a pruned one) stays zero and
outside the clustering, so pruning then sharing keeps the sparsity. The layer's weights
become the codebook values gathered by the indices (fxq.encoding.Codebook): the kernels,
search and emitters see dense values as before; the encoding is what a store of the
weights needs, and the fixed-point search quantizes the shared values once.
"""
from __future__ import annotations

import warnings

import numpy as np

from fxq.encoding import Codebook
from fxq.ir import Graph, Node, Op
from fxq.passes.base import Edit
from fxq.transforms.registry import LAYERS, LayerTransform, Setting, register

SHARABLE = (Op.DENSE, Op.CONV)


def kmeans_codebook(w: np.ndarray, clusters: int) -> Codebook:
    """The codebook of `w`: zeros kept as their own value, the rest clustered."""
    from scipy.cluster.vq import kmeans2

    flat = w.ravel().astype(np.float64)
    live = flat != 0
    values, indices = [0.0], np.zeros(flat.size, dtype=np.int64)
    if live.any():
        data = flat[live]
        distinct = np.unique(data)
        k = min(clusters - (0 if live.all() else 1), distinct.size)
        if k == distinct.size:                       # few enough values: they are the book
            centroids, labels = distinct, np.searchsorted(distinct, data)
        else:
            init = np.linspace(data.min(), data.max(), k)
            with warnings.catch_warnings():          # empty clusters are dropped below
                warnings.simplefilter("ignore", UserWarning)
                centroids, labels = kmeans2(data, init, minit="matrix", iter=30, seed=0)
            used = np.unique(labels)                 # empty clusters dropped
            centroids, labels = centroids[used], np.searchsorted(used, labels)
        if live.all():
            values, indices[:] = list(centroids), labels
        else:
            values += list(centroids)
            indices[live] = labels + 1
    return Codebook(np.array(values), indices.reshape(w.shape))


class ShareWeights(LayerTransform):
    OPS = SHARABLE
    WHAT = "only Dense and Conv weights are shared"

    def __init__(self, clusters: int, layers: list[str] | None = None):
        super().__init__(layers)
        self.clusters = int(clusters)

    @property
    def name(self) -> str:
        return "share"

    def match(self, graph: Graph, node: Node):
        if not self.selects(node):
            return None
        weight = self.weight(graph, node)
        encoding = graph.encodings.get(weight)
        if encoding is not None and encoding.values.size <= self.clusters:
            return None                              # shared already: the fixed point
        return node, weight

    def rewrite(self, graph: Graph, match) -> Edit:
        node, weight = match
        w = graph.params[weight]
        book = kmeans_codebook(w, self.clusters)
        dense = book.dense()
        error = float(np.sqrt(np.mean((dense - w) ** 2)))
        return Edit(params={weight: dense}, encodings={weight: book},
                    what=f"{node.name}: {w.size} weights as {book.values.size} shared values "
                         f"({book.index_bits()}-bit indices), rms change {error:.3g}")


def _clusters(v) -> str | None:
    if isinstance(v, bool) or not isinstance(v, int) or v < 2:
        return "expected an integer of at least 2"
    return None


register("share", ShareWeights, {
    "clusters": Setting(int, _clusters, required=True, help="an integer >= 2"),
    "layers": LAYERS,
}, help="k-means weight sharing of Dense and Conv weights (codebook + indices)")
