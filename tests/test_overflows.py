"""The range check: per tensor, the values whose conversion to its type overflowed.

QuantizedGraph.simulate_overflows counts them as the simulation runs (the native engine in
the same pass, NumPy by running each node again with its result type widened);
test_native.py holds the two engines to the same counts on every graph it runs. Here the
counts are checked against values worked out by hand, and through the CLI."""
from __future__ import annotations

import numpy as np
import pytest

from fxq.fixed import FixedType, Overflow, Rounding
from fxq.ir import Graph, Node, Op, Tensor
from fxq.quantized import LayerTypes, QuantizedGraph
from fxq.report import range_excess

IN_T = FixedType(8, 4, True, Rounding.RND, Overflow.SAT)         # [-8, 7.9375], LSB 1/16
RELU_T = FixedType(6, 4, False, Rounding.TRN, Overflow.SAT)      # [0, 3.9375]
SUM_T = FixedType(5, 2, True, Rounding.TRN, Overflow.SAT_SYM)    # [-3.75, 3.75]
WRAP_T = FixedType(4, 1, True, Rounding.TRN, Overflow.WRAP)      # [-4, 3.5]


def _graph() -> QuantizedGraph:
    """x -> relu; x + c -> SAT_SYM sum; x * 1 -> wrapping product."""
    shape = (6,)
    tensors = {n: Tensor(n, shape) for n in ("x", "r", "s", "m")}
    nodes = [Node("relu", Op.RELU, ("x",), ("r",), {}),
             Node("add", Op.ADD, ("x", "c"), ("s",), {}),
             Node("mul", Op.MUL, ("x", "one"), ("m",), {})]
    params = {"c": np.full(shape, -0.5), "one": np.ones(shape)}
    graph = Graph.build("ovf", ["x"], ["r", "s", "m"], nodes, tensors, params)
    layers = {"relu": LayerTypes(RELU_T),
              "add": LayerTypes(SUM_T, params={"operand": FixedType(4, 2)}),
              "mul": LayerTypes(WRAP_T, params={"operand": FixedType(4, 2)})}
    return QuantizedGraph(graph, {"x": IN_T}, layers)


def _expected(x: np.ndarray) -> dict[str, int]:
    """The counts worked out on the real values: each conversion rounds, then overflows."""
    raw = np.floor(x * 16 + 0.5)                                 # RND onto 1/16
    held = np.clip(raw, -128, 127) / 16                          # the saturated input
    s = np.floor((held - 0.5) * 4) / 4                           # TRN onto 1/4
    m = np.floor(held * 2) / 2                                   # TRN onto 1/2
    return {"x": int(np.count_nonzero((raw < -128) | (raw > 127))),
            "r": int(np.count_nonzero(np.maximum(held, 0) > 3.9375)),
            "s": int(np.count_nonzero((s < -3.75) | (s > 3.75))),   # -4 itself too (SYM)
            "m": int(np.count_nonzero((m < -4) | (m > 3.5)))}


@pytest.mark.parametrize("engine", ["numpy", "native"])
def test_counts_are_the_values_each_conversion_overflows(engine):
    x = np.random.default_rng(0).uniform(-10, 10, (2500, 6))
    x[0, :3] = [-3.5, -3.25, 3.75]            # sums exactly at -4, -3.75 and 3.25
    q = _graph()
    _, counts = q.simulate_overflows(x, engine=engine)
    want = _expected(x)
    assert counts == want
    assert all(want.values()), "each conversion must overflow somewhere to mean anything"


def test_inputs_within_every_type_count_nothing():
    x = np.random.default_rng(1).uniform(-1.5, 3.5, (40, 6))
    _, counts = _graph().simulate_overflows(x, engine="native")
    assert counts == {"x": 0, "r": 0, "s": 0, "m": 0}


def test_range_excess_names_node_share_and_mode():
    q = _graph()
    x = np.zeros((10, 6))
    x[0, 0] = 9.0                              # beyond the input type: saturated
    _, counts = q.simulate_overflows(x, engine="numpy")
    excess = {e.node: e for e in range_excess(q, counts, 10)}
    assert set(excess) == {"input x", "relu", "add", "mul"}
    assert (excess["input x"].outside, excess["input x"].total) == (1, 60)
    assert str(excess["mul"]).startswith("mul: 1 of 60 values (1.67%) outside ap_fixed<4,3>")
    assert str(excess["mul"]).endswith("wrapped")
    assert str(excess["input x"]).endswith("saturated")


