"""Published synthesis results of hls4ml designs that fxq's estimator is compared against
(`make bench`, tests/test_estimate.py), with the designs rebuilt in fxq's IR.

fc16x5: hls4ml's own report-test design (hls4ml repository, test/pytest/test_report.py and
its Vivado report files): a Keras Dense(16 -> 5) with ReLU, ap_fixed<16,6> for every type,
io_stream, latency strategy, reuse 1, xc7z020clg400-1 at 5 ns, Vivado HLS 2020.1. Its
weights were Keras' Glorot-uniform initialization, not published: fxq draws them the same
way from five seeds and reports the spread.
"""
from __future__ import annotations

import numpy as np

from fxq.fixed import FixedType
from fxq.ir import Graph, Node, Op, Tensor
from fxq.quantized import QuantizedGraph, uniform

FC16X5 = {
    "design": "Dense 16->5 + ReLU, ap_fixed<16,6>, io_stream, R=1, xc7z020, Vivado HLS 2020.1",
    "part": "xc7z020clg400-1", "io_type": "io_stream",
    "csynth": {"latency": 10, "ii": 8, "dsp": 73, "lut": 2532, "ff": 7969, "bram18": 0},
    "vsynth": {"dsp": 66, "lut": 1526, "ff": 2428, "bram18": 0},
}


def fc16x5(seed: int) -> QuantizedGraph:
    rng = np.random.default_rng(seed)
    limit = np.sqrt(6 / (16 + 5))                      # Glorot uniform
    graph = Graph.build("fc1", ["x"], ["y"],
                        [Node("fc1", Op.DENSE, ("x", "w", "b"), ("h",)),
                         Node("relu", Op.RELU, ("h",), ("y",))],
                        {"x": Tensor("x", (16,)), "h": Tensor("h", (5,)),
                         "y": Tensor("y", (5,))},
                        {"w": rng.uniform(-limit, limit, (16, 5)), "b": np.zeros(5)})
    t = FixedType(16, 10)                              # ap_fixed<16,6>
    return uniform(graph, data=t, weight=t, bias=t, accum=t, io_type="io_stream")
