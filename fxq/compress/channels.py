"""Channel pruning: whole output channels of Dense and Conv layers removed, with the inputs
of every layer that reads them, post-training (He et al., ICCV 2017; Luo et al., ThiNet,
ICCV 2017): the shapes shrink, so the MACs and multipliers of both sides go.

A *family* is a set of channels that must go together. It starts at a Dense or (ungrouped)
Conv layer's output channels and follows them through every op that keeps channels apart:
elementwise activations, BatchNorm, PReLU, pooling, zero padding off the channel axis,
resizing, depthwise convolutions (one filter per channel: removed with it), per-channel
parameters of Add/Mul, Flatten (a channel becomes its block of features), Concat along the
channel axis (its channels at their offset), and Add/Mul of two tensors, which joins the
families of both sides (channel c of a residual sum is removed from the layers of both
branches at once). It ends at the Dense and Conv layers that read it (their input columns
go). A family is *pinned* (not pruned) when it reaches a graph output, an op that mixes
channels in another way (softmax over channels, transpose, a grouped convolution), a
parameter that other nodes share, or a sum with a tensor no family owns.

How many channels each family loses comes from fxq.compress (sensitivity curves, then the
least output error per MAC saved); which ones, from the layers reading them: channels are
removed one at a time, each time the one whose loss the readers' least-squares refit
compensates best (the group form of Optimal Brain Surgeon on each reader's inputs: the
output error rises by tr(W_G (H^-1)_GG^-1 W_G^T), relative to the reader's output energy),
the readers' weights and inverse Gram matrices updated after each removal.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fxq.compress.linear import Moments, RIDGE
from fxq.ir import Graph, Node, Op, Tensor
from fxq.ops.elu import ELU, SELU
from fxq.ops.hard_sigmoid import HARD_SIGMOID
from fxq.ops.hard_swish import HARD_SWISH
from fxq.ops.prelu import PRELU
from fxq.ops.resize import RESIZE

# ops computing each element from the same element of their input (any axis)
ELEMENTWISE = (Op.RELU, Op.LEAKY_RELU, Op.CLIP, Op.SIGMOID, Op.TANH, Op.IDENTITY,
               ELU, SELU, HARD_SIGMOID, HARD_SWISH, PRELU)
# ops working per channel on axis 0 (the Conv layout's channel axis)
SPATIAL = (Op.BATCH_NORM, Op.MAX_POOL, Op.AVG_POOL, Op.GLOBAL_AVG_POOL, Op.GLOBAL_MAX_POOL,
           RESIZE, Op.PAD)
BINARY = (Op.ADD, Op.SUB, Op.MUL)


@dataclass
class Reach:
    """Where a family's channels are in one tensor: along per-sample `axis`, unit u at the
    indices idx[u] (a Flatten makes a channel a block of features)."""

    axis: int
    idx: np.ndarray                              # (units, span)


@dataclass
class Family:
    producers: list[str]                         # layers whose output channels these are
    units: int
    reach: dict[str, Reach] = field(default_factory=dict)
    readers: list[tuple[str, str]] = field(default_factory=list)   # (layer, tensor read)
    carriers: list[str] = field(default_factory=list)   # per-channel nodes sliced with it
    pinned: str | None = None

    @property
    def name(self) -> str:
        return self.producers[0]


def is_root(graph: Graph, node: Node) -> bool:
    return node.op is Op.DENSE or (node.op is Op.CONV and node.attrs["groups"] == 1)


def _depthwise(graph: Graph, node: Node) -> bool:
    if node.op is not Op.CONV:
        return False
    c = graph.shape(graph.activation_inputs(node)[0])[0]
    return node.attrs["groups"] == c == graph.shape(node.output)[0]


def _channel_axis(graph: Graph, node: Node) -> int:
    return len(graph.shape(node.output)) - 1 if node.op is Op.DENSE else 0


def _flattened(shape: tuple[int, ...], r: Reach) -> np.ndarray:
    """A Flatten's indices of each unit's elements."""
    flat = np.arange(int(np.prod(shape, dtype=np.int64))).reshape(shape)
    picked = np.take(flat, r.idx.reshape(-1), axis=r.axis)     # the units' slices, in order
    picked = np.moveaxis(picked, r.axis, 0).reshape(r.idx.shape + (-1,))
    return picked.reshape(r.idx.shape[0], -1)


def _follow(graph: Graph, root: Node) -> Family:
    """The channels of `root` followed forward (not yet joined with other families)."""
    c = graph.shape(root.output)[_channel_axis(graph, root)]
    fam = Family([root.name], c)
    fam.reach[root.output] = Reach(_channel_axis(graph, root), np.arange(c)[:, None])
    todo = [root.output]
    outputs = set(graph.outputs)

    def pin(why: str) -> None:
        if fam.pinned is None:
            fam.pinned = why

    def arrive(tensor: str, r: Reach) -> None:
        old = fam.reach.get(tensor)
        if old is None:
            fam.reach[tensor] = r
            todo.append(tensor)
        elif old.axis != r.axis or not np.array_equal(old.idx, r.idx):
            pin(f"its channels reach {tensor!r} twice")

    while todo:
        t = todo.pop()
        r = fam.reach[t]
        if t in outputs:
            pin(f"graph output {t!r}")
        rank = len(graph.shape(t))
        for node in graph.consumers(t):
            acts = graph.activation_inputs(node)
            op = node.op
            if (op is Op.DENSE and acts[0] == t and r.axis == rank - 1) or \
                    (op is Op.CONV and node.attrs["groups"] == 1 and acts[0] == t and r.axis == 0):
                fam.readers.append((node.name, t))
            elif op is Op.CONV and _depthwise(graph, node) and r.axis == 0:
                fam.carriers.append(node.name)
                arrive(node.output, r)
            elif op in ELEMENTWISE or (op in SPATIAL and r.axis == 0 and rank >= 2) or \
                    (op is Op.BATCH_NORM and r.axis == 0):
                if op is Op.PAD:
                    pads, nd = node.attrs["pads"], len(node.attrs["pads"]) // 2
                    if pads[r.axis] or pads[r.axis + nd]:
                        pin(f"{node.name} pads the channel axis")
                        continue
                if graph.param_inputs(node):
                    fam.carriers.append(node.name)
                arrive(node.output, r)
            elif op in BINARY:
                if graph.param_inputs(node):
                    fam.carriers.append(node.name)
                if graph.shape(node.output) != graph.shape(t):
                    pin(f"{node.name} broadcasts {t!r}")
                    continue
                arrive(node.output, r)
            elif op is Op.CONCAT:
                axis = node.attrs["axis"] - 1
                if axis != r.axis:
                    pin(f"{node.name} concatenates along another axis")
                    continue
                if node.inputs.count(t) > 1 or any(n in graph.params for n in node.inputs):
                    pin(f"{node.name} concatenates {t!r} twice or with a constant")
                    continue
                offset = 0
                for name in node.inputs:
                    if name == t:
                        break
                    offset += graph.shape(name)[axis]
                arrive(node.output, Reach(r.axis, r.idx + offset))
            elif op in (Op.FLATTEN, Op.RESHAPE) and len(graph.shape(node.output)) == 1:
                arrive(node.output, Reach(0, _flattened(graph.shape(t), r)))
            else:
                pin(f"{node.name} ({op.name}) mixes its channels")
    return fam


def families(graph: Graph) -> list[Family]:
    """Every family of the graph (see the module's note), pinned ones included, in the
    order of their first producer."""
    uses: dict[str, int] = {}
    for node in graph.nodes:
        for _, name in graph.param_inputs(node):
            uses[name] = uses.get(name, 0) + 1
    found = [_follow(graph, n) for n in graph.nodes if is_root(graph, n)]
    # join the families that meet in an Add/Mul (the same channels of both operands)
    parent = list(range(len(found)))

    def top(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: dict[str, list[int]] = {}
    for i, fam in enumerate(found):
        for t in fam.reach:
            owner.setdefault(t, []).append(i)
    for node in graph.nodes:
        acts = graph.activation_inputs(node)
        if node.op not in BINARY or len(acts) < 2:
            continue
        for t in acts:
            for i in owner.get(t, []):
                r = found[i].reach[t]
                for other in (a for a in acts if a != t):
                    match = [j for j in owner.get(other, [])
                             if found[j].reach[other].axis == r.axis
                             and np.array_equal(found[j].reach[other].idx, r.idx)]
                    if not match:
                        found[i].pinned = found[i].pinned or \
                            f"{node.name} adds channels no family owns"
                    for j in match:
                        parent[top(j)] = top(i)
    joined: dict[int, Family] = {}
    for i, fam in enumerate(found):
        k = top(i)
        if k not in joined:
            joined[k] = Family([], fam.units)
        j = joined[k]
        j.producers += fam.producers
        for t, r in fam.reach.items():
            if t in j.reach and (j.reach[t].axis != r.axis or
                                 not np.array_equal(j.reach[t].idx, r.idx)):
                j.pinned = j.pinned or f"its channels reach {t!r} twice"
            j.reach.setdefault(t, r)
        j.readers += [x for x in fam.readers if x not in j.readers]
        j.carriers += [x for x in fam.carriers if x not in j.carriers]
        if fam.units != j.units:
            j.pinned = j.pinned or "its layers have different channel counts"
        j.pinned = j.pinned or fam.pinned
    out = list(joined.values())
    for fam in out:
        for name in fam.producers + [r for r, _ in fam.readers] + fam.carriers:
            for _, p in graph.param_inputs(graph.node(name)):
                if uses[p] > 1 or p in graph.encodings:
                    fam.pinned = fam.pinned or f"{name}'s parameter {p!r} is shared or encoded"
        if not fam.readers and fam.pinned is None:
            fam.pinned = "no layer reads its channels"
    # a tensor reached along different axes by two families cannot be cut
    axes: dict[str, set[int]] = {}
    for fam in out:
        for t, r in fam.reach.items():
            axes.setdefault(t, set()).add(r.axis)
    for fam in out:
        for t in fam.reach:
            if len(axes[t]) > 1:
                fam.pinned = fam.pinned or f"{t!r} is cut along two axes"
    return out


# -- which channels: the readers' least-squares view ---------------------------------------

def reader_features(graph: Graph, reader: str, tensor: str, r: Reach) -> np.ndarray:
    """Per unit, the reader's feature indices (rows of patches) of the unit's elements."""
    node = graph.node(reader)
    if node.op is Op.DENSE:
        return r.idx
    k = int(np.prod(graph.params[dict(graph.param_inputs(node))["weight"]].shape[2:],
                    dtype=np.int64))
    return (r.idx[:, :, None] * k + np.arange(k)).reshape(r.idx.shape[0], -1)


class _Reader:
    """One reader's least-squares state during the greedy removal: its LS weights (O, F),
    the inverse of its (ridged) Gram matrix, and its output energy."""

    def __init__(self, m: Moments, energy: float):
        a = m.gram[0]
        f = a.shape[0]
        a = a + RIDGE * (np.trace(a) / f + 1e-30) * np.eye(f)
        self.hinv = np.linalg.inv(a)
        self.w = (self.hinv @ m.cross[0]).T
        self.energy = max(energy, 1e-300)

    def cost(self, g: np.ndarray) -> float:
        s = self.hinv[np.ix_(g, g)]
        wg = self.w[:, g]
        return float(np.trace(wg @ np.linalg.solve(s, wg.T))) / self.energy

    def remove(self, g: np.ndarray) -> None:
        s = self.hinv[np.ix_(g, g)]
        rows = np.linalg.solve(s, self.hinv[g, :])           # (|g|, F)
        self.w -= self.w[:, g] @ rows
        self.hinv -= self.hinv[:, g] @ rows
        self.w[:, g] = 0.0
        self.hinv[g, :] = 0.0
        self.hinv[:, g] = 0.0
        self.hinv[np.ix_(g, g)] = np.eye(g.size)             # keep it invertible there


def removal_order(graph: Graph, fam: Family,
                  moments: dict[str, tuple[Moments, float]]) -> list[int]:
    """The family's units in the order to remove them (see the module's note); `moments`
    gives each reader's Moments and output energy on the data."""
    readers = []
    for name, tensor in fam.readers:
        m, energy = moments[name]
        readers.append((_Reader(m, energy),
                        reader_features(graph, name, tensor, fam.reach[tensor])))
    left = list(range(fam.units))
    order = []
    while len(left) > 1:
        costs = [sum(rd.cost(feat[u]) for rd, feat in readers) for u in left]
        u = left.pop(int(np.argmin(costs)))
        order.append(u)
        for rd, feat in readers:
            rd.remove(feat[u])
    return order + left


