"""What a model's labels measure: classification accuracy, a regression's error, or an
anomaly detector's ROC AUC, float against fixed point.

`infer_task` decides from the labels and the model when the user does not say (`--task`):
integer labels in [0, classes) of a model with at least two outputs per sample are classes;
0/1 labels of an autoencoder (output shaped as its input) or of a one-value score are
anomaly labels; labels shaped as the output are regression targets. Anything else is
refused with the reason, rather than a meaningless accuracy.

An anomaly score is the output itself for a one-value detector, else the mean squared
reconstruction error of the output against the input (the MLPerf Tiny autoencoder's).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from fxq.errors import DataError

TASKS = ("classify", "regression", "anomaly")


def _per_sample(y: np.ndarray) -> np.ndarray:
    return np.asarray(y, dtype=np.float64).reshape(len(y), -1)


def infer_task(labels: np.ndarray, x: np.ndarray, y: np.ndarray) -> str:
    """The task the labels of inputs `x` (one array) and float outputs `y` measure."""
    labels = np.asarray(labels)
    out = _per_sample(y)
    integral = labels.ndim == 1 and np.all(np.isfinite(labels)) and \
        np.array_equal(labels, np.round(labels))
    if integral and out.shape[1] >= 2 and labels.min() >= 0 and labels.max() < out.shape[1] \
            and np.shape(x)[1:] != np.shape(y)[1:]:
        return "classify"
    binary = integral and set(np.unique(labels).tolist()) <= {0, 1}
    if binary and (out.shape[1] == 1 or np.shape(x)[1:] == np.shape(y)[1:]):
        return "anomaly"
    if labels.shape[1:] == np.shape(y)[1:] or (labels.ndim == 1 and out.shape[1] == 1):
        return "regression"
    raise DataError(f"labels of shape {labels.shape} are neither class indices below the "
                    f"{out.shape[1]} outputs, 0/1 anomaly labels, nor regression targets "
                    f"shaped as the output {np.shape(y)[1:]}; say --task")


def anomaly_score(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    out = _per_sample(y)
    if out.shape[1] == 1:
        return out[:, 0]
    return np.mean((out - _per_sample(x)) ** 2, axis=1)


def roc_auc(score: np.ndarray, labels: np.ndarray) -> float | None:
    """The probability that an anomalous sample scores above a normal one (ties count
    half): the Mann-Whitney statistic. None without both classes."""
    labels = np.asarray(labels).astype(bool)
    positives, negatives = int(labels.sum()), int((~labels).sum())
    if not positives or not negatives:
        return None
    ranks = average_ranks(np.asarray(score))
    return float((ranks[labels].sum() - positives * (positives + 1) / 2)
                 / (positives * negatives))


def average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks of `values`, ties sharing the mean of their ranks (scipy's rankdata,
    whose import, scipy.stats, costs most of a second)."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    first = np.concatenate([[True], ordered[1:] != ordered[:-1]])   # a run of ties begins
    starts = np.flatnonzero(first)
    ends = np.append(starts[1:], len(values))
    ranks = np.empty(len(values))
    ranks[order] = ((starts + 1 + ends) / 2.0)[np.cumsum(first) - 1]
    return ranks


def quality(task: str, x: np.ndarray, labels: np.ndarray, y_float: np.ndarray,
            y_fixed: np.ndarray) -> dict[str, Any]:
    """The report's figures for `task`: float and fixed point, on `len(labels)` samples."""
    labels = np.asarray(labels)
    out: dict[str, Any] = {"task": task, "samples": int(len(labels))}
    if task == "classify":
        for name, y in (("float", y_float), ("fixed", y_fixed)):
            out[name] = float(np.mean(_per_sample(y).argmax(axis=1) == labels))
    elif task == "anomaly":
        for name, y in (("float", y_float), ("fixed", y_fixed)):
            out[name] = roc_auc(anomaly_score(x, y), labels)
    elif task == "regression":
        target = labels.reshape(len(labels), -1).astype(np.float64)
        for name, y in (("float", y_float), ("fixed", y_fixed)):
            out[name] = float(np.mean((_per_sample(y) - target) ** 2))
    else:
        raise DataError(f"task {task!r}: expected one of {', '.join(TASKS)}")
    return out


METRIC = {"classify": "top-1 accuracy", "anomaly": "ROC AUC", "regression": "MSE"}
