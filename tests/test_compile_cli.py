"""fxq compile / simulate / verify: the output directory, its reload, and clean refusals."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import fxq
from fxq.analysis import quantize
from fxq.model_file import from_json, load_quantized, to_json
from helpers import fxq_cli


@pytest.fixture(scope="module")
def compiled(zoo_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("compile") / "out"
    model = os.path.join(zoo_dir, "cnn_bn", "model.onnx")
    calib = os.path.join(zoo_dir, "cnn_bn", "calib.npz")
    result = fxq_cli("compile", model, "--calib", calib, "-o", str(out), "--bits", "8")
    assert result.returncode == 0, result.stderr
    return out, result


def test_compile_writes_the_model_the_project_and_the_report(compiled):
    out, result = compiled
    for name in ("fxq_model.json", "report.json", "report.md", "hls/firmware/myproject.cpp"):
        assert (out / name).exists(), name
    report = json.loads((out / "report.json").read_text())
    assert report["accuracy"]["float"] > 0.9 and report["accuracy"]["fixed"] > 0.9
    layer = report["layers"][0]
    assert layer["op"] == "CONV" and layer["types"]["weight"]["width"] == 8
    assert layer["sqnr_db"] > 20 and 0 <= layer["clipped_fraction"] < 0.01
    assert "| /0/Conv | CONV |" in result.stdout        # report.md printed
    # which synthesis each estimated figure predicts, and C synthesis's LUT and FF beside
    e = report["estimate"]
    assert e["predicts"]["lut"] == "logic synthesis" and e["predicts"]["ii"] == "C synthesis"
    assert e["csynth"]["lut"] > e["total"]["lut"]
    assert f"about {e['csynth']['lut']} LUT and {e['csynth']['ff']} FF here" in result.stdout


def test_simulate_reloads_the_model_bit_for_bit(compiled, zoo_dir, tmp_path):
    out, _ = compiled
    test = os.path.join(zoo_dir, "cnn_bn", "test.npz")
    y_path = tmp_path / "y.npy"
    result = fxq_cli("simulate", str(out), "--input", test, "--output", str(y_path), "--raw")
    assert result.returncode == 0, result.stderr
    assert "top-1 accuracy" in result.stdout
    g = fxq.load(os.path.join(zoo_dir, "cnn_bn", "model.onnx"))
    calib = np.load(os.path.join(zoo_dir, "cnn_bn", "calib.npz"))["x"]
    x = np.load(test)["x"]
    direct = quantize(g, calib, bits=8).simulate(x, raw=True)
    assert np.array_equal(np.load(y_path), direct)
    again = fxq_cli("simulate", str(out), "--input", test, "--output", str(y_path))
    assert again.returncode == 2 and "pass --force" in again.stderr


@pytest.mark.parametrize("name", ["mlp", "resnet"])
def test_model_file_round_trip_is_exact(zoo_dir, name):
    g = fxq.load(os.path.join(zoo_dir, name, "model.onnx"))
    x = np.load(os.path.join(zoo_dir, name, "calib.npz"))["x"]
    q = quantize(g, x, bits=6)
    again = from_json(json.loads(json.dumps(to_json(q))))
    assert dict(again.types) == dict(q.types)
    assert np.array_equal(again.simulate(x, raw=True), q.simulate(x, raw=True))


def test_verify_command_finds_zero_mismatches(zoo_dir, request):
    out = request.config.cache.mkdir("cli_verify") / "mlp"      # stable: builds cache
    model = os.path.join(zoo_dir, "mlp", "model.onnx")
    calib = os.path.join(zoo_dir, "mlp", "calib.npz")
    result = fxq_cli("compile", model, "--calib", calib, "-o", str(out), "--bits", "6",
                     "--force")
    assert result.returncode == 0, result.stderr
    # the C-simulation build is cached through FXQ_BUILD_CACHE, which the command inherits
    result = fxq_cli("verify", str(out), "--input", os.path.join(zoo_dir, "mlp", "test.npz"),
                     "--samples", "50")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "50 samples, 500 output values: 0 mismatches" in result.stdout


def _compile(zoo_dir, tmp_path, *extra, calib=None):
    model = os.path.join(zoo_dir, "mlp", "model.onnx")
    calib = calib or os.path.join(zoo_dir, "mlp", "calib.npz")
    return fxq_cli("compile", model, "--calib", str(calib), "-o", str(tmp_path / "o"), *extra)


@pytest.mark.parametrize("extra, message", [
    (["--bits", "0"], "--bits: 0 is not a bit width"),
    (["--bits", "65"], "--bits: 65 is not a bit width"),
    (["--weight-bits", "-2"], "--weight-bits: -2 is not a bit width"),
    (["--config", "missing.toml"], "missing.toml: cannot read"),
    (["--part", "xc9z999-ffg1-1"], "part 'xc9z999-ffg1-1' is not in fxq's device catalog "
                                   "(devices.toml); known: xc7z020clg400-1,"),
])
def test_compile_refuses_bad_options(zoo_dir, tmp_path, extra, message):
    result = _compile(zoo_dir, tmp_path, *extra)
    assert result.returncode == 2 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("arrays, message", [
    ({"x": np.zeros((0, 64))}, "holds no samples"),
    ({"x": np.zeros((5, 63))}, "has shape (5, 63), expected (N, 64)"),
    ({"x": np.full((5, 64), np.nan)}, "holds 320 NaN/Inf values"),
    ({"x": np.zeros((5, 64)), "y": np.zeros(4)}, "4 labels for 5 samples"),
])
def test_compile_refuses_bad_calibration_data(zoo_dir, tmp_path, arrays, message):
    calib = tmp_path / "calib.npz"
    np.savez(calib, **arrays)
    result = _compile(zoo_dir, tmp_path, calib=calib)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert not (tmp_path / "o").exists()


def test_compile_refuses_a_directory_it_would_overwrite(zoo_dir, tmp_path):
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "mine.txt").write_text("keep")
    result = _compile(zoo_dir, tmp_path)
    assert result.returncode == 2 and "pass --force" in result.stderr
    assert (tmp_path / "o" / "mine.txt").read_text() == "keep"


def test_simulate_refuses_what_is_not_an_fxq_model(tmp_path):
    (tmp_path / "fxq_model.json").write_text('{"format": "something else"}')
    result = fxq_cli("simulate", str(tmp_path), "--input", "x.npz")
    assert result.returncode == 2 and "not an fxq model file" in result.stderr
    with pytest.raises(fxq.DataError, match="no such file"):
        load_quantized(tmp_path / "nowhere")


def test_simulate_reports_values_beyond_the_calibrated_range(compiled, zoo_dir, tmp_path):
    out, _ = compiled
    x = np.load(os.path.join(zoo_dir, "cnn_bn", "test.npz"))["x"]
    np.savez(tmp_path / "inside.npz", x=x)
    np.savez(tmp_path / "beyond.npz", x=x * 4)
    inside = fxq_cli("simulate", str(out), "--input", str(tmp_path / "inside.npz"))
    beyond = fxq_cli("simulate", str(out), "--input", str(tmp_path / "beyond.npz"))
    assert inside.returncode == 0 and beyond.returncode == 0
    lines = [line for line in beyond.stdout.splitlines() if line.startswith("  ")]
    assert any(line.strip().startswith("input x:") for line in lines)
    assert any(line.strip().startswith("/0/Conv:") and "saturated" in line for line in lines)
    worst = max(int(line.split(": ")[1].split()[0]) for line in lines)   # "  /0/Conv: N of"
    assert worst > 1000
    assert beyond.stdout.count("outside") > inside.stdout.count("outside")


def test_work_that_would_exhaust_memory_is_refused_with_an_estimate(zoo_dir, tmp_path):
    model = os.path.join(zoo_dir, "resnet", "model.onnx")
    calib = os.path.join(zoo_dir, "resnet", "calib.npz")
    env = {**os.environ, "FXQ_MEMORY_BYTES": "1000000"}
    result = subprocess.run([sys.executable, "-m", "fxq", "compile", model, "--calib", calib,
                             "-o", str(tmp_path / "o")], capture_output=True, text=True,
                            env=env)
    assert result.returncode == 2
    # the live tensors (3,072 values of 7,274 per sample) in float and raw, and copies of
    # the widest (1,024): 256 x (3,072 x 16 + 1,024 x 24) bytes
    assert "needs about 18.0 MiB (3,072 values per sample live at once)" in result.stderr
    assert "use at most 13 samples" in result.stderr
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("arrays, extra, message", [
    (None, ["--reuse-factor", "0"], "reuse_factor 0: expected an integer >= 1"),
    ({"x": np.array([["a"] * 64] * 3)}, [], "has dtype <U1, expected numbers"),
    ("missing", [], "no such file"),
])
def test_compile_refuses_inconsistent_options_and_bad_files(zoo_dir, tmp_path, arrays, extra,
                                                            message):
    calib = None
    if arrays == "missing":
        calib = tmp_path / "nope.npz"
    elif arrays is not None:
        calib = tmp_path / "calib.npz"
        np.savez(calib, **arrays)
    result = _compile(zoo_dir, tmp_path, *extra, calib=calib)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_simulate_refuses_input_of_the_wrong_shape(compiled, tmp_path):
    out, _ = compiled
    np.savez(tmp_path / "x.npz", x=np.zeros((3, 1, 8, 7)))
    result = fxq_cli("simulate", str(out), "--input", str(tmp_path / "x.npz"))
    assert result.returncode == 2
    assert "has shape (3, 1, 8, 7), expected (N, 1, 8, 8)" in result.stderr


FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "vivado_2020_1_fc16x5")


def test_compile_writes_the_estimate_and_plots(compiled):
    out, result = compiled
    report = json.loads((out / "report.json").read_text())
    estimate = report["estimate"]
    assert estimate["part"] == "xcvu13p-flga2577-2-e" and estimate["settings"]["reuse_factor"] == 1
    assert [layer["name"] for layer in estimate["layers"]] == [r["name"] for r in report["layers"]]
    # io_parallel: the layers' latencies and the top function's registers between them
    assert estimate["total"]["latency"] == estimate["top"]["latency"] + sum(
        layer["latency"] for layer in estimate["layers"])
    assert estimate["top"]["latency"] > 0 and "| (between layers) |" in result.stdout
    assert report["synthesis"] is None                      # nothing synthesized yet
    assert "| **total** |" in result.stdout
    for name in ("ranges.png", "sqnr.png"):
        assert (out / "plots" / name).read_bytes()[:4] == b"\x89PNG"


def test_report_command_prints_markdown_and_json(compiled):
    out, _ = compiled
    md = fxq_cli("report", str(out))
    assert md.returncode == 0 and md.stdout == (out / "report.md").read_text()
    js = fxq_cli("report", str(out), "--json")
    assert js.returncode == 0 and json.loads(js.stdout)["estimate"]["total"]


def test_synth_without_a_vendor_tool_says_so(compiled):
    out, _ = compiled
    result = fxq_cli("synth", str(out))
    assert result.returncode == 2
    assert "needs `vitis-run` on PATH, and it is not here" in result.stderr


def test_synth_reads_vendor_reports_into_the_report_apart_from_the_estimate(zoo_dir, tmp_path):
    out = tmp_path / "o"
    model = os.path.join(zoo_dir, "mlp", "model.onnx")
    calib = os.path.join(zoo_dir, "mlp", "calib.npz")
    assert fxq_cli("compile", model, "--calib", calib, "-o", str(out)).returncode == 0
    missing = fxq_cli("synth", str(out), "--read")
    assert missing.returncode == 2 and "no synthesis report found" in missing.stderr
    shutil.copytree(os.path.join(FIXTURE, "myproject_prj"), out / "hls" / "myproject_prj")
    shutil.copy(os.path.join(FIXTURE, "vivado_synth.rpt"), out / "hls")
    estimate_before = json.loads((out / "report.json").read_text())["estimate"]
    result = fxq_cli("synth", str(out), "--read")
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["estimate"] == estimate_before
    c, v = report["synthesis"]["csynth"], report["synthesis"]["vivado_synth"]
    assert (c["latency_worst"], c["ii_max"], c["dsp"], c["lut"], c["ff"], c["bram18"]) == \
        (10, 8, 73, 2532, 7969, 0)
    assert c["clock_estimated_ns"] == 4.049 and c["available"]["dsp"] == 220
    assert (v["dsp"], v["lut"], v["ff"]) == (66, 1526, 2428)
    assert "Logic synthesis: DSP 66, LUT 1526, FF 2428" in (out / "report.md").read_text()


def test_profile_draws_the_histograms(zoo_dir, tmp_path):
    out = tmp_path / "profile"
    result = fxq_cli("profile", os.path.join(zoo_dir, "cnn_bn", "model.onnx"), "--calib",
                     os.path.join(zoo_dir, "cnn_bn", "calib.npz"), "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert (out / "ranges.png").read_bytes()[:4] == b"\x89PNG"
    lines = result.stdout.splitlines()
    assert any(line.startswith("/0/Conv ") for line in lines)
    assert any(line.startswith("input x ") for line in lines)


def test_the_library_compile_returns_what_the_command_writes(zoo_dir, tmp_path):
    model = os.path.join(zoo_dir, "mlp", "model.onnx")
    calib = np.load(os.path.join(zoo_dir, "mlp", "calib.npz"))
    target = fxq.Target(io_type="io_parallel", reuse_factor=2, clock_ns=4.0)
    result = fxq.compile(model, calib["x"], out=tmp_path / "out", labels=calib["y"],
                         target=target)
    assert result.target is target and result.estimate.settings["reuse_factor"] == 2
    assert result.report.accuracy["samples"] == len(calib["y"])
    assert all(os.path.exists(p) for p in result.paths.values())
    q, _ = fxq.load_quantized(result.paths["model"])
    x = calib["x"][:50]
    assert np.array_equal(q.simulate(x, raw=True), result.q.simulate(x, raw=True))
    assert fxq.compile(model, calib["x"]).out is None          # nothing written without out
    # the labels make it a classifier: its outputs were searched as class scores
    assert result.report.settings["class_scores"] is True
    assert fxq.compile(model, calib["x"]).report.settings["class_scores"] is False


def test_compile_refine_reports_the_refinement(zoo_dir, tmp_path):
    """--refine: report.json's search section holds the starts, the moves and the extent,
    report.md says it in one line; without it the search says it was not refined."""
    model = os.path.join(zoo_dir, "mlp", "model.onnx")
    calib = os.path.join(zoo_dir, "mlp", "calib.npz")
    refined = fxq_cli("compile", model, "--calib", calib, "-o", str(tmp_path / "r"),
                      "--bits", "6", "--refine")
    assert refined.returncode == 0, refined.stderr
    doc = json.loads((tmp_path / "r" / "report.json").read_text())
    search = doc["search"]
    assert search["refined"] and doc["settings"]["refine"] is True
    assert set(search["starts"]) == {"greedy", "static"}
    assert search["objective"] <= min(search["starts"].values())
    assert [m["objective"] for m in search["moves"]] == \
        sorted((m["objective"] for m in search["moves"]), reverse=True)
    assert "Search: greedy (Qiu et al.), then refined" in \
        (tmp_path / "r" / "report.md").read_text()
    plain = fxq_cli("compile", model, "--calib", calib, "-o", str(tmp_path / "p"), "--bits", "6")
    assert plain.returncode == 0, plain.stderr
    assert json.loads((tmp_path / "p" / "report.json").read_text())["search"] == \
        {"refined": False}
