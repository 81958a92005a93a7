"""fxq_model.json: a QuantizedGraph written to disk and read back, exactly.

The file holds the graph (nodes, shapes, attributes), every fixed-point type, and the
parameters as the real values of their quantized raw integers. JSON writes floats with
enough digits to round-trip, so reading them back and quantizing gives the same raw
integers: a reloaded model simulates bit for bit like the one that was written. (Its float
reference, `q.graph.run`, uses those quantized parameters.)
"""
from __future__ import annotations

import json
import os
from dataclasses import fields
from typing import Any

import numpy as np

from fxq.errors import DataError, FxqError
from fxq.encoding import Codebook
from fxq.fixed import FixedType, Overflow, Rounding, quantize, to_float
from fxq.ir import Graph, Node, Op, Tensor
from fxq import ops as _ops  # noqa: F401  (defines every op model files may name)
from fxq.quantized import LayerTypes, QuantizedGraph

FORMAT = "fxq-quantized-graph"
VERSION = 3                     # 2: parameter types by role (LayerTypes.params)
READS = (2, 3)                  # 3: parameter encodings (a codebook and its indices)


def type_to_json(t: FixedType) -> dict[str, Any]:
    return {"width": t.width, "frac": t.frac, "signed": t.signed,
            "rounding": t.rounding.name, "overflow": t.overflow.name, "hls": t.hls()}


def type_from_json(d: dict[str, Any]) -> FixedType:
    return FixedType(int(d["width"]), int(d["frac"]), bool(d["signed"]),
                     Rounding[d["rounding"]], Overflow[d["overflow"]])


def _layer_to_json(layer: LayerTypes) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in fields(LayerTypes):
        value = getattr(layer, f.name)
        if isinstance(value, FixedType):
            out[f.name] = type_to_json(value)
        elif f.name == "table_size":
            out[f.name] = value
        elif f.name == "params":
            out[f.name] = {role: type_to_json(t) for role, t in value.items()}
    return out


def _layer_from_json(d: dict[str, Any]) -> LayerTypes:
    kwargs = {k: (v if k == "table_size" else
                  {r: type_from_json(t) for r, t in v.items()} if k == "params" else
                  type_from_json(v)) for k, v in d.items()}
    return LayerTypes(**kwargs)


def _plain(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _frozen(value: Any) -> Any:
    return tuple(_frozen(v) for v in value) if isinstance(value, list) else value


def to_json(q: QuantizedGraph, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    g = q.graph
    activations = [n for n in g.tensors if n not in g.params]
    return {
        "format": FORMAT, "version": VERSION, "io_type": q.io_type,
        "graph": {
            "name": g.name, "inputs": list(g.inputs), "outputs": list(g.outputs),
            "tensors": {n: list(g.shape(n)) for n in activations},
            "nodes": [{"name": n.name, "op": n.op.name, "inputs": list(n.inputs),
                       "outputs": list(n.outputs),
                       "attrs": {k: _plain(v) for k, v in n.attrs.items()}}
                      for n in g.nodes],
            "params": {name: _param_to_json(q, name, raw) for name, raw in q.params.items()},
        },
        "inputs": {n: type_to_json(t) for n, t in q.inputs.items()},
        "layers": {n: _layer_to_json(layer) for n, layer in q.layers.items()},
        **(extra or {}),
    }


def _param_to_json(q: QuantizedGraph, name: str, raw: np.ndarray) -> dict[str, Any]:
    """A parameter's quantized values, or its encoding with the quantized codebook."""
    t = q.types[name]
    encoding = q.graph.encodings.get(name)
    if encoding is not None:
        return {"shape": list(raw.shape),
                "encoding": encoding.to_json(to_float(quantize(encoding.values, t), t))}
    return {"shape": list(raw.shape), "values": to_float(raw, t).ravel().tolist()}


def from_json(d: dict[str, Any]) -> QuantizedGraph:
    gd = d["graph"]
    tensors = {n: Tensor(n, tuple(int(s) for s in shape)) for n, shape in gd["tensors"].items()}
    encodings = {n: Codebook.from_json(p["encoding"], p["shape"])
                 for n, p in gd["params"].items() if "encoding" in p}
    params = {n: encodings[n].dense() if n in encodings else
              np.array(p["values"], dtype=np.float64).reshape(p["shape"])
              for n, p in gd["params"].items()}
    nodes = [Node(n["name"], Op.named(n["op"]), tuple(n["inputs"]), tuple(n["outputs"]),
                  {k: _frozen(v) for k, v in n["attrs"].items()}) for n in gd["nodes"]]
    graph = Graph.build(gd["name"], gd["inputs"], gd["outputs"], nodes, tensors, params,
                        encodings)
    return QuantizedGraph(graph, {n: type_from_json(t) for n, t in d["inputs"].items()},
                          {n: _layer_from_json(layer) for n, layer in d["layers"].items()},
                          d.get("io_type", "io_parallel"))


def save(q: QuantizedGraph, path: str | os.PathLike, extra: dict[str, Any] | None = None) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(to_json(q, extra), f, indent=1)
        f.write("\n")


def load_quantized(path: str | os.PathLike) -> tuple[QuantizedGraph, dict[str, Any]]:
    """(the QuantizedGraph, the whole JSON document) from fxq_model.json, or from a
    directory `fxq compile` wrote. Every problem is one DataError naming the file."""
    path = os.fspath(path)
    if os.path.isdir(path):
        path = os.path.join(path, "fxq_model.json")
    if not os.path.exists(path):
        raise DataError(f"{path}: no such file (expected the output of `fxq compile`)")
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not a readable fxq model file ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise DataError(f"{path}: not an fxq model file (format is not {FORMAT!r})")
    if doc.get("version") not in READS:
        raise DataError(f"{path}: fxq model file version {doc.get('version')!r}; this fxq "
                        f"reads versions {', '.join(map(str, READS))}")
    try:
        return from_json(doc), doc
    except (KeyError, TypeError, ValueError, FxqError) as exc:
        raise DataError(f"{path}: damaged fxq model file ({type(exc).__name__}: {exc})") \
            from None
