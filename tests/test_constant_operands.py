"""Add and Mul with a constant operand of any broadcastable shape (scalar, per channel, per
element) are emitted as hls4ml's BatchNormalization (one scale and bias per element) and
verified bit for bit against the C simulation in both io types."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

import fxq
from fxq.hls import verify
from helpers import assert_exact, make_model, run_reference_f64, save

RNG = np.random.default_rng(31)
SHAPES = {"scalar": (), "per_channel": (3, 1, 1), "per_element": (3, 4, 4), "per_row": (4, 1),
          "batched_per_channel": (1, 3, 1, 1)}      # the batched rank (a PyTorch buffer's)


@pytest.mark.parametrize("io_type", ["io_parallel", "io_stream"])
@pytest.mark.parametrize("op", ["Add", "Mul"])
@pytest.mark.parametrize("shape", list(SHAPES))
def test_constant_operand_on_a_feature_map(tmp_path, hls_dir, op, shape, io_type):
    c = np.asarray(RNG.uniform(0.3, 1.7, SHAPES[shape]) * RNG.choice([-1, 1]), np.float32)
    nodes = [helper.make_node("Conv", ["x", "w"], ["h"], kernel_shape=[3, 3], pads=[1] * 4),
             helper.make_node("Tanh", ["h"], ["t"]),        # no bias to fuse the Add into
             helper.make_node(op, ["c", "t"] if shape == "scalar" else ["t", "c"], ["y"])]
    model = make_model(nodes, {"x": ("N", 2, 4, 4)}, ["y"],
                       {"w": RNG.normal(size=(3, 2, 3, 3)).astype(np.float32), "c": c})
    x = RNG.normal(size=(24, 2, 4, 4))
    graph = fxq.load(save(model, tmp_path))
    assert any(n.op.name == op.upper() for n in graph.nodes)      # not folded away
    np.testing.assert_allclose(graph.run(x), run_reference_f64(model, {"x": x})[0], atol=1e-9)
    q = fxq.quantize(graph, calib=x, bits=8, io_type=io_type)
    assert_exact(verify(q, hls_dir, x, overwrite=True))


@pytest.mark.parametrize("op", ["Add", "Mul"])
def test_constant_operand_on_a_vector(tmp_path, hls_dir, op):
    nodes = [helper.make_node("Relu", ["x"], ["h"]), helper.make_node(op, ["h", "c"], ["y"])]
    model = make_model(nodes, {"x": ("N", 6)}, ["y"],
                       {"c": RNG.normal(size=6).astype(np.float32)})
    x = RNG.normal(size=(32, 6))
    q = fxq.quantize(fxq.load(save(model, tmp_path)), calib=x, bits=10)
    assert_exact(verify(q, hls_dir, x, overwrite=True))
