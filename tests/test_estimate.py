"""The cycle and resource estimator: its rules, monotonicity where physics demands it, every
zoo model and setting, and its error against a published synthesis."""
from __future__ import annotations

import itertools
import os

import numpy as np
import pytest

import fxq
from fxq.devices import find_device
from fxq.cost import coefficients
from fxq.estimate import csd_digits, dsps_for, estimate, products
from fxq.fixed import FixedType
from fxq.quantized import uniform
from published import (FC16X5, JET_TAGGER, compare, design, fc16x5, jet_tagger, param_stats,
                       records, summary)
from zoo import ZOO

VU13P = find_device("xcvu13p-flga2577-2-e")
SETTINGS = list(itertools.product(["io_parallel", "io_stream"], ["latency", "resource"]))


def _zoo(zoo_dir, name):
    return fxq.load(os.path.join(zoo_dir, name, "model.onnx"))


def _uniform(graph, width):
    """Same integer bits at every width: fewer bits drop fractional bits only."""
    return uniform(graph, data=FixedType(width, width - 6), weight=FixedType(width, width - 2))


def test_canonical_signed_digits():
    assert [csd_digits(v) for v in (0, 1, 2, 3, 7, 15, 23, -5)] == [0, 1, 1, 2, 2, 2, 3, 2]


def test_dsp_ports_take_the_better_orientation():
    assert dsps_for(16, 16, VU13P) == 1                  # 27 x 18 ports
    assert dsps_for(30, 12, VU13P) == 2
    assert dsps_for(20, 20, VU13P) == 2


def test_what_a_constant_multiplication_costs():
    c = coefficients()["multiply"]
    x_t, w_t = FixedType(16, 10), FixedType(16, 10)
    w = np.array([[0, 4, -16, 3, 700, -1001, 640]]).T        # K=7 inputs, one output
    p = products(w, w_t, x_t, True, VU13P)
    # zero: nothing; 4 and -16: shifts; 3 (two digits): 2 bits + 16 bits -> LUT
    # shift-and-add; 700 and -1001 (four digits each) x 16 bits -> DSPs; 640 = 512 + 128:
    # as wide, but two digits: shifts and an add, in LUTs
    assert c["lut_max_digits"] == 2 and 16 + 11 > c["dsp_product_bits"]
    assert (p.units, p.dsp, p.dsp_units, p.zeros) == (4, 2, 2, 1)
    assert p.lut == pytest.approx(((2 - 1) * (16 + 3) + (2 - 1) * (16 + 11))
                                  * c["lut_per_adder_bit"])
    general = products(w, w_t, x_t, False, VU13P)          # weights not constant
    assert (general.units, general.dsp) == (7, 7)


@pytest.mark.parametrize("name", list(ZOO))
def test_estimates_exist_for_every_zoo_model_and_setting(zoo_dir, name):
    g = _zoo(zoo_dir, name)
    x = np.load(os.path.join(zoo_dir, name, "calib.npz"))["x"]
    q = fxq.quantize(g, x, bits=8)
    for (io, strategy), reuse in itertools.product(SETTINGS, [1, 2, 4, 16]):
        e = estimate(q, io_type=io, strategy=strategy, reuse_factor=reuse)
        assert len(e.layers) == len(g.nodes)
        t = e.total
        assert t.latency >= 1 and t.ii >= 1 and t.lut > 0 and t.ff > 0
        assert min(t.dsp, t.bram18) >= 0
        assert t.dsp == sum(layer.cost.dsp for layer in e.layers)


@pytest.mark.parametrize("name", list(ZOO))
def test_fewer_bits_never_raise_dsps(zoo_dir, name):
    g = _zoo(zoo_dir, name)
    for (io, strategy), reuse in itertools.product(SETTINGS, [1, 4]):
        dsps = [estimate(_uniform(g, w), io_type=io, strategy=strategy,
                         reuse_factor=reuse).total.dsp for w in (18, 16, 12, 10, 8, 6, 4)]
        assert dsps == sorted(dsps, reverse=True), (io, strategy, reuse, dsps)
        assert dsps[0] > 0 or strategy == "resource"


@pytest.mark.parametrize("name", list(ZOO))
def test_larger_reuse_never_raises_dsps_nor_lowers_latency(zoo_dir, name):
    q = _uniform(_zoo(zoo_dir, name), 16)
    for io, strategy in SETTINGS:
        runs = [estimate(q, io_type=io, strategy=strategy, reuse_factor=r).total
                for r in (1, 2, 4, 8, 16, 64)]
        dsps, latencies = [t.dsp for t in runs], [t.latency for t in runs]
        assert dsps == sorted(dsps, reverse=True), (io, strategy, dsps)
        assert latencies == sorted(latencies), (io, strategy, latencies)


