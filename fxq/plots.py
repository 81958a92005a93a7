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


def _figure(width: float, height: float):
    """A matplotlib Figure written to files only (no pyplot: its import and global figure
    state cost more than the drawing)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


ROW = 0.3                     # inches per tensor in the ranges plot
PLOT_WIDTH = 5.5              # inches of its histogram axis


def plot_ranges(graph: Graph, stats: Mapping[str, TensorStats], path: str,
                types: Mapping[str, FixedType] | None = None) -> str:
    """One row per non-layout node output (and each input), in graph order, on one shared
    log2 |value| axis: the histogram of each (scaled to its row's height), and with `types`
    the type's window [LSB, max] behind it, the type named at the right. One axes for the
    whole graph, so the figure draws in a time that grows with the rows' count alone."""
    from matplotlib.collections import LineCollection, PolyCollection

    tensors = list(graph.inputs) + [n.output for n in graph.nodes if not n.op.is_layout]
    labels = {n.output: n.name for n in graph.nodes}
    rows = len(tensors)
    bars, windows, edges, names, kinds = [], [], [], [], []
    for i, tensor in enumerate(tensors):
        y = rows - 1 - i                            # the first tensor on top
        s = stats[tensor]
        used = np.flatnonzero(s.hist)
        if used.size:
            lo, hi = used[0], used[-1] + 1
            h = 0.85 * s.hist[lo:hi] / s.hist[lo:hi].max()
            x = LOG2_EDGES[lo:hi + 1]
            # the histogram's outline as one polygon: up and across each bin, back at 0
            xs = np.concatenate([np.repeat(x, 2)[1:-1], [x[-1], x[0]]])
            ys = np.concatenate([np.repeat(h, 2), [0.0, 0.0]]) + y
            bars.append(np.column_stack([xs, ys]))
        name = labels.get(tensor, f"input {tensor}")
        names.append(name + (f" ({s.zeros} zeros)" if s.zeros else ""))
        if types is not None and tensor in types:
            t = types[tensor]
            left, right = -t.frac, math.log2(max(t.max, t.resolution))
            windows.append([(left, y), (right, y), (right, y + 0.9), (left, y + 0.9)])
            edges += [[(left, y), (left, y + 0.9)], [(right, y), (right, y + 0.9)]]
            kinds.append(t.hls())
        else:
            kinds.append("")
    # margins sized to the longest name and type (about 0.055 in a character at 7 pt)
    left = 0.2 + 0.055 * max(map(len, names))
    right = 0.2 + 0.05 * max(map(len, kinds))
    width, height = left + PLOT_WIDTH + right, 0.9 + ROW * rows
    fig = _figure(width, height)
    ax = fig.add_axes((left / width, 0.55 / height, PLOT_WIDTH / width, 1 - 0.75 / height))
    ax.add_collection(PolyCollection(windows, facecolors="#ee6677", alpha=0.15,
                                     linewidths=0))
    ax.add_collection(LineCollection(edges, colors="#ee6677", linewidths=0.8))
    ax.add_collection(PolyCollection(bars, facecolors="#4477aa", linewidths=0))
    ax.autoscale_view()
    ax.set_ylim(0, rows)
    centers = rows - 1 - np.arange(rows) + 0.45
    ax.set_yticks(centers, names, fontsize=7)
    ax.tick_params(axis="y", length=0)
    side = ax.twinx()
    side.set_ylim(0, rows)
    side.set_yticks(centers, kinds, fontsize=6, color="#aa3344")
    side.tick_params(axis="y", length=0)
    ax.set_xlabel("log2 |value| (the type's window shaded: LSB to largest value)",
                  fontsize=7)
    ax.tick_params(axis="x", labelsize=7)
    fig.savefig(path, dpi=110)
    return path


def plot_sqnr(report_doc: dict, path: str) -> str:
    """Per-layer SQNR (dB) against the float model, from report.json's layers."""
    layers = [r for r in report_doc["layers"]]
    names = [r["name"] for r in layers]
    exact = [r["sqnr_db"] is None for r in layers]
    finite = [r["sqnr_db"] for r in layers if r["sqnr_db"] is not None]
    top = max(finite, default=60.0) + 10
    values = [top if e else r["sqnr_db"] for r, e in zip(layers, exact)]
    fig = _figure(max(4, 0.45 * len(names) + 2), 3.2)
    ax = fig.subplots()
    ax.bar(range(len(names)), values, color=["#228833" if e else "#4477aa" for e in exact])
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("SQNR, dB (green: exact)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def plot_pareto(budget: dict, path: str) -> str:
    """The width search's designs, cost against accuracy (report.json's budget section):
    every Pareto-front point joined, the start and the chosen design marked."""
    fig = _figure(5, 3.4)
    ax = fig.subplots()
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
