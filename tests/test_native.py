"""The native engine (generated C++) computes the same raw values as the NumPy kernels.

The NumPy kernels are proven equal to hls4ml's C simulation (test_hls_verify.py); here the
native engine is held to them on every zoo model at several type assignments, on the
randomized graphs, on every ONNX op case, with inputs that drive the types into overflow.
test_hls_verify.py also compares the native engine with the C simulation directly.
"""
from __future__ import annotations

import os
import re
from math import prod

import numpy as np
import pytest

import fxq
import fxq.native.build as native_build
from fxq.errors import FxqError
from fxq.fixed import FixedType, Overflow, Rounding, to_float
from fxq.ir import Graph, Node, Op, Tensor
from fxq.native import NativeUnsupported, generate, native_simulator
from fxq.native.codegen import BLOCK, LOAD_RUN, SOFTMAX_LANES_MAX
from fxq.quantized import (DEFAULT_SOFTMAX_TABLE, NATIVE_MIN_SAMPLES, LayerTypes, QuantizedGraph,
                           uniform)
from helpers import make_model, save
from random_graphs import BUILDERS
from test_hls_verify import ASSIGNMENTS as C_SIMULATION_ASSIGNMENTS
from test_ops_vs_onnxruntime import CASES
from zoo import ZOO

ASSIGNMENTS = {
    **C_SIMULATION_ASSIGNMENTS,     # 16-bit; 8-bit rounding and saturating; narrow accumulators
    # products coarser than the accumulator's grid: every product is rounded (RND_INF)
    "rounded_products": (FixedType(12, 6, True, Rounding.RND_ZERO, Overflow.SAT_ZERO),
                         FixedType(10, 8), FixedType(20, 10, True, Rounding.RND_INF)),
    "wide_40bit": (FixedType(40, 24, True, Rounding.RND, Overflow.SAT), FixedType(20, 18),
                   None),
}


def assert_same(q: QuantizedGraph, x) -> None:
    """The same raw outputs, and the same overflow count on every tensor; the same outputs
    from the native variant that counts nothing (q.simulate), and real outputs (scaled in
    C++) equal to to_float of the raw ones, bit for bit."""
    want, want_counts = q.simulate_overflows(x, raw=True, engine="numpy")
    got, got_counts = q.simulate_overflows(x, raw=True, engine="native")
    assert got_counts == want_counts
    plain = q.simulate(x, raw=True, engine="native")
    real = q.simulate(x, engine="native")

    def by_name(out):
        return out if isinstance(out, dict) else {q.graph.outputs[0]: out}

    want, got, plain, real = by_name(want), by_name(got), by_name(plain), by_name(real)
    for name in want:
        np.testing.assert_array_equal(plain[name], got[name])
        assert real[name].dtype == np.float64
        assert np.array_equal(real[name], to_float(want[name], q.types[name]))
        assert got[name].dtype == np.int64 and got[name].shape == want[name].shape
        bad = np.argwhere(got[name] != want[name])
        assert len(bad) == 0, (f"{name}: {len(bad)} of {want[name].size} differ, first at "
                               f"{bad[0]}: native {got[name][tuple(bad[0])]} numpy "
                               f"{want[name][tuple(bad[0])]}")


def stretched(x: np.ndarray, rng) -> np.ndarray:
    """x, and x scaled up 8x (values beyond every type's range: saturation and wrap)."""
    return np.concatenate([x, x * 8 * rng.uniform(0.5, 1, x.shape)])


@pytest.mark.parametrize("io_type", ["io_parallel", "io_stream"])
@pytest.mark.parametrize("assignment", list(ASSIGNMENTS))
@pytest.mark.parametrize("name", list(ZOO))
def test_zoo_native_equals_numpy(zoo_dir, name, assignment, io_type):
    data, weight, accum = ASSIGNMENTS[assignment]
    graph = fxq.load(os.path.join(zoo_dir, name, "model.onnx"))
    x = np.load(os.path.join(zoo_dir, name, "test.npz"))["x"][:300]
    q = uniform(graph, data=data, weight=weight, accum=accum, io_type=io_type)
    assert_same(q, stretched(x, np.random.default_rng(0)))


