"""What the analysis chooses is implementable exactly: every zoo model, quantized from its
calibration data (dynamic at 8 and 6 bits, static at 8), C-simulated by hls4ml and compared
layer by layer with fxq's simulation: zero mismatches. The chosen formats exercise what
uniform assignments do not: unsigned feature maps, per-layer fractional lengths, exact-width
accumulators, biases at accumulator resolution, fitted softmax tables."""
from __future__ import annotations

import os

import numpy as np
import pytest

import fxq
from fxq.analysis import BitConfig, quantize
from fxq.hls import verify
from fxq.op import Op
from helpers import assert_exact
from zoo import ZOO

# accumulators 3 bits coarser than their exact products: each product truncated onto the
# accumulator's grid as hls4ml assigns it to accum_t (Dense, Conv, depthwise)
DROP3 = BitConfig(kinds={"dense": {"accum_drop": 3}, "conv": {"accum_drop": 3}})
SETTINGS = {"dynamic8": dict(bits=8), "dynamic6": dict(bits=6),
            "static8": dict(bits=8, method="static"), "drop3": dict(bits=8, config=DROP3)}


def _quantized(zoo_dir, name, io_type, **kw):
    graph = fxq.load(os.path.join(zoo_dir, name, "model.onnx"))
    calib = np.load(os.path.join(zoo_dir, name, "calib.npz"))["x"]
    x = np.load(os.path.join(zoo_dir, name, "test.npz"))["x"][:40]
    return quantize(graph, calib, io_type=io_type, **kw), x


@pytest.mark.parametrize("setting", list(SETTINGS))
@pytest.mark.parametrize("name", list(ZOO))
def test_chosen_formats_match_c_simulation(zoo_dir, hls_dir, name, setting):
    q, x = _quantized(zoo_dir, name, "io_parallel", **SETTINGS[setting])
    assert_exact(verify(q, hls_dir, x, overwrite=True))


@pytest.mark.parametrize("name", list(ZOO))
def test_chosen_formats_match_c_simulation_streaming(zoo_dir, hls_dir, name):
    q, x = _quantized(zoo_dir, name, "io_stream", bits=8)
    assert_exact(verify(q, hls_dir, x, overwrite=True))


@pytest.mark.parametrize("name", ["dwsep", "conv1d"])
def test_dropped_accumulator_bits_match_c_simulation_streaming(zoo_dir, hls_dir, name):
    q, x = _quantized(zoo_dir, name, "io_stream", bits=8, config=DROP3)
    weighted = [n for n in q.graph.nodes if n.op in (Op.DENSE, Op.CONV)]
    assert weighted and all(
        q.layers[n.name].accum.frac == q.types[n.inputs[0]].frac
        + q.layers[n.name].param("weight").frac - 3 for n in weighted)
    assert_exact(verify(q, hls_dir, x, overwrite=True))
