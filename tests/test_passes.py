"""Normalizing passes: each rewrite keeps the float function and removes what it targets."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from fxq.ir import Op
from fxq.onnx_import import load
from helpers import make_model, save

RNG = np.random.default_rng(7)
N = helper.make_node


def both(tmp_path, nodes, inputs, init, outputs=("y",)):
    path = save(make_model(nodes, inputs, list(outputs), init), tmp_path)
    return load(path, normalize=False), load(path)


def assert_same_function(raw, normalized, shape):
    x = RNG.standard_normal((4,) + shape)
    np.testing.assert_allclose(normalized.run(x), raw.run(x), rtol=1e-12, atol=1e-12)


def test_batchnorm_folds_into_conv(tmp_path):
    raw, norm = both(tmp_path, [N("Conv", ["x", "w"], ["c"]),
                                N("BatchNormalization", ["c", "s", "b", "m", "v"], ["y"])],
                     {"x": ("N", 2, 5, 5)},
                     {"w": RNG.standard_normal((3, 2, 3, 3)).astype(np.float32),
                      **{k: RNG.random(3).astype(np.float32) + 0.5 for k in "sbmv"}})
    assert [n.op for n in raw.nodes] == [Op.CONV, Op.BATCH_NORM]
    assert [n.op for n in norm.nodes] == [Op.CONV] and len(norm.nodes[0].inputs) == 3
    assert_same_function(raw, norm, (2, 5, 5))


def test_batchnorm_without_a_layer_stays_scale_and_shift(tmp_path):
    _, norm = both(tmp_path, [N("Relu", ["x"], ["r"]),
                              N("BatchNormalization", ["r", "s", "b", "m", "v"], ["y"])],
                   {"x": ("N", 3, 4)}, {k: RNG.random(3).astype(np.float32) + 0.5 for k in "sbmv"})
    assert [n.op for n in norm.nodes] == [Op.RELU, Op.BATCH_NORM]


def test_batchnorm_after_shared_conv_output_is_not_folded(tmp_path):
    raw, norm = both(tmp_path, [N("Conv", ["x", "w"], ["c"]),
                                N("BatchNormalization", ["c", "s", "b", "m", "v"], ["n"]),
                                N("Add", ["n", "c"], ["y"])],
                     {"x": ("N", 3, 4, 4)},
                     {"w": RNG.standard_normal((3, 3, 1, 1)).astype(np.float32),
                      **{k: RNG.random(3).astype(np.float32) + 0.5 for k in "sbmv"}})
    assert Op.BATCH_NORM in [n.op for n in norm.nodes]
    assert_same_function(raw, norm, (3, 4, 4))


def test_matmul_add_becomes_dense_with_bias(tmp_path):
    raw, norm = both(tmp_path, [N("MatMul", ["x", "w"], ["t"]), N("Add", ["t", "b"], ["y"])],
                     {"x": ("N", 6)}, {"w": RNG.random((6, 4)).astype(np.float32),
                                       "b": RNG.random(4).astype(np.float32)})
    assert [n.op for n in raw.nodes] == [Op.DENSE, Op.ADD]
    assert [n.op for n in norm.nodes] == [Op.DENSE] and len(norm.nodes[0].inputs) == 3
    assert norm.outputs == ("y",)
    assert_same_function(raw, norm, (6,))


def test_add_of_non_bias_constant_is_kept(tmp_path):
    _, norm = both(tmp_path, [N("MatMul", ["x", "w"], ["t"]), N("Add", ["t", "b"], ["y"])],
                   {"x": ("N", 3, 6)}, {"w": RNG.random((6, 4)).astype(np.float32),
                                        "b": RNG.random((3, 1)).astype(np.float32)})
    assert [n.op for n in norm.nodes] == [Op.DENSE, Op.ADD]


def test_identity_chain_is_removed_and_output_keeps_its_name(tmp_path):
    raw, norm = both(tmp_path, [N("Relu", ["x"], ["a"]), N("Identity", ["a"], ["b"]),
                                N("Dropout", ["b"], ["c"]), N("Tanh", ["c"], ["d"]),
                                N("Identity", ["d"], ["y"])], {"x": ("N", 5)}, {})
    assert [n.op for n in norm.nodes] == [Op.RELU, Op.TANH]
    assert norm.outputs == ("y",) and norm.nodes[-1].output == "y"
    assert_same_function(raw, norm, (5,))


def test_identity_from_input_to_output_is_kept(tmp_path):
    _, norm = both(tmp_path, [N("Identity", ["x"], ["y"])], {"x": ("N", 5)}, {})
    assert [n.op for n in norm.nodes] == [Op.IDENTITY]
    np.testing.assert_array_equal(norm.run(np.ones((2, 5))), np.ones((2, 5)))


def test_graph_is_immutable_and_printable(tmp_path):
    _, norm = both(tmp_path, [N("MatMul", ["x", "w"], ["y"])], {"x": ("N", 6)},
                   {"w": RNG.random((6, 4)).astype(np.float32)})
    with pytest.raises(TypeError):
        norm.nodes[0].attrs["x"] = 1
    text = str(norm)
    assert "DENSE" in text and "x[N,6]" in text and "y[N,4]" in text
