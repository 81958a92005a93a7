"""Bad input to the importer: one clear line on stderr, exit code 2, no traceback."""
from __future__ import annotations

import os

import numpy as np
import onnx
import pytest
from onnx import helper

import fxq
from helpers import fxq_cli, make_model, save

N = helper.make_node


NEWEST = onnx.defs.onnx_opset_version()


def newer_opset_model():
    """A Relu model at an opset the installed onnx does not define yet (not checkable)."""
    model = relu_model()
    model.opset_import[0].version = NEWEST + 1
    return model


def relu_model(opset=17, shape=("N", 4)):
    return make_model([N("Relu", ["x"], ["y"])], {"x": shape}, ["y"], opset=opset)


def write(tmp_path, name, data: bytes) -> str:
    path = os.path.join(tmp_path, name)
    with open(path, "wb") as f:
        f.write(data)
    return path


def unsupported_model():
    return make_model([N("Abs", ["x"], ["a"]), N("Exp", ["a"], ["b"]), N("Relu", ["b"], ["c"]),
                       N("Exp", ["c"], ["y"], name="second_exp")], {"x": ("N", 4)}, ["y"])


def external_outside(tmp_path) -> str:
    inner = os.path.join(tmp_path, "model_dir")
    os.makedirs(inner)
    model = make_model([N("MatMul", ["x", "w"], ["y"])], {"x": ("N", 4)}, ["y"],
                       {"w": np.ones((4, 4), np.float32)})
    weight = model.graph.initializer[0]
    weight.ClearField("raw_data")
    weight.data_location = onnx.TensorProto.EXTERNAL
    for key, value in (("location", "../secret.bin"), ("offset", "0"), ("length", "64")):
        entry = weight.external_data.add()
        entry.key, entry.value = key, value
    write(tmp_path, "secret.bin", np.ones(16, np.float32).tobytes())
    return write(inner, "model.onnx", model.SerializeToString())


def invalid_graph_model():
    model = relu_model()
    model.graph.node[0].input[0] = "undefined_tensor"
    return model