UNSIGNED_T = FixedType(6, 3, False, Rounding.TRN, Overflow.SAT)     # [0, 7.875], LSB 1/8
WRAPPED_T = FixedType(6, 3, False, Rounding.TRN, Overflow.WRAP)     # [0, 7.875], wraps
SIGNED_T = FixedType(6, 3, True, Rounding.TRN, Overflow.SAT)        # [-4, 3.875]


def _clamped_graph() -> QuantizedGraph:
    """Sums each read only by a clamp: x + c -> ReLU (a saturating unsigned sum),
    x + c -> Clip(0, 6) (a wrapping sum), x + c -> Clip(0, 2) (a saturating signed sum
    whose maximum 3.875 is above the clip's); input z, of an unsigned type, -> ReLU."""
    shape = (6,)
    tensors = {n: Tensor(n, shape) for n in ("x", "s", "r", "w", "k", "h", "j", "z", "p")}
    nodes = [Node("add_s", Op.ADD, ("x", "c"), ("s",), {}),
             Node("relu", Op.RELU, ("s",), ("r",), {}),
             Node("add_w", Op.ADD, ("x", "c"), ("w",), {}),
             Node("clip6", Op.CLIP, ("w",), ("k",), {"lo": 0.0, "hi": 6.0}),
             Node("add_h", Op.ADD, ("x", "c"), ("h",), {}),
             Node("clip2", Op.CLIP, ("h",), ("j",), {"lo": 0.0, "hi": 2.0}),
             Node("relu_z", Op.RELU, ("z",), ("p",), {})]
    params = {"c": np.full(shape, 0.5)}
    graph = Graph.build("clamped", ["x", "z"], ["r", "k", "j", "p"], nodes, tensors, params)
    wide = FixedType(12, 4, False, Rounding.TRN, Overflow.SAT)
    operand = {"operand": FixedType(4, 2)}
    layers = {"add_s": LayerTypes(UNSIGNED_T, params=operand), "relu": LayerTypes(wide),
              "add_w": LayerTypes(WRAPPED_T, params=operand), "clip6": LayerTypes(wide),
              "add_h": LayerTypes(SIGNED_T, params=operand), "clip2": LayerTypes(wide),
              "relu_z": LayerTypes(wide)}
    return QuantizedGraph(graph, {"x": IN_T, "z": UNSIGNED_T}, layers)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("engine", ["numpy", "native"])
def test_a_clamp_reading_the_tensor_discounts_the_overflows_it_maps_alike(engine, dtype):
    """The negative sums an unsigned type saturates to 0 before a ReLU change nothing (the
    ReLU gives 0 either way), and neither do a signed sum's values past a Clip's bounds;
    a wrapping type's do, and so do values above a ReLU's input type."""
    x = np.random.default_rng(2).uniform(-10, 10, (2500, 6)).astype(dtype)
    z = np.random.default_rng(3).uniform(-10, 10, (2500, 6)).astype(dtype)
    q = _clamped_graph()
    _, counts = q.simulate_overflows({"x": x, "z": z}, engine=engine)
    held = np.clip(np.floor(x * 16 + 0.5), -128, 127) / 16      # the saturated input
    total = np.floor((held + 0.5) * 8) / 8                       # TRN onto 1/8
    assert counts["s"] == np.count_nonzero(total > 7.875) > 0
    assert counts["w"] == np.count_nonzero((total < 0) | (total > 7.875))
    assert counts["h"] == 0 and np.count_nonzero((total < -4) | (total > 3.875)) > 0
    assert q.counted_sides("s") == (False, True) and q.counted_sides("h") == (False, False)
    assert q.counted_sides("w") == (True, True) and q.counted_sides("r") == (True, True)
    assert counts["z"] == np.count_nonzero(np.floor(z * 8) > 63) > 0       # TRN onto 1/8
    assert counts["x"] == np.count_nonzero(np.abs(np.floor(x * 16 + 0.5) + 0.5) > 128)
    # the outputs are the clamps of the sums as the types hold them
    r, k, j = (q.simulate({"x": x, "z": z}, engine=engine)[n] for n in ("r", "k", "j"))
    np.testing.assert_array_equal(r, np.clip(total, 0, 7.875))
    np.testing.assert_array_equal(j, np.clip(total, 0, 2))
