"""Per-layer widths under a budget (fxq.analysis.budget, fxq compile --budget): the design
returned meets the budget on the calibration data (recomputed from scratch), costs no more
than the start, is what its widths give, is on the search's Pareto front, and matches
hls4ml's C simulation; bad budgets are one-line errors that write nothing."""
from __future__ import annotations

import os

import numpy as np
import pytest

import fxq
from fxq.analysis import BitConfig, quantize_graph
from fxq.analysis.budget import (PROBE_TOLERANCE, BudgetError, budget_search, cost_of,
                                 probe_samples, pruned_graph, sparsities)
from fxq.data import bind_inputs
from fxq.estimate import estimate
from fxq.hls import verify
from helpers import assert_exact, compile_zoo, fxq_cli
from random_graphs import BUILDERS


def _mlp(zoo_dir):
    graph = fxq.load(os.path.join(zoo_dir, "mlp", "model.onnx"))
    data = np.load(os.path.join(zoo_dir, "mlp", "calib.npz"))
    return graph, data["x"][:160], data["y"][:160]


def test_the_chosen_widths_meet_the_budget_and_cost_less(zoo_dir):
    graph, x, y = _mlp(zoo_dir)
    b = budget_search(graph, x, labels=y, points=1.0)
    q = b.result.q
    # recomputed from scratch: the design's layers pruned as chosen and its widths
    # replayed, its top-1 and agreement
    sparsity = sparsities(b.chosen.widths)
    pruned = pruned_graph(graph, bind_inputs(graph, x), sparsity)
    again = quantize_graph(pruned, x, b.config).q
    assert again.layers == q.layers
    for name, s in sparsity.items():
        w = q.graph.params[dict(q.graph.param_inputs(q.graph.node(name)))["weight"]]
        assert np.count_nonzero(w == 0) >= round(s * w.size)      # (whole weights)
    y_float = graph.run(x).argmax(axis=1)
    y_fixed = q.simulate(x).argmax(axis=1)
    float_top1 = 100 * np.mean(y_float == y)
    assert b.float_accuracy == pytest.approx(float_top1, abs=0)
    assert 100 * np.mean(y_fixed == y) >= float_top1 - 1.0
    assert 100 * np.mean(y_fixed == y_float) >= 99.0
    # the cost is the estimate's EBOPs of that design, below the uniform 8-bit start's
    e = estimate(q)
    assert b.chosen.cost == cost_of(e, "ebops") == e.total.lut + 55 * e.total.dsp
    assert b.chosen.cost < b.start.cost
    assert b.start.cost == cost_of(estimate(quantize_graph(graph, x, BitConfig()).q), "ebops")
    # each move lowered the cost; the chosen design is on the front, which nothing beats
    costs = [p.cost for p in b.trace]
    assert all(later < earlier for earlier, later in zip(costs, costs[1:]))
    front = [(p.cost, p.accuracy) for p in b.front]
    assert (b.chosen.cost, b.chosen.accuracy) in front or any(
        c <= b.chosen.cost and a >= b.chosen.accuracy for c, a in front)
    assert all(not (c2 <= c1 and a2 >= a1 and (c2, a2) != (c1, a1))
               for c1, a1 in front for c2, a2 in front)
    # the widths are the design's, and so are the accumulators' dropped bits
    for node in graph.nodes:
        if node.output in b.result.assignment.results:
            assert q.types[node.output].width == b.chosen.widths[node.name]["act_bits"]
        if "accum_drop" in b.chosen.widths[node.name]:
            layer = q.layers[node.name]
            assert layer.accum.frac == q.types[node.inputs[0]].frac \
                + layer.param("weight").frac - b.chosen.widths[node.name]["accum_drop"]
    # and near the decision boundaries: on the probes, recomputed, the float decisions kept
    # on all but 4 x 1 % more than the start keeps
    probes = probe_samples(bind_inputs(graph, x), graph.run(x))
    p_float = graph.run(probes)
    kept = 100 * np.mean(q.simulate(probes).argmax(axis=1) == p_float.argmax(axis=1))
    assert kept == b.chosen.probe_agreement
    assert kept >= b.start.probe_agreement - PROBE_TOLERANCE * 1.0
    # deterministic
    assert budget_search(graph, x, labels=y, points=1.0).chosen == b.chosen


