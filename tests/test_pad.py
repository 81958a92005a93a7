"""Pad: a zero Pad before a Conv is folded into it (Keras-style 'same' padding, as in the
MLPerf Tiny DS-CNN); any other zero Pad of a feature map is emitted as hls4ml's
ZeroPadding1D/2D; both verified bit for bit against the C simulation in both io types."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

import fxq
from fxq.hls import EmitError, emit_hls, verify
from helpers import assert_exact, make_model, run_reference_f64, save

RNG = np.random.default_rng(21)


def _pads(nd_spatial, begin, end):
    return np.array([0, 0] + list(begin) + [0, 0] + list(end), np.int64)


def _load_and_check(model, tmp_path, x):
    graph = fxq.load(save(model, tmp_path))
    np.testing.assert_allclose(graph.run(x), run_reference_f64(model, {"x": x})[0], atol=1e-9)
    return graph


@pytest.mark.parametrize("io_type", ["io_parallel", "io_stream"])
def test_zero_pad_before_conv_is_folded(tmp_path, hls_dir, io_type):
    nodes = [helper.make_node("Pad", ["x", "p"], ["h"]),
             helper.make_node("Conv", ["h", "w"], ["c"], kernel_shape=[3, 3], pads=[0, 1, 0, 0]),
             helper.make_node("Relu", ["c"], ["y"])]
    model = make_model(nodes, {"x": ("N", 2, 5, 4)}, ["y"],
                       {"p": _pads(2, [1, 0], [1, 2]),
                        "w": RNG.normal(size=(3, 2, 3, 3)).astype(np.float32)})
    x = RNG.normal(size=(24, 2, 5, 4))
    graph = _load_and_check(model, tmp_path, x)
    assert [n.op for n in graph.nodes] == [fxq.Op.CONV, fxq.Op.RELU]
    assert graph.nodes[0].attrs["pads"] == (1, 1, 1, 2)
    q = fxq.quantize(graph, calib=x, bits=8, io_type=io_type)
    assert_exact(verify(q, hls_dir, x, overwrite=True))


@pytest.mark.parametrize("io_type", ["io_parallel", "io_stream"])
@pytest.mark.parametrize("spatial", [(5, 4), (7,)])
def test_zero_pad_of_a_feature_map_is_emitted(tmp_path, hls_dir, io_type, spatial):
    nd = len(spatial)
    pool = helper.make_node("MaxPool", ["r"], ["y"], kernel_shape=[2] * nd, strides=[2] * nd)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[1] * nd),
             helper.make_node("Relu", ["c"], ["h"]),
             helper.make_node("Pad", ["h", "p"], ["r"]), pool]
    begin, end = [1] * nd, [2] + [0] * (nd - 1)
    model = make_model(nodes, {"x": ("N", 2) + spatial}, ["y"],
                       {"p": _pads(nd, begin, end),
                        "w": RNG.normal(size=(3, 2) + (1,) * nd).astype(np.float32)})
    x = RNG.normal(size=(24, 2) + spatial)
    graph = _load_and_check(model, tmp_path, x)
    assert fxq.Op.PAD in [n.op for n in graph.nodes]
    q = fxq.quantize(graph, calib=x, bits=8, io_type=io_type)
    result = verify(q, hls_dir, x, overwrite=True)
    assert_exact(result)
    pad = next(n for n in graph.nodes if n.op is fxq.Op.PAD)
    assert pad.output in {r.tensor for r in result.layers}


@pytest.mark.parametrize("io_type", ["io_parallel", "io_stream"])
def test_padded_pooling_branches_of_a_relu_map(tmp_path, hls_dir, io_type):
    """A ReLU map pooled with padding, max and average counting the padding, added:
    io_stream's pooling ignores padding, so fxq puts hls4ml's ZeroPadding before it (zeros
    are fxq's padding for an unsigned max and a counted average); the max's input is
    unsigned in io_stream, signed in io_parallel (hls4ml pads with the sign bit there)."""
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("MaxPool", ["r"], ["m"], kernel_shape=[2, 2], strides=[2, 2],
                              pads=[1, 1, 1, 1]),
             helper.make_node("AveragePool", ["r"], ["a"], kernel_shape=[2, 2], strides=[2, 2],
                              pads=[1, 1, 1, 1], count_include_pad=1),
             helper.make_node("Conv", ["a", "v"], ["b"], kernel_shape=[1, 1]),
             helper.make_node("Add", ["m", "b"], ["y"])]
    model = make_model(nodes, {"x": ("N", 2, 6, 6)}, ["y"],
                       {"w": RNG.normal(size=(3, 2, 1, 1)).astype(np.float32),
                        "v": RNG.normal(size=(3, 3, 1, 1)).astype(np.float32)})
    x = RNG.normal(size=(24, 2, 6, 6))
    graph = _load_and_check(model, tmp_path, x)
    q = fxq.quantize(graph, calib=x, bits=8, io_type=io_type)
    relu = next(n for n in graph.nodes if n.op is fxq.Op.RELU)
    assert q.types[relu.output].signed == (io_type == "io_parallel")
    assert_exact(verify(q, hls_dir, x, overwrite=True))


@pytest.mark.parametrize("pool, why", [
    (helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[3], pads=[1, 1]),
     r"pooling windows \[3\] with strides \[1\] in io_stream: hls4ml's streaming pooling "
     r"takes non-overlapping windows"),
    (helper.make_node("AveragePool", ["x"], ["y"], kernel_shape=[2], strides=[2], pads=[1, 1]),
     r"padded average pooling that does not count the padding, in io_stream")])
def test_pooling_hls4ml_cannot_stream_is_refused_naming_why(tmp_path, pool, why):
    model = make_model([pool], {"x": ("N", 2, 7)}, ["y"])
    x = RNG.normal(size=(8, 2, 7))
    q = fxq.quantize(fxq.load(save(model, tmp_path)), calib=x, bits=8, io_type="io_stream")
    with pytest.raises(EmitError, match=why):
        emit_hls(q, tmp_path / "hls")
    assert not (tmp_path / "hls").exists()


@pytest.mark.parametrize("io_type", ["io_parallel", "io_stream"])
def test_pads_hls4ml_has_no_layer_for_are_gathered(tmp_path, hls_dir, io_type):
    """A Pad with a value other than zero and on the channel axis, and a signed padded max
    pooling (padded with the type's least value): fxq's FxqGather builds the padded map."""
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[1, 1]),
             helper.make_node("Pad", ["c", "p", "v"], ["q"]),
             helper.make_node("Conv", ["q", "u"], ["d"], kernel_shape=[2, 2]),
             helper.make_node("MaxPool", ["d"], ["y"], kernel_shape=[2, 2], strides=[2, 2],
                              pads=[1, 0, 1, 1])]
    model = make_model(nodes, {"x": ("N", 2, 5, 4)}, ["y"],
                       {"w": RNG.normal(size=(3, 2, 1, 1)).astype(np.float32),
                        "p": np.array([0, 1, 0, 2, 0, 1, 1, 0], np.int64),
                        "v": np.array(0.75, np.float32),
                        "u": RNG.normal(size=(2, 5, 2, 2)).astype(np.float32)})
    x = RNG.normal(size=(24, 2, 5, 4))
    graph = _load_and_check(model, tmp_path, x)
    assert fxq.Op.PAD in [n.op for n in graph.nodes]
    q = fxq.quantize(graph, calib=x, bits=8, io_type=io_type)
    pool = graph.nodes[-1]
    assert q.types[pool.inputs[0]].signed
    assert_exact(verify(q, hls_dir, x, overwrite=True))


def test_an_unsigned_padded_max_pooling_is_padded_before_in_io_parallel(tmp_path, hls_dir):
    """hls4ml's io_parallel pooling pads with the sign bit set: an unsigned input (a
    QuantizedGraph fxq's search would not choose, built by hand) is padded with its least
    value, zero, by FxqGather before an unpadded pooling."""
    from fxq.fixed import FixedType
    from fxq.quantized import uniform
    nodes = [helper.make_node("Relu", ["x"], ["r"]),
             helper.make_node("MaxPool", ["r"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])]
    model = make_model(nodes, {"x": ("N", 2, 5, 4)}, ["y"])
    x = RNG.normal(size=(16, 2, 5, 4))
    graph = _load_and_check(model, tmp_path, x)
    q = uniform(graph, data=FixedType(8, 4, signed=False), weight=FixedType(8, 6))
    assert not q.types["r"].signed
    assert_exact(verify(q, hls_dir, x, overwrite=True))


@pytest.mark.parametrize("io_type", ["io_parallel", "io_stream"])
def test_a_vector_is_padded(tmp_path, hls_dir, io_type):
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"]),
             helper.make_node("Pad", ["h", "p", "v"], ["q"]),
             helper.make_node("MatMul", ["q", "u"], ["y"])]
    model = make_model(nodes, {"x": ("N", 6)}, ["y"],
                       {"w": RNG.normal(size=(6, 4)).astype(np.float32),
                        "p": np.array([0, 2, 0, 1], np.int64), "v": np.array(-0.5, np.float32),
                        "u": RNG.normal(size=(7, 3)).astype(np.float32)})
    x = RNG.normal(size=(24, 6))
    graph = _load_and_check(model, tmp_path, x)
    q = fxq.quantize(graph, calib=x, bits=8, io_type=io_type)
    assert_exact(verify(q, hls_dir, x, overwrite=True))
