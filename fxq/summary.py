"""Per-layer facts about a graph: shapes, parameter counts, multiply-accumulates."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fxq.ir import Graph, Node, Op


@dataclass(frozen=True)
class LayerSummary:
    name: str
    op: Op
    input_shapes: tuple[tuple[int, ...], ...]
    output_shape: tuple[int, ...]
    params: int
    macs: int


def macs(graph: Graph, node: Node) -> int:
    """Multiplies per sample (each feeding an accumulation for Dense and Conv)."""
    out = graph.tensors[node.output].size
    if node.op is Op.DENSE:
        return out * graph.params[node.inputs[1]].shape[0]
    if node.op is Op.CONV:
        w = graph.params[node.inputs[1]]
        return out * int(np.prod(w.shape[1:]))
    if node.op in (Op.BATCH_NORM, Op.MUL):
        return out
    return 0


def summarize(graph: Graph) -> list[LayerSummary]:
    return [LayerSummary(
        name=node.name, op=node.op,
        input_shapes=tuple(graph.shape(n) for n in graph.activation_inputs(node)),
        output_shape=graph.shape(node.output),
        params=sum(int(graph.params[n].size) for n in node.inputs if n in graph.params),
        macs=macs(graph, node)) for node in graph.nodes]


def _shape(shape: tuple[int, ...]) -> str:
    return "(N" + "".join(f", {d}" for d in shape) + ")"


def format_summary(graph: Graph) -> str:
    """A plain-text table, one row per layer, totals last."""
    rows = [("layer", "op", "input", "output", "params", "MACs")]
    layers = summarize(graph)
    for s in layers:
        rows.append((s.name, s.op.name, " ".join(_shape(x) for x in s.input_shapes),
                     _shape(s.output_shape), f"{s.params:,}", f"{s.macs:,}"))
    rows.append(("total", f"{len(layers)} layers", ", ".join(
        f"{n} {_shape(graph.shape(n))}" for n in graph.inputs), ", ".join(
        f"{n} {_shape(graph.shape(n))}" for n in graph.outputs),
        f"{sum(s.params for s in layers):,}", f"{sum(s.macs for s in layers):,}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    right = {4, 5}

    def line(row):
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(row, widths))).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([f"model {graph.name}", line(rows[0]), rule]
                     + [line(r) for r in rows[1:-1]] + [rule, line(rows[-1])])