@pytest.mark.parametrize("name", list(ZOO))
def test_zoo_native_equals_numpy_after_analysis(zoo_dir, name):
    graph = fxq.load(os.path.join(zoo_dir, name, "model.onnx"))
    calib = np.load(os.path.join(zoo_dir, name, "calib.npz"))["x"]
    x = np.load(os.path.join(zoo_dir, name, "test.npz"))["x"]
    for bits in (6, 8, 12):
        assert_same(fxq.quantize(graph, calib, bits=bits), stretched(x, np.random.default_rng(1)))


@pytest.mark.parametrize("io_type", ["io_parallel", "io_stream"])
@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("kind", list(BUILDERS))
def test_random_graph_native_equals_numpy(kind, seed, io_type):
    q, x = BUILDERS[kind](np.random.default_rng(100 + seed), io_type)
    assert_same(q, stretched(x, np.random.default_rng(seed)))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_onnx_op_case_native_equals_numpy(case, tmp_path):
    model = make_model(case.nodes, case.inputs, list(case.outputs), case.init, case.opset)
    graph = fxq.load(save(model, tmp_path))
    rng = np.random.default_rng(7)
    feeds = {name: rng.normal(0, 3, (37,) + tuple(shape[1:]))
             for name, shape in case.inputs.items()}
    try:
        q = uniform(graph, data=FixedType(10, 5, True, Rounding.RND, Overflow.SAT),
                    weight=FixedType(9, 6), accum=FixedType(18, 11))
    except FxqError as exc:          # softmax over a non-last axis: not emitted at all
        pytest.skip(str(exc))
    assert_same(q, feeds)


def _layout_graph(io_type: str) -> tuple[QuantizedGraph, np.ndarray]:
    """Ops the other graphs leave out: grouped (not depthwise) and 3-D convolution,
    transpose, pad, padded pooling that excludes the pad, a constant broadcast in Add and
    Mul, reshape, concat over a spatial axis."""
    rng = np.random.default_rng(5)
    t = FixedType(11, 6, True, Rounding.RND, Overflow.SAT)
    acc = FixedType(30, 16)
    nodes, tensors, layers, params = [], {"x": Tensor("x", (4, 5, 6))}, {}, {}

    def node(op, inputs, out_shape, layer, **attrs):
        out = f"t{len(nodes)}"
        nodes.append(Node(f"n{len(nodes)}", op, tuple(inputs), (out,), attrs))
        tensors[out] = Tensor(out, out_shape)
        layers[nodes[-1].name] = layer
        return out

    def param(values):
        params[f"p{len(params)}"] = values
        return f"p{len(params) - 1}"

    conv = LayerTypes(result=t, params={"weight": FixedType(8, 6), "bias": FixedType(8, 6)},
                       accum=acc)
    h = node(Op.CONV, ["x", param(rng.normal(0, .5, (6, 2, 3, 2))), param(rng.normal(0, 1, 6))],
             (6, 2, 5), conv, strides=(2, 1), pads=(0, 0, 0, 0), groups=2)
    h = node(Op.TRANSPOSE, [h], (5, 2, 6), LayerTypes(result=t), perm=(0, 3, 2, 1))
    h = node(Op.PAD, [h], (6, 3, 8), LayerTypes(result=t), pads=(0, 1, 1, 1, 0, 1), value=0.75)
    m = node(Op.MAX_POOL, [h], (6, 2, 4), LayerTypes(result=t), kernel=(2, 3), strides=(2, 2),
             pads=(1, 1, 0, 0))
    a = node(Op.AVG_POOL, [h], (6, 2, 4), LayerTypes(result=t, accum=FixedType(18, 6)),
             kernel=(2, 3), strides=(2, 2), pads=(1, 1, 0, 0), count_include_pad=False)
    s = node(Op.ADD, [m, param(rng.normal(0, 1, (6, 1, 1)))], (6, 2, 4),
             LayerTypes(result=t, params={"operand": FixedType(8, 5)}))
    p = node(Op.MUL, [a, param(rng.normal(0, 1, (4,)))], (6, 2, 4),
             LayerTypes(result=t, params={"operand": FixedType(7, 4)}))
    c = node(Op.CONCAT, [s, p], (6, 4, 4), LayerTypes(result=t), axis=2)
    r = node(Op.RESHAPE, [c], (6, 1, 4, 4), LayerTypes(result=t), shape=(6, 1, 4, 4))
    conv3 = LayerTypes(result=t, params={"weight": FixedType(8, 6), "bias": FixedType(8, 6)},
                       accum=acc)
    y = node(Op.CONV, [r, param(rng.normal(0, .5, (3, 6, 1, 2, 2)))], (3, 1, 3, 3), conv3,
             strides=(1, 1, 1), pads=(0, 0, 0, 0, 0, 0), groups=1)
    graph = Graph.build("layout", ["x"], [y], nodes, tensors, params)
    return QuantizedGraph(graph, {"x": t}, layers, io_type), rng.normal(0, 3, (50, 4, 5, 6))


