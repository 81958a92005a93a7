"""Where the error comes from: each layer's part in the error at the network's output.

For a chosen design (a SearchResult's assignment) and each node that has a format of its own,
in topological order, three variants are re-simulated bit for bit from that node on (the
walk before it is kept), each measured by the refinement's objective (fxq.analysis.refine:
the normalized MSE of the graph outputs, a Softmax output also at its logits):

* exact, cumulatively: the graph inputs and every node up to and including this one made
  all but exact (_exact: EXACT_BITS finer, wide enough that nothing the calibration data
  reaches saturates, the float model's bias rather than a corrected one), the rest as
  designed. The node's share is the objective's fall from the previous figure to this one,
  over the design's objective; the graph inputs come first (their share: the fall from
  making them alone exact, split evenly between them). The shares add up to 1 less what
  remains with everything exact (the Softmax and Sigmoid/Tanh tables, 8 bits below the
  chosen LSBs). A negative share is a rounding that offsets earlier errors (or a corrected
  bias that did);
* one activation bit less: the result one bit narrower and coarser (the same range). Its
  objective increase is the layer's activation sensitivity;
* one weight bit less: likewise for every parameter of the node.

The work is bounded as the refinement's is (the same sample count and work limit, both
counts), so the figures are the same on every machine; `complete` says whether every node
was measured.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from fxq.analysis.bits import BitConfig
from fxq.analysis.refine import _Descent, refinement_samples
from fxq.analysis.search import Assignment, SearchResult, frac_to_hold
from fxq.data import bind_inputs
from fxq.fixed import MAX_WIDTH
from fxq.ir import Graph
from fxq.layer import QuantizationError

EXACT_BITS = 8


@dataclass(frozen=True)
class LayerSensitivity:
    node: str
    sqnr_db: float | None           # of its output, on the calibration data (the report's)
    share: float | None             # of the output objective, removed by making it exact
    act_bit: float | None           # objective increase from one activation bit less
    weight_bit: float | None        # ... from one weight bit less (None: no parameters)


@dataclass(frozen=True)
class Sensitivity:
    objective: float
    samples: int
    layers: tuple[LayerSensitivity, ...]
    complete: bool
    remaining: float | None         # the objective with everything exact, over `objective`

    def to_json(self) -> dict[str, Any]:
        return {"objective": self.objective, "samples": self.samples,
                "complete": self.complete, "remaining": self.remaining,
                "layers": [{"node": s.node, "sqnr_db": s.sqnr_db, "share": s.share,
                            "act_bit": s.act_bit, "weight_bit": s.weight_bit}
                           for s in self.layers]}


def _variant(config: BitConfig, a: Assignment, node, keys: list, width_of, bits: int):
    """(config, assignment) with `node`'s widths moved by `bits` where `width_of` says
    which (act or weight), and the fractional lengths of `keys` by the same: the range
    stays; None when a width would leave 1..MAX_WIDTH."""
    w = config.widths(node)
    widths = {"weight_bits": w.weight, "act_bits": w.act}
    for kind in width_of:
        widths[kind] += bits
        if not 1 <= widths[kind] <= MAX_WIDTH:
            return None
    config = replace(config, layers={**config.layers, node.name: widths})
    for key in keys:
        a = a.with_(key, a.frac(key) + bits)
    return config, a


def _holding(magnitude: float, frac: int, at_least: int) -> int:
    """The narrowest signed width, at least `at_least`, whose type with `frac` fractional
    bits holds `magnitude` (MAX_WIDTH when none does)."""
    for width in range(max(at_least, 1), MAX_WIDTH + 1):
        if frac_to_hold(magnitude, width, True) >= frac:
            return width
    return MAX_WIDTH


def _exact(graph: Graph, config: BitConfig, a: Assignment, node, result: SearchResult):
    """(config, assignment) with `node` all but exact: every fractional length of its
    result and parameters EXACT_BITS finer, and its widths enough wider that nothing its
    values reach on the calibration data saturates (the ranges grow to hold them), and
    its bias the float model's."""
    w = config.widths(node)
    out_frac = a.frac(node.output) + EXACT_BITS
    widths = {"weight_bits": w.weight, "act_bits": _holding(
        result.stats[node.output].max_abs, out_frac, w.act + EXACT_BITS)}
    a = a.with_(node.output, out_frac)
    names = dict(graph.param_inputs(node))
    for role in node.op.roles:
        key = (node.name, role)
        if key not in a.params:
            continue
        frac = a.frac(key) + EXACT_BITS
        magnitude = float(np.max(np.abs(graph.params[names[role]]), initial=0.0)) \
            if role in names else 0.0
        widths["weight_bits"] = max(widths["weight_bits"],
                                    _holding(magnitude, frac, w.weight + EXACT_BITS))
        a = a.with_(key, frac)
    # an exact node computes the float model's parameters (a corrected bias or adaptively
    # rounded weights offset rounding)
    a = Assignment(a.results, a.params,
                   {k: v for k, v in a.values.items() if k not in names.values()})
    return replace(config, layers={**config.layers, node.name: widths}), a


