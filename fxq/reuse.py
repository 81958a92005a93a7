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

import numpy as np

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


def closest_valid(n_in: int, n_out: int, reuse: int) -> int:
    """The resource strategy's reuse factor for a layer of this multiplication size."""
    return min(_valid(n_in, n_out), key=lambda r: (abs(r - reuse), r))


def built_reuse(q, node: Node, strategy: Strategy, reuse: int) -> int:
    """The reuse factor hls4ml builds a layer with when given `reuse`."""
    if node.op not in REUSABLE or strategy is not Strategy.RESOURCE:
        return reuse
    return closest_valid(*mult_size(q, node), reuse)


def dense_blocks(n_in: int, n_out: int, reuse: int) -> np.ndarray:
    """The block of each weight (in, out) of a Dense layer under the resource strategy at
    reuse factor R: hls4ml transposes the weights to (out, in) and multiplier b computes the
    products of the flat weights b * R .. b * R + R - 1, one per cycle, so block =
    (o * in + i) // R."""
    return (np.arange(n_out)[None, :] * n_in + np.arange(n_in)[:, None]) // reuse


def zero_blocks(w: np.ndarray, reuse: int) -> tuple[int, int]:
    """(blocks, blocks whose weights are all zero) of a Dense w at reuse factor R."""
    blocks = dense_blocks(*np.shape(w), reuse).reshape(-1)
    live = np.zeros(int(blocks.max()) + 1, dtype=bool)
    live[blocks[np.asarray(w).reshape(-1) != 0]] = True
    return live.size, int(np.count_nonzero(~live))


def unrolled(w: np.ndarray, strategy: Strategy, built: int) -> bool:
    """Whether fxq emits a Dense layer of weights w (in, out; rows in hls4ml's order) built
    at reuse factor `built` with hls4ml's ResourceUnrolled implementation: on the resource
    strategy, at R > 1, when a block of weights (the R products one multiplier computes) is
    all zero. The resource strategy keeps that multiplier (its weights are read from
    memory); the unrolled code writes each product with its constant weight, skips the zero
    ones and allocates only the multipliers left (hls4ml's `dense_resource_unrolled`)."""
    return strategy is Strategy.RESOURCE and built > 1 and zero_blocks(w, built)[1] > 0
