"""What every op added to fxq is held to, end to end, on one ONNX model using it.

`check_op` imports the model, compares fxq's float reference with onnx's float64
ReferenceEvaluator, lets the search choose every type from calibration data, simulates it
with both engines (equal bit for bit), verifies every layer against hls4ml's C simulation
in io_parallel and io_stream (bit for bit), and estimates it (the op's cost rule runs and
gives a figure). The op's node must be in the graph fxq imported, so a converter that
lowers it to other ops does not pass for the op.
"""
from __future__ import annotations

import os

import numpy as np

import fxq
from fxq.estimate import estimate
from fxq.hls import verify
from helpers import F64_TOLERANCE, assert_exact, run_reference_f64, save


def check_op(model, op, x: np.ndarray, tmp_path, hls_dir, *, bits: int = 10,
             io_types=("io_parallel", "io_stream")) -> fxq.QuantizedGraph:
    path = save(model, tmp_path)
    graph = fxq.load(path)
    nodes = [n for n in graph.nodes if n.op is op]
    assert nodes, f"no {op.name} node in {[n.op.name for n in graph.nodes]}"

    want = run_reference_f64(model, {model.graph.input[0].name: x})[0]
    got = graph.run(x)
    assert np.max(np.abs(got - want)) <= F64_TOLERANCE * max(1.0, np.max(np.abs(want)))

    q = fxq.quantize(graph, calib=x, bits=bits)
    numpy_raw = q.simulate(x, raw=True, engine="numpy")
    native_raw = q.simulate(x, raw=True, engine="native")
    np.testing.assert_array_equal(numpy_raw, native_raw)
    real = q.simulate(x)
    assert np.max(np.abs(real - want)) < 0.25 * max(1.0, np.max(np.abs(want))), \
        "the chosen types lose the output"

    for io_type in io_types:
        result = verify(q, os.path.join(hls_dir, io_type), x, io_type=io_type, overwrite=True)
        assert_exact(result)
        compared = {r.tensor for r in result.layers} | set(graph.outputs)
        for node in nodes:
            assert node.output in compared, f"{node.name} was not compared: {result.uncompared}"
        layers = {e.name: e for e in estimate(q, io_type=io_type).layers}
        for node in nodes:
            assert layers[node.name].cost.latency >= 0
    return q