CASES = {
    "missing": (lambda t: os.path.join(t, "nope.onnx"), "no such file"),
    "directory": (lambda t: str(t), "is a directory"),
    "empty": (lambda t: write(t, "empty.onnx", b""), "empty file"),
    "text": (lambda t: write(t, "notes.onnx", b"this is not a model\n" * 20), "not an ONNX model"),
    "truncated": (lambda t: write(t, "cut.onnx", unsupported_model().SerializeToString()[:60]),
                  "not an ONNX model"),
    "unsupported_ops": (lambda t: save(unsupported_model(), t),
                        "unsupported ops: Abs (node Abs_0); Exp (nodes Exp_1, second_exp)."
                        " Supported: Add, AveragePool, BatchNormalization"),
    "dynamic_dim": (lambda t: save(relu_model(shape=("N", "C", 4)), t),
                    "input 'x' dimension 1 is 'C' (dynamic); only the batch"),
    "opset_too_old": (lambda t: save(relu_model(opset=10), t), "opset 10 is not supported"),
    "opset_too_new": (lambda t: save(newer_opset_model(), t),
                      f"opset {NEWEST + 1} is not supported"),
    "external_data_outside": (external_outside, "outside the model's directory; refused"),
    "invalid_graph": (lambda t: save(invalid_graph_model(), t), "invalid ONNX model"),
    "reduce_over_channels": (lambda t: save(make_model(
        [N("ReduceMean", ["x"], ["y"], axes=[1])], {"x": ("N", 3, 4, 4)}, ["y"], opset=13), t),
        "axes [1] of the input 'x' (N, 3, 4, 4); only a reduction over every spatial axis"),
    "batch_moving_transpose": (lambda t: save(make_model(
        [N("Transpose", ["x"], ["y"], perm=[1, 0, 2])], {"x": ("N", 3, 4)}, ["y"]), t),
        "perm [1, 0, 2] moves the batch axis"),
    "non_constant_weight": (lambda t: save(make_model(
        [N("MatMul", ["x", "z"], ["y"])], {"x": ("N", 4), "z": ("N", 4)}, ["y"]), t),
        "the second operand 'z' is not a constant"),
    "divisor_not_constant": (lambda t: save(make_model(
        [N("Div", ["x", "z"], ["y"])], {"x": ("N", 4), "z": ("N", 4)}, ["y"]), t),
        "a divisor that is not a constant is not supported"),
    "groups_not_fitting": (lambda t: save(make_model(
        [N("Conv", ["x", "w"], ["y"], group=3)], {"x": ("N", 6, 5, 5)}, ["y"],
        {"w": np.ones((4, 2, 3, 3), np.float32)}), t),
        "weight (4, 2, 3, 3) in 3 groups does not fit 6 input channels"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_cli_reports_one_line_and_exits_2(case, tmp_path):
    make_path, expected = CASES[case]
    path = make_path(tmp_path)
    result = fxq_cli("inspect", path)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("fxq inspect: error: ")
    assert expected in lines[0]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("case", list(CASES))
def test_api_raises_fxq_error(case, tmp_path):
    make_path, expected = CASES[case]
    with pytest.raises(fxq.FxqError) as info:
        fxq.load(make_path(tmp_path))
    assert expected in str(info.value)


def test_unsupported_message_lists_every_supported_op(tmp_path):
    with pytest.raises(fxq.UnsupportedModelError) as info:
        fxq.load(save(unsupported_model(), tmp_path))
    for op in fxq.onnx_import.supported_op_types():
        assert op in str(info.value)


def test_nothing_is_written_next_to_the_model(tmp_path):
    path = save(unsupported_model(), tmp_path)
    before = sorted(os.listdir(tmp_path))
    fxq_cli("inspect", path)
    assert sorted(os.listdir(tmp_path)) == before


def test_external_data_inside_the_directory_loads(tmp_path):
    model = make_model([N("MatMul", ["x", "w"], ["y"])], {"x": ("N", 4)}, ["y"],
                       {"w": np.arange(16, dtype=np.float32).reshape(4, 4)})
    path = os.path.join(tmp_path, "model.onnx")
    onnx.save(model, path, save_as_external_data=True, location="weights.bin",
              size_threshold=0)
    graph = fxq.load(path)
    np.testing.assert_array_equal(graph.run(np.eye(4)), np.arange(16).reshape(4, 4))


@pytest.mark.parametrize("op, params, what", [
    ("Conv", {"w": np.ones((2, 1, 3, 3), np.float32), "b": np.zeros((2, 1), np.float32)},
     "bias of shape (2, 1) for 2 channels"),
    ("BatchNormalization", {"s": np.ones(2, np.float32), "b": np.zeros(2, np.float32),
                            "m": np.zeros(3, np.float32), "v": np.ones(2, np.float32)},
     "BatchNormalization"),       # (onnx's shape inference refuses this one first)
])
def test_a_per_channel_parameter_of_the_wrong_shape_is_refused(tmp_path, op, params, what):
    """(Found by the damaged-file fuzzing: a Conv bias whose dims were corrupted reached the
    BatchNorm fold and broke there with a traceback.)"""
    inputs = ["x"] + list(params)
    node = N(op, inputs, ["y"], pads=[1, 1, 1, 1]) if op == "Conv" else N(op, inputs, ["y"])
    channels = 1 if op == "Conv" else 2
    # (built by hand: onnx's shape inference, which make_model runs, rejects these too)
    graph = helper.make_graph(
        [node], "bad", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT,
                                                      ["N", channels, 4, 4])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["N", 2, 4, 4])],
        initializer=[onnx.numpy_helper.from_array(v, k) for k, v in params.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = min(model.ir_version, 10)
    path = save(model, tmp_path)
    with pytest.raises(fxq.ModelError, match=what.replace("(", r"\(").replace(")", r"\)")):
        fxq.load(path)
    run = fxq_cli("inspect", path)
    assert run.returncode == 2 and len(run.stderr.strip().splitlines()) == 1
    assert "Traceback" not in run.stderr


def test_a_shape_read_from_the_tensor_folds_and_a_batch_dependent_one_is_refused(tmp_path):
    """Shape(x) folds (its per-sample part known): a Reshape to (batch, -1) built from it
    keeps the batch; one to (2 * batch, -1) is one line naming the node and the tensor."""
    def model(factor):
        one = helper.make_tensor("one", onnx.TensorProto.INT64, [1], [-1])
        nodes = [helper.make_node("Shape", ["x"], ["s"]),
                 helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
                 helper.make_node("Mul", ["n", "factor"], ["m"]),
                 helper.make_node("Unsqueeze", ["m", "axes"], ["m1"]),
                 helper.make_node("Constant", [], ["minus"], value=one),
                 helper.make_node("Concat", ["m1", "minus"], ["target"], axis=0),
                 helper.make_node("Reshape", ["x", "target"], ["r"]),
                 helper.make_node("Relu", ["r"], ["y"])]
        return make_model(nodes, {"x": ("N", 2, 3)}, ["y"],
                          {"zero": np.array(0, np.int64), "factor": np.array(factor, np.int64),
                           "axes": np.array([0], np.int64)})

    graph = fxq.load(save(model(1), tmp_path, "flat.onnx"))
    x = np.random.default_rng(0).normal(size=(5, 2, 3))
    np.testing.assert_array_equal(graph.run(x), np.maximum(x.reshape(5, 6), 0))
    path = save(model(2), tmp_path, "double.onnx")
    with pytest.raises(fxq.FxqError, match="Reshape.*'target' depends on the batch size"):
        fxq.load(path)
    r = fxq_cli("inspect", path)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_ceil_mode_pooling_loads_where_it_tiles_exactly_and_is_refused_elsewhere(tmp_path):
    def model(size):
        node = helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2], strides=[2, 2],
                                ceil_mode=1)
        return save(make_model([node], {"x": ("N", 3, size, size)}, ["y"]), tmp_path,
                    f"pool{size}.onnx")

    x = np.random.default_rng(0).normal(size=(2, 3, 6, 6))
    got = fxq.load(model(6)).run(x)
    np.testing.assert_array_equal(got, x.reshape(2, 3, 3, 2, 3, 2).max(axis=(3, 5)))
    with pytest.raises(fxq.FxqError, match="MaxPool.*ceil_mode=1 with a partial window"):
        fxq.load(model(5))
