"""The MLPerf Tiny reference networks (examples/tiny.py) in both of torch's exports: they
import and agree, compile at 8 bits (io_stream for the CNNs), fit the xczu9eg at 80 % where
the estimate says they can, and verify bit for bit against the C simulation.

At 8 bits their products are narrow constants that HLS builds in LUTs, which the latency
strategy shares at no reuse factor (fxq.estimate), so the fit takes the resource strategy
(fit_vary strategy) for those that fit."""
from __future__ import annotations

import os

import numpy as np
import pytest

import fxq
from fxq.fit import FitError
from fxq.hls import verify
from helpers import ORT_TOLERANCE, assert_exact, ort_error, run_ort
from tiny import TINY

PART = "xczu9eg-ffvb1156-2-e"
EXPORTS = ("model.onnx", "model_dynamo.onnx")
# what the estimate says of each at 8 bits on xczu9eg at 80 % (the fit's outcome, free to
# change the strategy)
FITS = {"resnet8": True, "ds_cnn": True, "mobilenet": False, "autoencoder": True}


@pytest.mark.parametrize("name", list(TINY))
def test_both_exports_import_and_agree(tiny_dir, name):
    x = np.load(os.path.join(tiny_dir, name, "test.npz"))["x"][:64]
    outs = []
    for export in EXPORTS:
        path = os.path.join(tiny_dir, name, export)
        y = fxq.load(path).run(x)
        assert ort_error(y, run_ort(path, {"x": x})[0]) <= ORT_TOLERANCE
        outs.append(y)
    assert ort_error(outs[0], outs[1]) <= ORT_TOLERANCE


@pytest.mark.parametrize("export", EXPORTS)
@pytest.mark.parametrize("name", list(TINY))
def test_compiles_fits_and_verifies(tiny_dir, name, export, hls_dir):
    d = os.path.join(tiny_dir, name)
    calib = np.load(os.path.join(d, "calib.npz"))["x"]
    test = np.load(os.path.join(d, "test.npz"))
    target = fxq.Target(io_type=TINY[name].io_type, part=PART)
    model = os.path.join(d, export)
    config = fxq.analysis.BitConfig.of(8)
    if FITS[name]:
        result = fxq.compile(model, calib, config=config, target=target, fit=True,
                             max_util=0.8, labels=None, fit_vary=("strategy",))
        assert all(u <= 0.8 for u in result.estimate.utilization().values())
        assert str(result.target.strategy) == "resource"
    else:
        with pytest.raises(FitError, match=f"{PART} at 80% utilization: .*LUT"):
            fxq.compile(model, calib, config=config, target=target, fit=True, max_util=0.8,
                        fit_vary=("strategy",))
        result = fxq.compile(model, calib, config=config, target=target, allow_overfit=True)
        assert result.overuse
    assert_exact(verify(result.q, hls_dir, test["x"][:16], overwrite=True,
                        target=result.target))
