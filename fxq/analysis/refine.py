"""Refinement against the network's output: coordinate descent on the fractional lengths.

The greedy pass (fxq.analysis.search) scores each tensor by its own error. Here every
fractional length it chose (each typed tensor's, each parameter's) is a coordinate; from the
best of the starting assignments (the greedy one and the static baseline's), each
coordinate in turn is moved one bit down and up, the whole network re-simulated bit for bit
from that node on, and a move kept when it lowers the error at the network's output:

    objective = sum over outputs o of  mean((fixed_o - float_o)^2) / mean(float_o^2)

where a graph output made by a Softmax is measured at the Softmax's input (the logits) too,
since probabilities near 0 and 1 hide what the ranking depends on. Sweeps repeat until no
single move helps (or MAX_SWEEPS). Only the fractional lengths move: widths stay as the
configuration gives them, and accumulators, biases and tables follow from the type rules,
so the result stays exact and overflow-free where the greedy one was.

`quantize_graph` runs the greedy pass, then (with refine=True) this refinement.

The descent runs on the first REFINE_SAMPLES calibration samples (fewer when a network's
per-sample work is large: WORK_LIMIT bounds samples x multiply-adds of one simulation, down
to MIN_SAMPLES), and stops early when its simulations have cost TOTAL_WORK multiply-adds
(samples x the multiply-adds from the changed node on): the limits are counts, not times,
so the result is the same on every machine.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

from fxq.analysis.bits import BitConfig
from fxq.analysis.search import (Assignment, SearchResult, StaticPlan, _Search, frac_to_hold,
                                 search_graph, static_plan)
from fxq.data import bind_inputs
from fxq.fixed import to_float
from fxq.ir import Graph, Op
from fxq.reference import walk as float_walk

REFINE_SAMPLES = 512
MIN_SAMPLES = 64
WORK_LIMIT = 1e9            # samples x multiply-adds of one refinement simulation
TOTAL_WORK = 5e10           # samples x multiply-adds of all of them
MAX_SWEEPS = 4
MIN_GAIN = 1e-9             # relative improvement a move must make


@dataclass(frozen=True)
class Step:
    """One accepted move (or a starting point when `key` is None)."""

    key: str | tuple[str, str] | None
    frac: int | None
    objective: float
    label: str = ""


@dataclass(frozen=True)
class Refinement:
    assignment: Assignment
    start: str                      # which starting assignment won
    starts: Mapping[str, float]     # each starting assignment's objective
    objective: float
    trace: tuple[Step, ...]
    evaluations: int
    samples: int
    complete: bool                  # False: stopped by TOTAL_WORK before no move helped


def node_work(graph: Graph) -> np.ndarray:
    """Per node, the multiply-adds (or element operations) of one sample."""
    work = []
    for node in graph.nodes:
        out = float(np.prod(graph.shape(node.output), dtype=np.float64))   # (no batch axis)
        w = [graph.params[n] for r, n in graph.param_inputs(node) if r == "weight"]
        per_out = float(np.prod(w[0].shape[1:])) if w and node.op is Op.CONV else \
            float(w[0].shape[0]) if w else 1.0
        work.append(out * per_out)
    return np.asarray(work, dtype=np.float64)


def refinement_samples(graph: Graph, available: int) -> int:
    by_work = int(WORK_LIMIT // max(float(node_work(graph).sum()), 1.0))
    return max(1, min(available, REFINE_SAMPLES, max(by_work, MIN_SAMPLES)))


def objective_tensors(graph: Graph) -> tuple[str, ...]:
    """The tensors the objective compares: the graph outputs, and the input of a Softmax
    that makes one."""
    out = list(graph.outputs)
    for name in graph.outputs:
        node = graph.producer(name)
        if node is not None and node.op is Op.SOFTMAX:
            out.append(node.inputs[0])
    return tuple(dict.fromkeys(out))


class _Descent:
    def __init__(self, graph: Graph, bound: Mapping[str, np.ndarray], config, io_type: str,
                 ceilings: Mapping[str, int]):
        self.graph, self.config, self.io_type = graph, config, io_type
        self.ceilings = ceilings
        self.keep = frozenset(objective_tensors(graph))
        self.bound = dict(bound)
        wanted = set(self.keep)
        self.floats = {name: v for name, v in self.bound.items() if name in wanted}
        for name, v in float_walk(graph, self.bound):
            if name in wanted:
                self.floats[name] = v
        self.energy = {name: max(float(np.mean(np.square(self.floats[name]))), 1e-30)
                       for name in self.keep}
        self.evaluations = 0
        n = next(iter(self.bound.values())).shape[0]
        # samples x multiply-adds of a simulation from node i on
        self.suffix_work = n * np.cumsum(node_work(graph)[::-1])[::-1]
        self.work = 0.0
        # the node index before which each coordinate acts (-1: the graph inputs)
        self.position: dict[str | tuple[str, str], int] = {name: -1 for name in graph.inputs}
        for i, node in enumerate(graph.nodes):
            self.position[node.output] = i
            for role in node.op.roles:
                self.position[(node.name, role)] = i

    def walker(self, a: Assignment, config: BitConfig | None = None) -> _Search:
        return _Search(self.graph, self.bound, config or self.config, "dynamic",
                       self.io_type, None, replay=a, measure=False, keep=self.keep)

    def score(self, w: _Search) -> float:
        self.evaluations += 1
        total = 0.0
        for name in self.keep:
            fx = to_float(w.raw[name], w.types[name])
            total += float(np.mean(np.square(fx - self.floats[name]))) / self.energy[name]
        return total

    def spent(self) -> bool:
        return self.work >= TOTAL_WORK

    def evaluate(self, a: Assignment | StaticPlan,
                 config: BitConfig | None = None) -> tuple[float, Assignment]:
        """The objective of `a` (under `config`, else the descent's), and `a` as the
        assignment it gives (a plan's rule applied)."""
        self.work += self.suffix_work[0] if len(self.suffix_work) else 0.0
        w = self.walker(a, config)
        result = w.run()
        return self.score(w), result.assignment

    def evaluate_from(self, a: Assignment, i: int, state,
                      config: BitConfig | None = None) -> float:
        """The objective of `a` (under `config`, else the descent's), nodes before i taken
        from `state` (their types unchanged)."""
        self.work += self.suffix_work[i]
        w = self.walker(a, config)
        w.restore(state)
        for j in range(i, len(self.graph.nodes)):
            w.step(j)
        return self.score(w)

    def sweep(self, a: Assignment, best: float, trace: list[Step]) -> tuple[Assignment, float]:
        coords = sorted((k for k in list(a.results) + list(a.params) if k in self.position),
                        key=lambda k: self.position[k])
        w = self.walker(a)
        state = None
        done = -1                   # nodes of the walk typed under the current assignment
        for key in coords:
            i = self.position[key]
            for delta in (-1, 1):
                if self.spent():
                    return a, best
                if delta > 0 and a.frac(key) + delta > self.ceilings.get(key, np.inf):
                    continue
                trial = a.with_(key, a.frac(key) + delta)
                if i < 0:
                    value = self.evaluate(trial)[0]
                else:
                    if state is None or done != i:
                        w = self.walker(a)
                        if state is None:
                            w.begin()
                            done = 0
                        else:
                            w.restore(state)
                        while done < i:
                            w.step(done)
                            done += 1
                        state = w.state()
                    value = self.evaluate_from(trial, i, state)
                if value < best * (1 - MIN_GAIN):
                    a, best = trial, value
                    trace.append(Step(key, a.frac(key), best))
                    if i < 0:                   # the inputs' types: every node changes
                        state, done = None, -1  # (else the walk before node i stands)
        return a, best


def refine_search(graph: Graph, bound: Mapping[str, np.ndarray], config, io_type: str,
           starts: Mapping[str, Assignment | StaticPlan],
           ceilings: Mapping[str, int] | None = None) -> Refinement:
    """Coordinate descent from the best of `starts` (label -> assignment or plan; the first
    wins ties) on the samples of `bound` (inputs by name, already checked). No move takes
    a tensor of `ceilings` finer than its ceiling (the graph outputs, which hold their
    calibrated range)."""
    n = next(iter(bound.values())).shape[0]
    take = refinement_samples(graph, n)
    d = _Descent(graph, {k: v[:take] for k, v in bound.items()}, config, io_type,
                 ceilings or {})
    evaluated = {label: d.evaluate(a) for label, a in starts.items()}
    scored = {label: value for label, (value, _) in evaluated.items()}
    label = min(scored, key=lambda k: (scored[k], k != next(iter(starts))))
    best, a = evaluated[label]
    trace = [Step(None, None, v, k) for k, v in scored.items()]
    for _ in range(MAX_SWEEPS):
        before = best
        a, best = d.sweep(a, best, trace)
        if not best < before or d.spent():
            break
    return Refinement(a, label, scored, best, tuple(trace), d.evaluations, take,
                      not d.spent())


def search_summary(result) -> dict[str, Any]:
    """What report.json says of the search (a SearchResult): whether it was refined, from
    which start, each start's objective, the moves kept, and the refinement's extent."""
    r = result.refinement
    if r is None:
        return {"refined": False}
    return {"refined": True, "start": r.start, "starts": dict(r.starts),
            "objective": r.objective, "evaluations": r.evaluations, "samples": r.samples,
            "complete": r.complete,
            "moves": [{"coordinate": list(s.key) if isinstance(s.key, tuple) else s.key,
                       "frac": s.frac, "objective": s.objective}
                      for s in r.trace if s.key is not None]}


def quantize_graph(graph: Graph, calib: Any, config: BitConfig | None = None, *,
                   method: str = "dynamic", io_type: str = "io_parallel",
                   progress: Callable[[str], None] | None = None,
                   refine: bool = False, bias_correction: bool = True) -> SearchResult:
    """Choose every format of `graph` from calibration data `calib` (an array or a mapping
    by input name, batch first). `progress(node_name)` is called as each node starts.

    With `bias_correction` (on by default; dynamic), the greedy pass corrects each bias by
    its layer's mean error on the calibration data where that helps (search_graph). With `refine`, the dynamic method then refines the greedy
    choice against the network's output (refine_search), starting from the better of it and
    the static baseline (the corrected biases stay as the greedy pass set them)."""
    config = config or BitConfig()
    greedy = search_graph(graph, calib, config, method=method, io_type=io_type,
                          progress=progress, bias_correction=bias_correction)
    if method != "dynamic" or not refine or not graph.nodes:
        return greedy
    bound = bind_inputs(graph, calib, source="calibration data")
    # a graph output keeps holding its whole calibrated range (as the greedy pass's does),
    # unless it is class scores
    ceilings = {}
    for name in () if config.class_scores else graph.outputs:
        t = greedy.q.types[name]
        ceilings[name] = frac_to_hold(greedy.stats[name].max_abs, t.width, t.signed)
    found = refine_search(graph, bound, config, io_type,
                          {"greedy": greedy.assignment,
                           "static": static_plan(graph, bound, config)}, ceilings)
    if found.assignment == greedy.assignment:
        final = greedy
    else:
        final = _Search(graph, bound, config, method, io_type, None,
                        replay=found.assignment).run()
    return SearchResult(final.q, final.choices, final.stats, final.assignment, found,
                        final.outputs)
