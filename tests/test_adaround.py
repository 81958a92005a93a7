"""Adaptive rounding of weights (weight_rounding="adaround"): every Dense/Conv weight is the
grid value just below or just above the float weight on its type's grid; a layer's error
with them is lower than with nearest rounding (the rule that keeps them); the design
replays, and compiles to hls4ml exactly (C simulation, no mismatch); the setting reaches
the CLI, the TOML configuration and the report."""
from __future__ import annotations

import os

import numpy as np
import pytest

import fxq
from fxq.analysis import BitConfig, quantize_graph
from fxq.analysis.adaround import adaround, conv_problem, dense_problem
from fxq.analysis.bits import ConfigError, load_config
from fxq.analysis.search import _Search
from fxq.data import bind_inputs
from fxq.fixed import FixedType, quantize, to_float
from fxq.hls import verify
from fxq.ir import Op
from helpers import assert_exact, compile_zoo, fxq_cli
from random_graphs import BUILDERS

W4A8 = dict(weight_bits=4, act_bits=8)
ADAROUND = BitConfig.of(**W4A8, weight_rounding="adaround")
KINDS = ("mlp", "cnn", "conv1d", "layouts_and_broadcasts")    # Dense, strided/padded/depthwise, 1-D, grouped


@pytest.fixture(scope="module")
def designs():
    out = {}
    for kind in KINDS:
        q0, x = BUILDERS[kind](np.random.default_rng(3), "io_parallel")
        out[kind] = (q0.graph, x, quantize_graph(q0.graph, x, BitConfig.of(**W4A8)),
                     quantize_graph(q0.graph, x, ADAROUND))
    return out


def test_each_weight_is_rounded_down_or_up_onto_its_grid(designs):
    moved = 0
    for kind, (graph, x, nearest, ada) in designs.items():
        for node in graph.nodes:
            if node.op not in (Op.DENSE, Op.CONV):
                continue
            name = dict(graph.param_inputs(node))["weight"]
            t = ada.q.layers[node.name].params["weight"]
            raw = quantize(ada.q.graph.params[name], t)        # the weights the design uses
            if name in ada.assignment.values:                  # rounded adaptively: on the grid
                np.testing.assert_array_equal(ada.q.graph.params[name], to_float(raw, t))
            else:                                              # (not kept: nearest's)
                assert ada.q.graph.params[name] is graph.params[name]
            scaled = np.asarray(graph.params[name], dtype=np.float64) / 2.0 ** -t.frac
            lo, hi = -(1 << (t.width - 1)), (1 << (t.width - 1)) - 1
            below, above = np.clip(np.floor(scaled), lo, hi), np.clip(np.ceil(scaled), lo, hi)
            assert np.all((raw == below) | (raw == above)), (kind, node.name)
            moved += int(np.sum(raw != quantize(graph.params[name], t)))
        # nearest rounding leaves every weight as the float model has it
        for node in graph.nodes:
            for role, name in graph.param_inputs(node):
                if role == "weight":
                    assert name not in nearest.assignment.values
    assert moved > 0                       # some weight somewhere was not rounded to nearest


def test_adaround_lowers_a_layers_error_below_nearest_rounding():
    """On random Dense and grouped Conv problems: the reconstruction error of the rounded
    weights (inputs on an 8-bit grid, 4-bit weights) is below nearest rounding's."""
    rng = np.random.default_rng(0)
    x_t, w_t = FixedType(8, 5), FixedType(4, 3)
    x = quantize(rng.normal(0, 1, (256, 24)), x_t)
    w, b = rng.normal(0, 0.4, (24, 12)), rng.normal(0, 0.1, 12)
    target = to_float(x, x_t) @ w + b
    problems = [(dense_problem(x, x_t, w, b, target), w)]
    xc = quantize(rng.normal(0, 1, (16, 4, 7, 7)), x_t)
    wc = rng.normal(0, 0.4, (6, 2, 3, 3))
    xf = to_float(xc, x_t)
    # the grouped convolution by hand: output channel o reads its group's 2 input channels
    pad = np.pad(xf, ((0, 0), (0, 0), (1, 1), (1, 1)))
    tc = np.zeros((16, 6, 7, 7))
    for o in range(6):
        g = o // 3
        for i, j in np.ndindex(3, 3):
            tc[:, o] += np.einsum("ncij,c->nij", pad[:, 2 * g:2 * g + 2, i:i + 7, j:j + 7],
                                  wc[o, :, i, j])
    problems.append((conv_problem(xc, x_t, wc, None, tc, strides=(1, 1), pads=(1, 1, 1, 1),
                                  groups=2), wc))

    def error(problem, weights):
        layer = problem.weights.shape
        wl = weights.T[None] if weights.ndim == 2 else weights.reshape(layer)
        y = np.einsum("rgf,gof->rgo", problem.patches, wl)
        if problem.bias is not None:
            y = y + problem.bias
        return float(np.mean((y - problem.target) ** 2))

    for problem, weights in problems:
        nearest = to_float(quantize(weights, w_t), w_t)
        assert error(problem, nearest) > 0
        assert error(problem, adaround(problem, w_t)) < 0.9 * error(problem, nearest)


