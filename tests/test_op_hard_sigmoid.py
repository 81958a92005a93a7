"""HardSigmoid (fxq/ops/hard_sigmoid.py): imported, simulated, searched, emitted, verified
bit for bit against hls4ml's C simulation, and estimated."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from fxq.op import Op
from helpers import make_model
from op_checks import check_op


@pytest.mark.parametrize("alpha, beta", [(1 / 6, 0.5), (0.2, 0.5), (0.37, 0.1)])
def test_hard_sigmoid_after_dense(tmp_path, hls_dir, alpha, beta):
    rng = np.random.default_rng(3)
    nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["h"]),
             helper.make_node("HardSigmoid", ["h"], ["y"], alpha=alpha, beta=beta)]
    model = make_model(nodes, {"x": ("N", 6)}, ["y"],
                       {"w": rng.normal(size=(6, 5)).astype(np.float32) * 2,
                        "b": rng.normal(size=5).astype(np.float32)})
    x = rng.normal(size=(64, 6))
    check_op(model, Op.HARD_SIGMOID, x, tmp_path, hls_dir)


def test_hard_sigmoid_on_a_feature_map(tmp_path, hls_dir):
    rng = np.random.default_rng(4)
    nodes = [helper.make_node("Conv", ["x", "w"], ["h"], kernel_shape=[3, 3], pads=[1] * 4),
             helper.make_node("HardSigmoid", ["h"], ["y"], alpha=1 / 6, beta=0.5)]
    model = make_model(nodes, {"x": ("N", 2, 5, 5)}, ["y"],
                       {"w": rng.normal(size=(3, 2, 3, 3)).astype(np.float32)})
    check_op(model, Op.HARD_SIGMOID, rng.normal(size=(32, 2, 5, 5)) * 3, tmp_path, hls_dir)


def test_defaults_are_onnx_s():
    from fxq.ops.hard_sigmoid import hard_sigmoid
    x = np.array([-5.0, 0.0, 1.0, 5.0])
    np.testing.assert_array_equal(hard_sigmoid(x, slope=0.2, shift=0.5), [0, 0.5, 0.7, 1])
