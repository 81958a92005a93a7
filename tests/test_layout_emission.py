"""Reshape to any shape and Transpose are emitted: the emitter tracks how every tensor lies in
the hls4ml project and inserts hls4ml's Transpose/Reshape layers only where a reader needs
another layout (a Dense reading a transposed or flattened map permutes its weight rows
instead). Every graph is verified bit for bit against the C simulation in both io types."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

import fxq
from fxq.hls import verify
from fxq.estimate import estimate
from fxq.hls.emit import plan
from fxq.target import Target
from helpers import assert_exact, make_model, run_reference_f64, save

RNG = np.random.default_rng(5)


def _w(*shape):
    return RNG.normal(size=shape).astype(np.float32)


def _shape(name, shape):
    return helper.make_tensor(name, 7, [len(shape)], list(shape))     # INT64


def _check(model, tmp_path, hls_dir, io_type, x, *, transposes: int):
    graph = fxq.load(save(model, tmp_path))
    np.testing.assert_allclose(graph.run(x), run_reference_f64(model, {"x": x})[0], atol=1e-9)
    q = fxq.quantize(graph, calib=x, bits=10, io_type=io_type)
    e = plan(q, Target(io_type=io_type))
    assert sum(layer["class_name"] == "Transpose" for layer in e.layers) == transposes
    assert_exact(verify(q, hls_dir, x, overwrite=True))
    return q


@pytest.mark.parametrize("io_type", ["io_parallel", "io_stream"])
def test_flat_input_reshaped_for_a_conv1d(tmp_path, hls_dir, io_type):
    """(64,) -> (4, 16) -> Conv1d: the reshape is the IR's order, the conv needs channels-last."""
    nodes = [helper.make_node("Reshape", ["x", "s"], ["r"]),
             helper.make_node("Conv", ["r", "w"], ["c"], kernel_shape=[3], pads=[1, 1]),
             helper.make_node("Relu", ["c"], ["h"]),
             helper.make_node("Flatten", ["h"], ["f"]),
             helper.make_node("MatMul", ["f", "d"], ["y"])]
    model = make_model(nodes, {"x": ("N", 64)}, ["y"],
                       {"s": np.array([-1, 4, 16], np.int64), "w": _w(3, 4, 3), "d": _w(48, 5)})
    _check(model, tmp_path, hls_dir, io_type, RNG.normal(size=(20, 64)), transposes=1)


@pytest.mark.parametrize("io_type", ["io_parallel", "io_stream"])
def test_feature_map_reshaped_to_another_feature_map(tmp_path, hls_dir, io_type):
    """Conv2d (4, 6, 6) -> Reshape (8, 18) -> Conv1d: to the IR order, reshape, channels-last."""
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[1, 1]),
             helper.make_node("Reshape", ["c", "s"], ["r"]),
             helper.make_node("Conv", ["r", "v"], ["y"], kernel_shape=[2], strides=[2])]
    model = make_model(nodes, {"x": ("N", 2, 6, 6)}, ["y"],
                       {"w": _w(4, 2, 1, 1), "s": np.array([0, 8, 18], np.int64),
                        "v": _w(3, 8, 2)})
    _check(model, tmp_path, hls_dir, io_type, RNG.normal(size=(20, 2, 6, 6)), transposes=2)


@pytest.mark.parametrize("io_type", ["io_parallel", "io_stream"])
def test_transpose_read_by_a_conv_and_an_add(tmp_path, hls_dir, io_type):
    """H and W swapped, then a Conv (needs a Transpose layer) and an Add with the untransposed
    map (its other input brought to the same layout)."""
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[1, 1]),
             helper.make_node("Transpose", ["c"], ["t"], perm=[0, 1, 3, 2]),
             helper.make_node("Add", ["t", "c"], ["a"]),
             helper.make_node("Conv", ["a", "v"], ["y"], kernel_shape=[3, 3])]
    model = make_model(nodes, {"x": ("N", 2, 5, 5)}, ["y"], {"w": _w(3, 2, 1, 1),
                                                              "v": _w(2, 3, 3, 3)})
    _check(model, tmp_path, hls_dir, io_type, RNG.normal(size=(20, 2, 5, 5)), transposes=1)


@pytest.mark.parametrize("io_type", ["io_parallel", "io_stream"])
def test_transpose_then_flatten_into_a_dense_needs_no_layer(tmp_path, hls_dir, io_type):
    """NCHW -> NHWC -> Flatten -> Dense (what a Keras-trained model exported to ONNX does):
    the Dense's rows follow hls4ml's order, no Transpose is synthesized."""
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3]),
             helper.make_node("Transpose", ["c"], ["t"], perm=[0, 2, 3, 1]),
             helper.make_node("Flatten", ["t"], ["f"]),
             helper.make_node("MatMul", ["f", "d"], ["y"])]
    model = make_model(nodes, {"x": ("N", 2, 5, 4)}, ["y"], {"w": _w(3, 2, 3, 3),
                                                              "d": _w(18, 4)})
    _check(model, tmp_path, hls_dir, io_type, RNG.normal(size=(20, 2, 5, 4)), transposes=0)


@pytest.mark.parametrize("io_type", ["io_parallel", "io_stream"])
def test_flattened_map_concatenated_with_a_vector(tmp_path, hls_dir, io_type):
    """A flattened feature map (hls4ml's channels-last order) joined with a Dense output:
    the join is in the IR's order, so the map is brought to it first."""
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3]),
             helper.make_node("Flatten", ["c"], ["f"]),
             helper.make_node("Flatten", ["x"], ["g"]),
             helper.make_node("MatMul", ["g", "d"], ["v"]),
             helper.make_node("Concat", ["f", "v"], ["j"], axis=1),
             helper.make_node("MatMul", ["j", "e"], ["y"])]
    model = make_model(nodes, {"x": ("N", 2, 4, 4)}, ["y"],
                       {"w": _w(3, 2, 3, 3), "d": _w(32, 6), "e": _w(18, 3)})
    _check(model, tmp_path, hls_dir, io_type, RNG.normal(size=(20, 2, 4, 4)), transposes=1)


def test_the_estimate_counts_the_copies_io_stream_holds(tmp_path):
    """In io_stream a synthesized Transpose holds its whole tensor: the estimate adds a
    layer for it (registers for every element); io_parallel's are wires."""
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[1, 1]),
             helper.make_node("Transpose", ["c"], ["t"], perm=[0, 1, 3, 2]),
             helper.make_node("Conv", ["t", "v"], ["y"], kernel_shape=[1, 1])]
    model = make_model(nodes, {"x": ("N", 2, 5, 4)}, ["y"], {"w": _w(3, 2, 1, 1),
                                                              "v": _w(2, 3, 1, 1)})
    x = RNG.normal(size=(20, 2, 5, 4))
    graph = fxq.load(save(model, tmp_path))
    for io_type in ("io_parallel", "io_stream"):
        q = fxq.quantize(graph, calib=x, bits=8, io_type=io_type)
        nodes = {n.name for n in graph.nodes}
        copies = [e for e in estimate(q, io_type=io_type).layers if e.name not in nodes]
        if io_type == "io_parallel":
            assert copies == []
        else:
            (copy,) = copies
            t = q.types[graph.nodes[1].output]
            assert copy.cost.ff == 3 * 5 * 4 * t.width