@pytest.mark.parametrize("io_type", ["io_parallel", "io_stream"])
def test_layout_and_broadcast_ops_native_equals_numpy(io_type):
    q, x = _layout_graph(io_type)
    assert_same(q, x)


@pytest.mark.parametrize("name", ["mlp", "cnn_bn"])
def test_float32_inputs_are_read_as_they_are(zoo_dir, name):
    """float32 data goes to the native engine unconverted (its own entry point): the same
    raw outputs and counts as the float64 values it holds, NaN falling back alike."""
    graph = fxq.load(os.path.join(zoo_dir, name, "model.onnx"))
    x = np.load(os.path.join(zoo_dir, name, "test.npz"))["x"].astype(np.float32)
    q = fxq.quantize(graph, np.load(os.path.join(zoo_dir, name, "calib.npz"))["x"], bits=8)
    x = stretched(x, np.random.default_rng(3)).astype(np.float32)
    assert_same(q, x)
    assert np.array_equal(q.simulate(x, raw=True, engine="native"),
                          q.simulate(x.astype(np.float64), raw=True, engine="native"))
    bad = x.copy()
    bad[3].flat[0] = np.nan
    with pytest.raises(ValueError):
        q.simulate(bad, engine="native")


def test_block_tails_and_empty_batches(zoo_dir):
    """Batches that are not a multiple of the block, a single sample, and no samples."""
    graph = fxq.load(os.path.join(zoo_dir, "cnn_bn", "model.onnx"))
    x = np.load(os.path.join(zoo_dir, "cnn_bn", "test.npz"))["x"]
    q = uniform(graph, data=FixedType(8, 4), weight=FixedType(8, 6))
    for n in (1, 15, 17, 33):
        assert_same(q, x[:n])
    assert q.simulate(x[:0], engine="native").shape == (0, 10)


