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