def sensitivity(graph: Graph, calib: Any, result: SearchResult, config: BitConfig,
                io_type: str = "io_parallel") -> Sensitivity:
    """Each typed node's share of the output error and its one-bit sensitivities in the
    design `result` (see the module's docstring)."""
    bound = bind_inputs(graph, calib, source="calibration data")
    n = next(iter(bound.values())).shape[0]
    take = refinement_samples(graph, n)
    d = _Descent(graph, {k: v[:take] for k, v in bound.items()}, config, io_type, {})
    a = result.assignment
    base = d.evaluate(a)[0]
    rows = []
    # the graph inputs first: their rounding, then one bit less
    exact_config, exact_a = config, a
    for name in graph.inputs:
        frac = a.frac(name) + EXACT_BITS
        widths = {"act_bits": _holding(result.stats[name].max_abs, frac,
                                       config.input_width(name) + EXACT_BITS)}
        exact_config = replace(exact_config, layers={**exact_config.layers, name: widths})
        exact_a = exact_a.with_(name, frac)
    try:
        previous = d.evaluate(exact_a, exact_config)[0] if graph.inputs else base
        inputs_share = (base - previous) / base / len(graph.inputs) if base > 0 else 0.0
    except QuantizationError:    # e.g. a first accumulator above 64 bits: inputs as designed
        exact_config, exact_a, previous, inputs_share = config, a, base, None
    all_exact = inputs_share is not None or not graph.inputs
    for name in graph.inputs:
        narrower = None
        if config.input_width(name) > 1:
            less = replace(config, layers={**config.layers, name: {
                "act_bits": config.input_width(name) - 1}})
            narrower = d.evaluate(a.with_(name, a.frac(name) - 1), less)[0] - base
        stats = result.stats.get(name)
        rows.append(LayerSensitivity(
            f"input {name}", stats.sqnr_db if stats is not None else None,
            inputs_share, narrower, None))
    w = d.walker(a)                  # the design itself, node by node
    w.begin()
    exact = d.walker(exact_a, exact_config)   # every node so far (and the inputs) exact
    exact.begin()
    complete = True
    for i, node in enumerate(graph.nodes):
        state, exact_state = w.state(), exact.state()
        w.step(i)
        typed = node.output in a.results          # (a layout op keeps its input's format)
        params = [(node.name, role) for role in node.op.roles if (node.name, role) in a.params]
        made = False
        if typed:
            trial_config, trial_a = _exact(graph, exact_config, exact_a, node, result)
            try:
                exact = d.walker(trial_a, trial_config)
                exact.restore(exact_state)
                exact.step(i)
                exact_config, exact_a, made = trial_config, trial_a, True
            except QuantizationError:     # e.g. an accumulator above 64 bits: as designed
                all_exact = False
        if not made:
            exact = d.walker(exact_a, exact_config)
            exact.restore(exact_state)
            exact.step(i)
        if not typed:
            continue
        if d.spent():
            complete = False
            break
        figures = {}
        if made:
            figures["exact"] = d.evaluate_from(exact_a, i, exact_state, exact_config)
        for label, width_of, keys in (("act", ("act_bits",), [node.output]),
                                      ("weight", ("weight_bits",), params)):
            variant = _variant(config, a, node, keys, width_of, -1) if keys else None
            if variant is None:
                continue
            try:
                figures[label] = d.evaluate_from(variant[1], i, state, variant[0])
            except QuantizationError:
                continue
        stats = result.stats.get(node.output)
        share = None
        if "exact" in figures:
            share = (previous - figures["exact"]) / base if base > 0 else 0.0
            previous = figures["exact"]
        rows.append(LayerSensitivity(
            node.name, stats.sqnr_db if stats is not None else None, share,
            figures["act"] - base if "act" in figures else None,
            figures["weight"] - base if "weight" in figures else None))
    # (what remains with every format exact: only when every one could be made so)
    remaining = previous / base if complete and all_exact and base > 0 else None
    return Sensitivity(base, take, tuple(rows), complete, remaining)


__all__ = ["EXACT_BITS", "LayerSensitivity", "Sensitivity", "sensitivity"]
