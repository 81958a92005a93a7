"""What a compiled design costs in accuracy: per-layer SQNR and clipping, model accuracy,
written as report.json (for tools) and report.md (for people).

SQNR of a tensor is 10 log10(sum f^2 / sum (f - q)^2) over the calibration data, f the float
model's values and q the bit-accurate fixed-point values of the same tensor (errors of
earlier layers included); `null` in JSON ("exact" in Markdown) when q equals f. The clipped
fraction counts float values outside the type's range (beyond half an LSB past either end):
the values saturation or wrapping changes.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from math import prod
from typing import Any, Mapping

import numpy as np

from fxq.data import bind_inputs
from fxq.task import METRIC, infer_task, quality
from fxq.fixed import FixedType
from fxq.ir import Graph
from fxq.analysis.stats import TensorStats, tensor_stats
from fxq.model_file import type_to_json
from fxq.quantized import QuantizedGraph

TYPE_FIELDS = ("accum", "result")        # besides the parameters, by role


@dataclass
class LayerReport:
    name: str
    op: str
    input_shapes: list[list[int]]
    output_shape: list[int]
    types: dict[str, FixedType]
    sqnr_db: float | None
    clipped: float


@dataclass
class Report:
    model: str
    layers: list[LayerReport]
    samples: int
    accuracy: dict[str, float] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    estimate: Any = None              # fxq.estimate.Estimate of the emitted design
    synthesis: dict[str, Any] | None = None   # parsed vendor reports, kept apart
    transforms: list[dict[str, Any]] = field(default_factory=list)   # what each one changed
    search: dict[str, Any] = field(default_factory=dict)  # fxq.analysis.refine.search_summary
    sensitivity: dict[str, Any] | None = None   # fxq.analysis.sensitivity, when asked
    budget: dict[str, Any] | None = None        # fxq.analysis.budget, when asked
    compression: dict[str, Any] | None = None   # fxq.compress, when asked

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model, "calibration_samples": self.samples,
            "settings": self.settings, "accuracy": self.accuracy,
            "transforms": self.transforms, "search": self.search,
            "sensitivity": self.sensitivity, "budget": self.budget,
            "compression": self.compression,
            "layers": [{"name": r.name, "op": r.op, "input_shapes": r.input_shapes,
                        "output_shape": r.output_shape,
                        "types": {k: type_to_json(t) for k, t in r.types.items()},
                        "sqnr_db": r.sqnr_db, "clipped_fraction": r.clipped}
                       for r in self.layers],
            "estimate": self.estimate.to_json() if self.estimate is not None else None,
            "synthesis": self.synthesis,
        }

    def markdown(self) -> str:
        return render_markdown(self.to_json())

    def write(self, out_dir: str) -> None:
        write_report(self.to_json(), out_dir)


def write_report(doc: dict[str, Any], out_dir: str) -> None:
    """report.json and its rendering report.md."""
    with open(os.path.join(out_dir, "report.json"), "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    with open(os.path.join(out_dir, "report.md"), "w", encoding="utf-8") as f:
        f.write(render_markdown(doc))


def render_markdown(doc: dict[str, Any]) -> str:
    """report.md from report.json: what report.md shows is exactly what report.json holds."""
    lines = [f"# fxq report: {doc['model']}", ""]
    if doc.get("settings"):
        lines += ["Settings: " + ", ".join(f"{k} {v}" for k, v in doc["settings"].items()), ""]
    if doc.get("compression"):
        from fxq.compress.summary import markdown as compression_markdown
        lines += compression_markdown(doc["compression"]) + [""]
    if doc.get("transforms"):
        lines += [f"Transforms ({len(doc['transforms'])} changes, before the search):", ""]
        lines += [f"- {c['rewrite']}: {c['what'] or ', '.join(c['removed'])}"
                  for c in doc["transforms"]] + [""]
    search = doc.get("search") or {}
    if search.get("refined"):
        starts = ", ".join(f"{k} {v:.3g}" for k, v in search["starts"].items())
        lines += [f"Search: greedy (Qiu et al.), then refined against the output on "
                  f"{search['samples']} calibration samples: from the {search['start']} start "
                  f"(objective {starts}; normalized output MSE) to {search['objective']:.3g} "
                  f"in {len(search['moves'])} moves, {search['evaluations']} simulations"
                  + ("" if search["complete"] else ", stopped by its work limit"), ""]
    b = doc.get("budget")
    if b:
        limit = (f"top-1 within {b['budget_points']} points of float "
                 f"({b['float_accuracy']:.2f} %)" if b["budget_points"] is not None
                 else f"output SQNR at least {b['budget_sqnr_db']} dB")
        lines += [f"Widths: the least {b['minimize']} found with {limit} on the calibration "
                  f"data: {b['chosen']['cost']:.0f} against {b['start']['cost']:.0f} at the "
                  f"starting widths ({b['chosen']['cost'] / max(b['start']['cost'], 1e-30):.2f}"
                  f"x), {b['metric']} {b['chosen']['accuracy']:.2f} against "
                  f"{b['start']['accuracy']:.2f}; {len(b['trace']) - 1} moves, "
                  f"{b['evaluations']} designs evaluated, {len(b['front'])} on the Pareto "
                  "front (plots/pareto.png)"
                  + ("" if b["complete"] else ", stopped by its evaluation limit")
                  + _budget_layers(b["chosen"]), ""]
    acc = doc.get("accuracy")
    if acc:
        def fmt(v):
            return "n/a (one class only)" if v is None else f"{v:.4f}"
        metric = acc.get("metric", "top-1 accuracy")
        lines += [f"{metric[0].upper()}{metric[1:]} on {acc['samples']} labelled samples "
                  f"({acc.get('task', 'classify')}): float {fmt(acc['float'])}, fixed point "
                  f"{fmt(acc['fixed'])}", ""]
    lines += [f"Per layer, on {doc['calibration_samples']} calibration samples (SQNR against "
              "the float model; clipped: float values outside the type's range):", "",
              "| layer | op | output | parameters | accum | result | SQNR dB | clipped |",
              "|---|---|---|---|---|---|---|---|"]
    for r in doc["layers"]:
        params = ", ".join(f"{k} {t['hls']}" for k, t in r["types"].items()
                           if k not in TYPE_FIELDS)
        cells = [params] + [r["types"][k]["hls"] if k in r["types"] else ""
                            for k in TYPE_FIELDS]
        sqnr = "exact" if r["sqnr_db"] is None else f"{r['sqnr_db']:.1f}"
        shape = "x".join(map(str, r["output_shape"]))
        lines.append(f"| {r['name']} | {r['op']} | {shape} | " + " | ".join(cells) +
                     f" | {sqnr} | {r['clipped_fraction']:.2%} |")
    lines += _error_sources_markdown(doc)
    if doc.get("estimate"):
        lines += [""] + _estimate_markdown(doc["estimate"])
    if doc.get("synthesis"):
        lines += [""] + _synthesis_markdown(doc["synthesis"])
    if doc.get("rtl"):
        lines += [""] + rtl_markdown(doc["rtl"])
    return "\n".join(lines) + "\n"


SOURCES_SHOWN = 5


def _error_sources_markdown(doc: dict[str, Any]) -> list[str]:
    """Where the error comes from: with the sensitivity section, the layers whose rounding
    causes the largest share of the output error; without it, the lowest output SQNRs."""
    s = doc.get("sensitivity")
    if s:
        ranked = sorted((r for r in s["layers"] if r["share"] is not None),
                        key=lambda r: -r["share"])[:SOURCES_SHOWN]

        def fmt(v):
            return "" if v is None else f"{v:+.3g}"
        lines = ["", f"Where the error comes from (on {s['samples']} calibration samples; "
                 f"output objective {s['objective']:.3g}, normalized MSE; share: the part of it "
                 "that goes when this layer is made exact too (8 bits finer, unclipped, the "
                 "float bias), the inputs and earlier layers already exact, so the shares add "
                 "up to 100 % less what tables leave; one bit less: the objective's change "
                 "with one bit less on this layer alone, the same range"
                 + ("" if s["complete"] else "; stopped by its work limit before every layer")
                 + ")" + ("" if s.get("remaining") is None else
                          f"; with every format exact {s['remaining']:.1%} of it remains "
                          "(the Softmax, Sigmoid and Tanh tables)") + ":", "",
                 "| layer | SQNR dB | share of output error | one activation bit less | "
                 "one weight bit less |", "|---|---|---|---|---|"]
        for r in ranked:
            sqnr = "exact" if r["sqnr_db"] is None else f"{r['sqnr_db']:.1f}"
            lines.append(f"| {r['node']} | {sqnr} | {r['share']:.1%} | {fmt(r['act_bit'])} | "
                         f"{fmt(r['weight_bit'])} |")
        return lines
    worst = sorted((r for r in doc["layers"] if r["sqnr_db"] is not None),
                   key=lambda r: r["sqnr_db"])[:SOURCES_SHOWN]
    if not worst:
        return []
    return ["", "Lowest SQNR (each against the float model, errors of earlier layers "
            "included; `fxq compile --sensitivity` measures each layer's share of the output "
            "error): " + ", ".join(f"{r['name']} {r['sqnr_db']:.1f} dB" for r in worst)]


def _estimate_markdown(e: dict[str, Any]) -> list[str]:
    t, u, s = e["total"], e["utilization"], e["settings"]
    lines = [f"Estimate (fxq's first-order model, not synthesis) for {e['part']}, "
             f"{s['io_type']}, {s['strategy']} strategy, reuse factor {s['reuse_factor']}:", "",
             "| layer | op | latency (cycles) | II | DSP | LUT | FF | BRAM18 |",
             "|---|---|---|---|---|---|---|---|"]
    for c in e["layers"]:
        lines.append(f"| {c['name']} | {c['op']} | {c['latency']} | {c['ii']} | {c['dsp']} | "
                     f"{c['lut']} | {c['ff']} | {c['bram18']} |")
    top = e.get("top", {})
    if top.get("latency") or top.get("ff"):
        lines.append(f"| (between layers) | | {top['latency']} | | | | {top['ff']} | |")
    lines.append(f"| **total** | | {t['latency']} | {t['ii']} | {t['dsp']} ({u['dsp']:.1%}) | "
                 f"{t['lut']} ({u['lut']:.1%}) | {t['ff']} ({u['ff']:.1%}) | "
                 f"{t['bram18']} ({u['bram18']:.1%}) |")
    lines += ["", f"Latency at {s.get('clock_ns', 5.0)} ns: {e['latency_ns']:.1f} ns. What each "
              "figure predicts: latency, II, DSP and BRAM18 HLS C synthesis; LUT and FF Vivado "
              "logic synthesis (C synthesis reports more: about "
              f"{e['csynth']['lut']} LUT and {e['csynth']['ff']} FF here, hw/estimator.toml "
              "[csynth])."] if "csynth" in e else []
    return lines


def _synthesis_markdown(synthesis: dict[str, Any]) -> list[str]:
    lines = ["Vendor synthesis (read from its reports; apart from the estimate above):", ""]
    c = synthesis.get("csynth")
    if c:
        lines.append(f"- C synthesis: latency {c['latency_best']}-{c['latency_worst']} cycles, "
                     f"II {c['ii_min']}-{c['ii_max']}, clock {c['clock_estimated_ns']} ns "
                     f"(target {c['clock_target_ns']}), DSP {c['dsp']}, LUT {c['lut']}, "
                     f"FF {c['ff']}, BRAM18 {c['bram18']}")
    v = synthesis.get("vivado_synth")
    if v:
        lines.append(f"- Logic synthesis: DSP {v['dsp']}, LUT {v['lut']}, FF {v['ff']}, "
                     f"BRAM18 {v['bram18']}")
    return lines


def rtl_markdown(rtl: dict[str, Any]) -> list[str]:
    """The open RTL path (fxq rtl): measured and estimated figures side by side."""
    e, y = rtl["estimate"], rtl.get("yosys")
    lines = [f"Open RTL path (`fxq rtl`: da4ml Verilog in {rtl['path']}, {rtl['stages']} "
             f"pipeline stages at da4ml latency cutoff {rtl['latency_cutoff']}, "
             f"{rtl['part']}):", "",
             "| figure | measured: Yosys synth_xilinx | estimate: fxq (hw/estimator.toml "
             "[rtl]) | estimate: da4ml |", "|---|---|---|---|",
             f"| LUT | {y['lut'] if y else 'not run'} | {e['lut']} | {rtl['da4ml_lut']} |",
             f"| FF | {y['ff'] if y else 'not run'} | {e['ff']} | {rtl['da4ml_ff']} |"]
    if y:
        lines.append(f"| CARRY ({y['family']}) | {y['carry']} | | |")
        lines.append(f"| DSP | {y['dsp']} | | |")
    lines.append("")
    for c in rtl["simulation"]:
        verdict = "equal to fxq's simulation" if c["equal"] else "DIFFERENT from fxq's"
        lines.append(f"- Verilator on {c['data']}: {verdict} on every output")
    return lines


@dataclass(frozen=True)
class RangeExcess:
    """Values of one tensor the hardware's conversion to its fixed-point type overflowed."""

    node: str
    tensor: str
    type: FixedType
    outside: int
    total: int

    def __str__(self) -> str:
        what = {"WRAP": "wrapped", "SAT": "saturated", "SAT_ZERO": "set to zero",
                "SAT_SYM": "saturated"}[self.type.overflow.name]
        share = self.outside / self.total
        return (f"{self.node}: {self.outside} of {self.total} values "
                f"({f'{share:.2%}' if share >= 1e-4 else '<0.01%'}) outside {self.type} "
                f"[{self.type.min:g}, {self.type.max:g}], {what}")


