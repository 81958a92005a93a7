"""The open RTL path (fxq.rtl, `fxq rtl`): da4ml logic equal to fxq's simulation on random
graphs, the Verilator simulation equal to it on 10,000 random inputs, Yosys counts, the
LUT estimate against Yosys on layers the fit never saw, refusals and the CLI contract."""
from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest
from onnx import helper

import random_graphs as R
from helpers import fxq_cli, make_model, save
from random_layers import random_layer

from fxq.fixed import FixedType, Overflow, Rounding, quantize
from fxq.ir import Graph, Node, Op, Tensor
from fxq.quantized import uniform
from fxq.rtl import RtlError, cost, write_rtl
from fxq.rtl.trace import real, trace

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILDERS = [R.mlp_with_activations, R.cnn_with_pooling, R.conv1d_chain, R.added_ops,
            R.pads_and_constants, R.layouts_and_broadcasts]


def _logic_outputs(q, x):
    """(fxq's raw outputs, the da4ml logic's raw outputs) on the same raw inputs."""
    comb = trace(q)
    name = q.graph.inputs[0]
    t = q.types[name]
    x_real = real(quantize(x, t), t)
    ours = q.simulate(x_real, raw=True)
    out_t = q.types[q.graph.outputs[0]]
    theirs = comb.predict(x_real.reshape(len(x), -1))
    return ours, np.ldexp(theirs, out_t.frac).reshape(ours.shape)


@pytest.mark.parametrize("builder", BUILDERS, ids=lambda b: b.__name__)
@pytest.mark.parametrize("seed", range(3))
def test_traced_logic_equals_fxq_on_random_graphs(builder, seed, monkeypatch):
    """Every op the tracer covers, random shapes and types (with the modes da4ml builds):
    da4ml's interpreter of the traced logic gives fxq's raw outputs exactly."""
    monkeypatch.setattr(R, "ROUNDINGS", [Rounding.TRN, Rounding.RND])
    monkeypatch.setattr(R, "OVERFLOWS", [Overflow.WRAP, Overflow.SAT, Overflow.SAT_SYM])
    q, x = builder(np.random.default_rng(seed), "io_parallel")
    ours, theirs = _logic_outputs(q, x)
    assert np.array_equal(ours, theirs)


def _mlp(result: FixedType):
    rng = np.random.default_rng(0)
    graph = Graph.build("m", ["x"], ["y"], [Node("fc", Op.DENSE, ("x", "w", "b"), ("y",))],
                        {"x": Tensor("x", (4,)), "y": Tensor("y", (3,))},
                        {"w": rng.normal(0, 0.5, (4, 3)), "b": np.zeros(3)})
    t = FixedType(8, 5)
    return uniform(graph, data=result, weight=t, bias=t, accum=FixedType(20, 10))


def test_modes_da4ml_lacks_are_refused_naming_the_node():
    q = _mlp(FixedType(8, 5, True, Rounding.RND_CONV, Overflow.SAT))
    with pytest.raises(RtlError, match=r"node 'fc' \(DENSE\).*AP_RND_CONV"):
        trace(q)


def test_an_op_without_a_tracer_is_refused_naming_it():
    from fxq.ops.registry import RULES

    q = _mlp(FixedType(8, 5, True, Rounding.RND, Overflow.SAT))
    saved = RULES["rtl"].pop(Op.DENSE)
    try:
        with pytest.raises(Exception, match=r"node 'fc'.*write as RTL op DENSE"):
            trace(q)
    finally:
        RULES["rtl"][Op.DENSE] = saved


# -- the tools: Verilator and Yosys --------------------------------------------------------

@pytest.mark.parametrize("seed", [1000, 1001])
def test_verilator_equals_fxq_and_the_estimate_is_near_yosys(seed, tmp_path):
    """A random layer the fit never saw (seeds below 1000 are the fit's): Verilator equals
    fxq's simulation on 10,000 random inputs, Yosys maps it without DSPs, and fxq's LUT
    estimate is within 15 % of Yosys' count, its FF estimate within 25 %."""
    q, _ = random_layer(seed)
    doc = write_rtl(q, tmp_path / "rtl", samples=10_000)
    (check,) = doc["simulation"]
    assert check["samples"] == 10_000 and check["equal"]
    y, e = doc["yosys"], doc["estimate"]
    assert y["lut"] > 0 and y["ff"] > 0 and y["dsp"] == 0
    assert abs(e["lut"] / y["lut"] - 1) <= 0.15, (e, y)
    assert abs(e["ff"] / y["ff"] - 1) <= 0.25, (e, y)
    on_disk = json.loads((tmp_path / "rtl" / "rtl.json").read_text())
    assert on_disk["yosys"]["lut"] == y["lut"]
    assert (tmp_path / "rtl" / "src" / "fxq_top.v").is_file()


def test_a_difference_from_fxq_is_an_error_and_writes_nothing(tmp_path, monkeypatch):
    """The check can fail: a tracer rule one step off is caught by Verilator, and the
    failed run leaves nothing behind."""
    from fxq.ops.registry import RULES
    import fxq.rtl.trace as T

    q, _ = random_layer(3)
    original = RULES["rtl"][Op.DENSE]

    def off_by_one(tr, node, fx, x):
        return original(tr, node, fx, x) + float(fx.result.resolution)
    monkeypatch.setitem(RULES["rtl"], Op.DENSE, off_by_one)
    assert T.find("rtl", Op.DENSE) is off_by_one
    with pytest.raises(RtlError, match="differs from fxq's"):
        write_rtl(q, tmp_path / "rtl", samples=1000, synth=False)
    assert not os.listdir(tmp_path)