def test_resource_strategy_keeps_large_weight_matrices_in_block_ram(zoo_dir):
    q = _uniform(_zoo(zoo_dir, "mlp"), 16)
    latency = estimate(q, strategy="latency", reuse_factor=4).total
    resource = estimate(q, strategy="resource", reuse_factor=4).total
    assert resource.bram18 > latency.bram18


# published: Vivado HLS 2020.1 C synthesis and Vivado logic synthesis of hls4ml's
# report-test design (examples/published.py, tests/fixtures/vivado_2020_1_fc16x5)
PUBLISHED_CSYNTH, PUBLISHED_VSYNTH = FC16X5["csynth"], FC16X5["vsynth"]


def _within(est: float, published: float, factor: float) -> bool:
    return published / factor <= est <= published * factor


def test_estimate_against_the_published_synthesis():
    """hls4ml's report-test design, outside the fit (its weights drawn, not published): its
    errors as README states them, pinned. DSPs within 25 % of both syntheses, LUTs within
    1.7x of logic synthesis and 2x of C synthesis, latency and II within 3 cycles. Its
    flip-flops are the miss: 944 against 2,428 in logic synthesis (every product of its
    stream dense registered in fabric; the data set's stream CNNs register far fewer)."""
    for seed in range(5):
        e = estimate(fc16x5(seed), io_type="io_stream", part=FC16X5["part"])
        t = e.total
        assert _within(t.dsp, PUBLISHED_CSYNTH["dsp"], 1.25)
        assert _within(t.dsp, PUBLISHED_VSYNTH["dsp"], 1.25)
        assert _within(t.lut, PUBLISHED_VSYNTH["lut"], 1.7)
        assert _within(e.csynth()["lut"], PUBLISHED_CSYNTH["lut"], 2.0)
        assert 0.3 * PUBLISHED_VSYNTH["ff"] <= t.ff <= 0.5 * PUBLISHED_VSYNTH["ff"]
        assert abs(t.latency - PUBLISHED_CSYNTH["latency"]) <= 3
        assert abs(t.ii - PUBLISHED_CSYNTH["ii"]) <= 3


def test_estimate_against_the_published_jet_tagger():
    """The tutorial's jet tagger as one user published it (examples/published.py), outside
    the fit, its weights drawn: II and BRAM18 exact, latency within 2 cycles, the
    C-synthesis LUT and FF within 1.25x; DSPs 1.6-1.7x: random draws have more non-zero
    digits than trained, L1-regularized weights, so fewer of their products are shifts
    and adds (the data set's trained jet taggers are within 2 % of their DSP counts)."""
    ref = JET_TAGGER["csynth"]
    for seed in range(3):
        e = estimate(jet_tagger(seed), io_type="io_parallel", part=JET_TAGGER["part"])
        t = e.total
        assert (t.ii, t.bram18) == (ref["ii"], ref["bram18"])
        assert ref["dsp"] <= t.dsp <= 1.7 * ref["dsp"]
        assert abs(t.latency - ref["latency"]) <= 2
        for key in ("lut", "ff"):
            assert _within(e.csynth()[key], ref[key], 1.25)


def test_estimate_against_the_data_set_of_published_syntheses():
    """hw/syntheses.json, the designs kept out of the fit (benchmarks/syntheses.py): median
    estimate / published within 1.2x for latency, II and DSP, within 1.5x for LUT and FF
    (logic synthesis, which they predict) and for the C-synthesis LUT and FF figures;
    at least 80 % of the designs within 2x on every figure. The designs fitted on are held
    to the same."""
    for held_out in (True, False):
        chosen = [compare(r) for r in records() if r["held_out"] == held_out]
        s = summary(chosen)
        for figure, bound in (("latency", 1.2), ("ii", 1.2), ("dsp", 1.2), ("bram18", 1.2),
                              ("lut", 1.5), ("ff", 1.5), ("lut_c", 1.5), ("ff_c", 1.5)):
            assert 1 / bound <= s[figure]["median"] <= bound, (held_out, figure, s[figure])
            assert s[figure]["within_2x"] >= 0.8, (held_out, figure, s[figure])


def test_every_design_of_the_data_set_rebuilds_to_its_statistics():
    """The rebuilt weights (examples/published.py) have the recorded statistics, so the
    estimate of a rebuilt design is that of the published one."""
    for r in records():
        q, _ = design(r, seed=1)
        for layer in r["layers"]:
            for role, stats in layer.get("params", {}).items():
                node = q.graph.node(layer["name"])
                raw = q.fixed_node(node).params[q.fixed_node(node).roles.index(role)]
                assert param_stats(raw, stats["out_axis"]) == stats, (r["name"], layer["name"])


