"""Names in a model are data, never code or paths: quotes, slashes, `..`, spaces, C++
keywords, non-ASCII letters, names of hls4ml's own variables and duplicates all become valid,
unique C++ identifiers; the project compiles, matches fxq bit for bit, and nothing is
written outside the output directory."""
from __future__ import annotations

import os

import numpy as np
from onnx import helper

from helpers import fxq_cli, make_model, save

N = helper.make_node
IN = 'x"; system("rm -rf /"); //'


def hostile_model():
    rng = np.random.default_rng(0)
    w = {name: rng.normal(0, 0.5, shape).astype(np.float32) for name, shape in
         [("../w0", (6, 8)), ("b 0", (8,)), ("int", (8, 5)), ("b1", (5,)), ("w2", (5, 3)),
          ("naïve", (3,))]}
    nodes = [N("Gemm", [IN, "../w0", "b 0"], ["../../escape"], name="../../../tmp/evil"),
             N("Relu", ["../../escape"], ["class"], name="dup"),
             N("Gemm", ["class", "int", "b1"], ["layer2_out"], name="dup"),
             N("Relu", ["layer2_out"], ["naïve tensor"], name="w2"),
             N("Gemm", ["naïve tensor", "w2", "naïve"], ["y y"], name="int"),
             N("Softmax", ["y y"], ['out"put'], name="myproject", axis=1)]
    return make_model(nodes, {IN: ("N", 6)}, ['out"put'], w)


def _files(root):
    return {os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs}


def test_hostile_names_compile_verify_and_stay_inside_out(tmp_path, request):
    model = save(hostile_model(), tmp_path)
    calib = tmp_path / "calib.npz"
    np.savez(calib, x=np.random.default_rng(1).normal(0, 1, (64, 6)))
    # a stable directory, so the C-simulation build is cached across runs
    out = request.config.cache.mkdir("hostile_names") / "out"
    before = _files(tmp_path)
    result = fxq_cli("compile", model, "--calib", str(calib), "-o", str(out), "--force")
    assert result.returncode == 0, result.stderr
    result = fxq_cli("verify", str(out), "--input", str(calib))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "64 samples, 192 output values: 0 mismatches" in result.stdout
    assert _files(tmp_path) == before                      # nothing written beside the model
    assert not os.path.exists("/tmp/evil")
    for name in _files(out / "hls"):
        # the generated sources (hls4ml's library headers are copied verbatim)
        if name.endswith((".cpp", ".h")) and "nnet_utils" not in name and "ap_types" not in name:
            text = (out / "hls" / name).read_text(encoding="utf-8")
            assert "rm -rf" not in text and "naïve" not in text and "../" not in text, name
