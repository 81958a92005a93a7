"""Labels measure the model's task: class accuracy, an anomaly detector's ROC AUC, or a
regression's MSE, float against fixed point; labels that fit none are refused."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import helper
from sklearn.metrics import roc_auc_score

import fxq
from fxq.errors import DataError
from fxq.task import average_ranks, infer_task, roc_auc
from helpers import make_model, save

RNG = np.random.default_rng(0)


def test_tasks_are_inferred_from_the_labels_and_the_model():
    x = RNG.normal(size=(20, 6))
    assert infer_task(RNG.integers(0, 4, 20), x, RNG.normal(size=(20, 4))) == "classify"
    assert infer_task(RNG.integers(0, 2, 20), x, RNG.normal(size=(20, 6))) == "anomaly"
    assert infer_task(RNG.integers(0, 2, 20), x, RNG.normal(size=(20, 1))) == "anomaly"
    assert infer_task(RNG.normal(size=(20, 3)), x, RNG.normal(size=(20, 3))) == "regression"
    assert infer_task(RNG.normal(size=20), x, RNG.normal(size=(20, 1))) == "regression"
    with pytest.raises(DataError, match="neither class indices"):
        infer_task(np.full(20, 7), x, RNG.normal(size=(20, 4)))


def test_roc_auc_is_sklearn_s_with_ties():
    labels = RNG.integers(0, 2, 200)
    score = np.round(RNG.normal(size=200) + labels, 1)           # ties
    assert roc_auc(score, labels) == pytest.approx(roc_auc_score(labels, score), abs=1e-12)
    assert roc_auc(score, np.zeros(200)) is None


def test_average_ranks_are_scipys():
    from scipy.stats import rankdata

    for values in (np.round(RNG.normal(size=300), 1), np.zeros(5), np.arange(7.0)[::-1],
                   np.array([2.0, 1.0, 2.0, -np.inf, 1.0]), np.array([3.0])):
        assert average_ranks(values).tolist() == rankdata(values).tolist()


def _compile(tmp_path, nodes, inits, x, y, **kw):
    model = make_model(nodes, {"x": ("N", x.shape[1])}, ["y"], inits)
    return fxq.compile(save(model, tmp_path), x, labels=y, **kw)


def test_an_autoencoder_reports_roc_auc(tmp_path):
    w1, w2 = RNG.normal(size=(8, 3)) * 0.5, RNG.normal(size=(3, 8)) * 0.5
    nodes = [helper.make_node("MatMul", ["x", "a"], ["h"]),
             helper.make_node("Relu", ["h"], ["r"]), helper.make_node("MatMul", ["r", "b"], ["y"])]
    normal = RNG.normal(size=(200, 8)) * 0.3
    anomalous = RNG.normal(size=(50, 8)) * 2.0
    x, labels = np.concatenate([normal, anomalous]), np.r_[np.zeros(200), np.ones(50)]
    result = _compile(tmp_path, nodes, {"a": w1.astype(np.float32), "b": w2.astype(np.float32)},
                      x, labels)
    acc = result.report.accuracy
    assert acc["task"] == "anomaly" and acc["metric"] == "ROC AUC"
    assert acc["float"] > 0.9 and abs(acc["fixed"] - acc["float"]) < 0.05
    assert "ROC AUC on 250 labelled samples (anomaly)" in result.report.markdown()


def test_a_regression_reports_mse_and_is_not_clipped(tmp_path):
    w = RNG.normal(size=(5, 1)).astype(np.float32) * 3
    nodes = [helper.make_node("MatMul", ["x", "w"], ["y"])]
    x = RNG.normal(size=(300, 5))
    target = x @ w.astype(np.float64) + RNG.normal(size=(300, 1)) * 0.1
    result = _compile(tmp_path, nodes, {"w": w}, x, target[:, 0], task="regression")
    acc = result.report.accuracy
    assert acc["task"] == "regression" and acc["metric"] == "MSE"
    assert acc["float"] < 0.02 and acc["fixed"] < 0.05
    assert result.report.layers[-1].clipped == 0
