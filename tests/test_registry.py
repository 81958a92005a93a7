"""The op registry: every op has a rule for every stage, gaps and duplicates are named."""
from __future__ import annotations

import copy
import multiprocessing
import pickle

import numpy as np
import pytest

import fxq
import fxq.estimate  # noqa: F401  (the stages register their rules on import)
import fxq.hls.emit  # noqa: F401
import fxq.native.codegen  # noqa: F401
import fxq.onnx_export  # noqa: F401
from fxq.op import Op
from fxq.ops.registry import RULES, MissingRule, lookup, missing, rule


@pytest.mark.parametrize("op", sorted(Op.all()), ids=lambda op: op.name)
def test_every_op_has_a_rule_for_every_stage(op):
    assert set(missing(op)) == set()


def test_a_missing_rule_names_the_op_the_node_and_the_stage(monkeypatch):
    monkeypatch.delitem(RULES["hls"], Op.TRANSPOSE)
    assert missing(Op.TRANSPOSE) == ["hls"]
    with pytest.raises(MissingRule, match=r"node 'n1': fxq cannot emit to hls4ml op TRANSPOSE"):
        lookup("hls", Op.TRANSPOSE, "n1")


def test_duplicates_are_refused():
    with pytest.raises(RuntimeError, match="two shape rules registered for RELU"):
        rule("shape", Op.RELU)(lambda x: x)
    with pytest.raises(RuntimeError, match="op RELU is defined twice"):
        Op.define("RELU", kind="activation")


def test_ops_are_unique_objects_that_pickle_by_name():
    assert pickle.loads(pickle.dumps(Op.CONV)) is Op.CONV
    assert copy.deepcopy(Op.CONV) is Op.CONV


def _simulate(q, x):
    return q.simulate(x, raw=True, engine="numpy")


def test_graphs_and_quantized_graphs_round_trip_through_a_spawned_pool(zoo_dir):
    import os

    g = fxq.load(os.path.join(zoo_dir, "resnet", "model.onnx"))
    x = np.load(os.path.join(zoo_dir, "resnet", "calib.npz"))["x"][:32]
    q = fxq.quantize(g, calib=x, bits=8)
    q.simulate(x)                                   # caches filled before pickling
    assert pickle.loads(pickle.dumps(g)).run(x).tolist() == g.run(x).tolist()
    deep = copy.deepcopy(q)
    assert np.array_equal(_simulate(deep, x), _simulate(q, x))
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        remote = pool.apply(_simulate, (q, x))
    assert np.array_equal(remote, _simulate(q, x))
