"""Resize and Upsample, nearest (fxq/ops/resize.py): imported across opsets and coordinate
modes, simulated, emitted, verified bit for bit against hls4ml's C simulation, estimated;
maps hls4ml's resize_nearest computes differently are refused, not miscompiled."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

import fxq
from fxq.errors import UnsupportedModelError
from fxq.hls import EmitError, emit_hls
from fxq.op import Op
from helpers import make_model, run_reference_f64, save
from op_checks import check_op


def _conv_resize(rng, resize, extra_inputs=None, spatial=(3, 4)):
    nd = len(spatial)
    nodes = [helper.make_node("Conv", ["x", "w"], ["h"], kernel_shape=[3] * nd, pads=[1] * 2 * nd),
             resize]
    inits = {"w": rng.normal(size=(2, 2) + (3,) * nd).astype(np.float32), **(extra_inputs or {})}
    return make_model(nodes, {"x": ("N", 2) + spatial}, ["y"], inits)


@pytest.mark.parametrize("mode", ["asymmetric", "half_pixel"])
@pytest.mark.parametrize("scale", [2, 3])
def test_integer_upsampling_of_a_feature_map(tmp_path, hls_dir, mode, scale):
    rng = np.random.default_rng(9)
    resize = helper.make_node("Resize", ["h", "", "scales"], ["y"], mode="nearest",
                              coordinate_transformation_mode=mode,
                              nearest_mode="floor" if mode == "asymmetric" else
                              "round_prefer_floor")
    model = _conv_resize(rng, resize, {"scales": np.array([1, 1, scale, scale], np.float32)})
    check_op(model, Op.RESIZE, rng.normal(size=(16, 2, 3, 4)), tmp_path, hls_dir)


def test_sizes_input_and_unequal_scales(tmp_path, hls_dir):
    """sizes fix the batch: a model declaring batch 1 is read; one with a free batch is
    refused (its sizes would resize every batch to 1)."""
    rng = np.random.default_rng(10)
    resize = helper.make_node("Resize", ["h", "", "", "sizes"], ["y"], mode="nearest")
    nodes = [helper.make_node("Conv", ["x", "w"], ["h"], kernel_shape=[3, 3], pads=[1] * 4),
             resize]
    inits = {"w": rng.normal(size=(2, 2, 3, 3)).astype(np.float32),
             "sizes": np.array([1, 2, 6, 4], np.int64)}
    model = make_model(nodes, {"x": (1, 2, 3, 4)}, ["y"], inits)
    check_op(model, Op.RESIZE, rng.normal(size=(1, 2, 3, 4)), tmp_path, hls_dir)
    free = make_model(nodes, {"x": ("N", 2, 3, 4)}, ["y"], inits)
    with pytest.raises(UnsupportedModelError, match=r"resizes the batch or channel axis "
                       r"\(\(N, 2, ...\) to \(1, 2, ...\)\)"):
        fxq.load(save(free, tmp_path, "free.onnx"))


def test_1d_upsampling(tmp_path, hls_dir):
    rng = np.random.default_rng(11)
    resize = helper.make_node("Resize", ["h", "", "scales"], ["y"], mode="nearest")
    model = _conv_resize(rng, resize, {"scales": np.array([1, 1, 2], np.float32)}, spatial=(5,))
    check_op(model, Op.RESIZE, rng.normal(size=(16, 2, 5)), tmp_path, hls_dir)


def test_a_map_hls4ml_computes_differently_is_simulated_but_not_emitted(tmp_path):
    """Asymmetric coordinates rounded to nearest copy position 1 to output 1 at scale 2
    (ONNX), where hls4ml copies position 0: fxq simulates ONNX's and refuses to emit."""
    rng = np.random.default_rng(12)
    resize = helper.make_node("Resize", ["h", "", "scales"], ["y"], mode="nearest",
                              coordinate_transformation_mode="asymmetric",
                              nearest_mode="round_prefer_ceil")
    model = _conv_resize(rng, resize, {"scales": np.array([1, 1, 2, 2], np.float32)})
    graph = fxq.load(save(model, tmp_path))
    x = rng.normal(size=(4, 2, 3, 4))
    np.testing.assert_allclose(graph.run(x), run_reference_f64(model, {"x": x})[0], atol=1e-9)
    q = fxq.quantize(graph, calib=x, bits=8)
    with pytest.raises(EmitError, match="spatial axis 0 this resize copies input positions"):
        emit_hls(q, tmp_path / "hls")
    assert not (tmp_path / "hls").exists()


@pytest.mark.parametrize("node, why", [
    (helper.make_node("Resize", ["x", "", "s"], ["y"], mode="linear"), "mode 'linear'"),
    (helper.make_node("Resize", ["x", "", "s"], ["y"], mode="nearest"), "batch or channel axis"),
])
def test_unsupported_resizes_are_named(tmp_path, node, why):
    scales = np.array([1, 2, 2, 2], np.float32)
    model = make_model([node], {"x": ("N", 2, 3, 3)}, ["y"], {"s": scales})
    with pytest.raises(UnsupportedModelError, match=why):
        fxq.load(save(model, tmp_path))
