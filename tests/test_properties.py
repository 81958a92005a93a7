"""Properties checked on many generated cases (hypothesis): fixed-point round trips and
ordering, accumulators that never overflow, the ONNX loader on damaged files, and random
small models through quantize, simulate and emission (what `fxq compile` runs)."""
from __future__ import annotations

import os

import numpy as np
import onnx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import helper

import fxq
from fxq.analysis import quantize
from fxq.errors import FxqError
from fxq.fixed import FixedType, Overflow, Rounding, cast, quantize as to_raw, to_float
from fxq.hls import emit_hls
from helpers import make_model

N = helper.make_node
SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


@st.composite
def fixed_types(draw, max_width=53, overflows=tuple(Overflow)):
    signed = draw(st.booleans())
    width = draw(st.integers(1 if signed else 1, max_width))
    return FixedType(width, draw(st.integers(-12, 70)), signed,
                     draw(st.sampled_from(list(Rounding))), draw(st.sampled_from(overflows)))


@SETTINGS
@given(t=fixed_types(), data=st.data())
def test_every_raw_value_round_trips_through_its_real_value(t, data):
    raw = np.array(data.draw(st.lists(st.integers(t.raw_min, t.raw_max), min_size=1,
                                      max_size=50)), dtype=np.int64)
    # SAT_SYM never produces the signed minimum: it is not a value of the type
    if t.overflow is Overflow.SAT_SYM and t.signed and t.width > 1:
        raw = np.maximum(raw, t.raw_min + 1)
    assert np.array_equal(to_raw(to_float(raw, t), t), raw)


@SETTINGS
@given(t=fixed_types(overflows=(Overflow.SAT, Overflow.SAT_SYM)),
       values=st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=2, max_size=60))
def test_saturating_quantization_preserves_order(t, values):
    x = np.sort(np.array(values))
    assert np.all(np.diff(to_raw(x, t)) >= 0)


@SETTINGS
@given(t=fixed_types(max_width=40), extra=st.integers(1, 20), data=st.data())
def test_cast_to_a_wider_type_and_back_is_the_identity(t, extra, data):
    wide = FixedType(t.width + extra, t.frac, t.signed)
    raw = np.array(data.draw(st.lists(st.integers(t.raw_min, t.raw_max), min_size=1,
                                      max_size=40)), dtype=np.int64)
    if t.overflow is Overflow.SAT_SYM and t.signed and t.width > 1:
        raw = np.maximum(raw, t.raw_min + 1)
    assert np.array_equal(cast(cast(raw, t, wide), wide, t), raw)


def _mlp(rng, sizes, activation):
    """A random ONNX MLP: Gemm layers with `activation` between them, softmax at the end."""
    nodes, init, x = [], {}, "x"
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        init[f"w{i}"] = rng.normal(0, rng.uniform(0.1, 3) / np.sqrt(a), (a, b)).astype(np.float32)
        init[f"b{i}"] = rng.normal(0, 0.3, b).astype(np.float32)
        nodes.append(N("Gemm", [x, f"w{i}", f"b{i}"], [f"g{i}"]))
        x = f"g{i}"
        if i < len(sizes) - 2:
            nodes.append(N(activation, [x], [f"a{i}"]))
            x = f"a{i}"
    nodes.append(N("Softmax", [x], ["y"], axis=1))
    return make_model(nodes, {"x": ("N", sizes[0])}, ["y"], init)


@SETTINGS
@given(seed=st.integers(0, 2 ** 32 - 1), bits=st.integers(3, 16),
       depth=st.integers(1, 4), activation=st.sampled_from(["Relu", "Tanh", "Sigmoid"]))
def test_random_models_quantize_simulate_and_emit(tmp_path, seed, bits, depth, activation):
    rng = np.random.default_rng(seed)
    sizes = [int(s) for s in rng.integers(2, 24, depth + 1)]
    path = os.path.join(tmp_path, f"m{seed}.onnx")
    onnx.save(_mlp(rng, sizes, activation), path)
    g = fxq.load(path)
    x = rng.normal(0, rng.uniform(0.1, 10), (64, sizes[0]))
    q = quantize(g, x, bits=bits)
    y = q.simulate(x)
    assert y.shape == (64, sizes[-1]) and np.all(np.isfinite(y))
    assert np.all(y >= 0) and np.all(y <= 2)            # softmax outputs, unsigned
    out = os.path.join(tmp_path, f"hls{seed}")
    emit_hls(q, out)                                    # the project compile writes
    assert os.path.exists(os.path.join(out, "firmware", "myproject.cpp"))


