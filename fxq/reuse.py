"""Reuse factors as hls4ml implements them, per Dense and Conv layer.

In the resource strategy hls4ml replaces a reuse factor its templates cannot implement by
the closest valid one (`get_valid_reuse_factors` of the layer's multiplication size, the
closer smaller one on a tie); in the latency strategy it takes any and limits the
multipliers to ceil(n_in * n_out / R). The estimator and the fit use the factor hls4ml will
build.
"""
from __future__ import annotations

from functools import lru_cache
from math import prod

from fxq.ir import Node, Op
from fxq.target import Strategy

REUSABLE = (Op.DENSE, Op.CONV)


def mult_size(q, node: Node) -> tuple[int, int]:
    """(n_in, n_out) of a layer's multiplications as hls4ml counts them (Dense: inputs x
    outputs; Conv: channels x kernel x filters, depthwise included)."""
    w = q.graph.params[dict(q.graph.param_inputs(node))["weight"]]
    if node.op is Op.DENSE:
        return int(w.shape[0]), int(w.shape[1])
    channels = q.graph.shape(q.graph.activation_inputs(node)[0])[0]
    return int(channels * prod(w.shape[2:])), int(w.shape[0])


@lru_cache(maxsize=4096)
def _valid(n_in: int, n_out: int) -> tuple[int, ...]:
    from hls4ml.backends import get_backend

    return tuple(get_backend("Vitis").get_valid_reuse_factors(n_in, n_out))


def reuse_choices(q, node: Node, strategy: Strategy) -> tuple[int, ...]:
    """The reuse factors hls4ml implements as given for this layer, ascending."""
    n_in, n_out = mult_size(q, node)
    if strategy is Strategy.RESOURCE:
        return _valid(n_in, n_out)
    return tuple(range(1, n_in * n_out + 1))


def built_reuse(q, node: Node, strategy: Strategy, reuse: int) -> int:
    """The reuse factor hls4ml builds a layer with when given `reuse`."""
    if node.op not in REUSABLE or strategy is not Strategy.RESOURCE:
        return reuse
    return min(reuse_choices(q, node, strategy), key=lambda r: (abs(r - reuse), r))
