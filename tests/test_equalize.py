"""Cross-layer equalization (fxq.transforms.equalize): the float function stays bit for
bit; channels spread by powers of two come back to balanced ranges and the quantized
design recovers; fxq compile applies it by its --equalize setting and reports it."""
from __future__ import annotations

import os

import numpy as np
import pytest

import fxq
from fxq.analysis import BitConfig, quantize_graph
from fxq.compile import compile as compile_model
from fxq.errors import FxqError
from fxq.ir import Op
from fxq.transforms.equalize import AUTO_SPREAD, _ranges, equalize, pairs, scale_channels, spread
from helpers import compile_zoo
from random_graphs import BUILDERS


def _spread(graph, rng, k=3):
    """The graph with every pair's channels rescaled by 2^-k..2^k: the same function."""
    params = dict(graph.params)
    for pair in pairs(graph):
        w = params[dict(graph.param_inputs(pair.producer))["weight"]]
        channels = w.shape[1] if pair.producer.op is Op.DENSE else w.shape[0]
        scale_channels(graph, pair, rng.integers(-k, k + 1, channels), params)
    return graph.rebuild(graph.nodes, params=params)


def _models(zoo_dir):
    for name in ("mlp", "dwsep", "resnet", "conv1d"):
        graph = fxq.load(os.path.join(zoo_dir, name, "model.onnx"))
        yield name, graph, np.load(os.path.join(zoo_dir, name, "calib.npz"))["x"][:128]
    for kind in ("cnn", "layouts_and_broadcasts", "mlp"):        # depthwise, grouped, Dense
        q0, x = BUILDERS[kind](np.random.default_rng(2), "io_parallel")
        yield kind, q0.graph, x


def test_the_float_function_stays_bit_for_bit(zoo_dir):
    found = 0
    for name, graph, x in _models(zoo_dir):
        for g in (graph, _spread(graph, np.random.default_rng(1))):
            equalized, changes = equalize(g)
            found += len(changes)
            np.testing.assert_array_equal(equalized.run(x), graph.run(x), err_msg=name)
    assert found > 0


def test_spread_channels_come_back_balanced(zoo_dir):
    for name, graph, _ in _models(zoo_dir):
        spread_graph = _spread(graph, np.random.default_rng(4))
        equalized, _ = equalize(spread_graph)
        for pair in pairs(equalized):
            r1, r2 = _ranges(equalized, pair, dict(equalized.params))
            live = (r1 > 0) & (r2 > 0)
            # each channel within a factor 2 of balanced (a power-of-two step rounds), so
            # a second equalization changes nothing
            assert np.all(np.abs(np.log2(r1[live] / r2[live])) <= 1 + 1e-9), (name, pair)
        assert equalize(equalized)[1] == [], name


def test_equalizing_recovers_a_spread_model(zoo_dir):
    graph = fxq.load(os.path.join(zoo_dir, "dwsep", "model.onnx"))
    x = np.load(os.path.join(zoo_dir, "dwsep", "calib.npz"))["x"]
    spread_graph = _spread(graph, np.random.default_rng(0))
    assert all(spread(spread_graph, p) > AUTO_SPREAD for p in pairs(spread_graph))
    want = graph.run(x)

    def error(g):
        got = quantize_graph(g, x, BitConfig.of(8)).q.simulate(x)
        return float(np.mean((got - want) ** 2))

    assert error(equalize(spread_graph)[0]) < 0.5 * error(spread_graph)


def test_compile_equalizes_by_its_setting(zoo_dir, tmp_path):
    graph = fxq.load(os.path.join(zoo_dir, "mlp", "model.onnx"))
    x = np.load(os.path.join(zoo_dir, "mlp", "calib.npz"))["x"]
    spread_graph = _spread(graph, np.random.default_rng(0))
    auto = compile_model(spread_graph, x)
    assert auto.report.to_json()["settings"]["equalized"] is True
    assert any(c.rewrite == "equalize" for c in auto.changes)
    # the example as trained: no layer spreads past the threshold, so auto leaves it
    assert all(spread(graph, p) <= AUTO_SPREAD for p in pairs(graph))
    assert compile_model(graph, x).report.to_json()["settings"]["equalized"] is False
    assert compile_model(graph, x, equalize="on").report.to_json()["settings"]["equalized"]
    assert not compile_model(spread_graph, x, equalize="off").changes
    with pytest.raises(FxqError, match="equalize 'yes'"):
        compile_model(graph, x, equalize="yes")
    run, doc = compile_zoo(zoo_dir, "mlp", tmp_path / "on", "--equalize", "on")
    assert run.returncode == 0, run.stderr
    assert doc["settings"]["equalize"] == "on"
    assert any(t["rewrite"] == "equalize" for t in doc["transforms"])


def test_scales_stop_where_a_value_would_leave_the_normal_range(zoo_dir):
    """A channel with a tiny weight beside a large one, read by near-zero weights: the
    balancing scale would push the tiny weight below float32's normal range, so it is
    limited and the function still holds bit for bit (float64, as fxq loads models)."""
    graph = fxq.load(os.path.join(zoo_dir, "mlp", "model.onnx"))
    x = np.load(os.path.join(zoo_dir, "mlp", "calib.npz"))["x"][:64]
    pair = pairs(graph)[0]
    params = dict(graph.params)
    w1 = params[dict(graph.param_inputs(pair.producer))["weight"]].copy()   # (in, out)
    w2 = params[dict(graph.param_inputs(pair.consumer))["weight"]].copy()   # (in, out)
    w1[:, 0] = 1.0
    w1[0, 0] = 1e-300
    w2[0, :] = 1e-306
    params[dict(graph.param_inputs(pair.producer))["weight"]] = w1
    params[dict(graph.param_inputs(pair.consumer))["weight"]] = w2
    g = graph.rebuild(graph.nodes, params=params)
    equalized, changes = equalize(g)
    assert changes
    np.testing.assert_array_equal(equalized.run(x), g.run(x))
    w1e = equalized.params[dict(graph.param_inputs(pair.producer))["weight"]]
    assert np.abs(w1e[0, 0]) >= np.finfo(w1e.dtype).tiny
