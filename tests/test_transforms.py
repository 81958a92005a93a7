"""The transform stage: transforms by name from the CLI and TOML, each change reported, and
magnitude pruning (the first transform) doing what it says on any graph."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

import fxq
from fxq.model_file import load_quantized
from fxq.passes import run_pipeline
from fxq.transforms import TransformError, from_cli, from_toml, pipeline
from fxq.transforms.prune import MagnitudePrune
from helpers import fxq_cli


@pytest.fixture(scope="module")
def mlp(zoo_dir):
    return fxq.load(os.path.join(zoo_dir, "mlp", "model.onnx"))


def _weights(graph):
    return {node.name: graph.params[dict(graph.param_inputs(node))["weight"]]
            for node in graph.nodes if node.op in (fxq.Op.DENSE, fxq.Op.CONV)}


@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.9])
def test_pruning_zeroes_the_smallest_weights_of_every_layer(mlp, sparsity):
    pruned, changes = run_pipeline(mlp, [MagnitudePrune(sparsity)])
    before, after = _weights(mlp), _weights(pruned)
    for name, w in before.items():
        p = after[name]
        target = int(round(sparsity * w.size))
        assert np.count_nonzero(p == 0) == target
        kept = p != 0
        np.testing.assert_array_equal(p[kept], w[kept])          # survivors untouched
        if target and kept.any():
            assert np.abs(w[~kept]).max() <= np.abs(w[kept]).min()
    assert len(changes) == (len(before) if sparsity else 0)
    again, more = run_pipeline(pruned, [MagnitudePrune(sparsity)])
    assert more == []                                             # a fixed point


def test_pruning_only_the_named_layers(mlp):
    first = next(iter(_weights(mlp)))
    pruned, changes = run_pipeline(mlp, [MagnitudePrune(0.5, layers=[first])])
    assert [c.removed for c in changes] == [()] and first in changes[0].what
    for name, w in _weights(pruned).items():
        assert (np.count_nonzero(w == 0) > 0) == (name == first)


@pytest.mark.parametrize("spec, message", [
    ("prune", "the setting 'sparsity' is required"),
    ("prune:sparsity=1.0", "sparsity = 1.0: expected a fraction in [0, 1)"),
    ("prune:sparsity=half", "sparsity = 'half' is not a valid value"),
    ("prune:sparsity=0.5,depth=2", "unknown setting 'depth'"),
    ("prune:0.5", "'0.5' is not key=value"),
    ("shrink:factor=2", "unknown transform 'shrink' (known: prune, share)"),
])
def test_bad_cli_transforms_are_one_line_errors(spec, message):
    with pytest.raises(TransformError) as info:
        from_cli(spec)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_toml_pipeline_runs_in_file_order_then_the_cli(tmp_path, mlp):
    config = tmp_path / "fxq.toml"
    config.write_text('bits = 8\n\n[[transform]]\nname = "prune"\nsparsity = 0.25\n')
    transforms = pipeline(str(config), ["prune:sparsity=0.5"])
    assert [t.sparsity for t in transforms] == [0.25, 0.5]
    bad = tmp_path / "bad.toml"
    bad.write_text('[[transform]]\nname = "prune"\nsparsity = 2\n')
    with pytest.raises(TransformError, match=r"bad.toml: \[\[transform\]\] number 1: transform "
                       r"prune: sparsity = 2: expected a fraction"):
        from_toml(str(bad))
    unknown = MagnitudePrune(0.5, layers=["nope"])
    with pytest.raises(TransformError, match="layer 'nope' is not a node of the graph"):
        run_pipeline(mlp, [unknown])


def test_compile_runs_the_pipeline_and_reports_every_change(zoo_dir, tmp_path):
    model = os.path.join(zoo_dir, "mlp", "model.onnx")
    calib = os.path.join(zoo_dir, "mlp", "calib.npz")
    config = tmp_path / "fxq.toml"
    config.write_text('[[transform]]\nname = "prune"\nsparsity = 0.5\n')
    out = tmp_path / "out"
    result = fxq_cli("compile", model, "--calib", calib, "-o", str(out), "--bits", "8",
                     "--config", str(config))
    assert result.returncode == 0, result.stderr
    doc = json.loads((out / "report.json").read_text())
    layers = [n.name for n in fxq.load(model).nodes if n.op is fxq.Op.DENSE]
    assert [c["rewrite"] for c in doc["transforms"]] == ["prune"] * len(layers)
    assert "Transforms (" in (out / "report.md").read_text()
    q = load_quantized(str(out / "fxq_model.json"))[0]
    for name in layers:
        w = q.graph.params[dict(q.graph.param_inputs(q.graph.node(name)))["weight"]]
        assert np.mean(w == 0) >= 0.5
    shared = fxq_cli("compile", model, "--calib", calib, "-o", str(tmp_path / "o3"),
                     "--config", str(config), "--transform", "share:clusters=4")
    assert shared.returncode == 0, shared.stderr
    doc = json.loads((tmp_path / "o3" / "report.json").read_text())
    assert [c["rewrite"] for c in doc["transforms"]] == ["prune"] * len(layers) + \
        ["share"] * len(layers)
    saved = json.loads((tmp_path / "o3" / "fxq_model.json").read_text())["graph"]["params"]
    assert sum("encoding" in p for p in saved.values()) == len(layers)
    refused = fxq_cli("compile", model, "--calib", calib, "-o", str(tmp_path / "o2"),
                      "--transform", "prune:sparsity=-1")
    assert refused.returncode == 2 and "sparsity = -1.0: expected a fraction" in refused.stderr
    assert not (tmp_path / "o2").exists()