def test_without_pruning_the_search_zeroes_no_weight(zoo_dir):
    graph, x, y = _mlp(zoo_dir)
    b = budget_search(graph, x, labels=y, points=1.0, prune=False)
    assert sparsities(b.chosen.widths) == {} and b.graph is graph
    assert all("prune_steps" not in w for w in b.chosen.widths.values())
    assert b.chosen.cost < b.start.cost


def test_probes_mix_samples_of_different_float_classes():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 3))
    y = np.eye(2)[(x[:, 0] > 0).astype(int)]          # the "float model": the sign of x0
    probes = probe_samples({"x": x}, y)["x"]
    assert 0 < len(probes) <= 1024
    # each probe is lam * a + (1 - lam) * b of two samples of different classes, lam in
    # [0.3, 0.7]: its x0 lies strictly between theirs, so nearer the boundary x0 = 0
    assert np.all(np.abs(probes[:, 0]) < np.abs(x[:, 0]).max())
    np.testing.assert_array_equal(probe_samples({"x": x}, y)["x"], probes)
    assert probe_samples({"x": x}, np.eye(2)[np.zeros(50, dtype=int)]) is None  # one class


def test_an_sqnr_budget_needs_no_labels_and_holds(hls_dir):
    q0, x = BUILDERS["cnn"](np.random.default_rng(4), "io_parallel")
    graph = q0.graph
    b = budget_search(graph, x, sqnr_db=25.0, minimize="lut")
    f = graph.run(x)
    got = b.result.q.simulate(x)
    sqnr = 10 * np.log10(np.mean(f ** 2) / np.mean((got - f) ** 2))
    assert sqnr == pytest.approx(b.chosen.accuracy, rel=1e-9) and sqnr >= 25.0
    assert b.chosen.cost <= b.start.cost
    assert_exact(verify(b.result.q, hls_dir, x[:20], overwrite=True))


def test_bad_budgets_are_refused(zoo_dir):
    graph, x, y = _mlp(zoo_dir)
    with pytest.raises(BudgetError, match="needs labels"):
        budget_search(graph, x, points=0.5)
    with pytest.raises(BudgetError, match="minimize"):
        budget_search(graph, x, labels=y, points=0.5, minimize="area")
    with pytest.raises(BudgetError, match="one of them"):
        budget_search(graph, x, labels=y, points=0.5, sqnr_db=30)
    with pytest.raises(BudgetError, match="already miss"):
        budget_search(graph, x, labels=y, points=0.0, start=BitConfig.of(2))


def test_compile_budget_writes_the_search_and_its_front(zoo_dir, tmp_path):
    model = os.path.join(zoo_dir, "mlp", "model.onnx")
    calib = os.path.join(zoo_dir, "mlp", "calib.npz")
    run, doc = compile_zoo(zoo_dir, "mlp", tmp_path / "b", "--budget", "1")
    assert run.returncode == 0, run.stderr
    b = doc["budget"]
    assert b["minimize"] == "ebops" and b["chosen"]["cost"] < b["start"]["cost"]
    assert set(b["chosen"]["sparsity"]) <= set(b["chosen"]["widths"])
    assert b["front"] and b["trace"][0]["move"] == "start"
    assert os.path.getsize(tmp_path / "b" / "plots" / "pareto.png") > 0
    assert "Widths: the least ebops" in open(tmp_path / "b" / "report.md").read()
    # no labels: refused in one line, nothing written
    x = np.load(calib)["x"]
    np.savez(tmp_path / "unlabelled.npz", x=x)
    bad = fxq_cli("compile", model, "--calib", str(tmp_path / "unlabelled.npz"), "-o",
                  str(tmp_path / "n"), "--budget", "1")
    assert bad.returncode == 2 and "needs labels" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "n").exists()
