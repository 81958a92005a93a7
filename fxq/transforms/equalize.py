"""Cross-layer equalization (Nagel et al., ICCV 2019, "Data-free quantization"), with
power-of-two scales.

fxq gives each layer's weights one fixed-point format. When the output channels of a layer
have very different weight ranges (common after folding BatchNorm, worst in depthwise
convolutions), the channels with small weights keep few significant bits. For a Dense/Conv
P whose channel i reaches a Dense/Conv C only through per-channel, positively homogeneous
ops (ReLU, LeakyReLU, PReLU, max/average pooling, zero padding, and a Flatten/Reshape that
leaves the channels alone), f(x / s) = f(x) / s for s > 0, so dividing P's output channel i
(its weights and bias) by s_i and multiplying C's input channel i by s_i keeps the function.
With s_i = 2^round(log2(sqrt(r1_i / r2_i))) (r1_i the range of P's channel-i weights, r2_i of
C's), both become close to their geometric mean, and since the scales are powers of two the
float model's outputs stay bit for bit what they were (every product and sum is scaled
exactly; a channel's scale is limited so that every nonzero weight and bias stays a normal
number of its dtype).

`fxq compile` equalizes by default (--equalize auto) the pairs whose producer's channel
ranges spread more than AUTO_SPREAD; --equalize on every pair, off none. Measured here:
with the channels of every pair spread by 2^-3..2^3 (the float function unchanged), 8-bit
top-1 of jet fell 88.8 -> 63.9, of DS-CNN 82.2 -> 10.4, and equalizing restored 88.8 and
83.3; on the example models as trained (spreads of 1.3-7x) equalizing every pair moved
8-bit top-1 by 0..+0.8 but cost MobileNetV1 9 points at 6 bits (its feature maps'
channels are rescaled too), hence the threshold.

Pairs are equalized in topological order, sweep after sweep (a layer's scaling changes its
neighbours' ranges), until a sweep changes nothing or MAX_SWEEPS have run. The float model
keeps its function; the report's float figures are the equalized model's, which are the
same. Layers whose weights carry an encoding (weight sharing) or are shared by two nodes are
left alone.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fxq.ir import Graph, Node, Op
from fxq.ops.prelu import PRELU
from fxq.passes.base import Change, sole_consumer

MAX_SWEEPS = 20
AUTO_SPREAD = 16.0      # fxq compile's default: equalize a pair when its producer's channel
                        # ranges spread more than 16x (4 bits of a per-layer format lost on
                        # its smallest channel); trained layers spread 1.3-7x in the examples
WEIGHTED = (Op.DENSE, Op.CONV)


@dataclass(frozen=True)
class Pair:
    """P's output channels reach C's input channels through `through` (ops that commute
    with a positive per-channel scale)."""

    producer: Node
    through: tuple[Node, ...]
    consumer: Node


def _commutes(graph: Graph, node: Node, channel_axis: int) -> int | None:
    """The channel axis (per sample) after `node` when a positive scale per channel on its
    input commutes with it (f(x / s) = f(x) / s), else None."""
    op = node.op
    if op in (Op.RELU, Op.LEAKY_RELU, PRELU, Op.MAX_POOL, Op.AVG_POOL, Op.GLOBAL_AVG_POOL,
              Op.GLOBAL_MAX_POOL):
        return channel_axis
    if op is Op.CLIP and node.attrs["lo"] == 0 and node.attrs["hi"] == np.inf:
        return channel_axis
    if op is Op.PAD:
        pads, nd = node.attrs["pads"], len(node.attrs["pads"]) // 2
        if node.attrs["value"] == 0 and pads[channel_axis] == pads[channel_axis + nd] == 0:
            return channel_axis                      # zeros stay zeros; channels unmoved
        return None
    if op in (Op.FLATTEN, Op.RESHAPE):
        before = graph.tensors[node.inputs[0]].shape
        after = graph.tensors[node.output].shape
        channels = before[channel_axis]
        # only a reshape that keeps nothing but the channels: (C, 1, 1) -> (C,)
        if int(np.prod(before)) == channels and after[-1] == channels:
            return len(after) - 1
    return None


def pairs(graph: Graph) -> list[Pair]:
    """Every (P, ..., C) that equalize can scale, in topological order of P."""
    uses: dict[str, int] = {}
    for node in graph.nodes:
        for _, name in graph.param_inputs(node):
            uses[name] = uses.get(name, 0) + 1
    free = lambda n: all(uses[name] == 1 and name not in graph.encodings      # noqa: E731
                         for _, name in graph.param_inputs(n))
    found = []
    for p in graph.nodes:
        if p.op not in WEIGHTED or not free(p):
            continue
        shape = graph.tensors[p.output].shape
        axis = 0 if p.op is Op.CONV else len(shape) - 1
        tensor, through = p.output, []
        while axis is not None:
            c = sole_consumer(graph, tensor)
            if c is None:
                break
            if c.op in WEIGHTED:
                shape = graph.tensors[tensor].shape
                fits = (axis == 0 and len(shape) >= 2) if c.op is Op.CONV else \
                    axis == len(shape) - 1
                if fits and free(c) and graph.activation_inputs(c) == [tensor]:
                    found.append(Pair(p, tuple(through), c))
                break
            axis = _commutes(graph, c, axis)
            if len(graph.activation_inputs(c)) != 1:
                break
            through.append(c)
            tensor = c.output
    return found


def _output_rows(node: Node, w: np.ndarray) -> np.ndarray:
    """P's weights as (output channel, ...)."""
    return w.T if node.op is Op.DENSE else w


