"""PRelu (fxq/ops/prelu.py): imported, simulated, searched, emitted, verified bit for bit
against hls4ml's C simulation, and estimated; slopes per channel, shared, and full."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

import fxq
from fxq.errors import UnsupportedModelError
from fxq.op import Op
from helpers import make_model, save
from op_checks import check_op


def test_prelu_per_feature_after_dense(tmp_path, hls_dir):
    rng = np.random.default_rng(7)
    nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["h"]),
             helper.make_node("PRelu", ["h", "s"], ["y"])]
    model = make_model(nodes, {"x": ("N", 6)}, ["y"],
                       {"w": rng.normal(size=(6, 5)).astype(np.float32),
                        "b": rng.normal(size=5).astype(np.float32),
                        "s": rng.uniform(-0.5, 0.8, size=5).astype(np.float32)})
    check_op(model, Op.PRELU, rng.normal(size=(64, 6)), tmp_path, hls_dir)


@pytest.mark.parametrize("slope_shape", [(3, 1, 1), (1,), (1, 3, 1, 1), (3, 4, 4)])
def test_prelu_on_a_feature_map(tmp_path, hls_dir, slope_shape):
    rng = np.random.default_rng(8)
    nodes = [helper.make_node("Conv", ["x", "w"], ["h"], kernel_shape=[3, 3], pads=[1] * 4),
             helper.make_node("PRelu", ["h", "s"], ["y"])]
    model = make_model(nodes, {"x": ("N", 2, 4, 4)}, ["y"],
                       {"w": rng.normal(size=(3, 2, 3, 3)).astype(np.float32),
                        "s": rng.uniform(0.05, 0.4, size=slope_shape).astype(np.float32)})
    check_op(model, Op.PRELU, rng.normal(size=(32, 2, 4, 4)), tmp_path, hls_dir)


def test_a_slope_along_the_batch_axis_is_refused(tmp_path):
    nodes = [helper.make_node("PRelu", ["x", "s"], ["y"])]
    model = make_model(nodes, {"x": (2, 3)}, ["y"],
                       {"s": np.full((2, 3), 0.1, dtype=np.float32)})
    with pytest.raises(UnsupportedModelError, match="slope of shape .* batch axis"):
        fxq.load(save(model, tmp_path))
