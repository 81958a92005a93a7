"""How far a compressed network's output is from the float one's, on a sample of the data."""
from __future__ import annotations

from typing import Any, Callable, Hashable, Iterable

import numpy as np

from fxq.compress.walk import Replacement, Visit, apply, lockstep
from fxq.data import bind_inputs
from fxq.ir import Graph

CURVE_SAMPLES = 1024     # calibration samples the sensitivity curves are measured on


def output_error(y: Any, ref: Any) -> float:
    """The output's squared error relative to its variance (all outputs together)."""
    ys = y.values() if isinstance(y, dict) else [y]
    rs = ref.values() if isinstance(ref, dict) else [ref]
    num = sum(float(np.sum((a - b) ** 2)) for a, b in zip(ys, rs))
    den = sum(float(np.sum((b - b.mean(axis=0)) ** 2)) for b in rs)
    return num / max(den, 1e-300)


def subsample(graph: Graph, calib: Any, n: int = CURVE_SAMPLES) -> dict:
    """The first `n` samples of every input."""
    bound = bind_inputs(graph, calib)
    return {k: v[:n] for k, v in bound.items()}


def one_layer_curves(graph: Graph, calib: Any, layers: Iterable[str],
                     prepare: Callable[[Visit], Any],
                     trials: Callable[[Visit, Any], Iterable[tuple[Hashable, Replacement]]]) \
        -> dict[str, dict[Hashable, float]]:
    """Sensitivity curves: per layer, the network's output error (output_error, on the
    first CURVE_SAMPLES samples) with that layer alone replaced by each of `trials`'
    (level, replacement) pairs. `prepare` sees each layer once, on the float model's
    inputs, and what it returns is handed to `trials` with a visit to build replacements."""
    wanted = list(layers)
    names = set(wanted)
    prepared: dict[str, Any] = {}

    def collect(v: Visit):
        if v.node.name in names:
            prepared[v.node.name] = prepare(v)
        return None

    lockstep(graph, graph, calib, collect)
    sample = subsample(graph, calib)
    reference = graph.run(sample)
    curves: dict[str, dict[Hashable, float]] = {}
    for name in wanted:
        visit = Visit(graph, graph.node(name), [], None, {})
        curves[name] = {level: output_error(apply(graph, {name: r}).run(sample), reference)
                        for level, r in trials(visit, prepared[name])}
    return curves
