"""What a compressed model costs to store and to run: parameters, nonzeros, MACs, and the
storage of Deep Compression's stages (Han et al. 2016), per layer and in total.

The weights of each Dense and Conv layer, in bits:

* dense: 32 per weight (float32);
* pruned: the nonzeros in Han's relative-index sparse format: each entry a 32-bit value and
  a b-bit gap to the previous entry, a filler zero entry where a gap exceeds 2^b (b chosen
  per layer, 1..8, for the least bits; a layer without zeros stays dense);
* shared: the same entries holding ceil(log2 K)-bit indices into a codebook of K float32
  values (k-means sharing; the layer's distinct values when it is not shared);
* Huffman: the entries' indices and gaps each Huffman-coded (their code lengths summed),
  plus the code tables (every symbol's code length in 6 bits).

Biases are counted as float32 in every column. The ratio is dense / Huffman.
"""
from __future__ import annotations

import heapq
import math
from collections import Counter
from dataclasses import asdict, dataclass

import numpy as np

from fxq.compress.config import LAYER_OPS
from fxq.ir import Graph, Node, Op

VALUE_BITS = 32
MAX_GAP_BITS = 8
TABLE_BITS = 6              # one code length per symbol in a Huffman table


def huffman_lengths(counts: Counter) -> dict:
    """Each symbol's Huffman code length for these counts (one symbol: length 1)."""
    if len(counts) <= 1:
        return {s: 1 for s in counts}
    heap = [(c, i, (s,)) for i, (s, c) in enumerate(sorted(counts.items(), key=str))]
    heapq.heapify(heap)
    length = Counter()
    tick = len(heap)
    while len(heap) > 1:
        c1, _, a = heapq.heappop(heap)
        c2, _, b = heapq.heappop(heap)
        for s in a + b:
            length[s] += 1
        heapq.heappush(heap, (c1 + c2, tick, a + b))
        tick += 1
    return dict(length)


def huffman_bits(symbols) -> int:
    """Bits of the symbols Huffman-coded, with their table."""
    counts = Counter(symbols)
    lengths = huffman_lengths(counts)
    return sum(counts[s] * lengths[s] for s in counts) + TABLE_BITS * len(counts)


