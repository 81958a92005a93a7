"""Published synthesis results of hls4ml designs that fxq's estimator is compared against
(`make bench`, tests/test_estimate.py), with the designs rebuilt in fxq's IR.

fc16x5: hls4ml's own report-test design (hls4ml repository, test/pytest/test_report.py and
its Vivado report files): a Keras Dense(16 -> 5) with ReLU, ap_fixed<16,6> for every type,
io_stream, latency strategy, reuse 1, xc7z020clg400-1 at 5 ns, Vivado HLS 2020.1. Its
weights were Keras' Glorot-uniform initialization, not published: fxq draws them the same
way from five seeds and reports the spread.

jet_tagger: the hls4ml tutorial's jet-tagging MLP (part 1) at ap_fixed<16,6>, io_parallel,
R=1 on xcu250 with hls4ml 1.2.0 and Vivado HLS 2019.2, as one user published it (see the
function's docstring).

The data set: the published hls4ml syntheses of hw/syntheses.json as fxq designs, for the estimator's
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
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from fxq.cost import csd_digits
from fxq.estimate import estimate
from fxq.fixed import FixedType, to_float
from fxq.ir import Graph, Node, Op, Tensor
from fxq.layer import DEFAULT_SOFTMAX_ACCUM, DEFAULT_SOFTMAX_TABLE, LayerTypes
from fxq.quantized import QuantizedGraph, uniform
from fxq.target import Target

FC16X5 = {
    "design": "Dense 16->5 + ReLU, ap_fixed<16,6>, io_stream, R=1, xc7z020, Vivado HLS 2020.1",
    "part": "xc7z020clg400-1", "io_type": "io_stream",
    "csynth": {"latency": 10, "ii": 8, "dsp": 73, "lut": 2532, "ff": 7969, "bram18": 0},
    "vsynth": {"dsp": 66, "lut": 1526, "ff": 2428, "bram18": 0},
}


def fc16x5(seed: int) -> QuantizedGraph:
    rng = np.random.default_rng(seed)
    limit = np.sqrt(6 / (16 + 5))                      # Glorot uniform
    graph = Graph.build("fc1", ["x"], ["y"],
                        [Node("fc1", Op.DENSE, ("x", "w", "b"), ("h",)),
                         Node("relu", Op.RELU, ("h",), ("y",))],
                        {"x": Tensor("x", (16,)), "h": Tensor("h", (5,)),
                         "y": Tensor("y", (5,))},
                        {"w": rng.uniform(-limit, limit, (16, 5)), "b": np.zeros(5)})
    t = FixedType(16, 10)                              # ap_fixed<16,6>
    return uniform(graph, data=t, weight=t, bias=t, accum=t, io_type="io_stream")


JET_TAGGER = {
    "design": "jet tagger MLP 16-64-32-32-5, ReLU, softmax, ap_fixed<16,6>, io_parallel, "
              "R=1, xcu250, Vivado HLS 2019.2 (hls4ml 1.2.0)",
    "part": "xcu250-figd2104-2L-e", "io_type": "io_parallel",
    "csynth": {"latency": 12, "ii": 1, "dsp": 2118, "lut": 109753, "ff": 12562, "bram18": 4},
    "vsynth": {},
}


def jet_tagger(seed: int) -> QuantizedGraph:
    """The hls4ml tutorial's jet tagger (part 1) as run with hls4ml 1.2.0 and Vivado HLS
    2019.2, xcu250-figd2104-2L-e at 5 ns (github.com/Liu-Zhiheng/hls4ml-pynqz2-vivado2019-2-
    results, notebooks/part1_getting_started_vivado2019_2.ipynb: C synthesis report and the
    `ap_fixed<16, 6, AP_TRN, AP_WRAP>` of every dense instance). Its trained weights (L1
    1e-4, 10 epochs on the OpenML jet data) are not published in text: fxq draws them from
    the same LeCun-uniform initialization, five seeds."""
    rng = np.random.default_rng(seed)
    sizes = [16, 64, 32, 32, 5]
    nodes, tensors, params = [], {"x": Tensor("x", (16,))}, {}
    src = "x"
    for i, (n_in, n_out) in enumerate(zip(sizes, sizes[1:])):
        limit = np.sqrt(3 / n_in)                        # LeCun uniform
        params[f"w{i}"] = rng.uniform(-limit, limit, (n_in, n_out))
        params[f"b{i}"] = np.zeros(n_out)
        nodes.append(Node(f"fc{i}", Op.DENSE, (src, f"w{i}", f"b{i}"), (f"h{i}",)))
        tensors[f"h{i}"] = Tensor(f"h{i}", (n_out,))
        last = i == len(sizes) - 2
        op, out, attrs = (Op.SOFTMAX, "y", {"axes": (1,)}) if last else (Op.RELU, f"a{i}", {})
        nodes.append(Node(f"act{i}", op, (f"h{i}",), (out,), attrs))
        tensors[out] = Tensor(out, (n_out,))
        src = out
    graph = Graph.build("jet_tagger", ["x"], ["y"], nodes, tensors, params)
    t = FixedType(16, 10)                                # ap_fixed<16,6>
    return uniform(graph, data=t, weight=t, bias=t, accum=t)


# -- the data set of hw/syntheses.json ----------------------------------------

DATA = Path(__file__).resolve().parent.parent / "hw" / "syntheses.json"


@lru_cache(maxsize=1)
def records() -> tuple[dict[str, Any], ...]:
    return tuple(json.loads(DATA.read_text()))


@lru_cache(maxsize=None)
def _magnitude(bits: int, digits: int) -> int:
    """The smallest magnitude of `bits` bits whose canonical signed digit form has
    `digits` non-zero digits."""
    for m in range(1 << (bits - 1), 1 << bits):
        if csd_digits(m) == digits:
            return m
    raise ValueError(f"no {bits}-bit magnitude has {digits} CSD digits")


def param_stats(raw: np.ndarray, out_axis: int) -> dict[str, Any]:
    """What the estimator reads from a parameter's raw integers (see the module note)."""
    raw = np.asarray(raw, dtype=np.int64)
    per_out = np.count_nonzero(np.moveaxis(raw, out_axis, -1).reshape(-1, raw.shape[out_axis]),
                               axis=0)
    classes: dict[tuple[int, int], int] = {}
    mags, counts = np.unique(np.abs(raw[raw != 0]), return_counts=True)
    for m, n in zip(mags.tolist(), counts.tolist()):
        key = (int(m).bit_length(), csd_digits(m))
        classes[key] = classes.get(key, 0) + n
    return {"shape": list(raw.shape), "out_axis": out_axis,
            "nonzero_per_output": per_out.tolist(),
            "classes": [[b, d, n] for (b, d), n in sorted(classes.items())]}


