"""Plots of what the formats hold: per-layer value histograms with the fixed-point window
drawn on them, and per-layer SQNR (matplotlib, written as PNG files).

A histogram shows log2 |value| of a layer's float output on the calibration data (in
quarter octaves, gathered by fxq.analysis.stats as the values pass); the
window is the chosen type's range, from its resolution (one LSB) to its largest magnitude:
values left of it round to zero, values right of it saturate or wrap.
"""
from __future__ import annotations

import math
import os
from typing import Mapping

import numpy as np

from fxq.analysis.stats import LOG2_EDGES, TensorStats
from fxq.fixed import FixedType
from fxq.ir import Graph


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")                 # files only, no display
    import matplotlib.pyplot as plt

    return plt


def plot_ranges(graph: Graph, stats: Mapping[str, TensorStats], path: str,
                types: Mapping[str, FixedType] | None = None) -> str:
    """One histogram per non-layout node output (and each input) in a grid, written to
    `path`; with `types`, each panel shows the type's window [LSB, max]."""
    plt = _pyplot()
    tensors = list(graph.inputs) + [n.output for n in graph.nodes if not n.op.is_layout]
    labels = {n.output: n.name for n in graph.nodes}
    cols = min(4, len(tensors))
    rows = math.ceil(len(tensors) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.6 * rows), squeeze=False)
    for ax, tensor in zip(axes.flat, tensors):
        s = stats[tensor]
        used = np.flatnonzero(s.hist)
        if used.size:
            lo, hi = used[0], used[-1] + 1
            ax.stairs(s.hist[lo:hi], LOG2_EDGES[lo:hi + 1], fill=True, color="#4477aa")
        title = labels.get(tensor, f"input {tensor}")
        if types is not None and tensor in types:
            t = types[tensor]
            ax.axvspan(-t.frac, math.log2(max(t.max, t.resolution)), color="#ee6677",
                       alpha=0.15, label=t.hls())
            ax.axvline(-t.frac, color="#ee6677", lw=1)
            ax.axvline(math.log2(max(t.max, t.resolution)), color="#ee6677", lw=1)
            ax.legend(fontsize=6, loc="upper left")
        ax.set_title(f"{title}" + (f" ({s.zeros} zeros)" if s.zeros else ""), fontsize=8)
        ax.set_xlabel("log2 |value|", fontsize=7)
        ax.tick_params(labelsize=6)
    for ax in list(axes.flat)[len(tensors):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_sqnr(report_doc: dict, path: str) -> str:
    """Per-layer SQNR (dB) against the float model, from report.json's layers."""
    plt = _pyplot()
    layers = [r for r in report_doc["layers"]]
    names = [r["name"] for r in layers]
    exact = [r["sqnr_db"] is None for r in layers]
    finite = [r["sqnr_db"] for r in layers if r["sqnr_db"] is not None]
    top = max(finite, default=60.0) + 10
    values = [top if e else r["sqnr_db"] for r, e in zip(layers, exact)]
    fig, ax = plt.subplots(figsize=(max(4, 0.45 * len(names) + 2), 3.2))
    ax.bar(range(len(names)), values, color=["#228833" if e else "#4477aa" for e in exact])
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("SQNR, dB (green: exact)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_pareto(budget: dict, path: str) -> str:
    """The width search's designs, cost against accuracy (report.json's budget section):
    every Pareto-front point joined, the start and the chosen design marked."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.4))
    front = budget["front"]
    ax.plot([p["cost"] for p in front], [p["accuracy"] for p in front], "o-", ms=3,
            color="#4477aa", label="Pareto front")
    for key, color in (("start", "#bbbbbb"), ("chosen", "#ee6677")):
        p = budget[key]
        ax.plot([p["cost"]], [p["accuracy"]], "s", color=color, label=key)
    ax.set_xlabel(budget["minimize"])
    ax.set_ylabel(budget["metric"] + " (calibration data)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_plots(graph: Graph, stats: Mapping[str, TensorStats],
                types: Mapping[str, FixedType] | None, report_doc: dict | None,
                out_dir: str) -> list[str]:
    os.makedirs(out_dir, exist_ok=True)
    paths = [plot_ranges(graph, stats, os.path.join(out_dir, "ranges.png"), types)]
    if report_doc is not None:
        paths.append(plot_sqnr(report_doc, os.path.join(out_dir, "sqnr.png")))
        if report_doc.get("budget"):
            paths.append(plot_pareto(report_doc["budget"], os.path.join(out_dir, "pareto.png")))
    return paths