# -- cutting the channels out ------------------------------------------------------------------

def cut(graph: Graph, fams: list[Family], removed: dict[str, np.ndarray]) -> Graph:
    """`graph` without the units `removed[family name]` of each family: every tensor they
    reach shrinks, and the parameters of their producers (output rows), readers (input
    columns) and carriers (per channel) with it."""
    kept = kept_indices(graph, fams, removed)
    if not kept:
        return graph
    keep = kept.get
    tensors = {}
    for t, (axis, idx) in kept.items():
        shape = list(graph.shape(t))
        shape[axis] = idx.size
        tensors[t] = Tensor(t, tuple(shape))
    params: dict[str, np.ndarray] = {}
    nodes = []
    for node in graph.nodes:
        roles = dict(graph.param_inputs(node))
        out_keep = keep(node.output)
        acts = graph.activation_inputs(node)
        in_keep = keep(acts[0]) if acts else None
        if node.op in (Op.DENSE, Op.CONV) and not _depthwise(graph, node):
            w = params.get(roles["weight"], graph.params[roles["weight"]])
            if out_keep is not None:
                w = w[:, out_keep[1]] if node.op is Op.DENSE else w[out_keep[1]]
                if "bias" in roles:
                    params[roles["bias"]] = graph.params[roles["bias"]][out_keep[1]]
            if in_keep is not None:
                w = w[in_keep[1]] if node.op is Op.DENSE else w[:, in_keep[1]]
            if out_keep is not None or in_keep is not None:
                params[roles["weight"]] = w
        elif out_keep is not None:
            axis, kept = out_keep
            if node.op is Op.CONV:                                   # depthwise
                params[roles["weight"]] = graph.params[roles["weight"]][kept]
                if "bias" in roles:
                    params[roles["bias"]] = graph.params[roles["bias"]][kept]
                node = node.with_(attrs={**node.attrs, "groups": int(kept.size)})
            elif node.op is Op.BATCH_NORM:
                for p in roles.values():
                    params[p] = graph.params[p][kept]
            else:
                for p in roles.values():
                    v = graph.params[p]
                    lead = len(graph.shape(node.output)) - v.ndim     # broadcast from the right
                    at = axis - lead
                    if at >= 0 and v.shape[at] > 1:
                        params[p] = np.take(v, kept, axis=at)
            if node.op is Op.RESHAPE:
                node = node.with_(attrs={**node.attrs, "shape": tensors[node.output].shape})
        nodes.append(node)
    return graph.rebuild(nodes, tensors=tensors, params=params)


def kept_indices(graph: Graph, fams: list[Family], removed: dict[str, np.ndarray]) -> \
        dict[str, tuple[int, np.ndarray]]:
    """Per tensor that loses elements: its axis and the indices it keeps (of the uncut
    graph's)."""
    drop: dict[str, tuple[int, np.ndarray]] = {}
    for fam in fams:
        units = removed.get(fam.name)
        if units is None or len(units) == 0:
            continue
        for t, r in fam.reach.items():
            gone = r.idx[np.asarray(units)].reshape(-1)
            axis, old = drop.get(t, (r.axis, np.zeros(0, dtype=np.int64)))
            drop[t] = (axis, np.union1d(old, gone))
    return {t: (axis, np.setdiff1d(np.arange(graph.shape(t)[axis]), gone))
            for t, (axis, gone) in drop.items()}
