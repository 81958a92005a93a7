"""The published hls4ml syntheses of hw/syntheses.json as fxq designs, for the estimator's
calibration and its measured error (benchmarks/syntheses.py, tests/test_estimate.py).

Each record (written by benchmarks/syntheses_import.py from a committed hls4ml project)
holds the design layer by layer in fxq's terms, the published C synthesis (and, where the
project has it, Vivado logic synthesis) figures, and where they come from. Its weights are
kept as statistics: `design()` rebuilds raw values with the same count of non-zero values
per output and the same (bit length, canonical-signed-digit count) of every magnitude,
which is all fxq's estimator reads of a constant weight (fxq.cost.products), so the
estimate of the rebuilt design is the estimate of the published one.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from fxq.cost import csd_digits
from fxq.fixed import FixedType, to_float
from fxq.ir import Graph, Node, Op, Tensor
from fxq.layer import DEFAULT_SOFTMAX_ACCUM, DEFAULT_SOFTMAX_TABLE, LayerTypes
from fxq.quantized import QuantizedGraph
from fxq.target import Target

DATA = Path(__file__).resolve().parent.parent / "hw" / "syntheses.json"
FIGURES = ("latency", "ii", "dsp", "lut", "ff", "bram18")


@lru_cache(maxsize=1)
def records() -> tuple[dict[str, Any], ...]:
    return tuple(json.loads(DATA.read_text()))


def record(name: str) -> dict[str, Any]:
    for r in records():
        if r["name"] == name:
            return r
    raise KeyError(name)


@lru_cache(maxsize=None)
def _magnitude(bits: int, digits: int) -> int:
    """The smallest magnitude of `bits` bits whose canonical signed digit form has
    `digits` non-zero digits."""
    for m in range(1 << (bits - 1), 1 << bits):
        if csd_digits(m) == digits:
            return m
    raise ValueError(f"no {bits}-bit magnitude has {digits} CSD digits")


def rebuild_raw(stats: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    """Raw integers with the statistics of `stats` (param_stats of the import)."""
    shape, axis = tuple(stats["shape"]), stats["out_axis"]
    per_out = np.asarray(stats["nonzero_per_output"], dtype=np.int64)
    mags = np.concatenate([np.full(n, _magnitude(b, d), dtype=np.int64)
                           for b, d, n in stats["classes"]] or [np.zeros(0, np.int64)])
    rng.shuffle(mags)
    moved = np.zeros((int(np.prod(shape)) // len(per_out), len(per_out)), dtype=np.int64)
    start = 0
    for o, n in enumerate(per_out.tolist()):
        rows = rng.permutation(moved.shape[0])[:n]
        signs = rng.choice(np.array([-1, 1]), n)
        moved[rows, o] = mags[start:start + n] * signs
        start += n
    out_shape = tuple(s for i, s in enumerate(shape) if i != axis) + (shape[axis],)
    return np.moveaxis(moved.reshape(out_shape), -1, axis)


def _layer_types(layer: dict[str, Any]) -> LayerTypes:
    t = {k: FixedType.from_hls(v) for k, v in layer.get("types", {}).items()}
    op = Op.named(layer["op"])
    params = {role: t[role] for role in op.roles if role in t}
    if op is Op.SOFTMAX:
        return LayerTypes(result=t["result"], table=t.get("table", DEFAULT_SOFTMAX_TABLE),
                          inv_table=t.get("inv_table", DEFAULT_SOFTMAX_TABLE),
                          inv_inp=t.get("inv_inp", t.get("table", DEFAULT_SOFTMAX_TABLE)),
                          accum=t.get("accum", DEFAULT_SOFTMAX_ACCUM),
                          table_size=layer.get("table_size", 1024))
    extra = {"table_size": layer["table_size"]} if "table_size" in layer else {}
    return LayerTypes(result=t["result"], params=params, accum=t.get("accum"),
                      table=t.get("table"), **extra)


def _attrs(layer: dict[str, Any]) -> dict[str, Any]:
    attrs = dict(layer.get("attrs", {}))
    for key in ("kernel", "strides", "pads", "axes", "shape"):
        if key in attrs:
            attrs[key] = tuple(attrs[key])
    if "index" in attrs:
        attrs["index"] = tuple(tuple(i) for i in attrs["index"])
    return attrs


def design(r: dict[str, Any], seed: int = 0) -> tuple[QuantizedGraph, Target]:
    """The record's design and the target it was synthesized for."""
    rng = np.random.default_rng(seed)
    tensors = {i["name"]: Tensor(i["name"], tuple(i["shape"])) for i in r["inputs"]}
    input_types = {i["name"]: FixedType.from_hls(i["type"]) for i in r["inputs"]}
    nodes, params, layers, reuse = [], {}, {}, {}
    for layer in r["layers"]:
        types = _layer_types(layer)
        op = Op.named(layer["op"])
        inputs = list(layer["inputs"])
        for role in op.roles:
            stats = layer.get("params", {}).get(role)
            if stats is None:
                continue
            name = f"{layer['name']}.{role}"
            params[name] = to_float(rebuild_raw(stats, rng), types.param(role))
            inputs.append(name)
        nodes.append(Node(layer["name"], op, tuple(inputs), (layer["output"],), _attrs(layer)))
        tensors[layer["output"]] = Tensor(layer["output"], tuple(layer["shape"]))
        layers[layer["name"]] = types
        if layer.get("reuse", 1) != r["reuse_factor"] and op in (Op.DENSE, Op.CONV):
            reuse[layer["name"]] = layer["reuse"]
    produced = {n.output for n in nodes}
    read = {i for n in nodes for i in n.inputs}
    outputs = [n.output for n in nodes if n.output not in read] or [nodes[-1].output]
    assert produced
    graph = Graph.build(r["name"], list(input_types), outputs, nodes, tensors, params)
    q = QuantizedGraph(graph, input_types, layers, r["io_type"])
    target = Target(io_type=r["io_type"], strategy=r["strategy"],
                    reuse_factor=r["reuse_factor"], part=r["part"], clock_ns=r["clock_ns"],
                    layer_reuse=reuse)
    return q, target
