"""Shared test helpers: building ONNX models, and the two float oracles.

Oracles for the float reference:
* onnxruntime (float32): fxq agrees within 1e-5 scaled by max(1, |y|), the size of
  onnxruntime's own float32 rounding on large outputs;
* onnx's ReferenceEvaluator in float64 (initializers and inputs cast to double): fxq's
  float64 reference agrees within 1e-9, i.e. exactly but for summation order.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

ORT_TOLERANCE = 1e-5
F64_TOLERANCE = 1e-9


def make_model(nodes, inputs: dict[str, tuple], outputs: list[str],
               initializers: dict[str, np.ndarray] | None = None, opset: int = 17,
               name: str = "test") -> onnx.ModelProto:
    """A model from nodes; input shapes may use "N" for the batch axis."""
    graph = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(s)) for n, s in inputs.items()],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs],
        initializer=[numpy_helper.from_array(np.asarray(v), k)
                     for k, v in (initializers or {}).items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = min(model.ir_version, 10)   # readable by the installed onnxruntime
    model = onnx.shape_inference.infer_shapes(model)   # fills in the output shapes
    onnx.checker.check_model(model)
    return model


def save(model: onnx.ModelProto, tmp_path, name: str = "model.onnx") -> str:
    path = os.path.join(os.fspath(tmp_path), name)
    onnx.save(model, path)
    return path


def run_ort(path_or_model, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    source = path_or_model if isinstance(path_or_model, str) else \
        path_or_model.SerializeToString()
    session = ort.InferenceSession(source, providers=["CPUExecutionProvider"])
    return session.run(None, {k: v.astype(np.float32) for k, v in feeds.items()})


def run_reference_f64(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """onnx's ReferenceEvaluator with every float initializer and input in float64."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    for t in model.graph.initializer:
        if t.data_type == TensorProto.FLOAT:
            t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float64),
                                               t.name))
    for node in model.graph.node:
        for a in node.attribute:
            if a.type == onnx.AttributeProto.TENSOR and a.t.data_type == TensorProto.FLOAT:
                a.t.CopyFrom(numpy_helper.from_array(
                    numpy_helper.to_array(a.t).astype(np.float64), a.t.name))
    for v in list(model.graph.input) + list(model.graph.output):
        if v.type.tensor_type.elem_type == TensorProto.FLOAT:
            v.type.tensor_type.elem_type = TensorProto.DOUBLE
    del model.graph.value_info[:]
    feeds = {k: v.astype(np.float64) for k, v in feeds.items()}
    return ReferenceEvaluator(model).run(None, feeds)


def ort_error(got: np.ndarray, want: np.ndarray) -> float:
    """Max abs difference, scaled down by max(1, max |want|)."""
    return float(np.max(np.abs(got - want)) / max(1.0, float(np.max(np.abs(want)))))


def fxq_cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fxq", *args], capture_output=True,
                          text=True, cwd=cwd)


def compile_zoo(zoo_dir: str, name: str, out, *flags: str):
    """`fxq compile` of zoo model `name` on its calibration data into `out` with `flags`:
    (the finished process, report.json's contents or None when it failed)."""
    run = fxq_cli("compile", os.path.join(zoo_dir, name, "model.onnx"), "--calib",
                  os.path.join(zoo_dir, name, "calib.npz"), "-o", str(out), *flags)
    if run.returncode:
        return run, None
    with open(os.path.join(out, "report.json")) as f:
        return run, json.load(f)


def assert_exact(result) -> None:
    """A VerifyResult with something compared and zero mismatches."""
    assert result.compared > 0 and result.layers
    assert result.ok, str(result)
