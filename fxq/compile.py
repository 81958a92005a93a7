"""fxq.compile: the whole pipeline as one library call (the `fxq compile` command calls it).

load -> normalize -> transforms (a user's pipeline, fxq.transforms) -> dynamic fixed-point
search -> emission check ->
fxq_model.json, hls/, report.json, report.md, plots/ in `out` -> the estimate. Every step
that can refuse runs before anything is written, so a failed compile writes nothing.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any, Callable

import numpy as np

from fxq.analysis import BitConfig, quantize_graph
from fxq.analysis.budget import BudgetError, budget_search
from fxq.analysis.refine import search_summary
from fxq.analysis.sensitivity import sensitivity as layer_sensitivity
from fxq.analysis.stats import TensorStats
from fxq.compress import CompressConfig
from fxq.compress import compress as compress_graph
from fxq.compress.storage import fixed_storage
from fxq.data import bind_inputs
from fxq.errors import FxqError
from fxq.estimate import Estimate, estimate
from fxq.fit import FitError, describe, overuse
from fxq.fit import fit as fit_target
from fxq.hls.emit import emit_hls, plan
from fxq.ir import Graph
from fxq.model_file import save
from fxq.onnx_import import load
from fxq.passes import Change, Rewrite, run_pipeline
from fxq.quantized import QuantizedGraph
from fxq.report import Report, build_report
from fxq.target import Target
from fxq.task import infer_task
from fxq.transforms.equalize import AUTO_SPREAD
from fxq.transforms.equalize import equalize as equalize_graph

EQUALIZE = ("auto", "on", "off")      # cross-layer equalization before the search


@dataclass(frozen=True)
class CompileResult:
    q: QuantizedGraph
    report: Report
    estimate: Estimate
    target: Target
    changes: tuple[Change, ...]        # what the transforms changed
    out: str | None                    # the output directory, when one was written
    stats: dict[str, TensorStats]      # every tensor's statistics on the calibration data
    overuse: tuple = ()                # resources over max_util (with allow_overfit only)

    @property
    def paths(self) -> dict[str, str]:
        if self.out is None:
            return {}
        names = {"model": "fxq_model.json", "hls": "hls", "report_json": "report.json",
                 "report_md": "report.md", "plots": "plots"}
        return {k: os.path.join(self.out, v) for k, v in names.items()}


def compile(model: str | os.PathLike | Graph, calib: Any, *, out: str | os.PathLike | None = None,
            config: BitConfig | None = None, method: str = "dynamic",
            target: Target | None = None, labels: np.ndarray | None = None,
            transforms: tuple[Rewrite, ...] = (),
            progress: Callable[[str], None] | None = None,
            source: str | os.PathLike | None = None, fit: bool = False,
            max_util: float = 1.0, allow_overfit: bool = False,
            task: str | None = None, fit_vary: tuple[str, ...] = (),
            refine: bool = False, bias_correction: bool = True,
            sensitivity: bool = False, budget: float | None = None,
            budget_sqnr: float | None = None, minimize: str = "ebops",
            budget_prune: bool = True,
            equalize: str = "auto", compress: CompressConfig | None = None,
            compress_allocation: str = "sensitivity",
            compress_budget: float | None = None) -> CompileResult:
    """Quantize `model` (an ONNX path or a Graph) on `calib`, check it emits, and when `out`
    is given write fxq_model.json, the hls4ml project, the report and plots there.

    `compress` (fxq.compress: pruning, low rank, sharing, weight sets) runs first, on the
    calibration data (`compress_allocation` as fxq.compress's `allocation`, `compress_budget`
    as its `budget`: the most pruning within that many points, labels needed); report.json's
    "compression" section gives what it did and the storage, float and at the chosen widths.
    `transforms` (value-changing rewrites) run after normalization, before the search.
    `refine` (dynamic method) refines the greedy search against the network's output
    (fxq.analysis.refine); report.json's "search" section says what it did.
    `bias_correction` (on by default; dynamic method) corrects each Dense and Conv bias by
    its layer's mean error on the calibration data where that lowers the layer's error; the
    report compares with the float model as given. `sensitivity` adds each layer's share of
    the output error and its one-bit sensitivities (fxq.analysis.sensitivity) to the report.
    `budget` (top-1 points, needs `labels`) or `budget_sqnr` (dB) chooses per-layer widths
    of least `minimize` cost within it (fxq.analysis.budget), starting from `config`'s;
    it may drop Dense and Conv accumulators' low bits, and with `budget_prune` (on by
    default) prune their weights;
    report.json's "budget" section and plots/pareto.png show the search.
    `equalize` ("auto", "on", "off"): cross-layer equalization with power-of-two scales
    (fxq.transforms.equalize; the float function stays bit for bit) before the search;
    "auto" scales the pairs whose channel ranges spread more than AUTO_SPREAD, "on" every
    pair. What it scaled is among report.json's transforms.
    `labels` (one per calibration sample) add the task's figures to the report: top-1
    accuracy, ROC AUC or MSE, float and fixed point (`task`, else inferred: fxq.task).
    A classifier's outputs (that task) are searched as class scores (BitConfig's
    class_scores: their largest values may saturate); other outputs hold their range.
    `source` names the model file in the report when `model` is a Graph loaded from it.
    A design whose estimate exceeds `max_util` of the part's resources is refused (FitError
    naming them) unless `allow_overfit`; `fit` first chooses per-layer reuse factors that
    make it fit (fxq.fit; `fit_vary` lets it change the strategy and io type too), and the
    target returned holds them."""
    from fxq.plots import write_plots

    target = target or Target()
    config = config or BitConfig()
    graph = model if isinstance(model, Graph) else load(model)
    compressed = None
    if compress_budget is not None or (compress is not None and compress.any):
        compressed = compress_graph(graph, calib, compress or CompressConfig(), labels=labels,
                                    task=task, allocation=compress_allocation,
                                    progress=progress, budget=compress_budget)
        graph = compressed.graph
    changes: list[Change] = []
    if transforms:
        graph, changes = run_pipeline(graph, transforms)
    if equalize not in EQUALIZE:
        raise FxqError(f"equalize {equalize!r}: expected one of {EQUALIZE}")
    searched = None
    if equalize != "off":
        graph, scaled = equalize_graph(graph, AUTO_SPREAD if equalize == "auto" else 0.0)
        changes = changes + scaled
    searched_graph = graph
    if _task(graph, calib, labels, task) == "classify":
        config = config.with_overrides(class_scores=True)
    if budget is not None or budget_sqnr is not None:
        if method != "dynamic" or refine or not bias_correction or \
                config.weight_rounding != "nearest":
            raise BudgetError("a budget searches with the default dynamic method (bias "
                              "correction on, nearest weight rounding, no --refine)")
        searched = budget_search(graph, calib, labels=labels, points=budget,
                                 sqnr_db=budget_sqnr, minimize=minimize, start=config,
                                 target=target, prune=budget_prune)
        config = searched.config
        result = searched.result
        searched_graph = searched.graph          # with the layers the search pruned
    else:
        result = quantize_graph(graph, calib, config, method=method,
                                io_type=str(target.io_type), progress=progress,
                                refine=refine, bias_correction=bias_correction)
    q = result.q
    if fit:
        target, cost = fit_target(q, target, max_util, vary=fit_vary)
        q = q.with_io_type(str(target.io_type))
    else:
        cost = estimate(q, target=target)
    over = overuse(cost, max_util)
    if over and not allow_overfit:
        raise FitError(describe(cost, max_util, over) + "; --fit chooses reuse factors "
                       "that fit, --allow-overfit writes the design anyway")
    plan(q, target)                        # refuse what hls4ml cannot build, before writing
    if source is None and not isinstance(model, Graph):
        source = model
    run = {"model": os.path.abspath(source) if source is not None else graph.name,
           "method": method, "refine": bool(refine and method == "dynamic"),
           "bias_correction": bool(bias_correction and method == "dynamic"),
           "equalize": equalize, "equalized": any(c.rewrite == "equalize" for c in changes),
           "weight_bits": config.weight_bits, "act_bits": config.act_bits,
           "objective": config.objective,
           "weight_rounding": config.weight_rounding if method == "dynamic" else "nearest",
           "class_scores": config.class_scores}
    hls = target.to_json()
    shown = {k: v for k, v in hls.items() if k not in ("project", "layer_reuse")}
    if fit:
        shown["fit"] = {"max_util": max_util, "layer_reuse": dict(target.layer_reuse)}
    report = build_report(q, calib, labelled=(calib, labels) if labels is not None else None,
                          settings={**run, **shown},
                          estimate=cost, stats=result.stats, task=task, reference=graph,
                          # the analysis' outputs are q's unless --fit changed its io type
                          outputs=result.outputs if q.io_type == result.q.io_type else None)
    report.transforms = [asdict(c) for c in changes]
    report.search = search_summary(result)
    if compressed is not None:
        report.compression = {**compressed.to_json(), "fixed": fixed_storage(q).to_json()}
    if searched is not None:
        report.budget = searched.to_json(minimize, budget, budget_sqnr)
    if sensitivity:
        report.sensitivity = layer_sensitivity(searched_graph, calib, result, config,
                                               str(target.io_type)).to_json()
    if out is not None:
        out = os.fspath(out)
        os.makedirs(out, exist_ok=True)
        save(q, os.path.join(out, "fxq_model.json"), {"compile": {**run, "hls": hls}})
        emit_hls(q, os.path.join(out, "hls"), target=target, overwrite=True)
        report.write(out)
        write_plots(graph, result.stats, q.types, report.to_json(), os.path.join(out, "plots"))
    return CompileResult(q, report, cost, target, tuple(changes), out, dict(result.stats),
                         tuple(over))


def _task(graph: Graph, calib: Any, labels: np.ndarray | None, task: str | None) -> str | None:
    """The task given, else the one the labels make (fxq.task.infer_task; a single-input,
    single-output model), else None: unknown."""
    if task is not None or labels is None or len(graph.inputs) != 1 or len(graph.outputs) != 1:
        return task
    x = bind_inputs(graph, calib, source="calibration data")[graph.inputs[0]]
    return infer_task(labels, x, graph.run(x))


__all__ = ["CompileResult", "compile"]