def range_excess(q: QuantizedGraph, overflows: Mapping[str, int],
                 samples: int) -> list[RangeExcess]:
    """Per tensor with any, the values the chosen formats could not hold, from the
    overflow counts of a simulation of `samples` samples (QuantizedGraph.
    simulate_overflows): where data goes beyond the calibration range, the hardware
    saturates or wraps them, and this says how often. Counted by the bit-accurate
    simulation itself, at its conversions: a value is counted where it overflows, not
    again downstream."""
    where = {name: f"input {name}" for name in q.graph.inputs}
    where.update({node.output: node.name for node in q.graph.nodes})
    return [RangeExcess(where[t], t, q.types[t], overflows[t],
                        samples * prod(q.graph.shape(t)))
            for t in where if overflows.get(t)]


def build_report(q: QuantizedGraph, calib: Any, *, labelled: tuple[Any, np.ndarray] | None = None,
                 settings: dict[str, Any] | None = None, estimate: Any = None,
                 stats: Mapping[str, TensorStats] | None = None,
                 task: str | None = None, reference: Graph | None = None,
                 outputs: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None) -> Report:
    """Per-layer SQNR and clipping of `q` on `calib`; with `labelled` = (inputs, labels),
    float and fixed figures of the model's task (fxq.task: top-1 accuracy, ROC AUC or MSE;
    `task` None infers it from the labels) for single-output, single-input models.
    `stats`: every tensor's statistics on `calib` when the caller already has them (the
    analysis gathers them); else they are gathered here, in batches. `reference`: the float
    model the figures compare with when it is not q's graph (whose biases a bias correction
    changed); the same nodes and tensors. `outputs`: when `labelled`'s inputs are `calib`
    and the analysis has them (SearchResult.outputs), the float model's and q's output
    values on them, instead of running both again."""
    g = q.graph
    bound = bind_inputs(g, calib, source="calibration data")
    if stats is None:
        stats = tensor_stats(q, bound, reference)
    layers = []
    for node in g.nodes:
        layer = q.layers[node.name]
        s = stats[node.output]
        layers.append(LayerReport(
            name=node.name, op=node.op.name,
            input_shapes=[list(g.shape(n)) for n in g.activation_inputs(node)],
            output_shape=list(g.shape(node.output)),
            types={**layer.params, **{k: getattr(layer, k) for k in TYPE_FIELDS
                                      if getattr(layer, k) is not None}},
            sqnr_db=s.sqnr_db, clipped=s.clipped))
    samples = next(iter(bound.values())).shape[0]
    report = Report(g.name, layers, samples, settings=dict(settings or {}), estimate=estimate)
    if labelled is not None and len(g.outputs) == 1 and len(g.inputs) == 1:
        x, labels = labelled
        x = bind_inputs(g, x, source="labelled data")[g.inputs[0]]
        if outputs:
            y_float, y_fixed = outputs[g.outputs[0]]
        else:
            y_float, y_fixed = (reference or g).run(x), q.simulate(x)
        task = task or infer_task(labels, x, y_float)
        report.accuracy = {**quality(task, x, labels, y_float, y_fixed),
                           "metric": METRIC[task]}
    return report


def _budget_layers(chosen: dict) -> str:
    """The width search's pruning and accumulator choices, as a sentence ('' for none)."""
    pruned = ", ".join(f"{n} {v:.0%}" for n, v in chosen.get("sparsity", {}).items())
    dropped = ", ".join(f"{n} {w['accum_drop']}" for n, w in chosen["widths"].items()
                        if w.get("accum_drop"))
    return (f"; weights pruned (zeros): {pruned}" if pruned else "") + \
        (f"; accumulator bits dropped below the exact products: {dropped}" if dropped else "")
