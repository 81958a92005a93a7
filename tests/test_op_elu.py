"""Elu and Selu (fxq/ops/elu.py): imported, simulated, searched, emitted, verified bit for
bit against hls4ml's C simulation, and estimated; their tables as hls4ml's C++ fills them."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from fxq.fixed import FixedType
from fxq.op import Op
from fxq.ops import tables
import fxq
from fxq.errors import FxqError
from fxq.ops.elu import ELU_TABLE, SELU_TABLE, elu, selu
from helpers import make_model, save
from op_checks import check_op


@pytest.mark.parametrize("alpha", [1.0, 0.3, 1.7])
def test_elu_after_dense(tmp_path, hls_dir, alpha):
    rng = np.random.default_rng(5)
    nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["h"]),
             helper.make_node("Elu", ["h"], ["y"], alpha=alpha)]
    model = make_model(nodes, {"x": ("N", 6)}, ["y"],
                       {"w": rng.normal(size=(6, 5)).astype(np.float32) * 3,
                        "b": rng.normal(size=5).astype(np.float32)})
    check_op(model, Op.ELU, rng.normal(size=(64, 6)), tmp_path, hls_dir)


def test_elu_on_a_feature_map_below_the_table(tmp_path, hls_dir):
    """Inputs below -8 take the table's last entry (the index is capped)."""
    rng = np.random.default_rng(6)
    nodes = [helper.make_node("Conv", ["x", "w"], ["h"], kernel_shape=[3, 3], pads=[1] * 4),
             helper.make_node("Elu", ["h"], ["y"])]
    model = make_model(nodes, {"x": ("N", 2, 5, 5)}, ["y"],
                       {"w": rng.normal(size=(3, 2, 3, 3)).astype(np.float32) * 2})
    check_op(model, Op.ELU, rng.normal(size=(32, 2, 5, 5)) * 4, tmp_path, hls_dir)


def test_table_is_expm1_over_minus_eight_to_zero():
    size = 1024
    raw = tables.elu_table(size, ELU_TABLE)
    x = -8.0 * np.arange(size) / size
    assert np.max(np.abs(raw * 2.0 ** -ELU_TABLE.frac - np.expm1(x))) <= 2.0 ** -ELU_TABLE.frac
    assert raw[0] == 0 and np.all(np.diff(raw) <= 0)
    # a coarser table type takes the same floats by its own rounding (TRN: toward -inf)
    assert tables.elu_table(16, FixedType(8, 6)).tolist()[:2] == [0, -26]


def test_float_reference_is_onnx_s():
    x = np.array([-20.0, -1.0, 0.0, 2.5])
    np.testing.assert_allclose(elu(x, alpha=0.5), [0.5 * np.expm1(-20), 0.5 * np.expm1(-1), 0, 2.5])


def test_selu_after_dense(tmp_path, hls_dir):
    """gamma held in ap_ufixed<16,1> above zero in io_parallel, in the input's own type in
    io_stream (check_op verifies both against the C simulation)."""
    rng = np.random.default_rng(7)
    nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["h"]),
             helper.make_node("Selu", ["h"], ["y"])]
    model = make_model(nodes, {"x": ("N", 6)}, ["y"],
                       {"w": rng.normal(size=(6, 5)).astype(np.float32) * 3,
                        "b": rng.normal(size=5).astype(np.float32)})
    check_op(model, Op.SELU, rng.normal(size=(64, 6)), tmp_path, hls_dir)


def test_selu_with_other_constants_is_refused(tmp_path):
    model = make_model([helper.make_node("Selu", ["x"], ["y"], alpha=1.5)], {"x": ("N", 4)},
                       ["y"], {})
    with pytest.raises(FxqError, match="Selu node .*alpha 1.5.*compiled in"):
        fxq.load(save(model, tmp_path))


def test_selu_table_and_reference():
    size = 1024
    raw = tables.selu_table(size, SELU_TABLE)
    x = -8.0 * np.arange(size) / size
    want = 1.0507009873554805 * 1.6732632423543772 * np.expm1(x)
    assert np.max(np.abs(raw * 2.0 ** -SELU_TABLE.frac - want)) <= 2.0 ** -SELU_TABLE.frac
    np.testing.assert_allclose(selu(np.array([-1.0, 0.0, 2.0])),
                               [1.0507010 * 1.6732632 * np.expm1(-1), 0, 2.1014020], rtol=1e-6)