def rebuild_raw(stats: dict[str, Any], rng: np.random.Generator,
                raw_max: int | None = None) -> np.ndarray:
    """Raw integers with the statistics of `stats` (param_stats of the import); a
    magnitude above `raw_max` (a signed type's most negative value) is negative."""
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
        chosen = mags[start:start + n]
        if raw_max is not None:
            signs[chosen > raw_max] = -1
        moved[rows, o] = chosen * signs
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
            t = types.param(role)
            params[name] = to_float(rebuild_raw(stats, rng, t.raw_max), t)
            inputs.append(name)
        nodes.append(Node(layer["name"], op, tuple(inputs), (layer["output"],), _attrs(layer)))
        tensors[layer["output"]] = Tensor(layer["output"], tuple(layer["shape"]))
        layers[layer["name"]] = types
        if layer.get("reuse", 1) != r["reuse_factor"] and op in (Op.DENSE, Op.CONV):
            reuse[layer["name"]] = layer["reuse"]
    read = {i for n in nodes for i in n.inputs}
    outputs = [n.output for n in nodes if n.output not in read] or [nodes[-1].output]
    graph = Graph.build(r["name"], list(input_types), outputs, nodes, tensors, params)
    q = QuantizedGraph(graph, input_types, layers, r["io_type"])
    target = Target(io_type=r["io_type"], strategy=r["strategy"],
                    reuse_factor=r["reuse_factor"], part=r["part"], clock_ns=r["clock_ns"],
                    layer_reuse=reuse)
    return q, target


# -- estimate against published -----------------------------------------------

# figure -> (what the estimate gives, which published report it is compared with)
FIGURES = {
    "latency": ("latency", "csynth"), "ii": ("ii", "csynth"), "dsp": ("dsp", "csynth"),
    "bram18": ("bram18", "csynth"),
    "lut": ("lut", "vsynth"), "ff": ("ff", "vsynth"),
    "lut_c": ("csynth_lut", "csynth"), "ff_c": ("csynth_ff", "csynth"),
}


@dataclass
class Comparison:
    name: str
    held_out: bool
    settings: str
    pairs: dict[str, tuple[float, float]]        # figure -> (estimate, published)

    def ratio(self, figure: str) -> float | None:
        if figure not in self.pairs:
            return None
        est, pub = self.pairs[figure]
        if pub == 0:
            return 1.0 if est == 0 else None     # nothing to divide by: no ratio
        return est / pub


def compare(r: dict) -> Comparison:
    return compare_built(r, *design(r))


def compare_built(r: dict, q, target) -> Comparison:
    e = estimate(q, target=target)
    got = {"latency": e.total.latency, "ii": e.total.ii, "dsp": e.total.dsp,
           "bram18": e.total.bram18, "lut": e.total.lut, "ff": e.total.ff,
           "csynth_lut": e.csynth()["lut"], "csynth_ff": e.csynth()["ff"]}
    pairs = {}
    # a design whose C synthesis needs more DSPs than the part has was fitted by Vivado
    # moving products into LUTs: its logic synthesis LUTs say nothing of the design asked for
    overfull = r["csynth"].get("dsp", 0) > r.get("available", {}).get("dsp", math.inf)
    for figure, (mine, report) in FIGURES.items():
        if overfull and report == "vsynth" and figure in ("lut", "dsp"):
            continue
        published = r.get(report)
        key = mine.replace("csynth_", "")
        if published is not None and key in published:
            pairs[figure] = (got[mine], published[key])
    settings = (f"{r['io_type'][3:]} {r['strategy'][:3]} R{r['reuse_factor']} "
                f"{r['part'].split('-')[0]} {r['clock_ns']:g}ns")
    return Comparison(r["name"], r["held_out"], settings, pairs)


def summary(comparisons: list[Comparison]) -> dict[str, dict[str, float]]:
    """Per figure: n, the median ratio and the share within 2x (0.5..2)."""
    out = {}
    for figure in FIGURES:
        ratios = np.array([c.ratio(figure) for c in comparisons
                           if c.ratio(figure) is not None])
        if ratios.size:
            out[figure] = {"n": int(ratios.size), "median": float(np.median(ratios)),
                           "within_2x": float(np.mean((ratios >= 0.5) & (ratios <= 2)))}
    return out
