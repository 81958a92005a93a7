"""Concat of any number of inputs is emitted as a chain of hls4ml's two-input
Concatenate layers, bit for bit against the C simulation in both io types."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

import fxq
from fxq.hls import verify
from helpers import assert_exact, make_model, run_reference_f64, save

RNG = np.random.default_rng(41)


@pytest.mark.parametrize("io_type", ["io_parallel", "io_stream"])
@pytest.mark.parametrize("branches", [3, 4])
def test_concat_of_several_feature_maps(tmp_path, hls_dir, io_type, branches):
    nodes, inits = [], {}
    for i in range(branches):
        inits[f"w{i}"] = RNG.normal(size=(i + 1, 2, 1, 1)).astype(np.float32)
        nodes += [helper.make_node("Conv", ["x", f"w{i}"], [f"c{i}"], kernel_shape=[1, 1]),
                  helper.make_node("Relu", [f"c{i}"], [f"r{i}"])]
    nodes.append(helper.make_node("Concat", [f"r{i}" for i in range(branches)], ["y"], axis=1))
    model = make_model(nodes, {"x": ("N", 2, 3, 3)}, ["y"], inits)
    x = RNG.normal(size=(16, 2, 3, 3))
    graph = fxq.load(save(model, tmp_path))
    np.testing.assert_allclose(graph.run(x), run_reference_f64(model, {"x": x})[0], atol=1e-9)
    q = fxq.quantize(graph, calib=x, bits=8, io_type=io_type)
    assert_exact(verify(q, hls_dir, x, overwrite=True))


def test_concat_of_several_vectors(tmp_path, hls_dir):
    nodes = [helper.make_node("Relu", ["x"], ["a"]), helper.make_node("Tanh", ["x"], ["b"]),
             helper.make_node("Sigmoid", ["x"], ["c"]),
             helper.make_node("Concat", ["a", "b", "c"], ["y"], axis=1)]
    model = make_model(nodes, {"x": ("N", 5)}, ["y"])
    x = RNG.normal(size=(32, 5))
    q = fxq.quantize(fxq.load(save(model, tmp_path)), calib=x, bits=10)
    assert_exact(verify(q, hls_dir, x, overwrite=True))