@SETTINGS
@given(seed=st.integers(0, 2 ** 32 - 1), bits=st.integers(2, 16), data=st.data())
def test_accumulators_hold_the_worst_case_of_any_input(tmp_path, seed, bits, data):
    """For every output, the input of the declared type that maximizes (or minimizes) the
    sum: each input at the extreme matching its weight's sign. It fits the accumulator, and
    one bit less would not hold every such sum (the accumulator is the narrowest)."""
    rng = np.random.default_rng(seed)
    n_in, n_out = data.draw(st.integers(1, 40)), data.draw(st.integers(1, 8))
    w = rng.normal(0, rng.uniform(0.01, 10), (n_in, n_out))
    model = make_model([N("MatMul", ["x", "w"], ["m"]), N("Add", ["m", "b"], ["y"])],
                       {"x": ("N", n_in)}, ["y"],
                       {"w": w.astype(np.float32),
                        "b": rng.normal(0, 1, n_out).astype(np.float32)})
    path = os.path.join(tmp_path, "acc.onnx")
    onnx.save(model, path)
    g = fxq.load(path)
    q = quantize(g, rng.normal(0, rng.uniform(0.1, 10), (32, n_in)), bits=bits)
    node = g.nodes[0]
    layer, x_t = q.layers[node.name], q.types["x"]
    w_raw = q.params[node.inputs[1]].astype(object)
    b_raw = q.params[node.inputs[2]].astype(object)
    scale = 2 ** (layer.accum.frac - x_t.frac - layer.param("weight").frac)
    b_scale = 2 ** (layer.accum.frac - layer.param("bias").frac)
    totals = []
    for o in range(n_out):
        for direction in (1, -1):
            xs = [x_t.raw_max if direction * wk >= 0 else x_t.raw_min for wk in w_raw[:, o]]
            total = sum(a * b for a, b in zip(xs, w_raw[:, o])) * scale + b_raw[o] * b_scale
            assert layer.accum.raw_min <= total <= layer.accum.raw_max
            totals.append(total)
    if layer.accum.width > 2:
        half = 2 ** (layer.accum.width - 2)          # the range of one bit less
        assert any(not -half <= t <= half - 1 for t in totals)


@st.composite
def damaged(draw, original: bytes):
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["flip", "cut", "insert", "zero"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "cut":
            data = data[:pos]
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif data:
            data[pos] = 0
    return bytes(data)


ORIGINALS = [
    make_model([N("Gemm", ["x", "w", "b"], ["h"]), N("Relu", ["h"], ["y"])],
               {"x": ("N", 3)}, ["y"],
               {"w": np.ones((3, 2), np.float32), "b": np.zeros(2, np.float32)}),
    make_model([N("Conv", ["x", "k", "kb"], ["c"], pads=[1, 1, 1, 1]),
                N("BatchNormalization", ["c", "s", "t", "m", "v"], ["n"]),
                N("MaxPool", ["n"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
                N("Flatten", ["p"], ["f"]), N("Gemm", ["f", "w", "b"], ["g"]),
                N("Softmax", ["g"], ["y"], axis=1)],
               {"x": ("N", 1, 4, 4)}, ["y"],
               {"k": np.ones((2, 1, 3, 3), np.float32), "kb": np.zeros(2, np.float32),
                "s": np.ones(2, np.float32), "t": np.zeros(2, np.float32),
                "m": np.zeros(2, np.float32), "v": np.ones(2, np.float32),
                "w": np.ones((8, 3), np.float32), "b": np.zeros(3, np.float32)}),
]


@settings(max_examples=int(os.environ.get("FXQ_FUZZ_EXAMPLES", 150)), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(blob=st.sampled_from([m.SerializeToString() for m in ORIGINALS]).flatmap(damaged))
def test_damaged_model_files_give_a_clean_error_or_a_graph(tmp_path, blob):
    path = os.path.join(tmp_path, "damaged.onnx")
    with open(path, "wb") as f:
        f.write(blob)
    try:
        g = fxq.load(path)
    except FxqError as exc:
        assert "\n" not in str(exc)
    else:
        assert isinstance(g, fxq.Graph)
