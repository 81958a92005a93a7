"""fxq.compress: the model-compression methods, post-training, before fixed point.

    compressed = fxq.compress(graph, calib, prune=0.7, share=16)
    compressed.graph            # a Graph as any other: fxq.compile it, save it as ONNX

The methods run as walks over the graph on the calibration data (fxq.compress.walk), each
layer compressed against the float model's output given what the layers before it, already
compressed, compute, and refit by least squares (fxq.compress.linear):

1. low rank (`rank` R, `svd_energy` E or `rank_params` F): Dense and (ungrouped) Conv
   layers as two; with `rank_params` for every layer, each layer's rank chosen from its
   sensitivity curve so the layers keep F of their weights (fxq.compress.ranks);
2. weight pruning (`prune` S): with one setting for the layers, each layer's sparsity is
   chosen from its sensitivity curve (the network's output error with that layer pruned
   to each of GRID) so the layers together reach S at the least summed error
   (`allocation="uniform"` prunes every layer to S);
3. weight sharing (`share` K, k-means) or a weight set (`weights` ternary|ttq|binary|pow2),
   after pruning on the same layer, the bias refit.

The result's parameters and float attributes are all float32 values (the ones no method
changed are rounded too), so `fxq.onnx_export.save_onnx` writes this function exactly. `Compressed.storage` gives parameters, nonzeros, MACs and Deep
Compression's storage per layer (fxq.compress.storage).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from fxq.compress import linear, ranks
from fxq.compress.budget import compress_within
from fxq.compress.error import one_layer_curves
from fxq.compress.config import (KEYS, CompressConfig, CompressError, Methods, factorable)
from fxq.compress.methods import (column_groups, is_layer, low_rank_visit, problem_of,
                                  prunes_weights, weight_visit, with_params)
from fxq.compress.storage import Storage, storage
from fxq.compress.structured import prune_channels
from fxq.compress.walk import Visit, lockstep
from fxq.data import bind_inputs
from fxq.ir import Graph
from fxq.onnx_export import as_float32
from fxq.passes import Change

GRID = (0.3, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95)   # the sensitivity curves' sparsities
ALLOCATIONS = ("sensitivity", "uniform")


@dataclass(frozen=True)
class Compressed:
    graph: Graph
    original: Graph
    config: CompressConfig
    changes: tuple[Change, ...]
    sparsity: dict[str, float]                 # each weight-pruned layer's target
    curves: dict[str, dict[float, float]]      # sensitivity: output error by sparsity
    before: Storage
    after: Storage
    quality: dict[str, Any] = field(default_factory=dict)   # labelled calibration data
    channels: dict[str, Any] = field(default_factory=dict)  # channel pruning, per family
    budget: dict[str, Any] = field(default_factory=dict)    # the --budget search, if any
    ranks: dict[str, int] = field(default_factory=dict)     # rank_params: each layer's rank
    rank_curves: dict[str, dict[int, float]] = field(default_factory=dict)  # output error

    def to_json(self) -> dict:
        return {"settings": self.config.to_json(),
                "changes": [{"layer": c.removed[0], "method": c.rewrite, "what": c.what}
                            for c in self.changes],
                "sparsity": self.sparsity,
                "sensitivity": {k: {f"{s:g}": e for s, e in v.items()}
                                for k, v in self.curves.items()},
                "before": self.before.to_json(), "after": self.after.to_json(),
                "quality": self.quality, "channels": self.channels, "budget": self.budget,
                "ranks": {"chosen": self.ranks,
                          "sensitivity": {k: {str(r): e for r, e in v.items()}
                                          for k, v in self.rank_curves.items()}}}


def sensitivity_curves(graph: Graph, calib: Any, layers: dict[str, Methods], steps: int) -> \
        dict[str, dict[float, float]]:
    """Per layer (name -> its methods: saliency and structure), the network's output error
    (relative to the output's variance) with that layer alone pruned to each sparsity of
    GRID and refit, on the float inputs."""

    def prepare(v: Visit):
        problem = problem_of(v)
        return (linear.Moments.of(problem), problem.weights, problem.to_layer,
                column_groups(v.node, problem, layers[v.node.name]))

    def trials(visit: Visit, prepared):
        m, w0, to_layer, groups = prepared
        for s in GRID:
            w, b = linear.prune(m, w0, s, layers[visit.node.name].prune_by, steps,
                                groups=groups)
            yield s, with_params(visit, to_layer(w), b.reshape(-1), None, "")

    return one_layer_curves(graph, calib, layers, prepare, trials)


def allocate(curves: dict[str, dict[float, float]], sizes: dict[str, int],
             target: float) -> dict[str, float]:
    """Per-layer sparsities whose weighted mean is `target`, by least summed output error:
    greedily the step (layer, next sparsity of its curve) of least error per weight pruned,
    the last step cut to land on the target exactly."""
    level = {name: 0.0 for name in curves}
    total = sum(sizes.values())
    need = target * total
    pruned = 0.0
    while pruned < need - 1e-9:
        best = None
        for name, curve in curves.items():
            points = [0.0] + sorted(curve)
            errors = {0.0: 0.0, **curve}
            here = level[name]
            for nxt in (p for p in points if p > here):
                gain = (nxt - here) * sizes[name]
                cost = max(errors[nxt] - errors[here], 0.0) / gain
                if best is None or cost < best[0]:
                    best = (cost, name, nxt)
                break
        if best is None:
            break                                         # every layer at its last point
        _, name, nxt = best
        step = (nxt - level[name]) * sizes[name]
        if pruned + step > need:
            nxt = level[name] + (need - pruned) / sizes[name]
            step = need - pruned
        level[name] = nxt
        pruned += step
    return {k: float(v) for k, v in level.items() if v > 0}


def layer_ranks(graph: Graph, calib: Any, config: CompressConfig, layers: list[str],
                say: Callable[[str], None]) -> tuple[dict[str, int], dict[str, dict[int, float]]]:
    """The ranks of the layers whose setting is `rank_params` (a layer's own fraction of its
    weights, or the default's shared among the layers by their sensitivity curves), and
    those curves."""
    chosen: dict[str, int] = {}
    curves: dict[str, dict[int, float]] = {}
    shared: list[str] = []
    for name in layers:
        node = graph.node(name)
        methods = config.for_layer(name)
        if methods.rank_params is None:
            continue
        if "rank_params" in config.layers.get(name, {}):
            if factorable(node):
                chosen[name] = ranks.rank_for_fraction(methods.rank_params,
                                                       *ranks.layer_shape(graph, node))
        else:
            shared.append(name)
    if shared:
        say(f"compress: sensitivity of {len(shared)} layers to their rank")
        curves = ranks.rank_curves(graph, calib, [n for n in shared
                                                  if factorable(graph.node(n))])
        shapes = {n: ranks.layer_shape(graph, graph.node(n)) for n in shared}
        chosen.update(ranks.allocate_ranks(curves, shapes, config.default.rank_params))
    return chosen, curves


def compress(graph: Graph, calib: Any, config: CompressConfig | None = None, *,
             labels: np.ndarray | None = None, task: str | None = None,
             allocation: str = "sensitivity", progress: Callable[[str], None] | None = None,
             budget: float | None = None, **settings: Any) -> Compressed:
    """Compress `graph` on `calib` (see the module's note). `config` or keyword settings
    (prune, prune_by, prune_structure, rank, svd_energy, share, weights) for every layer;
    `labels` add the task's figure, float and compressed, on the calibration data; with
    `budget` PT (labels needed) the amount pruned is searched instead: the most whose figure
    stays within PT points of float (fxq.compress.budget)."""
    if config is None:
        unknown = sorted(set(settings) - set(KEYS))
        if unknown:
            raise CompressError(f"unknown compression setting {unknown[0]!r} (expected "
                                f"{', '.join(KEYS)})")
        config = CompressConfig.of(**settings)
    elif settings:
        raise CompressError("give a CompressConfig or keyword settings, not both")
    if allocation not in ALLOCATIONS:
        raise CompressError(f"allocation {allocation!r}: expected one of {ALLOCATIONS}")
    config.check(graph)
    if budget is not None:
        return compress_within(
            lambda c: compress(graph, calib, c, labels=labels, task=task,
                               allocation=allocation), budget, config, labels, progress)
    say = progress or (lambda _: None)
    original = graph
    changes: list[Change] = []

    def record(method: str, made) -> None:
        changes.extend(Change(method, (layer,), (), what) for layer, what in made)

    layers = [n.name for n in graph.nodes if is_layer(n)]
    channels: dict[str, Any] = {}
    chosen: dict[str, int] = {}
    rank_curves: dict[str, dict[int, float]] = {}
    if any(config.for_layer(n).channel_pruning for n in layers):
        graph, made, channels = prune_channels(graph, calib, config, say)
        record("channels", made)
        layers = [n.name for n in graph.nodes if is_layer(n)]
    if any(config.for_layer(n).low_rank for n in layers):
        chosen, rank_curves = layer_ranks(graph, calib, config, layers, say)
        say("compress: low-rank factorization")
        graph, made = lockstep(graph, original, calib, low_rank_visit(config, chosen))
        record("low_rank", made)
    layers = [n.name for n in graph.nodes if is_layer(n)]
    sparsity: dict[str, float] = {}
    curves: dict[str, dict[float, float]] = {}
    pruned = [n for n in layers if prunes_weights(graph.node(n), config.for_layer(n))]
    fixed = [n for n in pruned if "prune" in config.layers.get(n, {})]
    free = [n for n in pruned if n not in fixed]
    sparsity.update({n: config.for_layer(n).prune for n in fixed})
    if free and allocation == "sensitivity" and len(free) > 1:
        say(f"compress: sensitivity of {len(free)} layers to pruning")
        curves = sensitivity_curves(graph, calib, {n: config.for_layer(n) for n in free},
                                    linear.PRUNE_STEPS)
        sizes = {n: graph.params[dict(graph.param_inputs(graph.node(n)))["weight"]].size
                 for n in free}
        sparsity.update(allocate(curves, sizes, config.default.prune))
    else:
        sparsity.update({n: config.for_layer(n).prune for n in free})
    if sparsity or any(config.for_layer(n).share is not None or
                       config.for_layer(n).weights is not None for n in layers):
        say("compress: pruning, sharing, weight sets")
        graph, made = lockstep(graph, original, calib, weight_visit(config, sparsity))
        record("weights", made)
    graph = as_float32(graph)          # what the model file holds, so the two are one function
    quality = {}
    if labels is not None:
        from fxq.task import infer_task
        from fxq.task import quality as task_quality

        x = next(iter(bind_inputs(original, calib).values()))
        y_float, y_comp = original.run(calib), graph.run(calib)
        first = (lambda y: next(iter(y.values())) if isinstance(y, dict) else y)
        kind = task or infer_task(labels, x, first(y_float))
        q = task_quality(kind, x, labels, first(y_float), first(y_comp))
        quality = {"task": q["task"], "samples": q["samples"], "float": q["float"],
                   "compressed": q["fixed"]}
    return Compressed(graph, original, config, tuple(changes), sparsity, curves,
                      storage(original), storage(graph), quality, channels,
                      ranks=chosen, rank_curves=rank_curves)


__all__ = ["CompressConfig", "CompressError", "Compressed", "Methods", "compress"]