@pytest.mark.parametrize("name", ["mlp", "cnn_bn"])
def test_a_slower_clock_never_adds_cycles(zoo_dir, name):
    """The clock model: HLS chains more logic into a longer cycle, so latency in cycles
    falls (never rises) as the period grows, and an older part never takes fewer."""
    q = _uniform(_zoo(zoo_dir, name), 16)
    clocks = (2.0, 3.0, 5.0, 10.0, 25.0)
    for part in ("xcvu13p-flga2577-2-e", "xc7z020clg400-1"):
        runs = [estimate(q, io_type="io_parallel", clock_ns=c, part=part).total.latency
                for c in clocks]
        assert runs == sorted(runs, reverse=True) and runs[0] > runs[-1], (part, runs)
    fast, slow = (estimate(q, io_type="io_parallel", clock_ns=3.0, part=p).total.latency
                  for p in ("xcvu13p-flga2577-2-e", "xc7z020clg400-1"))
    assert slow >= fast


# (BRAM18, DSP, FF, LUT, URAM) from the "Available" row of HLS synthesis reports of each part
VENDOR_REPORTED_TOTALS = {
    "xc7z020": (280, 220, 106400, 53200, 0),
    "xczu9eg": (1824, 2520, 548160, 274080, 0),
    "xcku115": (4320, 5520, 1326720, 663360, 0),
    "xcvu9p": (4320, 6840, 2364480, 1182240, 960),
    "xcu250": (5376, 12288, 3456000, 1728000, 1280),
    "xcvu13p": (5376, 12288, 3456000, 1728000, 1280),
    "xcu55c": (4032, 9024, 2607360, 1303680, 960),
}


@pytest.mark.parametrize("name", sorted(VENDOR_REPORTED_TOTALS))
def test_device_totals_are_the_vendor_tools(name):
    from fxq.devices import find_device
    d = find_device(name)
    assert (d.bram18, d.dsp, d.ff, d.lut, d.uram) == VENDOR_REPORTED_TOTALS[name]


def test_every_part_of_hls4mls_board_files_is_in_the_catalog():
    """hls4ml's VivadoAccelerator boards (pynq-z2, zcu102, alveo-u50/u200/u250/u280)."""
    import json

    import hls4ml
    from fxq.devices import find_device

    path = os.path.join(os.path.dirname(hls4ml.__file__), "backends", "vivado_accelerator",
                        "supported_boards.json")
    with open(path) as f:
        boards = json.load(f)
    assert len(boards) >= 6
    for board, spec in boards.items():
        d = find_device(spec["part"])
        assert spec["part"].startswith(d.name) and d.lut > 0 and d.dsp > 0, board


def test_unknown_part_is_refused_listing_the_known():
    with pytest.raises(fxq.FxqError, match="not in fxq's device catalog.*xczu9eg-ffvb1156"):
        estimate(fc16x5(0), part="xc9z999")


@pytest.mark.parametrize("settings, message", [
    (dict(reuse_factor=0), "reuse_factor 0: expected an integer >= 1"),
    (dict(reuse_factor=-3), "reuse_factor -3: expected an integer >= 1"),
    (dict(strategy="Resourse"), "strategy 'Resourse': expected one of latency, resource"),
    (dict(io_type="io_serial"), "io_type 'io_serial': expected one of io_parallel, io_stream"),
    (dict(clock_ns=0), "clock_ns 0: expected a positive number"),
])
def test_bad_settings_are_one_line_errors_before_any_estimate(settings, message, zoo_dir):
    from fxq.errors import FxqError

    with pytest.raises(FxqError, match=message):
        fxq.Target(**settings)
    if "io_type" not in settings:
        with pytest.raises(FxqError, match=message):
            estimate(_uniform(_zoo(zoo_dir, "mlp"), 16), **settings)


def test_per_layer_reuse_factors_divide_that_layers_multipliers_only(zoo_dir):
    g = fxq.load(os.path.join(zoo_dir, "mlp", "model.onnx"))
    q = uniform(g, data=FixedType(16, 10), weight=FixedType(16, 12))
    dense = [n.name for n in g.nodes if n.op is fxq.Op.DENSE]
    base = estimate(q, target=fxq.Target())
    one = estimate(q, target=fxq.Target(layer_reuse={dense[0]: 4}))
    by_name = lambda e: {layer.name: layer.cost for layer in e.layers}  # noqa: E731
    assert by_name(one)[dense[0]].dsp < by_name(base)[dense[0]].dsp
    assert by_name(one)[dense[0]].ii == 4 * by_name(base)[dense[0]].ii
    for name in dense[1:]:
        assert by_name(one)[name] == by_name(base)[name]
