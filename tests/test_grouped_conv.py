"""Grouped convolution (groups other than 1 and depthwise, depthwise with a channel
multiplier) is emitted as one hls4ml Conv whose weights are zero between groups; verified
bit for bit against the C simulation in both io types."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

import fxq
from fxq.hls import verify
from helpers import assert_exact, make_model, run_reference_f64, save

RNG = np.random.default_rng(8)


@pytest.mark.parametrize("io_type", ["io_parallel", "io_stream"])
@pytest.mark.parametrize("spatial, groups, weight", [
    ((6, 5), 2, (6, 2, 3, 3)),          # 4 channels in 2 groups, 3 filters each
    ((9,), 3, (6, 1, 3)),               # depthwise with channel multiplier 2
])
def test_grouped_conv_is_bit_exact(tmp_path, hls_dir, io_type, spatial, groups, weight):
    nd = len(spatial)
    channels = weight[1] * groups
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], group=groups,
                              kernel_shape=list(weight[2:]), pads=[1] * (2 * nd)),
             helper.make_node("Relu", ["c"], ["y"])]
    model = make_model(nodes, {"x": ("N", channels) + spatial}, ["y"],
                       {"w": RNG.normal(size=weight).astype(np.float32),
                        "b": RNG.normal(size=weight[0]).astype(np.float32)})
    x = RNG.normal(size=(24, channels) + spatial)
    graph = fxq.load(save(model, tmp_path))
    np.testing.assert_allclose(graph.run(x), run_reference_f64(model, {"x": x})[0], atol=1e-9)
    assert graph.nodes[0].attrs["groups"] == groups
    q = fxq.quantize(graph, calib=x, bits=8, io_type=io_type)
    assert_exact(verify(q, hls_dir, x, overwrite=True))
