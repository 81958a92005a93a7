"""How far a compressed network's output is from the float one's, on a sample of the data."""
from __future__ import annotations

from typing import Any

import numpy as np

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
