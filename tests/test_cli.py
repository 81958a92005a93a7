"""The fxq command: inspect and run on the zoo, data errors, python -m fxq."""
from __future__ import annotations

import os

import numpy as np
import pytest

import fxq
from fxq.summary import summarize
from helpers import fxq_cli


def test_inspect_prints_layers_shapes_params_and_macs(zoo_dir):
    path = os.path.join(zoo_dir, "mlp", "model.onnx")
    result = fxq_cli("inspect", path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    dense = [line for line in lines if " DENSE " in line]
    assert len(dense) == 4
    assert "(N, 64)" in dense[0] and "4,160" in dense[0] and "4,096" in dense[0]
    total = lines[-1].split()
    assert total[0] == "total" and total[-2:] == ["7,626", "7,488"]   # 64*64+64*32+32*32+32*10


def test_summary_counts_conv_macs_and_params(zoo_dir):
    graph = fxq.load(os.path.join(zoo_dir, "dwsep", "model.onnx"))
    layers = {s.name: s for s in summarize(graph)}
    depthwise = layers["/2/Conv"]                       # 8 channels, 3x3, 8x8 output
    assert depthwise.params == 8 * 9 + 8 and depthwise.macs == 8 * 8 * 8 * 9
    pointwise = layers["/3/Conv"]                       # 8 -> 16, 1x1, 8x8 output
    assert pointwise.params == 16 * 8 + 16 and pointwise.macs == 16 * 8 * 8 * 8


def test_inspect_graph_flag_prints_the_ir(zoo_dir):
    result = fxq_cli("inspect", "--graph", os.path.join(zoo_dir, "resnet", "model.onnx"))
    assert result.returncode == 0 and "= ADD(" in result.stdout


def test_run_reports_accuracy_and_writes_outputs(zoo_dir, tmp_path):
    out = os.path.join(tmp_path, "y.npy")
    result = fxq_cli("run", os.path.join(zoo_dir, "conv1d", "model.onnx"),
                     "--input", os.path.join(zoo_dir, "conv1d", "test.npz"), "--output", out)
    assert result.returncode == 0, result.stderr
    data = np.load(os.path.join(zoo_dir, "conv1d", "test.npz"))
    y = np.load(out)
    accuracy = float(result.stdout.split("top-1 accuracy ")[1])
    assert accuracy == pytest.approx(np.mean(y.argmax(1) == data["y"]), abs=1e-4)


def test_run_refuses_labels_that_fit_no_task_and_writes_nothing(zoo_dir, tmp_path):
    data = np.load(os.path.join(zoo_dir, "mlp", "test.npz"))
    path = os.path.join(tmp_path, "xy.npz")
    np.savez(path, x=data["x"][:10], y=np.full(10, 42))        # no class 42 of 10 outputs
    out = os.path.join(tmp_path, "y.npy")
    result = fxq_cli("run", os.path.join(zoo_dir, "mlp", "model.onnx"), "--input", path,
                     "--output", out)
    assert result.returncode == 2 and "neither class indices" in result.stderr
    assert not os.path.exists(out)


@pytest.mark.parametrize("x, expected", [
    (np.zeros((3, 65), np.float32), "input 'x' has shape (3, 65), expected (N, 64)"),
    (np.zeros(64, np.float32), "has shape (64,) with no batch axis"),
    (np.array([["a"] * 64]), "has dtype <U1, expected numbers"),
])
def test_run_refuses_bad_input_data(zoo_dir, tmp_path, x, expected):
    path = os.path.join(tmp_path, "x.npy")
    np.save(path, x)
    result = fxq_cli("run", os.path.join(zoo_dir, "mlp", "model.onnx"), "--input", path)
    assert result.returncode == 2 and expected in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_run_refuses_unreadable_data_file(zoo_dir, tmp_path):
    path = os.path.join(tmp_path, "x.npz")
    with open(path, "w") as f:
        f.write("garbage")
    result = fxq_cli("run", os.path.join(zoo_dir, "mlp", "model.onnx"), "--input", path)
    assert result.returncode == 2 and "not a readable .npz or .npy file" in result.stderr


def test_python_dash_m_and_help():
    result = fxq_cli("--help")
    assert result.returncode == 0 and "inspect" in result.stdout


def test_run_never_overwrites_an_existing_output_unless_forced(zoo_dir, tmp_path):
    out = os.path.join(tmp_path, "y.npy")
    with open(out, "w") as f:
        f.write("precious")
    args = ["run", os.path.join(zoo_dir, "mlp", "model.onnx"),
            "--input", os.path.join(zoo_dir, "mlp", "test.npz"), "--output", out]
    result = fxq_cli(*args)
    assert result.returncode == 2 and "exists; not overwritten" in result.stderr
    assert open(out).read() == "precious"
    assert fxq_cli(*args, "--force").returncode == 0
    assert np.load(out).shape == (540, 10)
