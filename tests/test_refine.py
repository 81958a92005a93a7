"""The refinement against the network's output (fxq.analysis.refine): its objective is the
true one of the design it returns (its incremental re-simulation is exact), never worse
than either start (the greedy pass's and the static baseline's), deterministic, and the
design is the type rules' replay of its assignment."""
from __future__ import annotations

import os

import numpy as np
import pytest

import fxq
from fxq.analysis import BitConfig, quantize_graph
from fxq.analysis.refine import REFINE_SAMPLES, objective_tensors, refinement_samples
from fxq.fixed import to_float
from random_graphs import BUILDERS


def _objective(q, graph, x) -> float:
    """Sum over the compared tensors of MSE(fixed, float) / mean(float^2), from scratch."""
    names = objective_tensors(graph)
    raw = q.evaluate(x, keep=list(names))
    floats = fxq.reference.evaluate(graph, x)
    return sum(float(np.mean(np.square(to_float(raw[n], q.types[n]) - floats[n])))
               / max(float(np.mean(np.square(floats[n]))), 1e-30) for n in names)


def _cases(zoo_dir):
    for name in ("mlp", "resnet", "dwsep"):
        graph = fxq.load(os.path.join(zoo_dir, name, "model.onnx"))
        yield name, graph, np.load(os.path.join(zoo_dir, name, "calib.npz"))["x"][:200]
    for kind in ("mlp", "cnn", "added_ops"):
        q0, x = BUILDERS[kind](np.random.default_rng(3), "io_parallel")
        yield kind, q0.graph, x


@pytest.mark.parametrize("bits", [4, 6])
def test_the_refined_design_is_scored_exactly_and_beats_both_starts(zoo_dir, bits):
    for name, graph, x in _cases(zoo_dir):
        result = quantize_graph(graph, x, BitConfig.of(bits), refine=True)
        r = result.refinement
        assert r is not None and r.samples == refinement_samples(graph, len(x))
        sub = x[:r.samples]
        # the objective the descent reports is the returned design's own, recomputed
        assert r.objective == pytest.approx(_objective(result.q, graph, sub), rel=1e-9), name
        assert r.objective <= min(r.starts.values()), name
        static = quantize_graph(graph, x, BitConfig.of(bits), method="static")
        greedy = quantize_graph(graph, x, BitConfig.of(bits))
        assert r.starts["static"] == pytest.approx(_objective(static.q, graph, sub), rel=1e-9)
        assert r.starts["greedy"] == pytest.approx(_objective(greedy.q, graph, sub), rel=1e-9)
        # every kept move lowered the objective
        moves = [s.objective for s in r.trace if s.key is not None]
        assert all(b < a for a, b in zip([min(r.starts.values())] + moves, moves)), name


def test_refinement_is_deterministic_and_replays_to_the_same_design(zoo_dir):
    graph = fxq.load(os.path.join(zoo_dir, "resnet", "model.onnx"))
    x = np.load(os.path.join(zoo_dir, "resnet", "calib.npz"))["x"]
    a = quantize_graph(graph, x, BitConfig.of(6), refine=True)
    b = quantize_graph(graph, x, BitConfig.of(6), refine=True)
    assert quantize_graph(graph, x, BitConfig.of(6)).refinement is None     # (off by default)
    assert a.assignment == b.assignment and a.q.layers == b.q.layers
    assert a.assignment == a.refinement.assignment


def test_samples_follow_the_work_of_one_simulation():
    q0, _ = BUILDERS["mlp"](np.random.default_rng(0), "io_parallel")
    assert refinement_samples(q0.graph, 10_000) == REFINE_SAMPLES
    assert refinement_samples(q0.graph, 100) == 100


def test_refining_never_clips_a_graph_output(zoo_dir):
    for name, graph, x in _cases(zoo_dir):
        q = quantize_graph(graph, x, BitConfig.of(4), refine=True).q
        y = graph.run(x)
        t = q.types[graph.outputs[0]]
        assert np.max(y) <= t.max and np.min(y) >= t.min, name
