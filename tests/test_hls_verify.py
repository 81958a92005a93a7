"""The oracle: fxq's simulation equals hls4ml's C simulation of the emitted project, bit for bit.
Both engines: the NumPy kernels (every traced layer) and the native C++ (the outputs).

Every zoo model at three type assignments and randomized graphs (random shapes and types,
fixed seeds), for io_parallel and io_stream; every traced layer is compared, not only the
outputs. Builds are cached by source content (FXQ_BUILD_CACHE), so reruns skip g++.
"""
from __future__ import annotations

import os

import numpy as np
import pytest

import fxq
from fxq.fixed import FixedType, Overflow, Rounding
from fxq.hls import verify
from fxq.quantized import uniform
from helpers import assert_exact
from random_graphs import BUILDERS
from zoo import ZOO

IO_TYPES = ["io_parallel", "io_stream"]

# (data, weight, accumulator or None for one wide enough to be exact)
ASSIGNMENTS = {
    "16bit": (FixedType(16, 10), FixedType(16, 12), None),
    "8bit_rnd_sat": (FixedType(8, 4, True, Rounding.RND, Overflow.SAT), FixedType(8, 6), None),
    "narrow_wrapping_accum": (FixedType(10, 5, True, Rounding.RND_CONV, Overflow.SAT_SYM),
                              FixedType(8, 6), FixedType(12, 9)),
}




@pytest.mark.parametrize("io_type", IO_TYPES)
@pytest.mark.parametrize("assignment", list(ASSIGNMENTS))
@pytest.mark.parametrize("name", list(ZOO))
def test_zoo_matches_c_simulation(zoo_dir, hls_dir, name, assignment, io_type):
    data, weight, accum = ASSIGNMENTS[assignment]
    graph = fxq.load(os.path.join(zoo_dir, name, "model.onnx"))
    x = np.load(os.path.join(zoo_dir, name, "test.npz"))["x"][:40]
    q = uniform(graph, data=data, weight=weight, accum=accum, io_type=io_type)
    result = verify(q, hls_dir, x, overwrite=True)
    assert_exact(result)
    assert_exact(verify(q, hls_dir, x, overwrite=True, engine="native"))
    # every node output is compared, or named with the reason it could not be
    compared = {r.tensor for r in result.layers} | set(graph.outputs)
    named = {t for t, _ in result.uncompared}
    for node in graph.nodes:
        assert (node.output in compared) != (node.output in named), node.output
    assert all(graph.producer(t).op is fxq.Op.FLATTEN for t in named)


def test_narrow_accumulator_really_wraps(zoo_dir):
    """The narrow assignment exercises overflow: its outputs differ from the wide one's."""
    graph = fxq.load(os.path.join(zoo_dir, "resnet", "model.onnx"))
    x = np.load(os.path.join(zoo_dir, "resnet", "test.npz"))["x"][:40]
    data, weight, accum = ASSIGNMENTS["narrow_wrapping_accum"]
    narrow = uniform(graph, data=data, weight=weight, accum=accum).simulate(x)
    wide = uniform(graph, data=data, weight=weight).simulate(x)
    assert np.mean(narrow != wide) > 0.5


@pytest.mark.parametrize("io_type", IO_TYPES)
@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("kind", list(BUILDERS))
def test_random_graph_matches_c_simulation(hls_dir, kind, seed, io_type):
    q, x = BUILDERS[kind](np.random.default_rng(seed), io_type)
    assert_exact(verify(q, hls_dir, x, overwrite=True))
    assert_exact(verify(q, hls_dir, x, overwrite=True, engine="native"))


def test_softmax_over_a_non_last_axis_is_refused():
    from fxq.ir import Graph, Node, Op, Tensor
    from fxq.quantized import DEFAULT_SOFTMAX_TABLE, LayerTypes, QuantizationError, QuantizedGraph
    t = FixedType(16, 10)
    graph = Graph.build("g", ["x"], ["y"], [Node("s", Op.SOFTMAX, ("x",), ("y",), {"axes": (1,)})],
                        {"x": Tensor("x", (3, 4)), "y": Tensor("y", (3, 4))}, {})
    layer = LayerTypes(result=t, table=DEFAULT_SOFTMAX_TABLE, inv_table=DEFAULT_SOFTMAX_TABLE,
                       inv_inp=DEFAULT_SOFTMAX_TABLE, accum=FixedType(22, 10))
    with pytest.raises(QuantizationError, match=r"softmax over axes \(1,\).*last axis \(2\)"):
        QuantizedGraph(graph, {"x": t}, {"s": layer})


@pytest.mark.parametrize("input_t", [FixedType(6, 0), FixedType(6, -1), FixedType(12, 4),
                                     FixedType(16, 10), FixedType(7, 3, signed=False)])
def test_softmax_over_the_whole_input_range_matches_c_simulation(hls_dir, input_t):
    """Logits across the input type's whole range, extremes included: the differences
    x_max - x saturate in fxq's inp_norm_t and the table sizes fxq passes stay, in hls4ml
    as in fxq (a narrow input's exp table indexed exactly, a wide one's by its top bits)."""
    from fxq.fixed import quantize as to_raw, to_float
    from fxq.ir import Graph, Node, Op, Tensor
    from fxq.ops.activation import softmax_types
    from fxq.quantized import QuantizedGraph
    n = 6
    graph = Graph.build("g", ["x"], ["y"], [Node("s", Op.SOFTMAX, ("x",), ("y",), {"axes": (1,)})],
                        {"x": Tensor("x", (n,)), "y": Tensor("y", (n,))}, {})
    q = QuantizedGraph(graph, {"x": input_t}, {"s": softmax_types(FixedType(10, 9, False), n)})
    rng = np.random.default_rng(input_t.width)
    raw = rng.integers(to_raw(input_t.min, input_t), to_raw(input_t.max, input_t) + 1, (48, n))
    raw[:16, 0], raw[:16, 1] = to_raw(input_t.max, input_t), to_raw(input_t.min, input_t)
    assert_exact(verify(q, hls_dir, to_float(raw, input_t), overwrite=True))