def _input_groups(node: Node, w: np.ndarray, channels: int) -> list[tuple]:
    """For each input channel of C, the index of its weights in w."""
    if node.op is Op.DENSE:
        return [(i,) for i in range(channels)]
    groups = node.attrs["groups"]
    per_group, out_per_group = channels // groups, w.shape[0] // groups
    return [(slice(i // per_group * out_per_group, (i // per_group + 1) * out_per_group),
             i % per_group) for i in range(channels)]


def _channels(graph: Graph, pair: Pair, params: dict) -> tuple[np.ndarray, np.ndarray | None,
                                                                 np.ndarray]:
    """With the values in `params` (param name -> array): P's weights as (channel, ...),
    P's bias (or None), and C's weights of each input channel as (channel, ...)."""
    p_roles = dict(graph.param_inputs(pair.producer))
    w1 = params[p_roles["weight"]]
    w2 = params[dict(graph.param_inputs(pair.consumer))["weight"]]
    rows = _output_rows(pair.producer, w1)
    rows = rows.reshape(rows.shape[0], -1)
    cols = np.stack([w2[i].reshape(-1) for i in
                     _input_groups(pair.consumer, w2, rows.shape[0])])
    return rows, params[p_roles["bias"]] if "bias" in p_roles else None, cols


def _ranges(graph: Graph, pair: Pair, params: dict) -> tuple[np.ndarray, np.ndarray]:
    """(r1, r2): per channel, the largest |weight| of P's output channel and of C's input
    channel, with the weights in `params` (param name -> array)."""
    rows, _, cols = _channels(graph, pair, params)
    return np.abs(rows).max(axis=1, initial=0.0), np.abs(cols).max(axis=1, initial=0.0)


def scale_channels(graph: Graph, pair: Pair, exponents: np.ndarray, params: dict) -> None:
    """Divide P's output channel i (weights, bias) by 2^exponents[i] and multiply C's input
    channel i by it, in `params`: the function stays (bit for bit in float)."""
    p_roles = dict(graph.param_inputs(pair.producer))
    c_roles = dict(graph.param_inputs(pair.consumer))
    s = np.ldexp(np.ones(len(exponents)), np.asarray(exponents, dtype=np.int64))
    w1 = params[p_roles["weight"]]
    shape = (1, -1) if pair.producer.op is Op.DENSE else (-1,) + (1,) * (w1.ndim - 1)
    params[p_roles["weight"]] = w1 / s.astype(w1.dtype).reshape(shape)
    if "bias" in p_roles:
        b = params[p_roles["bias"]]
        params[p_roles["bias"]] = b / s.astype(b.dtype)
    w2 = params[c_roles["weight"]].copy()
    for i, where in enumerate(_input_groups(pair.consumer, w2, len(s))):
        if exponents[i]:
            w2[where] *= w2.dtype.type(s[i])
    params[c_roles["weight"]] = w2


def _equalize_pair(graph: Graph, pair: Pair, params: dict) -> int:
    """Equalize one pair in `params`; the number of channels rescaled."""
    r1, r2 = _ranges(graph, pair, params)
    with np.errstate(divide="ignore", invalid="ignore"):
        exponent = np.where((r1 > 0) & (r2 > 0), np.round(0.5 * np.log2(r1 / r2)), 0.0)
    k = np.clip(exponent, *_exact_exponents(graph, pair, params)).astype(np.int64)
    if np.any(k):
        scale_channels(graph, pair, k, params)
    return int(np.count_nonzero(k))


def _exact_exponents(graph: Graph, pair: Pair, params: dict) -> tuple[np.ndarray, np.ndarray]:
    """Per channel, the least and greatest k for which dividing P's channel (weights, bias)
    by 2^k and multiplying C's by it keeps every nonzero value a normal number of its dtype
    (so the scaling stays exact)."""
    def extremes(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        a = np.abs(rows.astype(np.float64))
        big = a.max(axis=1, initial=0.0)
        small = np.where(a > 0, a, np.inf).min(axis=1, initial=np.inf)
        return small, big

    rows, bias, cols = _channels(graph, pair, params)
    info1, info2 = np.finfo(rows.dtype), np.finfo(cols.dtype)
    if bias is not None:
        rows = np.concatenate([rows, bias.reshape(-1, 1)], axis=1)
    p_small, p_big = extremes(rows)
    c_small, c_big = extremes(cols)
    with np.errstate(divide="ignore", over="ignore"):     # (no value: no bound)
        hi = np.minimum(np.floor(np.log2(p_small / float(info1.tiny))),
                        np.floor(np.log2(float(info2.max) / np.maximum(c_big, 1e-300))))
        lo = np.maximum(np.ceil(np.log2(np.maximum(p_big, 1e-300) / float(info1.max))),
                        np.ceil(np.log2(float(info2.tiny) / c_small)))
    return np.minimum(lo, 0), np.maximum(hi, 0)


def spread(graph: Graph, pair: Pair) -> float:
    """How much P's output channels' weight ranges differ: largest over smallest nonzero."""
    r1 = _ranges(graph, pair, dict(graph.params))[0]
    r1 = r1[r1 > 0]
    return float(r1.max() / r1.min()) if len(r1) else 1.0


def equalize(graph: Graph, min_spread: float = 0.0) -> tuple[Graph, list[Change]]:
    """The graph with the channels of every equalizable pair whose producer's channel
    ranges spread more than `min_spread` (see spread) scaled (see the module's docstring),
    and one Change per pair that was scaled (how many channels, in how many sweeps). The
    same graph object when nothing is scaled."""
    found = [pair for pair in pairs(graph) if spread(graph, pair) > min_spread]
    params = dict(graph.params)
    scaled: dict[int, int] = {}
    sweeps = 0
    for sweeps in range(1, MAX_SWEEPS + 1):
        moved = 0
        for j, pair in enumerate(found):
            n = _equalize_pair(graph, pair, params)
            if n:
                scaled[j] = scaled.get(j, 0) + n
                moved += n
        if not moved:
            break
    if not scaled:
        return graph, []
    new = graph.rebuild(graph.nodes, params={k: v for k, v in params.items()
                                              if v is not graph.params[k]})
    changes = [Change("equalize", (), (), f"{found[j].producer.name} -> "
                      f"{found[j].consumer.name}: {n} channel scalings by powers of two "
                      f"(over {sweeps} sweeps)")
               for j, n in sorted(scaled.items())]
    return new, changes


__all__ = ["AUTO_SPREAD", "MAX_SWEEPS", "Pair", "equalize", "pairs", "scale_channels", "spread"]