def test_a_missing_tool_is_named_with_its_install(tmp_path, monkeypatch):
    import shutil

    q, _ = random_layer(2)
    real_which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda cmd, *a, **k: None if cmd == "yosys"
                        else real_which(cmd, *a, **k))
    with pytest.raises(RtlError, match=r"yosys is not on PATH.*make rtl-tools"):
        write_rtl(q, tmp_path / "rtl")
    assert not os.listdir(tmp_path)


def test_the_committed_fit_holds_on_its_held_out_layers():
    """hw/rtl_layers.csv (benchmarks/rtl_fit.py): with the coefficients in
    hw/estimator.toml, the LUT estimate of the layers kept out of the fit is within 5 % of
    Yosys in the median, within 15 % on at least 80 % of them and within 20 % on all (the
    worst are layers of few inputs and many outputs, where Yosys builds wide multiplexers)."""
    from fxq.cost import coefficients

    c = coefficients()["rtl"]
    with open(os.path.join(ROOT, "hw", "rtl_layers.csv"), encoding="utf-8") as f:
        rows = list(csv.DictReader(line for line in f if not line.startswith("#")))
    held_out = [r for r in rows if r["held_out"] == "True"]
    assert len(held_out) >= 12
    errors = np.array([abs(sum(c[f"lut_per_{k}"] * float(r[k]) for k in cost.FEATURES)
                           / float(r["yosys_lut"]) - 1) for r in held_out])
    assert np.median(errors) <= 0.05
    assert np.mean(errors <= 0.15) >= 0.8
    assert errors.max() <= 0.20


# -- the command line ----------------------------------------------------------------------

def _small_model(tmp_path, op="Relu"):
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["h"]),
             helper.make_node(op, ["h"], ["y"])]
    model = make_model(nodes, {"x": ("N", 6)}, ["y"],
                       {"w": rng.normal(0, 0.5, (6, 4)).astype(np.float32),
                        "b": rng.normal(0, 0.1, 4).astype(np.float32)})
    path = save(model, tmp_path)
    np.savez(tmp_path / "calib.npz", x=rng.normal(0, 1, (64, 6)).astype(np.float32))
    return path, str(tmp_path / "calib.npz")


def test_cli_rtl_writes_checks_and_reports(tmp_path):
    model, calib = _small_model(tmp_path)
    out = tmp_path / "out"
    run = fxq_cli("compile", model, "--calib", calib, "-o", str(out), "--bits", "6", "--rtl")
    assert run.returncode == 0, run.stderr
    assert "Open RTL path" in run.stdout and "equal to fxq's simulation" in run.stdout
    report = json.loads((out / "report.json").read_text())
    assert report["rtl"]["yosys"]["lut"] > 0
    assert report["rtl"]["simulation"][0]["equal"]
    md = (out / "report.md").read_text()
    assert "measured: Yosys synth_xilinx" in md and "estimate: fxq" in md
    # a second run does not overwrite without being asked, and says so in one line
    again = fxq_cli("rtl", str(out), "--no-synth")
    assert again.returncode != 0
    assert again.stderr.count("\n") == 1 and "--force" in again.stderr
    forced = fxq_cli("rtl", str(out), "--no-synth", "--force", "--samples", "500",
                     "--input", calib)
    assert forced.returncode == 0, forced.stderr
    report = json.loads((out / "report.json").read_text())
    assert "yosys" not in report["rtl"] and len(report["rtl"]["simulation"]) == 2
    assert all(c["equal"] for c in report["rtl"]["simulation"])


def test_cli_rtl_softmax_tables_through_yosys_and_verilator(tmp_path):
    """A softmax output: its exp and reciprocal tables become da4ml lookup tables (ROMs
    with memory files), which Yosys maps and Verilator runs equal to fxq's simulation."""
    model, calib = _small_model(tmp_path, "Softmax")
    out = tmp_path / "out"
    assert fxq_cli("compile", model, "--calib", calib, "-o", str(out), "--bits", "6")\
        .returncode == 0
    run = fxq_cli("rtl", str(out), "--samples", "2000")
    assert run.returncode == 0, run.stderr
    rtl = json.loads((out / "report.json").read_text())["rtl"]
    assert rtl["simulation"][0]["equal"] and rtl["yosys"]["lut"] > 0
    assert os.listdir(out / "rtl" / "src" / "memfiles")          # the tables' ROMs


def test_cli_rtl_refuses_a_type_it_cannot_build_in_one_line(tmp_path):
    """A model file whose layer rounds ties to even (no such mode in da4ml): one line
    naming the node and the mode, a non-zero exit, no OUT/rtl, the model file untouched."""
    model, calib = _small_model(tmp_path)
    out = tmp_path / "out"
    assert fxq_cli("compile", model, "--calib", calib, "-o", str(out), "--bits", "6")\
        .returncode == 0
    path = out / "fxq_model.json"
    doc = json.loads(path.read_text())
    layer = next(iter(doc["layers"]))
    doc["layers"][layer]["result"]["rounding"] = "RND_CONV"
    path.write_text(json.dumps(doc))
    before = path.read_bytes()
    run = fxq_cli("rtl", str(out), "--samples", "100", "--no-synth")
    assert run.returncode != 0
    errors = [line for line in run.stderr.splitlines() if not line.startswith("fxq: ")]
    assert len(errors) == 1 and errors[0].startswith("fxq rtl: error: "), run.stderr
    assert f"node {layer!r}" in errors[0] and "AP_RND_CONV" in errors[0]
    assert not (out / "rtl").exists() and path.read_bytes() == before
    assert not [p for p in os.listdir(out) if p.startswith(".rtl")]
