"""fxq IR -> ONNX: the written model is the same function (exactly, for float32 parameters),
onnxruntime runs it, and it keeps the IR's node names."""
from __future__ import annotations

import os

import numpy as np
import onnx
import pytest

import fxq
from fxq.errors import FxqError
from fxq.onnx_export import as_float32, save_onnx, to_onnx
from helpers import make_model, run_ort, save
from random_graphs import BUILDERS


def _by_role(graph):
    return {(n.name, r): graph.params[t] for n in graph.nodes for r, t in graph.param_inputs(n)}


def _f32(graph):
    return as_float32(graph)


def _round_trip(graph, tmp_path):
    path = str(tmp_path / "exported.onnx")
    save_onnx(graph, path, overwrite=True)
    return fxq.load(path), path


def _cases(zoo_dir):
    for name in sorted(os.listdir(zoo_dir)):
        if os.path.isfile(os.path.join(zoo_dir, name, "model.onnx")):
            x = np.load(os.path.join(zoo_dir, name, "calib.npz"))["x"][:32]
            yield name, fxq.load(os.path.join(zoo_dir, name, "model.onnx")), x
    for kind, build in sorted(BUILDERS.items()):
        for seed in range(2):
            q, x = build(np.random.default_rng(seed), "io_parallel")
            yield f"{kind}{seed}", q.graph, x


def test_a_float32_graph_exports_exactly_and_onnxruntime_agrees(zoo_dir, tmp_path):
    for name, graph, x in _cases(zoo_dir):
        graph = _f32(graph)
        back, path = _round_trip(graph, tmp_path)
        names = [n.name for n in back.nodes]
        assert all(n.name in names for n in graph.nodes), name
        np.testing.assert_array_equal(back.run(x), graph.run(x), err_msg=name)
        if [n.op for n in back.nodes] == [n.op for n in graph.nodes]:
            a, b = _by_role(graph), _by_role(back)
            assert a.keys() == b.keys(), name
            for k in a:
                np.testing.assert_array_equal(a[k], b[k], err_msg=f"{name} {k}")
        (y,) = run_ort(path, {graph.inputs[0]: x.astype(np.float32)})
        want = graph.run(x)
        scale = float(np.max(np.abs(want))) or 1.0
        assert float(np.max(np.abs(y - want))) <= 1e-4 * scale, name


def test_other_parameters_are_rounded_to_float32_once(zoo_dir, tmp_path):
    graph = fxq.load(os.path.join(zoo_dir, "cnn_bn", "model.onnx"))     # BN folded: float64
    back, _ = _round_trip(graph, tmp_path)
    again, _ = _round_trip(back, tmp_path)
    a, b, c = _by_role(graph), _by_role(back), _by_role(again)
    assert any(not np.array_equal(a[k], b[k]) for k in a)
    for k in a:
        np.testing.assert_array_equal(np.float32(a[k]), b[k])
        np.testing.assert_array_equal(b[k], c[k])


def test_an_existing_file_is_kept_unless_asked(zoo_dir, tmp_path):
    graph = fxq.load(os.path.join(zoo_dir, "mlp", "model.onnx"))
    path = tmp_path / "m.onnx"
    path.write_text("keep")
    with pytest.raises(FxqError, match="exists"):
        save_onnx(graph, path)
    assert path.read_text() == "keep"


def test_the_model_passes_onnx_checker_with_the_declared_opset(zoo_dir):
    model = to_onnx(fxq.load(os.path.join(zoo_dir, "resnet", "model.onnx")))
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version == 17


def test_a_gather_along_a_spatial_axis_is_a_resize(tmp_path):
    from onnx import helper
    model = make_model([helper.make_node("Gather", ["x", "idx"], ["y"], axis=3)],
                       {"x": ("N", 2, 3, 3)}, ["y"],
                       initializers={"idx": np.array([0, 0, 2, 1], dtype=np.int64)})
    graph = fxq.load(save(model, tmp_path))
    assert [n.op.name for n in graph.nodes] == ["RESIZE"]
    x = np.random.default_rng(0).standard_normal((2, 2, 3, 3))
    np.testing.assert_array_equal(graph.run(x), x[:, :, :, [0, 0, 2, 1]])
