"""Per-layer ranks for a parameter target (`rank_params` F as the setting of every layer).

A uniform rule (one rank, or one fraction of each layer's response energy) spends the same
on every layer, though the network's output is far more sensitive to some layers' rank than
to others'. As for pruning's sparsities (fxq.compress.allocate), each factorable layer gets
a sensitivity curve: the network's output error on the calibration data with that layer
alone factored at each candidate rank (reduced-rank regression on the float inputs,
fxq.compress.linear.low_rank); then the ranks are lowered greedily, each step the
(layer, lower rank) of least error rise per parameter saved, until the layers' weights
together hold at most F of what they held, and given back (the most error removed first)
where a step overshot and a higher rank still fits. The lockstep pass then factors each
layer at its rank against what the layers before it, already factored, compute.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from fxq.compress import linear
from fxq.compress.error import one_layer_curves
from fxq.compress.walk import Visit
from fxq.ir import Graph, Node, Op

RANK_POINTS = 24         # candidate ranks measured per layer (all of them when fewer)


def layer_shape(graph: Graph, node: Node) -> tuple[int, int]:
    """(outputs, inputs per output) of a layer's weight: (O, F)."""
    w = graph.params[dict(graph.param_inputs(node))["weight"]]
    if node.op is Op.DENSE:
        return int(w.shape[1]), int(w.shape[0])
    return int(w.shape[0]), int(np.prod(w.shape[1:]))


def factored_size(rank: int, outputs: int, inputs: int) -> int:
    """Weights of the two factors at `rank`: (F -> r) then (r -> O)."""
    return rank * (outputs + inputs)


def saving_ranks(outputs: int, inputs: int) -> list[int]:
    """The ranks whose two factors hold fewer weights than the layer, at most RANK_POINTS
    of them spread evenly from 1 to the largest (descending)."""
    top = (outputs * inputs - 1) // (outputs + inputs)
    top = min(top, min(outputs, inputs) - 1)
    if top < 1:
        return []
    if top <= RANK_POINTS:
        return list(range(top, 0, -1))
    picks = np.unique(np.round(np.linspace(1, top, RANK_POINTS)).astype(int))
    return [int(r) for r in picks[::-1]]


def rank_for_fraction(fraction: float, outputs: int, inputs: int) -> int:
    """The largest rank whose factors hold at most `fraction` of the layer's weights (>= 1)."""
    return max(1, int(fraction * outputs * inputs) // (outputs + inputs))


def rank_curves(graph: Graph, calib: Any, layers: list[str]) -> dict[str, dict[int, float]]:
    """Per layer, the network's output error (relative to the output's variance) with that
    layer alone factored at each of its saving ranks, on the float inputs."""
    from fxq.compress.methods import factored, problem_of

    def trials(visit: Visit, m: linear.Moments):
        for rank in saving_ranks(*layer_shape(graph, visit.node)):
            yield rank, factored(visit, linear.low_rank(m, rank), rank)

    return one_layer_curves(graph, calib, layers,
                            lambda v: linear.Moments.of(problem_of(v)), trials)


def allocate_ranks(curves: Mapping[str, Mapping[int, float]],
                   shapes: Mapping[str, tuple[int, int]], keep: float) -> dict[str, int]:
    """Ranks (layer -> rank; layers left whole are absent) whose weights together are at
    most `keep` of the layers' (`shapes`: every layer counted, factorable or not), chosen
    greedily: each step the layer and lower rank of least error rise per weight saved
    (looking past a bump of a curve to any lower rank), until the target is met or every
    layer is at rank 1."""
    full = {n: o * f for n, (o, f) in shapes.items()}
    size = dict(full)
    error = {n: 0.0 for n in shapes}
    rank: dict[str, int] = {}
    need = sum(full.values()) * keep
    while sum(size.values()) > need:
        best = None
        for name, curve in curves.items():
            o, f = shapes[name]
            for r, e in curve.items():
                if name in rank and r >= rank[name]:
                    continue
                saved = size[name] - factored_size(r, o, f)
                if saved <= 0:
                    continue
                cost = max(e - error[name], 0.0) / saved
                if best is None or cost < best[0] or (cost == best[0] and saved > best[3]):
                    best = (cost, name, r, saved)
        if best is None:
            break
        _, name, r, _ = best
        rank[name] = r
        size[name] = factored_size(r, *shapes[name])
        error[name] = curves[name][r]
    # A step may overshoot the target: give ranks back while they fit, the most error
    # removed first.
    while True:
        slack = need - sum(size.values())
        best = None
        for name in rank:
            o, f = shapes[name]
            for r, e in list(curves[name].items()) + [(None, 0.0)]:
                if r is not None and r <= rank[name]:
                    continue
                grown = full[name] if r is None else factored_size(r, o, f)
                gain = error[name] - e
                if grown - size[name] <= slack and gain > 0 and \
                        (best is None or gain > best[0]):
                    best = (gain, name, r, grown)
        if best is None:
            return rank
        _, name, r, grown = best
        if r is None:
            del rank[name]
            error[name] = 0.0
        else:
            rank[name] = r
            error[name] = curves[name][r]
        size[name] = grown
