"""The example zoo: every model, in both of torch's exports, imports, normalizes, matches both
float oracles, and compiles at 8 bits to a design bit-exact against the C simulation."""
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
EXPORTS = {"torchscript": "model.onnx", "dynamo": "model_dynamo.onnx"}


@pytest.mark.parametrize("export", list(EXPORTS))
@pytest.mark.parametrize("name", NAMES)
def test_zoo_model_matches_onnxruntime_and_float64_reference(zoo_dir, name, export):
    path = os.path.join(zoo_dir, name, EXPORTS[export])
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


@pytest.mark.parametrize("name", NAMES)
def test_both_exports_give_the_same_graph_function(zoo_dir, name):
    """Up to float32 rounding: the dynamo exporter folds BatchNorm in float32."""
    data = np.load(os.path.join(zoo_dir, name, "test.npz"))["x"]
    a, b = (fxq.load(os.path.join(zoo_dir, name, f)) for f in EXPORTS.values())
    assert ort_error(a.run(data), b.run(data)) <= ORT_TOLERANCE


@pytest.mark.parametrize("name", NAMES)
def test_dynamo_export_compiles_and_verifies_bit_for_bit(zoo_dir, name, hls_dir, tmp_path):
    """compile at 8 bits (io_stream for the convolutional models), then the C simulation."""
    from fxq.hls import verify
    from helpers import assert_exact

    calib = np.load(os.path.join(zoo_dir, name, "calib.npz"))["x"]
    test = np.load(os.path.join(zoo_dir, name, "test.npz"))["x"][:50]
    io = "io_parallel" if name == "mlp" else "io_stream"
    result = fxq.compile(os.path.join(zoo_dir, name, EXPORTS["dynamo"]), calib,
                         config=fxq.analysis.BitConfig.of(8), target=fxq.Target(io_type=io))
    assert_exact(verify(result.q, hls_dir, test, overwrite=True))
