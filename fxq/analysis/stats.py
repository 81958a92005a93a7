"""What the report and the plots need of each tensor on the calibration data, gathered as
the values pass, so that no stage holds every tensor of the whole data set at once.

`TensorStats` accumulates, over any number of batches, a tensor's float range, its energy
and the energy of its fixed-point error (the SQNR), how many values lie outside its type,
and a histogram of log2 |value| on a fixed grid (quarter octaves), which the range plots
draw. The analysis fills one per tensor while the tensor is live; `tensor_stats` fills
them in batches for a QuantizedGraph, `float_stats` for a float graph alone.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from fxq.data import bind_inputs
from fxq.fixed import FixedType, to_float
from fxq.ir import Graph
from fxq.memory import batch_size

LOG2_STEP = 0.25
LOG2_EDGES = np.arange(-96.0, 96.0 + LOG2_STEP, LOG2_STEP)   # 2^-96 .. 2^96
STATS_BATCH = 512                 # samples per pass at most when stats are gathered alone


def outside_range(reference: np.ndarray, t: FixedType) -> np.ndarray:
    """Where float values lie beyond half an LSB past either end of t's range."""
    half = t.resolution / 2
    return (reference < t.min - half) | (reference > t.max + half)


@dataclass
class TensorStats:
    count: int = 0
    low: float = math.inf
    high: float = -math.inf
    signal: float = 0.0                # sum of squares of the float values
    noise: float = 0.0                 # sum of squares of fixed point minus float
    compared: bool = False             # a fixed-point value was given with the floats
    outside: int = 0                   # float values beyond the type's range
    zeros: int = 0
    hist: np.ndarray = field(default_factory=lambda: np.zeros(len(LOG2_EDGES) - 1, np.int64))

    def add(self, values: np.ndarray, t: FixedType | None = None,
            fixed: np.ndarray | None = None) -> None:
        """One batch: float `values`; with `t`, the tensor's type (counts values outside
        it); with `fixed`, the fixed-point real values of the same elements."""
        values = np.asarray(values, dtype=np.float64)
        if values.size == 0:
            return
        self.count += values.size
        self.low = min(self.low, float(values.min()))
        self.high = max(self.high, float(values.max()))
        self.signal += float(np.sum(values * values))
        if fixed is not None:
            self.compared = True
            d = values - fixed
            self.noise += float(np.sum(d * d))
        if t is not None:
            self.outside += int(np.count_nonzero(outside_range(values, t)))
        magnitude = np.abs(values.ravel())
        magnitude = magnitude[magnitude > 0]
        self.zeros += values.size - magnitude.size
        logs = np.clip(np.log2(magnitude), LOG2_EDGES[0], LOG2_EDGES[-1] - LOG2_STEP / 2)
        # np.histogram's bins [e_i, e_i+1) of these uniform edges, by index: logs / step is
        # exact (a power of two), so its floor is the bin searchsorted would find
        bins = np.floor(logs / LOG2_STEP).astype(np.intp) - int(LOG2_EDGES[0] / LOG2_STEP)
        self.hist += np.bincount(bins, minlength=len(self.hist))

    @property
    def max_abs(self) -> float:
        return max(abs(self.low), abs(self.high)) if self.count else 0.0

    @property
    def sqnr_db(self) -> float | None:
        """10 log10(signal / noise); None when the fixed point is exact."""
        if self.noise == 0.0:
            return None
        return 10.0 * math.log10(self.signal / self.noise) if self.signal > 0 else -math.inf

    @property
    def clipped(self) -> float:
        return self.outside / self.count if self.count else 0.0


def float_stats(graph: Graph, x: Any, types: Mapping[str, FixedType] | None = None) \
        -> dict[str, TensorStats]:
    """Every activation tensor's statistics under the float model on `x`, in batches (each
    tensor freed after its readers); values outside `types` counted where given."""
    from fxq.reference import walk

    bound = bind_inputs(graph, x)
    n = next(iter(bound.values())).shape[0]
    batch = min(batch_size(graph, 8 * 2, "the statistics"), STATS_BATCH)
    stats: dict[str, TensorStats] = {}
    for start in range(0, max(n, 1), batch):
        part = {k: v[start:start + batch] for k, v in bound.items()}
        for tensor, f in walk(graph, part):
            t = types.get(tensor) if types is not None else None
            stats.setdefault(tensor, TensorStats()).add(f, t)
    return stats


def tensor_stats(q, x: Any, reference=None) -> dict[str, TensorStats]:
    """Every activation tensor's statistics on `x`: the float model (`reference`, else q's
    graph) and `q`'s fixed-point values side by side, in batches sized to the memory."""
    from fxq.reference import evaluate

    g = reference or q.graph
    bound = bind_inputs(g, x, source="calibration data")
    n = next(iter(bound.values())).shape[0]
    batch = min(batch_size(g, 8 * 3, "the report"), STATS_BATCH)
    stats: dict[str, TensorStats] = {}
    for start in range(0, max(n, 1), batch):
        part = {k: v[start:start + batch] for k, v in bound.items()}
        floats, raws = evaluate(g, part), q.evaluate(part)
        for tensor, f in floats.items():
            t = q.types[tensor]
            stats.setdefault(tensor, TensorStats()).add(f, t, to_float(raws[tensor], t))
        del floats, raws
    return stats
