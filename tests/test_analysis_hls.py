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
from fxq.analysis import quantize
from fxq.hls import verify
from helpers import assert_exact
from zoo import ZOO

SETTINGS = {"dynamic8": dict(bits=8), "dynamic6": dict(bits=6),
            "static8": dict(bits=8, method="static")}


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