def test_adaround_lowers_the_output_error_of_zoo_models(zoo_dir):
    for name in ("mlp", "dwsep"):
        graph = fxq.load(os.path.join(zoo_dir, name, "model.onnx"))
        x = np.load(os.path.join(zoo_dir, name, "calib.npz"))["x"]
        want = graph.run(x)
        nearest = quantize_graph(graph, x, BitConfig.of(**W4A8)).q.simulate(x)
        ada = quantize_graph(graph, x, ADAROUND).q.simulate(x)
        assert np.mean((ada - want) ** 2) < np.mean((nearest - want) ** 2), name


def test_an_adaround_assignment_replays_to_the_same_design(designs):
    graph, x, _, ada = designs["cnn"]
    replay = _Search(graph, bind_inputs(graph, x), ADAROUND, "dynamic", "io_parallel", None,
                     replay=ada.assignment).run()
    assert replay.q.layers == ada.q.layers and replay.assignment == ada.assignment
    np.testing.assert_array_equal(replay.q.simulate(x, raw=True), ada.q.simulate(x, raw=True))


@pytest.mark.parametrize("kind", ["cnn", "layouts_and_broadcasts"])
def test_adaround_designs_match_c_simulation(hls_dir, designs, kind):
    """Adaptively rounded (and bias-corrected) designs against hls4ml's C simulation on
    every layer: depthwise and strided Conv, grouped Conv."""
    graph, x, _, ada = designs[kind]
    assert_exact(verify(ada.q, hls_dir, x[:30], overwrite=True))


def test_cli_and_config_name_the_rounding(zoo_dir, tmp_path):
    model = os.path.join(zoo_dir, "mlp", "model.onnx")
    calib = os.path.join(zoo_dir, "mlp", "calib.npz")
    run, doc = compile_zoo(zoo_dir, "mlp", tmp_path / "c", "--weight-bits", "4",
                           "--act-bits", "8", "--weight-rounding", "adaround")
    assert run.returncode == 0, run.stderr
    assert doc["settings"]["weight_rounding"] == "adaround"
    data = np.load(calib)
    design, _ = fxq.load_quantized(str(tmp_path / "c" / "fxq_model.json"))
    q = quantize_graph(fxq.load(model), data["x"], ADAROUND).q
    np.testing.assert_array_equal(design.simulate(data["x"][:50], raw=True),
                                  q.simulate(data["x"][:50], raw=True))
    # the TOML setting, and a bad one named with its line
    good = tmp_path / "good.toml"
    good.write_text('weight_bits = 4\nweight_rounding = "adaround"\n')
    assert load_config(str(good)).weight_rounding == "adaround"
    bad = tmp_path / "bad.toml"
    bad.write_text('bits = 8\nweight_rounding = "stochastic"\n')
    with pytest.raises(ConfigError, match=r"bad.toml:2: weight_rounding: 'stochastic'"):
        load_config(str(bad))
    # a width search refuses it (each candidate would be rounded again), writing nothing
    out = tmp_path / "budget"
    refused = fxq_cli("compile", model, "--calib", calib, "-o", str(out), "--budget", "1",
                      "--weight-rounding", "adaround")
    assert refused.returncode != 0 and "nearest weight rounding" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and not out.exists()
