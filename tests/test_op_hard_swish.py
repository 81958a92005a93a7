"""HardSwish (fxq/ops/hard_swish.py): imported as one node, simulated, searched, emitted as
hls4ml's HardActivation gate and a multiply, verified bit for bit against the C
simulation, and estimated."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from fxq.op import Op
from helpers import make_model
from op_checks import check_op


@pytest.mark.parametrize("bits", [8, 12])
def test_hard_swish_after_dense(tmp_path, hls_dir, bits):
    rng = np.random.default_rng(5)
    nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["h"]),
             helper.make_node("HardSwish", ["h"], ["y"])]
    model = make_model(nodes, {"x": ("N", 6)}, ["y"],
                       {"w": rng.normal(size=(6, 7)).astype(np.float32) * 2,
                        "b": rng.normal(size=7).astype(np.float32)})
    check_op(model, Op.HARD_SWISH, rng.normal(size=(64, 6)), tmp_path, hls_dir, bits=bits)


def test_hard_swish_block_of_a_mobilenet(tmp_path, hls_dir):
    """Conv -> HardSwish -> depthwise conv -> HardSwish, the MobileNetV3 pattern."""
    rng = np.random.default_rng(6)
    nodes = [helper.make_node("Conv", ["x", "w1"], ["h1"], kernel_shape=[1, 1]),
             helper.make_node("HardSwish", ["h1"], ["a1"]),
             helper.make_node("Conv", ["a1", "w2"], ["h2"], kernel_shape=[3, 3], group=4,
                              pads=[1] * 4),
             helper.make_node("HardSwish", ["h2"], ["y"])]
    model = make_model(nodes, {"x": ("N", 3, 6, 6)}, ["y"],
                       {"w1": rng.normal(size=(4, 3, 1, 1)).astype(np.float32),
                        "w2": rng.normal(size=(4, 1, 3, 3)).astype(np.float32)})
    check_op(model, Op.HARD_SWISH, rng.normal(size=(24, 3, 6, 6)) * 2, tmp_path, hls_dir)
