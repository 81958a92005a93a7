"""Per-layer widths under an accuracy budget: the cheapest design found within PT points.

Every graph input and every node with a format of its own has an activation width, every
node with weights a weight width; a node whose output only a ReLU (or Clip from >= 0) reads
shares its activation width with that clamp (the clamp's output has the same values).
Every Dense and Conv layer also has its accumulator's dropped bits (`accum_drop`: the low
bits of the exact products it truncates, from the start's, 0 by default: the adder trees
that dominate a constant-weight layer's LUTs are as wide as the accumulator) and, with
`prune`, its sparsity (PRUNE_STEP more of its smallest weights zeroed, the survivors and
bias refit by least squares on the calibration data: fxq.compress's pruning; a zero
weight is no product and no adder in the latency strategy).
From uniform `start` bits, greedily (lazily: see the loop): each group's width one bit
less (or one more bit dropped, or one more pruning step) is a candidate; each
candidate is quantized as usual (the greedy search with bias correction), simulated on the
labelled calibration data and estimated (fxq.estimate); of the candidates that meet the
constraint and cost less, the one that raises the output objective least per unit of cost
saved is taken (the objective: the normalized MSE of the graph outputs, so that ties in
top-1 are broken by how far the outputs moved). It stops when no candidate meets the
constraint, after MAX_EVALUATIONS designs or once the designs evaluated have cost
TOTAL_WORK (samples x multiply-adds: a count, so the result is the same on every machine);
the result is the cheapest design evaluated that meets it.

Constraint: top-1 on the calibration data within `points` of the float model's (labels
given), top-1 agreeing with the float model's on all but `points` % of the samples, and on
the probes agreeing with it on all but PROBE_TOLERANCE x `points` % more than the starting
design does; or the outputs' SQNR at least `sqnr_db` (no labels needed).

The probes are mixtures lam * a + (1 - lam) * b (lam in [0.3, 0.7]) of calibration samples
the float model classifies differently: samples near its decision boundaries, where a
design's changes show first. Without them the search fits the calibration set: these sets
are training samples the float models classify at or near 100 %, so every candidate that
keeps those few decisions passes, and the chosen designs lost 0.7-2.2 held-out points
under a budget of 0.5. With them (widths only, an earlier search) the five bench models
stayed within 0.5 held out; with the accumulators and pruning four do, and jet loses 0.78.
The tolerance of 4 x points (the probes flip far more often than typical samples) was
chosen on those five models, widths only: at 1 x every design stayed within 0.5 but cost
0.57-0.91x of 8 bits, at 4 x 0.48-0.81x. Cost: "ebops" (LUT + 55 x DSP of the estimate,
what HGQ reports), "dsp", "lut" or "latency" (cycles).

Every design evaluated is a point of the (cost, accuracy) plane; the Pareto front is those
no other point beats on both. The counts are the limits (no clock), so the result is the
same on every machine.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable, Mapping

import numpy as np

from fxq.analysis.bits import BitConfig
from fxq.analysis.refine import node_work, quantize_graph
from fxq.analysis.search import SearchResult
from fxq.compress.methods import is_layer
from fxq.data import bind_inputs
from fxq.errors import FxqError
from fxq.ir import Graph
from fxq.task import infer_task

COSTS = ("ebops", "dsp", "lut", "latency")
PRUNE_STEP = 0.1              # a sparsity move zeroes another tenth of a layer's weights
PRUNE_STEPS = 9               # at most 90 % of a layer's weights
MAX_ACCUM_DROP = 16           # low bits of the exact products an accumulator may drop
RISING = {"prune_steps": PRUNE_STEPS, "accum_drop": MAX_ACCUM_DROP}   # moves that add, limits
DSP_LUTS = 55                 # EBOPs = LUT + 55 x DSP
MAX_EVALUATIONS = 2000
TOTAL_WORK = 2e11             # samples x multiply-adds of every design evaluated, at most
MIN_BITS = 2
PROBES = 1024                 # mixed calibration samples near the decision boundaries
PROBE_TOLERANCE = 4.0         # x points: their decisions may flip this much more than the start's


class BudgetError(FxqError):
    """A budget that cannot be searched (bad settings, no labels, a start that misses it)."""


@dataclass(frozen=True)
class Point:
    widths: Mapping[str, Mapping[str, int]]     # per node or input: weight_bits, act_bits
    cost: float
    accuracy: float          # top-1 % (points budget) or output SQNR dB (sqnr budget)
    objective: float
    move: str = ""           # the group and width changed to reach it
    agreement: float | None = None   # top-1 % equal to the float model's (points budget)
    probe_agreement: float | None = None   # the same on the probes


@dataclass(frozen=True)
class BudgetResult:
    result: SearchResult
    config: BitConfig
    chosen: Point
    start: Point
    float_accuracy: float | None
    trace: tuple[Point, ...]
    front: tuple[Point, ...]
    evaluations: int
    complete: bool           # False: stopped by MAX_EVALUATIONS or TOTAL_WORK
    graph: Graph             # the float model with the chosen layers pruned

    def to_json(self, minimize: str, points: float | None,
                sqnr_db: float | None) -> dict[str, Any]:
        def point(p: Point) -> dict[str, Any]:
            return {"cost": p.cost, "accuracy": p.accuracy, "objective": p.objective,
                    "move": p.move, "agreement": p.agreement,
                    "probe_agreement": p.probe_agreement}
        return {"minimize": minimize, "budget_points": points, "budget_sqnr_db": sqnr_db,
                "metric": "top-1 %" if points is not None else "output SQNR dB",
                "float_accuracy": self.float_accuracy, "evaluations": self.evaluations,
                "complete": self.complete, "start": point(self.start),
                "chosen": {**point(self.chosen), "widths": bit_widths(self.chosen.widths),
                           "sparsity": sparsities(self.chosen.widths)},
                "trace": [point(p) for p in self.trace],
                "front": [point(p) for p in self.front]}


def cost_of(estimate, minimize: str) -> float:
    t = estimate.total
    return float({"ebops": t.lut + DSP_LUTS * t.dsp, "dsp": t.dsp, "lut": t.lut,
                  "latency": t.latency}[minimize])


def width_groups(graph: Graph, result: SearchResult,
                 prune: bool = False) -> list[tuple[str, tuple]]:
    """(label, members) of every setting the search may change: members are (name, kind),
    kind "act_bits" or "weight_bits" (a bit less per move), "accum_drop" (a Dense or Conv
    accumulator's low bit more dropped) or with `prune` "prune_steps" (another PRUNE_STEP
    of its weights zeroed), name a node or a graph input."""
    a = result.assignment
    groups: list[tuple[str, tuple]] = [(f"input {n} act", ((n, "act_bits"),))
                                       for n in graph.inputs]
    joined = set()
    for node in graph.nodes:
        if node.output not in a.results or node.name in joined:
            continue
        members = [(node.name, "act_bits")]
        clamp = graph.clamp_reader(node.output)
        if clamp is not None and clamp.output in a.results:
            members.append((clamp.name, "act_bits"))
            joined.add(clamp.name)
        groups.append((f"{node.name} act", tuple(members)))
        if (node.name, "weight") in a.params:
            groups.append((f"{node.name} weight", ((node.name, "weight_bits"),)))
    layers = [n for n in graph.nodes if is_layer(n) and (n.name, "weight") in a.params]
    groups += [(f"{n.name} accum", ((n.name, "accum_drop"),)) for n in layers]
    if prune:
        groups += [(f"{n.name} sparsity", ((n.name, "prune_steps"),)) for n in layers]
    return groups


def moved(settings: Mapping[str, Mapping[str, int]], members: tuple) -> \
        dict[str, dict[str, int]] | None:
    """`settings` after the move of `members` (a bit less, another low bit dropped from the
    accumulator, or another pruning step), or None when one of them is at its limit."""
    trial = {n: dict(w) for n, w in settings.items()}
    for n, kind in members:
        if kind in RISING:
            if trial[n][kind] >= RISING[kind]:
                return None
            trial[n][kind] += 1
        else:
            if trial[n][kind] <= MIN_BITS:
                return None
            trial[n][kind] -= 1
    return trial


def bit_widths(settings: Mapping[str, Mapping[str, int]]) -> dict[str, dict[str, int]]:
    """The widths of `settings` (BitConfig's per-layer entries), without the pruning."""
    return {n: {k: v for k, v in w.items() if k != "prune_steps"} for n, w in settings.items()}


def sparsities(settings: Mapping[str, Mapping[str, int]]) -> dict[str, float]:
    """Each pruned layer's fraction of zero weights in `settings`."""
    return {n: round(w["prune_steps"] * PRUNE_STEP, 6) for n, w in settings.items()
            if w.get("prune_steps", 0) > 0}


def pruned_graph(graph: Graph, bound: Mapping[str, np.ndarray],
                 sparsity: Mapping[str, float]) -> Graph:
    """`graph` with each layer of `sparsity` pruned to that fraction of zero weights by
    magnitude, its survivors and bias refit by least squares on the calibration data
    (fxq.compress's pruning without retraining)."""
    if not sparsity:
        return graph
    from fxq.compress.config import CompressConfig
    from fxq.compress.methods import weight_visit
    from fxq.compress.walk import lockstep
    return lockstep(graph, graph, dict(bound), weight_visit(CompressConfig(), sparsity))[0]


def budget_search(graph: Graph, calib: Any, *, labels: np.ndarray | None = None,
                  points: float | None = None, sqnr_db: float | None = None,
                  minimize: str = "ebops", start: BitConfig | None = None,
                  target=None, io_type: str = "io_parallel", prune: bool = True,
                  progress: Callable[[str], None] | None = None) -> BudgetResult:
    """The cheapest per-layer widths (and with `prune`, per-layer sparsities) found under
    the budget (see the module docstring). `start` gives the widths to start from (default
    uniform 8 bits) and the search settings."""
    from fxq.estimate import estimate
    from fxq.target import Target

    if minimize not in COSTS:
        raise BudgetError(f"--minimize {minimize!r}: expected one of {', '.join(COSTS)}")
    if (points is None) == (sqnr_db is None):
        raise BudgetError("a budget is either top-1 points (--budget) or an output SQNR "
                          "(--budget-sqnr), one of them")
    if points is not None and not 0 <= points <= 100:
        raise BudgetError(f"--budget {points}: expected top-1 points in [0, 100]")
    if points is not None and labels is None:
        raise BudgetError("--budget needs labels in the calibration data (an array y); "
                          "--budget-sqnr DB needs none")
    start = start or BitConfig()
    target = target or Target(io_type=io_type)
    bound = bind_inputs(graph, calib, source="calibration data")
    if len(graph.outputs) != 1 and points is not None:
        raise BudgetError("--budget (top-1) needs a single-output model; use --budget-sqnr")
    floats = graph.run(bound)
    floats = floats if isinstance(floats, dict) else {graph.outputs[0]: floats}
    if points is not None:
        labels = np.asarray(labels)
        if labels.shape[0] != next(iter(bound.values())).shape[0]:
            raise BudgetError(f"{labels.shape[0]} labels for "
                              f"{next(iter(bound.values())).shape[0]} calibration samples")
    if points is not None:
        task = infer_task(labels, next(iter(bound.values())), floats[graph.outputs[0]])
        if task != "classify":
            raise BudgetError(f"--budget is top-1 points for a classifier, and these labels "
                              f"make the task {task}; use --budget-sqnr DB for this model")
        start = start.with_overrides(class_scores=True)
    float_accuracy = _top1(floats[graph.outputs[0]], labels) if points is not None else None
    probes = probe_float = None
    if points is not None:
        probes = probe_samples(bound, floats[graph.outputs[0]])
        probe_float = _argmax(graph.run(probes)) if probes is not None else None
    # one evaluation's work: the calibration data and the probes through the network
    samples = len(next(iter(bound.values())))
    if probes is not None:
        samples += len(next(iter(probes.values())))
    evaluation_work = float(node_work(graph).sum()) * samples
    memo: dict[tuple, tuple[Point, SearchResult] | None] = {}
    graphs: dict[tuple, Graph] = {}
    counter = [0]
    # a layer already sparse (a compressed model) starts at the steps its zeros make
    first_steps = {n.name: int(np.mean(graph.params[dict(graph.param_inputs(n))["weight"]]
                                       == 0) / PRUNE_STEP + 1e-9)
                   for n in graph.nodes if is_layer(n)}

    def pruned_of(widths) -> Graph:
        """The float model with each layer pruned past where it started as `widths` say."""
        sparsity = {n: v for n, v in sparsities(widths).items()
                    if widths[n]["prune_steps"] > first_steps[n]}
        k = tuple(sorted(sparsity.items()))
        if k not in graphs:
            graphs[k] = pruned_graph(graph, bound, sparsity)
        return graphs[k]

    def key(widths):
        return tuple(sorted((n, tuple(sorted(w.items()))) for n, w in widths.items()))

    def evaluate(widths, move: str) -> tuple[Point, SearchResult] | None:
        k = key(widths)
        if k not in memo:
            counter[0] += 1
            config = replace(start, layers=bit_widths(widths))
            try:
                result = quantize_graph(pruned_of(widths), bound, config,
                                        io_type=str(target.io_type))
            except FxqError:
                memo[k] = None
                return None
            fixed = result.q.simulate(bound)
            fixed = fixed if isinstance(fixed, dict) else {graph.outputs[0]: fixed}
            objective = sum(float(np.mean((fixed[o] - floats[o]) ** 2))
                            / max(float(np.mean(floats[o] ** 2)), 1e-30) for o in floats)
            out = graph.outputs[0]
            accuracy = _top1(fixed[out], labels) if points is not None else \
                (10 * np.log10(len(floats) / objective) if objective > 0 else float("inf"))
            agreement = _top1(fixed[out], _argmax(floats[out])) if points is not None \
                else None
            cost = cost_of(estimate(result.q, target=target), minimize)
            probed = None if probes is None else _top1(result.q.simulate(probes), probe_float)
            memo[k] = (Point(widths, cost, float(accuracy), objective, move, agreement,
                             probed), result)
        return memo[k]

    def meets(p: Point) -> bool:
        if points is not None:
            # within the points of float on the labels, and changing no more of the float
            # model's decisions than that (errors in both directions do not cancel)
            return (p.accuracy >= float_accuracy - points - 1e-9
                    and p.agreement >= 100.0 - points - 1e-9
                    and (probes is None or p.probe_agreement >=
                         start_point.probe_agreement - PROBE_TOLERANCE * points - 1e-9))
        return p.accuracy >= sqnr_db

    widths: dict[str, dict[str, int]] = {}
    for name in graph.inputs:
        widths[name] = {"act_bits": start.input_width(name)}
    for node in graph.nodes:
        w = start.widths(node)
        widths[node.name] = {"weight_bits": w.weight, "act_bits": w.act}
        if node.name in first_steps:
            widths[node.name]["accum_drop"] = w.accum_drop
        if prune and node.name in first_steps:
            widths[node.name]["prune_steps"] = first_steps[node.name]
    found = evaluate(widths, "start")
    if found is None:
        raise BudgetError("the starting widths cannot be quantized")
    current, current_result = found
    start_point = current                 # (meets reads it: the probes' reference)
    groups = width_groups(graph, current_result, prune)
    if not meets(current):
        raise BudgetError(f"the starting widths already miss the budget "
                          f"({_describe(current, points)} against float "
                          f"{'' if float_accuracy is None else f'{float_accuracy:.2f}'})")
    trace = [current]
    complete = True
    unranked = (-1.0, 0.0)                 # before any rank: tried first
    useless = (float("inf"), 0.0)          # missed the budget or saved nothing
    ranks: dict[str, tuple] = {}           # each move's rank when last evaluated
    while True:
        best = None
        # lazily: in the order of their last ranks; a move's rank (the objective's rise per
        # unit of cost saved) rarely falls as the design gets cheaper, so once the best
        # fresh rank beats every remaining last rank, the rest are not evaluated again
        # (all are when none is left that meets the budget)
        for label, members in sorted(groups, key=lambda g: ranks.get(g[0], unranked)):
            if best is not None and ranks.get(label, unranked) >= best[0]:
                break
            if counter[0] >= MAX_EVALUATIONS or counter[0] * evaluation_work >= TOTAL_WORK:
                complete = False
                break
            trial = moved(widths, members)
            if trial is None:
                ranks[label] = useless
                continue
            n, kind = members[0]
            got = evaluate(trial, f"{label} {trial[n][kind] * PRUNE_STEP:.1f}"
                           if kind == "prune_steps" else f"{label} {trial[n][kind]}")
            if got is None or not meets(got[0]) or got[0].cost >= current.cost:
                ranks[label] = useless
                continue
            p = got[0]
            rank = (max(p.objective - current.objective, 0.0) / (current.cost - p.cost),
                    -(current.cost - p.cost))
            ranks[label] = rank
            if best is None or rank < best[0]:
                best = (rank, trial, got)
        if best is None:
            break
        widths = best[1]
        current, current_result = best[2]
        trace.append(current)
        if progress:
            progress(current.move)
        if not complete:
            break
    evaluated = [v[0] for v in memo.values() if v is not None]
    # the cheapest design evaluated that meets the budget (the greedy path's end, or one
    # of its rejected candidates when that was cheaper)
    cheapest = min((v for v in memo.values() if v is not None and meets(v[0])),
                   key=lambda v: (v[0].cost, -v[0].accuracy, v[0].objective))
    if cheapest[0].cost < current.cost:
        current, current_result = cheapest
        widths = {n: dict(w) for n, w in current.widths.items()}
    front = tuple(sorted((p for p in evaluated
                          if not any(q.cost <= p.cost and q.accuracy >= p.accuracy
                                     and (q.cost < p.cost or q.accuracy > p.accuracy)
                                     for q in evaluated)),
                         key=lambda p: (p.cost, -p.accuracy)))
    return BudgetResult(current_result, replace(start, layers=bit_widths(widths)), current,
                        start_point, float_accuracy, tuple(trace), front, counter[0], complete,
                        pruned_of(current.widths))


def probe_samples(bound: Mapping[str, np.ndarray], y: np.ndarray, n: int = PROBES,
                  seed: int = 0) -> dict[str, np.ndarray] | None:
    """Up to `n` mixtures lam * a + (1 - lam) * b, lam uniform in [0.3, 0.7], of calibration
    samples a, b (every input alike) whose float outputs `y` have different top-1 classes;
    None when all have the same class. A fixed seed: the same data give the same probes."""
    rng = np.random.default_rng(seed)
    cls = _argmax(y)
    i, j = rng.integers(0, len(cls), (2, 4 * n))
    differ = cls[i] != cls[j]
    i, j = i[differ][:n], j[differ][:n]
    if len(i) == 0:
        return None
    lam = rng.uniform(0.3, 0.7, len(i))
    out = {}
    for name, v in bound.items():
        mix = lam.reshape((-1,) + (1,) * (v.ndim - 1))
        out[name] = mix * v[i] + (1 - mix) * v[j]
    return out


def _top1(y: np.ndarray, labels: np.ndarray) -> float:
    y = np.asarray(y).reshape(len(y), -1)
    return 100.0 * float(np.mean(y.argmax(axis=1) == labels))


def _argmax(y: np.ndarray) -> np.ndarray:
    return np.asarray(y).reshape(len(y), -1).argmax(axis=1)


def _describe(p: Point, points: float | None) -> str:
    return f"top-1 {p.accuracy:.2f} %" if points is not None else \
        f"output SQNR {p.accuracy:.1f} dB"