def test_auto_engine_builds_for_large_batches_and_runs_a_cached_build_for_any(
        zoo_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("FXQ_BUILD_CACHE", str(tmp_path))          # nothing built yet
    graph = fxq.load(os.path.join(zoo_dir, "mlp", "model.onnx"))
    x = np.load(os.path.join(zoo_dir, "mlp", "test.npz"))["x"]
    q = uniform(graph, data=FixedType(12, 6), weight=FixedType(10, 8))
    assert not q.native_is_built
    q.simulate(x[:100])
    assert "_native" not in q.__dict__ and not os.listdir(tmp_path)
    big = np.resize(x, (NATIVE_MIN_SAMPLES,) + x.shape[1:])
    assert np.array_equal(q.simulate(big), q.simulate(big, engine="numpy"))
    assert "_native" in q.__dict__
    again = uniform(graph, data=FixedType(12, 6), weight=FixedType(10, 8))
    assert again.native_is_built                     # the same design: its build is cached
    assert np.array_equal(again.simulate(x[:5]), q.simulate(x[:5], engine="numpy"))
    assert "_native" in again.__dict__


def _arena_bytes(q: QuantizedGraph) -> int:
    return int(re.search(r"aligned_alloc\(64, (\d+)\)", generate(q).source).group(1))


@pytest.mark.parametrize("name", list(ZOO))
def test_buffers_are_reused_once_dead(zoo_dir, name):
    """The per-thread arena holds the tensors live at once, not the whole graph: at most
    the three largest and the largest padded copy (a residual block's skip, a conv's
    input, its padded copy and its output), and for a chain of Dense layers exactly its
    two largest. (20-bit feature maps: no int16-pair copies, which add half an input.)"""
    graph = fxq.load(os.path.join(zoo_dir, name, "model.onnx"))
    q = uniform(graph, data=FixedType(20, 10), weight=FixedType(8, 6))
    block_bytes = sorted((BLOCK * 4 * prod(graph.shape(t)) for t in
                          list(graph.inputs) + [n.output for n in graph.nodes]), reverse=True)
    padded = [BLOCK * 4 * prod(graph.shape(n.inputs[0])[:1]) * prod(
        s + p[i] + p[i + len(p) // 2] for i, s in enumerate(graph.shape(n.inputs[0])[1:]))
        for n in graph.nodes if "pads" in n.attrs for p in [n.attrs["pads"]] if any(p)]
    arena = _arena_bytes(q)
    assert arena <= sum(block_bytes[:3]) + max(padded, default=0) < sum(block_bytes)
    if name == "mlp":
        assert arena == sum(block_bytes[:2])


def _pairs_graph(io_type: str) -> tuple[QuantizedGraph, np.ndarray]:
    """Weighted sums the int16-pair path takes, with odd unit counts: a grouped conv of 3
    channels per group (padded), and a Dense of 15 inputs (its flattened 3x5x1 output)."""
    rng = np.random.default_rng(11)
    t = FixedType(9, 4, True, Rounding.RND, Overflow.SAT)
    layer = LayerTypes(result=t, params={"weight": FixedType(8, 6), "bias": FixedType(8, 6)},
                       accum=FixedType(24, 10))
    nodes = [Node("c", Op.CONV, ("x", "w", "b"), ("h",),
                  {"strides": (1, 1), "pads": (1, 0, 1, 0), "groups": 3}),
             Node("f", Op.FLATTEN, ("h",), ("f",), {}),
             Node("d", Op.DENSE, ("f", "v", "e"), ("y",), {})]
    tensors = {"x": Tensor("x", (9, 5, 3)), "h": Tensor("h", (3, 5, 1)),
               "f": Tensor("f", (15,)), "y": Tensor("y", (5,))}
    params = {"w": rng.normal(0, .4, (3, 3, 3, 3)), "b": rng.normal(0, 1, 3),
              "v": rng.normal(0, .4, (15, 5)), "e": rng.normal(0, 1, 5)}
    graph = Graph.build("pairs", ["x"], ["y"], nodes, tensors, params)
    layers = {"c": layer, "f": LayerTypes(result=t), "d": layer}
    return QuantizedGraph(graph, {"x": t}, layers, io_type), rng.normal(0, 4, (70, 9, 5, 3))


@pytest.mark.parametrize("io_type", ["io_parallel", "io_stream"])
def test_int16_pair_sums_with_odd_unit_counts(io_type):
    q, x = _pairs_graph(io_type)
    assert generate(q).source.count("FXQ_JOIN16(lo, hi));") == 2     # both sums packed
    assert_same(q, x)


@pytest.mark.parametrize("overflow", list(Overflow))
@pytest.mark.parametrize("signed", [True, False])
def test_int32_epilogue_every_rounding_and_overflow_mode(overflow, signed):
    """A Dense whose sums, bias and types fit int32 converts its accumulator and result in
    int32 (the narrow epilogue): the same values and overflow counts as NumPy's int64, for
    every rounding mode of the result (each its own layer), accumulators the sums overflow
    (they wrap), and a result type the data overflows."""
    rng = np.random.default_rng(5 + signed)
    x_t = FixedType(8, 4, True, Rounding.RND, Overflow.SAT)
    nodes, tensors, params, layers = [], {"x": Tensor("x", (12,))}, {}, {}
    for i, rounding in enumerate(Rounding):
        nodes.append(Node(f"d{i}", Op.DENSE, ("x", f"w{i}", f"b{i}"), (f"y{i}",), {}))
        tensors[f"y{i}"] = Tensor(f"y{i}", (7,))
        params[f"w{i}"], params[f"b{i}"] = rng.normal(0, .6, (12, 7)), rng.normal(0, 2, 7)
        accum = FixedType(14 + i % 3, 9, True, Rounding.TRN, Overflow.WRAP)
        layers[f"d{i}"] = LayerTypes(result=FixedType(6, 2, signed, rounding, overflow),
                                     params={"weight": FixedType(7, 5),
                                             "bias": FixedType(9, 5)}, accum=accum)
    graph = Graph.build("narrow", ["x"], [n.output for n in nodes], nodes, tensors, params)
    q = QuantizedGraph(graph, {"x": x_t}, layers)
    assert generate(q).source.count(", int32_t>(") == 2 * len(nodes)   # every epilogue
    assert_same(q, rng.normal(0, 3, (300, 12)))


@pytest.mark.parametrize("overflow", [Overflow.SAT, Overflow.SAT_ZERO, Overflow.SAT_SYM])
def test_float32_inputs_quantize_in_float32_lanes_exactly(overflow):
    """float32 data into a saturating input type of at most 24 bits with a fractional length
    >= 0 is quantized in float32 lanes: the same raw values and overflow counts as NumPy's
    float64 quantization (and as the native float64 path), for every rounding mode,
    signedness, width and fractional length, on ties and their neighbours, the range's ends,
    subnormals, -0 and values whose scaling passes 2^62 (those samples fall back to NumPy)."""
    rng = np.random.default_rng(11)
    for width, frac, signed in [(8, 0, True), (8, 5, False), (24, 3, True), (24, 12, False),
                                (16, 62, True), (6, 20, True)]:
        inputs = [f"x{i}" for i in range(len(Rounding))]      # one input per rounding mode
        nodes = [Node(f"r{i}", Op.RESHAPE, (x,), (f"y{i}",), {"shape": (40,)})
                 for i, x in enumerate(inputs)]
        tensors = {n: Tensor(n, (40,)) for n in inputs + [f"y{i}" for i in range(len(inputs))]}
        types = {x: FixedType(width, frac, signed, r, overflow)
                 for x, r in zip(inputs, Rounding)}
        layers = {f"r{i}": LayerTypes(result=types[x]) for i, x in enumerate(inputs)}
        graph = Graph.build("inputs", inputs, [n.output for n in nodes], nodes, tensors, {})
        q = QuantizedGraph(graph, types, layers)
        top, lsb = 2.0 ** (width - frac - signed), 2.0 ** -frac
        k = rng.integers(-2 ** min(width, 20), 2 ** min(width, 20), 200)
        special = [0.0, -0.0, lsb / 2, -lsb / 2, 1.5 * lsb, -1.5 * lsb, 2.5 * lsb, -2.5 * lsb,
                   top, -top, top - lsb, -top + lsb, top - lsb / 2, -top - lsb / 2, 2 * top,
                   1e-45, -1e-45, 1.2e-38, 3e38, -3e38, 1e30, 2.0 ** 61, 2.0 ** 70]
        values = np.concatenate([(k + 0.5) * lsb, k * lsb, rng.normal(0, top, 200),
                                 special]).astype(np.float32)
        values = np.concatenate([values, np.nextafter(values, np.float32(np.inf)),
                                 np.nextafter(values, np.float32(-np.inf))])
        rows = np.resize(rng.permutation(values), (len(values) // 40 + 1, 40))
        x = {name: rows for name in inputs}
        assert_same(q, x)
        fits = np.all(np.abs(rows.astype(np.float64)) * 2.0 ** frac < 2.0 ** 62, axis=1)
        assert_same(q, {name: v[fits] for name, v in x.items()})   # none falling back
        wide = q.simulate({n: v.astype(np.float64) for n, v in x.items()}, raw=True,
                          engine="native")
        got = q.simulate(x, raw=True, engine="native")
        assert all(np.array_equal(got[name], wide[name]) for name in got)


def _unsupported():
    """A graph whose one conversion shifts by 70 bits: the native engine declines it."""
    graph = Graph.build("far", ["x"], ["y"], [Node("r", Op.RELU, ("x",), ("y",), {})],
                        {"x": Tensor("x", (3,)), "y": Tensor("y", (3,))}, {})
    return QuantizedGraph(graph, {"x": FixedType(8, 0)}, {"r": LayerTypes(FixedType(8, 70))})


def test_unsupported_graph_is_refused_by_native_and_run_by_auto():
    q = _unsupported()
    with pytest.raises(NativeUnsupported, match="shifts by 70 bits"):
        generate(q)
    x = np.resize(np.arange(-3.0, 3.0), (NATIVE_MIN_SAMPLES, 3))
    with pytest.raises(FxqError, match="shifts by 70 bits"):
        q.simulate(x, engine="native")
    assert np.array_equal(q.simulate(x), q.simulate(x, engine="numpy"))


def test_missing_compiler_is_one_clear_error(zoo_dir, monkeypatch):
    monkeypatch.setattr(native_build, "CXX", "no-such-compiler-fxq")
    graph = fxq.load(os.path.join(zoo_dir, "mlp", "model.onnx"))
    q = uniform(graph, data=FixedType(12, 6), weight=FixedType(10, 8))
    with pytest.raises(FxqError, match="needs a C\\+\\+ compiler"):
        native_simulator(q)


def test_unknown_engine_is_refused(zoo_dir):
    graph = fxq.load(os.path.join(zoo_dir, "mlp", "model.onnx"))
    q = uniform(graph, data=FixedType(12, 6), weight=FixedType(10, 8))
    with pytest.raises(FxqError, match="engine 'gpu'"):
        q.simulate(np.zeros((1, 64)), engine="gpu")


@pytest.mark.parametrize("overflow", list(Overflow))
def test_input_quantization_every_mode_ties_and_huge_values(overflow):
    """The C++ conversion of real inputs (ap_fixed's double constructor) on ties, range
    limits and values too large for it (those go through NumPy's quantize)."""
    roundings = list(Rounding)
    names = [f"x{i}" for i in range(len(roundings))]
    nodes = [Node(f"r{i}", Op.RELU, (n,), (f"y{i}",), {}) for i, n in enumerate(names)]
    tensors = {n: Tensor(n, (64,)) for n in names + [f"y{i}" for i in range(len(names))]}
    graph = Graph.build("modes", names, [f"y{i}" for i in range(len(names))], nodes, tensors,
                        {})
    types = {n: FixedType(7, 3, i % 2 == 0, r, overflow) for i, (n, r) in
             enumerate(zip(names, roundings))}
    layers = {f"r{i}": LayerTypes(FixedType(9, 4)) for i in range(len(names))}
    q = QuantizedGraph(graph, types, layers)
    ties = np.arange(-2 ** 9, 2 ** 9) / 2 ** 4                    # every half LSB and more
    x = {n: np.resize(ties, (len(ties) // 64 + 3, 64)) for n in names}
    assert_same(q, x)
    for n in names:
        x[n][-1] = np.linspace(-1e25, 1e25, 64)                  # beyond 2^62 LSBs: NumPy
    assert_same(q, x)
    x[names[0]][0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        q.simulate(x, engine="native")


def _depthwise_graph(t: FixedType, weight_t: FixedType, accum: FixedType, strides):
    """A depthwise convolution of 5 channels whose output pixel count is not a multiple of
    the pixels summed at once (7x3 = 21, or 4x3 = 12 with stride 2), then a Dense."""
    rng = np.random.default_rng(13)
    layer = LayerTypes(result=t, params={"weight": weight_t, "bias": weight_t}, accum=accum)
    out_h = 7 if strides == (1, 1) else 4
    nodes = [Node("c", Op.CONV, ("x", "w", "b"), ("h",),
                  {"strides": strides, "pads": (1, 1, 1, 1), "groups": 5}),
             Node("f", Op.FLATTEN, ("h",), ("f",), {}),
             Node("d", Op.DENSE, ("f", "v", "e"), ("y",), {})]
    tensors = {"x": Tensor("x", (5, 7, 3)), "h": Tensor("h", (5, out_h, 3)),
               "f": Tensor("f", (5 * out_h * 3,)), "y": Tensor("y", (4,))}
    params = {"w": rng.normal(0, .5, (5, 1, 3, 3)), "b": rng.normal(0, 1, 5),
              "v": rng.normal(0, .2, (5 * out_h * 3, 4)), "e": rng.normal(0, 1, 4)}
    graph = Graph.build("depthwise", ["x"], ["y"], nodes, tensors, params)
    q = QuantizedGraph(graph, {"x": t}, {"c": layer, "f": LayerTypes(result=t), "d": layer})
    return q, stretched(rng.normal(0, 2, (45, 5, 7, 3)), rng)


@pytest.mark.parametrize("strides", [(1, 1), (2, 1)])
def test_depthwise_sums_by_pixel_blocks_and_wide_ones_by_rows(strides):
    narrow = _depthwise_graph(FixedType(8, 4, True, Rounding.RND, Overflow.SAT),
                              FixedType(8, 6), FixedType(20, 10), strides)
    assert "CONV (depthwise)" in generate(narrow[0]).source
    assert_same(*narrow)
    wide = _depthwise_graph(FixedType(40, 24, True, Rounding.RND, Overflow.SAT),
                            FixedType(20, 18), FixedType(64, 42), strides)
    assert "CONV (depthwise)" not in generate(wide[0]).source      # int64 sums
    assert_same(*wide)


@pytest.mark.parametrize("width", [12, 40])
def test_inputs_and_outputs_longer_than_a_run(width):
    """Inputs and outputs of more elements than the load's run (LOAD_RUN) and not a
    multiple of the 8 x 8 transposes, in int32 lanes (width 12) and int64 ones (40), two
    outputs, and batches that end mid-block."""
    rng = np.random.default_rng(11)
    n_in, n_out = LOAD_RUN + 44, LOAD_RUN + 7
    t = FixedType(width, width - 5, True, Rounding.RND, Overflow.SAT)
    dense = LayerTypes(result=t, params={"weight": FixedType(8, 7), "bias": FixedType(8, 6)},
                       accum=FixedType(min(64, width + 24), width + 2))
    nodes = [Node("dense", Op.DENSE, ("x", "w", "b"), ("h",)),
             Node("relu", Op.RELU, ("h",), ("y",))]
    tensors = {"x": Tensor("x", (n_in,)), "h": Tensor("h", (n_out,)), "y": Tensor("y", (n_out,))}
    params = {"w": rng.normal(0, 0.1, (n_in, n_out)), "b": rng.normal(0, 1, n_out)}
    graph = Graph.build("long", ["x"], ["y", "h"], nodes, tensors, params)
    q = QuantizedGraph(graph, {"x": t}, {"dense": dense, "relu": LayerTypes(result=t)},
                       "io_parallel")
    x = rng.normal(0, 4, (2 * BLOCK + 5, n_in))
    for n in (1, len(x)):
        assert_same(q, x[:n])


@pytest.mark.parametrize("n", [5, SOFTMAX_LANES_MAX + 3])
def test_softmax_rows_short_across_samples_long_per_sample(n):
    """Softmax rows of up to SOFTMAX_LANES_MAX values run across the block's samples at
    once; longer ones sample by sample: both as NumPy's."""
    rng = np.random.default_rng(12)
    soft = LayerTypes(result=FixedType(16, 12, False), table=DEFAULT_SOFTMAX_TABLE,
                      inv_table=DEFAULT_SOFTMAX_TABLE, inv_inp=DEFAULT_SOFTMAX_TABLE,
                      accum=FixedType(24, 10, True, Rounding.RND, Overflow.SAT))
    graph = Graph.build("soft", ["x"], ["y"], [Node("soft", Op.SOFTMAX, ("x",), ("y",), {"axes": (2,)})],
                        {"x": Tensor("x", (2, n)), "y": Tensor("y", (2, n))}, {})
    t = FixedType(10, 6, True, Rounding.RND, Overflow.SAT)
    q = QuantizedGraph(graph, {"x": t}, {"soft": soft}, "io_parallel")
    assert_same(q, rng.normal(0, 2, (BLOCK + 3, 2, n)))


def test_threads_follow_the_free_cores(monkeypatch):
    """The engine runs one thread per core no other task is running on (at least one), and
    OpenMP's own count when the user set OMP_NUM_THREADS."""
    assert native_build.free_cores("0.50 0.40 0.30 1/120 999", 2) == 2      # only the reader
    assert native_build.free_cores("1.90 1.80 1.70 2/120 999", 2) == 1      # one busy process
    assert native_build.free_cores("3.00 3.00 3.00 5/120 999", 2) == 1
    assert native_build.free_cores("3.00 3.00 3.00 4/120 999", 8) == 5
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert native_build.threads_free() == 0
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setattr(native_build, "_free", [0, -1e9])
    assert 1 <= native_build.threads_free() <= len(os.sched_getaffinity(0))
