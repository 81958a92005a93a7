"""The data set's reader (benchmarks/syntheses_import.py) on projects hls4ml wrote for fxq's
own designs: it reads every layer back, and the design it rebuilds from the record
(examples/published.py) has fxq's estimate exactly. So the record of a published project
is the design that was synthesized, and fxq's estimate of what it emits describes the
project hls4ml writes (its zero-padding layers in io_stream included)."""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

import fxq
from fxq.estimate import estimate
from published import design

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "benchmarks"))
from syntheses_import import ProjectError, read_project  # noqa: E402

REPORTS = Path(__file__).parent / "fixtures" / "vivado_2020_1_fc16x5"


def _project(zoo_dir, name, io_type, root: Path):
    graph = fxq.load(os.path.join(zoo_dir, name, "model.onnx"))
    q = fxq.quantize(graph, np.load(os.path.join(zoo_dir, name, "calib.npz"))["x"], bits=8)
    fxq.emit_hls(q, root, io_type=io_type)
    # a synthesis report (the fixture's: its figures are not this design's)
    shutil.copytree(REPORTS / "myproject_prj", root / "myproject_prj", dirs_exist_ok=True)
    return q


@pytest.mark.parametrize("io_type", ["io_parallel", "io_stream"])
@pytest.mark.parametrize("name", ["mlp", "cnn_bn", "resnet", "dwsep", "conv1d"])
def test_a_written_project_reads_back_to_the_same_estimate(zoo_dir, tmp_path, name, io_type):
    q = _project(zoo_dir, name, io_type, tmp_path / "prj")
    record = {"name": name, "held_out": False, **read_project(tmp_path / "prj")}
    assert record["io_type"] == io_type and record["csynth"]["dsp"] == 73
    weighted = [n for n in q.graph.nodes if n.op in (fxq.Op.DENSE, fxq.Op.CONV)]
    assert [l["op"] for l in record["layers"] if "params" in l] == \
        [n.op.name for n in weighted]
    rebuilt, target = design(record)
    ours = estimate(q, target=fxq.Target(io_type=io_type, part=target.part))
    assert estimate(rebuilt, target=target).total == ours.total


def test_an_unknown_layer_function_is_refused_by_name(zoo_dir, tmp_path):
    _project(zoo_dir, "mlp", "io_parallel", tmp_path / "prj")
    top = tmp_path / "prj" / "firmware" / "myproject.cpp"
    top.write_text(top.read_text().replace("nnet::relu<", "nnet::relu_custom<", 1))
    with pytest.raises(ProjectError, match=r"nnet::relu_custom is not one the reader knows"):
        read_project(tmp_path / "prj")
