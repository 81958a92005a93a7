"""The example zoo: every model imports, normalizes and matches both float oracles."""
from __future__ import annotations

import os

import numpy as np
import onnx
import pytest

import fxq
from fxq.ir import Op
from helpers import F64_TOLERANCE, ORT_TOLERANCE, ort_error, run_ort, run_reference_f64

from zoo import ZOO

NAMES = list(ZOO)


@pytest.mark.parametrize("name", NAMES)
def test_zoo_model_matches_onnxruntime_and_float64_reference(zoo_dir, name):
    path = os.path.join(zoo_dir, name, "model.onnx")
    data = np.load(os.path.join(zoo_dir, name, "test.npz"))
    graph = fxq.load(path)
    y = graph.run(data["x"])
    assert ort_error(y, run_ort(path, {"x": data["x"]})[0]) <= ORT_TOLERANCE
    exact = run_reference_f64(onnx.load(path), {"x": data["x"]})[0]
    assert np.max(np.abs(y - exact)) <= F64_TOLERANCE


@pytest.mark.parametrize("name", NAMES)
def test_zoo_model_is_accurate_in_float(zoo_dir, name):
    data = np.load(os.path.join(zoo_dir, name, "test.npz"))
    y = fxq.load(os.path.join(zoo_dir, name, "model.onnx")).run(data["x"])
    assert np.mean(y.argmax(axis=1) == data["y"]) > 0.9


def test_zoo_graphs_are_normalized(zoo_dir):
    ops = {name: [n.op for n in fxq.load(os.path.join(zoo_dir, name, "model.onnx")).nodes]
           for name in NAMES}
    for name, seq in ops.items():
        assert Op.IDENTITY not in seq and Op.BATCH_NORM not in seq, name
    cnn = onnx.load(os.path.join(zoo_dir, "cnn_bn", "model.onnx"))
    assert "BatchNormalization" in {n.op_type for n in cnn.graph.node}   # folded by fxq
    assert ops["resnet"].count(Op.ADD) == 1 and Op.GLOBAL_AVG_POOL in ops["resnet"]
    assert Op.AVG_POOL in ops["dwsep"]
    assert ops["mlp"] == [Op.DENSE, Op.RELU] * 3 + [Op.DENSE, Op.SOFTMAX]
