"""Bias correction (bias_correction=True): a Dense or Conv bias is corrected by its layer's
mean error on the calibration data (kept when that lowers the layer's error as the network
reads it), so that mean is within half a bias LSB of zero per output channel; the corrected design replays, compiles to hls4ml exactly (C simulation,
no mismatch) and its report compares with the float model as the user gave it."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

import fxq
from fxq.analysis import BitConfig, quantize_graph
from fxq.analysis.search import _Search
from fxq.data import bind_inputs
from fxq.fixed import to_float
from fxq.hls import verify
from fxq.ir import Op
from fxq.layer import LayerTypes, fixed_node
from fxq.ops.registry import lookup
from helpers import assert_exact, fxq_cli
from random_graphs import BUILDERS


def _cases(zoo_dir):
    for name in ("cnn_bn", "resnet", "dwsep", "mlp"):
        graph = fxq.load(os.path.join(zoo_dir, name, "model.onnx"))
        yield name, graph, np.load(os.path.join(zoo_dir, name, "calib.npz"))["x"][:200]
    for kind in ("mlp", "cnn"):
        q0, x = BUILDERS[kind](np.random.default_rng(5), "io_parallel")
        yield kind, q0.graph, x


def _sums(q, node, raw):
    """The node's exact sums (before its result is rounded) in the design q, as floats."""
    layer = q.layers[node.name]
    exact = LayerTypes(result=layer.accum, params=layer.params, accum=layer.accum)
    ins = tuple(q.types[n] for n in q.graph.activation_inputs(node))
    fx = fixed_node(q.graph, node, ins, exact, q.io_type, q.params)
    out = lookup("fixed", node.op, node.name)(fx, *(raw[n] for n in q.graph.activation_inputs(node)))
    return to_float(out, layer.accum)


@pytest.mark.parametrize("bits", [(4, 8), (6, 6)])
def test_each_corrected_layer_has_no_mean_error_per_channel(zoo_dir, bits):
    for name, graph, x in _cases(zoo_dir):
        config = BitConfig.of(weight_bits=bits[0], act_bits=bits[1])
        plain = quantize_graph(graph, x, config, bias_correction=False)
        result = quantize_graph(graph, x, config)              # (on by default)
        q = result.q
        floats = fxq.reference.evaluate(graph, x)
        raw = q.evaluate(x)
        corrected = 0
        for node in graph.nodes:
            roles = dict(graph.param_inputs(node))
            if roles.get("bias") not in result.assignment.values:
                continue
            assert node.op in (Op.DENSE, Op.CONV)
            axis = floats[node.output].ndim - 1 if node.op is Op.DENSE else 1
            others = tuple(a for a in range(floats[node.output].ndim) if a != axis)
            mean = np.mean(_sums(q, node, raw) - floats[node.output], axis=others)
            lsb = 2.0 ** -min(q.layers[node.name].params["bias"].frac, q.layers[node.name].accum.frac)
            assert np.max(np.abs(mean)) <= lsb / 2 * (1 + 1e-9), (name, node.name)
            # the float model is untouched; the design's graph holds the corrected bias
            np.testing.assert_array_equal(result.assignment.values[roles["bias"]],
                                          q.graph.params[roles["bias"]])
            corrected += 1
        assert corrected > 0, name
        # the weights are the same: only biases move
        for pname in graph.params:
            if pname not in result.assignment.values:
                np.testing.assert_array_equal(q.graph.params[pname], graph.params[pname])
        # without it the design computes the float model's biases
        assert not plain.assignment.values and plain.q.graph is graph


def test_a_corrected_assignment_replays_to_the_same_design(zoo_dir):
    graph = fxq.load(os.path.join(zoo_dir, "dwsep", "model.onnx"))
    x = np.load(os.path.join(zoo_dir, "dwsep", "calib.npz"))["x"]
    config = BitConfig.of(weight_bits=4, act_bits=8)
    result = quantize_graph(graph, x, config, bias_correction=True)
    replay = _Search(graph, bind_inputs(graph, x), config, "dynamic", "io_parallel", None,
                     replay=result.assignment).run()
    assert replay.q.layers == result.q.layers
    assert replay.assignment == result.assignment
    for name in result.assignment.values:
        np.testing.assert_array_equal(replay.q.graph.params[name], result.q.graph.params[name])
    # refinement starts from the corrected greedy design and keeps its biases
    refined = quantize_graph(graph, x, config, bias_correction=True, refine=True)
    assert refined.assignment.values.keys() == result.assignment.values.keys()
    assert refined.refinement.starts["greedy"] <= refined.refinement.starts["static"]


@pytest.mark.parametrize("kind", ["cnn", "mlp"])
def test_corrected_designs_match_c_simulation(hls_dir, kind):
    """A corrected design (4-bit weights), and a corrected and refined one, against hls4ml's
    C simulation on every layer."""
    q0, x = BUILDERS[kind](np.random.default_rng(11), "io_parallel")
    config = BitConfig.of(weight_bits=4, act_bits=8)
    q = quantize_graph(q0.graph, x, config, bias_correction=True, refine=True).q
    assert q.graph is not q0.graph
    assert_exact(verify(q, hls_dir, x[:30], overwrite=True))


def test_compile_reports_against_the_float_model_as_given(zoo_dir, tmp_path):
    model = os.path.join(zoo_dir, "mlp", "model.onnx")
    calib = os.path.join(zoo_dir, "mlp", "calib.npz")
    run = fxq_cli("compile", model, "--calib", calib, "-o", str(tmp_path / "c"),
                  "--weight-bits", "4", "--act-bits", "8")
    assert run.returncode == 0, run.stderr
    doc = json.load(open(tmp_path / "c" / "report.json"))
    assert doc["settings"]["bias_correction"] is True
    data = np.load(calib)
    graph = fxq.load(model)
    want = float(np.mean(np.argmax(graph.run(data["x"]), axis=-1) == data["y"]))
    assert doc["accuracy"]["float"] == pytest.approx(want, abs=0)
    off = fxq_cli("compile", model, "--calib", calib, "-o", str(tmp_path / "off"),
                  "--weight-bits", "4", "--act-bits", "8", "--no-bias-correction")
    assert off.returncode == 0, off.stderr
    assert json.load(open(tmp_path / "off" / "report.json"))["settings"]["bias_correction"] \
        is False
    # the saved design holds the corrected biases: it simulates as compiled
    design, _ = fxq.load_quantized(str(tmp_path / "c" / "fxq_model.json"))
    q = quantize_graph(graph, data["x"], BitConfig.of(weight_bits=4, act_bits=8),
                       bias_correction=True).q
    np.testing.assert_array_equal(design.simulate(data["x"][:50], raw=True),
                                  q.simulate(data["x"][:50], raw=True))
