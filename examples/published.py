"""Published synthesis results of hls4ml designs that fxq's estimator is compared against
(`make bench`, tests/test_estimate.py), with the designs rebuilt in fxq's IR.

fc16x5: hls4ml's own report-test design (hls4ml repository, test/pytest/test_report.py and
its Vivado report files): a Keras Dense(16 -> 5) with ReLU, ap_fixed<16,6> for every type,
io_stream, latency strategy, reuse 1, xc7z020clg400-1 at 5 ns, Vivado HLS 2020.1. Its
weights were Keras' Glorot-uniform initialization, not published: fxq draws them the same
way from five seeds and reports the spread.

jet_tagger: the hls4ml tutorial's jet-tagging MLP (part 1) at ap_fixed<16,6>, io_parallel,
R=1 on xcu250 with hls4ml 1.2.0 and Vivado HLS 2019.2, as one user published it (see the
function's docstring).
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


JET_TAGGER = {
    "design": "jet tagger MLP 16-64-32-32-5, ReLU, softmax, ap_fixed<16,6>, io_parallel, "
              "R=1, xcu250, Vivado HLS 2019.2 (hls4ml 1.2.0)",
    "part": "xcu250-figd2104-2L-e", "io_type": "io_parallel",
    "csynth": {"latency": 12, "ii": 1, "dsp": 2118, "lut": 109753, "ff": 12562, "bram18": 4},
    "vsynth": {},
}


def jet_tagger(seed: int) -> QuantizedGraph:
    """The hls4ml tutorial's jet tagger (part 1) as run with hls4ml 1.2.0 and Vivado HLS
    2019.2, xcu250-figd2104-2L-e at 5 ns (github.com/Liu-Zhiheng/hls4ml-pynqz2-vivado2019-2-
    results, notebooks/part1_getting_started_vivado2019_2.ipynb: C synthesis report and the
    `ap_fixed<16, 6, AP_TRN, AP_WRAP>` of every dense instance). Its trained weights (L1
    1e-4, 10 epochs on the OpenML jet data) are not published in text: fxq draws them from
    the same LeCun-uniform initialization, five seeds."""
    rng = np.random.default_rng(seed)
    sizes = [16, 64, 32, 32, 5]
    nodes, tensors, params = [], {"x": Tensor("x", (16,))}, {}
    src = "x"
    for i, (n_in, n_out) in enumerate(zip(sizes, sizes[1:])):
        limit = np.sqrt(3 / n_in)                        # LeCun uniform
        params[f"w{i}"] = rng.uniform(-limit, limit, (n_in, n_out))
        params[f"b{i}"] = np.zeros(n_out)
        nodes.append(Node(f"fc{i}", Op.DENSE, (src, f"w{i}", f"b{i}"), (f"h{i}",)))
        tensors[f"h{i}"] = Tensor(f"h{i}", (n_out,))
        last = i == len(sizes) - 2
        op, out, attrs = (Op.SOFTMAX, "y", {"axes": (1,)}) if last else (Op.RELU, f"a{i}", {})
        nodes.append(Node(f"act{i}", op, (f"h{i}",), (out,), attrs))
        tensors[out] = Tensor(out, (n_out,))
        src = out
    graph = Graph.build("jet_tagger", ["x"], ["y"], nodes, tensors, params)
    t = FixedType(16, 10)                                # ap_fixed<16,6>
    return uniform(graph, data=t, weight=t, bias=t, accum=t)
