"""Random quantized Dense layers for the open RTL path's calibration and tests: sizes,
weight and feature-map widths, sparsity and a ReLU or not drawn from a seed, the types
chosen by fxq's own search on random calibration data (so rounding and saturation modes
are fxq's usual ones)."""
from __future__ import annotations

import numpy as np

from fxq.ir import Graph, Node, Op, Tensor


def random_layer(seed: int, *, max_in: int = 32, max_out: int = 16):
    """(QuantizedGraph, description) of one Dense layer (+ ReLU half of the time)."""
    import fxq

    rng = np.random.default_rng(seed)
    n_in, n_out = int(rng.integers(4, max_in + 1)), int(rng.integers(2, max_out + 1))
    w_bits, a_bits = int(rng.integers(3, 9)), int(rng.integers(4, 9))
    sparsity = float(rng.choice([0.0, 0.0, 0.5, 0.8]))
    relu = bool(rng.integers(0, 2))
    w = rng.normal(0, 1 / np.sqrt(n_in), (n_in, n_out))
    w[rng.random(w.shape) < sparsity] = 0.0
    nodes = [Node("fc", Op.DENSE, ("x", "w", "b"), ("h",))]
    tensors = {"x": Tensor("x", (n_in,)), "h": Tensor("h", (n_out,))}
    out = "h"
    if relu:
        nodes.append(Node("relu", Op.RELU, ("h",), ("y",)))
        tensors["y"] = Tensor("y", (n_out,))
        out = "y"
    graph = Graph.build("layer", ["x"], [out], nodes, tensors,
                        {"w": w, "b": rng.normal(0, 0.1, n_out)})
    calib = rng.normal(0, 1, (256, n_in))
    q = fxq.quantize(graph, calib, weight_bits=w_bits, act_bits=a_bits)
    desc = {"seed": seed, "n_in": n_in, "n_out": n_out, "weight_bits": w_bits,
            "act_bits": a_bits, "sparsity": sparsity, "relu": relu}
    return q, desc