def _gaps(flat: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """The sparse entries of `flat` with `bits`-bit gaps: each entry's gap symbol and its
    value's position (-1 for a filler zero). A jump d to the next nonzero takes
    (d - 1) // 2^b fillers (each advancing 2^b) before the entry itself."""
    positions = np.flatnonzero(flat)
    jumps = np.diff(np.concatenate([[-1], positions]))
    span = 1 << bits
    fillers = (jumps - 1) // span
    count = fillers + 1
    last = np.cumsum(count) - 1                       # each real entry's index
    gaps = np.full(int(count.sum()), span - 1, dtype=np.int64)
    where = np.full(gaps.size, -1, dtype=np.int64)
    gaps[last] = jumps - 1 - fillers * span
    where[last] = positions
    return gaps, where


@dataclass(frozen=True)
class LayerStorage:
    layer: str
    params: int              # weights
    nonzeros: int
    macs: int                # multiply-accumulates per sample, dense
    nonzero_macs: int        # those with a nonzero weight
    dense_bits: int
    pruned_bits: int
    shared_bits: int
    huffman_bits: int
    gap_bits: int            # the sparse format's gap width (0: stored dense)
    values: int              # distinct values (the codebook's size)

    def to_json(self) -> dict:
        return asdict(self)


def _positions(graph: Graph, node: Node) -> int:
    """Output positions per sample (pixels of a Conv, leading axes of a Dense)."""
    shape = graph.shape(node.output)
    return int(np.prod(shape[1:] if node.op is Op.CONV else shape[:-1], dtype=np.int64))


def layer_storage(graph: Graph, node: Node, value_bits: int = VALUE_BITS,
                  bias_bits: int = VALUE_BITS) -> LayerStorage:
    """One layer's figures, its values and biases stored in `value_bits` and `bias_bits`
    (float32 unless told: a fixed-point design's widths); `dense_bits` is float32's."""
    params = dict(graph.param_inputs(node))
    w = graph.params[params["weight"]]
    bias = graph.params[params["bias"]].size if "bias" in params else 0
    n, flat = w.size, np.asarray(w).reshape(-1)
    # Dense (in, out): a row per output, so entries run along an output's inputs
    ordered = (w.T if node.op is Op.DENSE else w).reshape(-1)
    nnz = int(np.count_nonzero(flat))
    positions = _positions(graph, node)
    encoding = graph.encodings.get(params["weight"])
    if encoding is not None:
        values, index = encoding.values, (encoding.indices.T if node.op is Op.DENSE
                                          else encoding.indices).reshape(-1)
    else:
        values, index = np.unique(ordered, return_inverse=True)
        index = index.reshape(-1)
    k = max(int(values.size), 1)
    index_bits = max(1, math.ceil(math.log2(k)))
    table = value_bits * k
    dense_bits = VALUE_BITS * (n + bias)
    best = (n * value_bits, 0, np.arange(n), None)          # stored dense
    if nnz < n:
        for bits in range(1, MAX_GAP_BITS + 1):
            gaps, where = _gaps(ordered, bits)
            cost = gaps.size * (value_bits + bits)
            if cost < best[0]:
                best = (cost, bits, where, gaps)
    pruned, gap_bits, where, gaps = best
    zero_index = int(np.flatnonzero(values == 0)[0]) if np.any(values == 0) else -1
    entry_index = np.where(where >= 0, index[np.maximum(where, 0)], zero_index)
    shared = entry_index.size * index_bits + (0 if gaps is None else gaps.size * gap_bits)
    huff = huffman_bits(entry_index.tolist()) + (0 if gaps is None else
                                                 huffman_bits(gaps.tolist()))
    shared_bits = min(shared + table, pruned)
    huffman = min(huff + table, shared_bits)
    return LayerStorage(node.name, n, nnz, _macs(graph, node), positions * nnz, dense_bits,
                        pruned + bias_bits * bias, shared_bits + bias_bits * bias,
                        huffman + bias_bits * bias, gap_bits, k)


@dataclass(frozen=True)
class Storage:
    layers: tuple[LayerStorage, ...]

    def total(self, key: str) -> int:
        return sum(getattr(l, key) for l in self.layers)

    @property
    def ratio(self) -> float:
        """Its own float32 dense storage over its Huffman-coded storage (against another
        model's, as fxq.compress reports it: before.total("dense_bits") / ...)."""
        return self.total("dense_bits") / max(self.total("huffman_bits"), 1)

    def to_json(self) -> dict:
        keys = ("params", "nonzeros", "macs", "nonzero_macs", "dense_bits", "pruned_bits",
                "shared_bits", "huffman_bits")
        return {"layers": [l.to_json() for l in self.layers],
                "total": {k: self.total(k) for k in keys},
                "ratio": {"pruned": self.total("dense_bits") / max(self.total("pruned_bits"), 1),
                          "shared": self.total("dense_bits") / max(self.total("shared_bits"), 1),
                          "huffman": self.ratio}}


def _macs(graph: Graph, node: Node) -> int:
    """A layer's multiply-accumulates per sample, zero weights counted."""
    return _positions(graph, node) * graph.params[dict(graph.param_inputs(node))["weight"]].size


def macs(graph: Graph) -> int:
    """Multiply-accumulates per sample of the Dense and Conv layers (zeros counted)."""
    return sum(_macs(graph, n) for n in graph.nodes if n.op in LAYER_OPS)


def storage(graph: Graph) -> Storage:
    return Storage(tuple(layer_storage(graph, n) for n in graph.nodes if n.op in LAYER_OPS))


def fixed_storage(q) -> Storage:
    """The storage of a QuantizedGraph's Dense and Conv weights: its raw values (zeros
    where rounding made them so), at its weight and bias widths."""
    from fxq.fixed import to_float

    g = q.graph
    params = {name: to_float(q.params[name], q.types[name]) for name in g.params}
    real = g.rebuild(g.nodes, params=params, encodings={})
    layers = []
    for node in g.nodes:
        if node.op not in LAYER_OPS:
            continue
        roles = dict(g.param_inputs(node))
        w_bits = q.types[roles["weight"]].width
        b_bits = q.types[roles["bias"]].width if "bias" in roles else 0
        layers.append(layer_storage(real, node, w_bits, b_bits))
    return Storage(tuple(layers))
