"""Fitting the part: an estimate over the part is refused by name, `--fit` chooses per-layer
reuse factors hls4ml builds as given, and the fitted estimate is within the limit."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

import fxq
from fxq.estimate import estimate
from fxq.fit import FitError, fit, overuse
from fxq.fixed import FixedType
from fxq.quantized import uniform
from fxq.reuse import built_reuse, reuse_choices
from fxq.target import Strategy
from helpers import fxq_cli

SMALL = "xc7z020clg400-1"


def _q(zoo_dir, name, accum=None):
    graph = fxq.load(os.path.join(zoo_dir, name, "model.onnx"))
    return uniform(graph, data=FixedType(16, 10), weight=FixedType(16, 12), accum=accum)


# (model, strategy, part): the resource strategy shares every product and adder, so it fits
# the small part; the latency strategy shares only the products in DSP slices (hls4ml's
# ALLOCATION of `mul`), so it fits where DSPs are what is over: the larger part, with
# hls4ml's default 16-bit accumulators
FITS = [("mlp", "resource", SMALL), ("cnn_bn", "resource", SMALL),
        ("conv1d", "resource", SMALL), ("mlp", "latency", "xczu9eg-ffvb1156-2-e"),
        ("conv1d", "latency", "xczu9eg-ffvb1156-2-e")]


@pytest.mark.parametrize("name, strategy, part", FITS)
def test_fit_gives_a_design_within_the_limit(zoo_dir, name, strategy, part):
    q = _q(zoo_dir, name, accum=FixedType(16, 10) if strategy == "latency" else None)
    target = fxq.Target(part=part, strategy=strategy)
    assert overuse(estimate(q, target=target), 1.0)          # it did not fit before
    fitted, est = fit(q, target, max_util=0.8)
    assert all(u <= 0.8 for u in est.utilization().values())
    assert est.to_json() == estimate(q, target=fitted).to_json()
    for node in q.graph.nodes:
        if node.name in fitted.layer_reuse:
            assert fitted.layer_reuse[node.name] in reuse_choices(q, node, fitted.strategy)
    assert fitted.layer_reuse and max(fitted.layer_reuse.values()) > 1


def test_latency_strategy_reuse_cannot_lower_luts(zoo_dir):
    """In the latency strategy the constant products built in LUTs and the adders are not
    shared at any reuse factor (the published syntheses: the tutorial's jet tagger takes
    85k LUTs at R = 1 and 87k at R = 2): a LUT-bound design is refused, the way out named."""
    q = _q(zoo_dir, "mlp")
    with pytest.raises(FitError, match=r"LUT [\d,]+ of 53,200 .*no reuse factor of the Dense "
                       r"and Conv layers lowers the LUT further \(try --strategy resource"):
        fit(q, fxq.Target(part=SMALL), max_util=0.8)


def test_a_design_no_reuse_factor_fits_is_refused_naming_the_resource(zoo_dir):
    q = _q(zoo_dir, "resnet")
    with pytest.raises(FitError, match=r"cannot fit xc7z020clg400-1 at 80% utilization: the "
                       r"layers without reuse factors alone need LUT [\d,]+ of 53,200"):
        fit(q, fxq.Target(part=SMALL), max_util=0.8)


def test_fit_may_change_strategy_and_io_type_when_asked(zoo_dir):
    """The residual CNN cannot fit xc7z020 in io_parallel in any strategy (its merges and
    activations alone are over); allowed to vary the io type, the fit streams it."""
    q = _q(zoo_dir, "resnet")
    target = fxq.Target(part=SMALL)
    with pytest.raises(FitError, match=r"no setting tried fits xc7z020clg400-1 at 80% "
                       r"utilization: latency strategy, io_parallel: .*; resource strategy, "
                       r"io_parallel: the layers without reuse factors alone need LUT"):
        fit(q, target, max_util=0.8, vary=("strategy",))
    fitted, est = fit(q, target, max_util=0.8, vary=("strategy", "io_type"))
    assert str(fitted.io_type) == "io_stream"
    assert all(u <= 0.8 for u in est.utilization().values())
    assert est.to_json() == estimate(q.with_io_type("io_stream"), target=fitted).to_json()
    with pytest.raises(FitError, match="cannot vary clock"):
        fit(q, target, vary=("clock",))


def test_resource_strategy_reuse_is_snapped_as_hls4ml_snaps_it(zoo_dir):
    """A 64 x 64 Dense cannot reuse 3 times in hls4ml's resource templates: hls4ml builds
    the closest valid factor, and the estimate counts that one."""
    q = _q(zoo_dir, "mlp")
    node = next(n for n in q.graph.nodes if n.op is fxq.Op.DENSE)
    assert 3 not in reuse_choices(q, node, Strategy.RESOURCE)
    snapped = built_reuse(q, node, Strategy.RESOURCE, 3)
    assert snapped in reuse_choices(q, node, Strategy.RESOURCE)
    assert built_reuse(q, node, Strategy.LATENCY, 3) == 3
    three = estimate(q, target=fxq.Target(strategy="resource", layer_reuse={node.name: 3}))
    same = estimate(q, target=fxq.Target(strategy="resource",
                                         layer_reuse={node.name: snapped}))
    assert three.layers[0].cost == same.layers[0].cost


def test_compile_refuses_an_overfull_design_and_fits_it_when_asked(zoo_dir, tmp_path):
    model = os.path.join(zoo_dir, "mlp", "model.onnx")
    calib = os.path.join(zoo_dir, "mlp", "calib.npz")
    refused = fxq_cli("compile", model, "--calib", calib, "-o", str(tmp_path / "a"),
                      "--bits", "16", "--part", SMALL)
    assert refused.returncode == 2, refused.stderr
    assert "does not fit xc7z020clg400-1: DSP" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "a").exists()
    # LUT-bound at any reuse factor of the latency strategy: the fit takes the resource one
    fitted = fxq_cli("compile", model, "--calib", calib, "-o", str(tmp_path / "b"),
                     "--bits", "16", "--part", SMALL, "--fit", "--max-util", "0.8",
                     "--fit-vary", "strategy")
    assert fitted.returncode == 0, fitted.stderr
    assert "fit: resource strategy, io_parallel, reuse factors" in fitted.stdout
    report = json.loads((tmp_path / "b" / "report.json").read_text())
    assert all(u <= 0.8 for u in report["estimate"]["utilization"].values())
    chosen = report["settings"]["fit"]["layer_reuse"]
    saved = json.loads((tmp_path / "b" / "fxq_model.json").read_text())
    assert saved["compile"]["hls"]["layer_reuse"] == chosen
    config = (tmp_path / "b" / "hls" / "hls4ml_config.yml").read_text()
    assert all(f"ReuseFactor: {r}" in config for r in chosen.values())
    anyway = fxq_cli("compile", model, "--calib", calib, "-o", str(tmp_path / "c"),
                     "--bits", "16", "--part", SMALL, "--allow-overfit")
    assert anyway.returncode == 0 and "warning: the estimate does not fit" in anyway.stderr
