"""ReduceSum over every spatial axis (hls4ml has no sum pooling) is a depthwise convolution
whose all-ones kernel covers the map: exact in fixed point, verified bit for bit against
the C simulation in both io types, 1-D and 2-D, with and without keepdims."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

import fxq
from fxq.hls import verify
from helpers import assert_exact, make_model, run_reference_f64, save

RNG = np.random.default_rng(13)


@pytest.mark.parametrize("io_type", ["io_parallel", "io_stream"])
@pytest.mark.parametrize("spatial, keepdims", [((4, 5), 1), ((7,), 0)])
def test_spatial_sum_is_bit_exact(tmp_path, hls_dir, io_type, spatial, keepdims):
    nd = len(spatial)
    axes = np.array(list(range(2, 2 + nd)), np.int64)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[1] * nd),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("ReduceSum", ["r", "a"], ["y"], keepdims=keepdims)]
    model = make_model(nodes, {"x": ("N", 2) + spatial}, ["y"],
                       {"w": RNG.normal(size=(3, 2) + (1,) * nd).astype(np.float32),
                        "a": axes}, opset=13)
    x = RNG.normal(size=(24, 2) + spatial)
    graph = fxq.load(save(model, tmp_path))
    np.testing.assert_allclose(graph.run(x), run_reference_f64(model, {"x": x})[0], atol=1e-9)
    conv = [n for n in graph.nodes if n.op is fxq.Op.CONV]
    assert conv[-1].attrs["groups"] == 3                # the sum, as a depthwise conv
    q = fxq.quantize(graph, calib=x, bits=8, io_type=io_type)
    assert_exact(verify(q, hls_dir, x, overwrite=True))
