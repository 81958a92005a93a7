"""Work in batches with bounded memory: verify gives the same answers in batches as in one
pass; the float walk yields every tensor and drops dead ones; verify
reports progress and refuses, before writing, an io_parallel build g++ would not finish."""
from __future__ import annotations

import importlib
import os

import numpy as np
import pytest

import fxq
from fxq.hls import verify
from fxq.hls.verify import CSimulationError
from fxq.reference import evaluate, walk
from helpers import assert_exact

# the module (fxq.hls exports its function `verify` under the same name)
verify_module = importlib.import_module("fxq.hls.verify")


def _zoo(zoo_dir, name, n=40):
    graph = fxq.load(os.path.join(zoo_dir, name, "model.onnx"))
    x = np.load(os.path.join(zoo_dir, name, "calib.npz"))["x"][:n]
    return graph, x


def test_walk_yields_every_tensor_as_evaluate_computes_it(zoo_dir):
    graph, x = _zoo(zoo_dir, "resnet")
    full = evaluate(graph, x)
    seen = dict(walk(graph, x))
    assert set(seen) == set(full)
    for name, value in seen.items():
        np.testing.assert_array_equal(value, full[name])


def test_verify_in_batches_equals_one_pass(zoo_dir, hls_dir, monkeypatch):
    graph, x = _zoo(zoo_dir, "cnn_bn")
    q = fxq.quantize(graph, calib=x, bits=6)
    whole = verify(q, hls_dir, x, overwrite=True)
    messages = []
    monkeypatch.setattr(verify_module, "VERIFY_BATCH", 7)
    parts = verify(q, hls_dir, x, overwrite=True, progress=messages.append)
    assert_exact(parts)
    assert (parts.samples, parts.compared, parts.mismatches) == \
        (whole.samples, whole.compared, whole.mismatches)
    assert [(r.layer, r.compared) for r in parts.layers] == \
        [(r.layer, r.compared) for r in whole.layers]
    assert messages[0].startswith("building the C simulation")
    assert messages[1:] == [f"C simulation: samples {s + 1}-{min(s + 7, 40)} of 40"
                            for s in range(0, 40, 7)]


def test_an_io_parallel_build_g_plus_plus_would_not_finish_is_refused(zoo_dir, tmp_path,
                                                                      monkeypatch):
    graph, x = _zoo(zoo_dir, "cnn_bn", n=4)
    q = fxq.quantize(graph, calib=x, bits=8)
    seconds, largest = verify_module.gxx_seconds(q, fxq.Target(io_type="io_parallel"))
    assert seconds > 0 and largest is not None
    assert verify_module.gxx_seconds(q, fxq.Target(io_type="io_stream")) == (0.0, None)
    monkeypatch.setattr(verify_module, "GXX_LIMIT_S", seconds / 2)
    with pytest.raises(CSimulationError, match=rf"g\+\+ .* slowest windowed layer, "
                       rf"'{largest}'.*verify the design in io_stream"):
        verify(q, tmp_path / "csim", x, io_type="io_parallel")
    assert not (tmp_path / "csim").exists()


def test_from_torch_takes_numpy_examples():
    import torch
    module = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU())
    graph = fxq.from_torch(module, np.ones((2, 4)))
    assert graph.shape(graph.inputs[0]) == (4,)
