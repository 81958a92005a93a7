"""Read a committed hls4ml project (its firmware/ and synthesis reports) into one record of
hw/syntheses.json, the data set fxq's estimator is calibrated and measured on.

A record holds the design in fxq's terms (every layer's op, shapes, fixed-point types, reuse
factor and strategy), the published figures (C synthesis, and Vivado logic synthesis when the
project has it) and where they come from. The weights themselves are not copied: each
Dense/Conv/BatchNorm parameter is kept as the statistics fxq's estimator reads from it (per
output, the count of non-zero raw values; over the layer, how many raw magnitudes have each
bit length and number of canonical-signed-digit digits), from which `examples/published.py`
rebuilds a weight array the estimator cannot tell from the original.

Usage (on a project checked out anywhere; nothing here runs in the tests):

    python benchmarks/syntheses_import.py PROJECT_DIR --name NAME --source URL \\
        [--held-out] [--add hw/syntheses.json]

The reader knows the hls4ml layer functions the data set uses; any other is refused by name.
"""
from __future__ import annotations

import argparse
import ast
import json
import operator
import re
import sys
from dataclasses import dataclass, field
from functools import partialmethod
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(ROOT / "examples"))

from fxq.fixed import FixedType, quantize  # noqa: E402
from published import param_stats  # noqa: E402


class ProjectError(Exception):
    """The project cannot be read into a record (the message says what and where)."""


# -- C++ text -------------------------------------------------------------------------

_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
        ast.FloorDiv: operator.floordiv, ast.Div: operator.floordiv}


def _eval(expr: str, names: dict[str, Any]) -> int | None:
    """An integer C expression of literals, known names, + - * / and DIV_ROUNDUP; None when
    it holds anything else."""
    expr = expr.strip().rstrip("uU")
    expr = re.sub(r"DIV_ROUNDUP\(([^,()]+),([^()]+)\)", r"(((\1)+(\2)-1)//(\2))", expr)
    try:
        tree = ast.parse(expr.replace("/", "//").replace("////", "//"), mode="eval").body
    except SyntaxError:
        return None

    def value(node):
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.Name):
            v = names.get(node.id)
            if isinstance(v, str):
                return _eval(v, names)
            return v if isinstance(v, int) else None
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            a, b = value(node.left), value(node.right)
            return None if a is None or b is None else _OPS[type(node.op)](a, b)
        return None

    return value(tree)


def _synthesized(text: str) -> str:
    """`text` without its `#ifndef __SYNTHESIS__` regions (weight loading, tracing): what
    HLS compiles."""
    out, skip = [], []
    for line in text.splitlines():
        directive = line.strip()
        if directive.startswith("#if"):
            skip.append(directive.startswith("#ifndef __SYNTHESIS__")
                        or directive == "#if !defined(__SYNTHESIS__)")
            continue
        if directive.startswith("#else") and skip:
            skip[-1] = False if skip[-1] else skip[-1]
            continue
        if directive.startswith("#endif") and skip:
            skip.pop()
            continue
        if not any(skip):
            out.append(line)
    return "\n".join(out)


def _strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


@dataclass
class Config:
    """One `struct NAME : BASE { ... };` of parameters.h: its constants and typedefs."""

    name: str
    base: str
    values: dict[str, str] = field(default_factory=dict)
    types: dict[str, str] = field(default_factory=dict)


def _structs(text: str) -> dict[str, Config]:
    out: dict[str, Config] = {}
    for m in re.finditer(r"struct\s+(\w+)\s*(?::\s*([\w:]+))?\s*\{", text):
        depth, i = 1, m.end()
        while depth and i < len(text):
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        body = text[m.end():i - 1]
        c = Config(m.group(1), m.group(2) or "")
        for v in re.finditer(r"static\s+const\s+[\w:<>]+\s+(\w+)\s*=\s*([^;]+);", body):
            c.values[v.group(1)] = v.group(2).strip()
        for t in re.finditer(r"typedef\s+(.+?)\s+(\w+)\s*;", body):
            c.types[t.group(2)] = t.group(1).strip()
        out[c.name] = c
    return out


def _defines(text: str) -> tuple[dict[str, str], dict[str, str]]:
    """(#define NAME VALUE, typedef TYPE NAME) of defines.h."""
    defines = {m.group(1): m.group(2).strip()
               for m in re.finditer(r"#define\s+(\w+)\s+([^\n]+)", text)}
    types = {m.group(2): m.group(1).strip()
             for m in re.finditer(r"typedef\s+(.+?)\s+(\w+)\s*;", text)}
    return defines, types


@dataclass
class Call:
    func: str
    targs: list[str]
    args: list[str]
    name: str


def _split_top(text: str) -> list[str]:
    """Comma-separated items of `text`, commas inside <> or () kept."""
    items, depth, cur = [], 0, ""
    for ch in text:
        if ch in "<(":
            depth += 1
        elif ch in ">)":
            depth -= 1
        if ch == "," and depth == 0:
            items.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        items.append(cur.strip())
    return items


def _calls(text: str) -> list[Call]:
    """The layer calls of myproject.cpp, in order (weight loading excluded)."""
    out = []
    for m in re.finditer(r"nnet::(\w+)\s*<(.*?)>\s*\(([^;]*?)\)\s*;[ \t]*(?://\s*(\S+))?", text):
        func = m.group(1)
        if func.startswith("load_weights") or func == "fill_zero":
            continue
        out.append(Call(func, _split_top(m.group(2)), _split_top(m.group(3)),
                        m.group(4) or f"layer{len(out)}"))
    return out


# -- reports --------------------------------------------------------------------------

def _report_rows(text: str, label: str) -> list[int]:
    m = re.search(r"^\|\s*" + re.escape(label) + r"\s*\|([^\n]*)", text, flags=re.M)
    if m is None:
        return []
    return [int(v) if v.strip().isdigit() else 0 for v in m.group(1).split("|") if v.strip()]


def read_csynth(path: Path) -> dict[str, Any]:
    text = path.read_text(errors="replace")
    version = re.search(r"\* Version:\s+(\S+)", text)
    device = re.search(r"\* Target device:\s+(\S+)", text)
    clock = re.search(r"\|ap_clk\s*\|\s*([\d.]+)\s*ns\s*\|\s*([\d.]+)\s*ns", text)
    lat = re.search(r"Latency \(cycles\).*?\n(?:.*\n){2,4}?\s*\|\s*(\d+)\|\s*(\d+)\|[^|]*\|[^|]*\|"
                    r"\s*(\d+)\|\s*(\d+)\|", text)
    header = re.search(r"^\|\s*Name\s*\|([^\n]*)", text, flags=re.M)
    if not (version and device and clock and lat and header):
        raise ProjectError(f"{path}: not a C synthesis report this reader knows")
    names = [h.strip() for h in header.group(1).split("|") if h.strip()]
    total, avail = _report_rows(text, "Total"), _report_rows(text, "Available")
    pick = {"BRAM_18K": "bram18", "DSP48E": "dsp", "DSP": "dsp", "FF": "ff", "LUT": "lut",
            "URAM": "uram"}
    figures = {pick[n]: v for n, v in zip(names, total) if n in pick}
    available = {pick[n]: v for n, v in zip(names, avail) if n in pick}
    return {"tool": f"Vivado/Vitis HLS {version.group(1)}", "part": device.group(1),
            "clock_ns": float(clock.group(1)), "clock_estimated_ns": float(clock.group(2)),
            "figures": {"latency_min": int(lat.group(1)), "latency": int(lat.group(2)),
                        "ii_min": int(lat.group(3)), "ii": int(lat.group(4)), **figures},
            "available": available}


def read_csynth_xml(path: Path) -> dict[str, Any]:
    """The same figures from the report's XML twin (some projects commit only that)."""
    import xml.etree.ElementTree as ET

    root = ET.parse(path).getroot()

    def number(where: str) -> float:
        node = root.find(where)
        if node is None or node.text is None:
            raise ProjectError(f"{path}: no {where}")
        return float(node.text)

    pick = {"BRAM_18K": "bram18", "DSP48E": "dsp", "DSP": "dsp", "FF": "ff", "LUT": "lut",
            "URAM": "uram"}
    figures, available = {}, {}
    for section, out in (("AreaEstimates/Resources", figures),
                         ("AreaEstimates/AvailableResources", available)):
        for node in root.find(section) or []:
            if node.tag in pick and node.text is not None:
                out[pick[node.tag]] = int(float(node.text))
    lat = "PerformanceEstimates/SummaryOfOverallLatency/"
    return {"tool": f"Vivado/Vitis HLS {root.findtext('ReportVersion/Version')}",
            "part": root.findtext("UserAssignments/Part"),
            "clock_ns": number("UserAssignments/TargetClockPeriod"),
            "clock_estimated_ns": number(
                "PerformanceEstimates/SummaryOfTimingAnalysis/EstimatedClockPeriod"),
            "figures": {"latency_min": int(number(lat + "Best-caseLatency")),
                        "latency": int(number(lat + "Worst-caseLatency")),
                        "ii_min": int(number(lat + "Interval-min")),
                        "ii": int(number(lat + "Interval-max")), **figures},
            "available": available}


def read_vsynth(path: Path) -> dict[str, int]:
    """Vivado's utilization report: LUT, FF, DSP and BRAM18 (block RAM tiles as 2 x 18K)."""
    text = path.read_text(errors="replace")

    def first(*labels):
        for label in labels:
            m = re.search(r"^\|\s*" + re.escape(label) + r"\*?\s*\|\s*([\d.]+)\s*\|", text, re.M)
            if m:
                return float(m.group(1))
        return None

    lut = first("CLB LUTs", "Slice LUTs")
    ff = first("CLB Registers", "Slice Registers")
    dsp = first("DSPs")
    tiles = first("Block RAM Tile")
    if lut is None or ff is None:
        raise ProjectError(f"{path}: not a Vivado utilization report this reader knows")
    return {"lut": int(lut), "ff": int(ff), "dsp": int(dsp or 0),
            "bram18": int(round(2 * (tiles or 0)))}


# -- weights --------------------------------------------------------------------------

def _weights(firmware: Path, name: str) -> np.ndarray:
    txt = firmware / "weights" / f"{name}.txt"
    if txt.is_file():
        text = txt.read_text()
    else:
        h = firmware / "weights" / f"{name}.h"
        if not h.is_file():
            raise ProjectError(f"{firmware}: no weights {name}.txt or {name}.h")
        m = re.search(r"\{([^}]*)\}", h.read_text())
        if m is None:
            raise ProjectError(f"{h}: no initializer")
        text = m.group(1)
    return np.array([float(v) for v in text.replace("\n", ",").split(",") if v.strip()])


# -- the project ----------------------------------------------------------------------

class Project:
    def __init__(self, root: Path):
        self.root = root
        fw = root / "firmware"
        if not (fw / "parameters.h").is_file():
            raise ProjectError(f"{root}: no firmware/parameters.h")
        self.firmware = fw
        self.defines, self.typedefs = _defines(_strip_comments((fw / "defines.h").read_text()))
        params_text = _strip_comments((fw / "parameters.h").read_text())
        self.configs = _structs(params_text)
        # parameters.h of some versions holds its typedefs too
        self.typedefs.update(_defines(params_text)[1])
        top = fw / "myproject.cpp"
        if not top.is_file():
            found = sorted(fw.glob("*.cpp"))
            if not found:
                raise ProjectError(f"{fw}: no top-level .cpp")
            top = found[0]
        # block comments and commented-out lines go; a call's trailing // comment names it
        body = _synthesized(re.sub(r"/\*.*?\*/", "", top.read_text(), flags=re.S))
        self.calls = _calls("\n".join(line for line in body.splitlines()
                                      if not line.lstrip().startswith("//")))
        self.io_stream = "hls::stream" in top.read_text()

    def value(self, config: Config, key: str, default: int | None = None) -> int:
        names = {**self.defines, **config.values}
        if key not in config.values:
            if default is None:
                raise ProjectError(f"{config.name}: no {key}")
            return default
        v = _eval(config.values[key], names)
        if v is None:
            raise ProjectError(f"{config.name}: cannot evaluate {key} = {config.values[key]!r}")
        return v

    def type_of(self, name: str, depth: int = 0) -> FixedType:
        """A C++ type name (a typedef of defines.h, nnet::array<T, N> taken as T, or a
        literal ap_fixed) as a FixedType."""
        name = name.strip()
        m = re.fullmatch(r"nnet::array<(.+),\s*[^,<>]+>", name)
        if m:
            return self.type_of(m.group(1), depth + 1)
        if name in self.typedefs and depth < 10:
            return self.type_of(self.typedefs[name], depth + 1)
        try:
            return FixedType.from_hls(name)
        except ValueError:
            raise ProjectError(f"{self.root}: type {name!r} is not an ap_fixed type") from None

    def config_type(self, config: Config, key: str, default: FixedType | None = None):
        if key in config.types:
            return self.type_of(config.types[key])
        if default is None:
            raise ProjectError(f"{config.name}: no {key}")
        return default


def _dense_strategy(c: Config) -> str:
    s = c.values.get("strategy", "nnet::latency").replace("nnet::", "")
    return {"latency": "latency", "resource": "resource",
            "resource_unrolled": "resource"}.get(s, s)


@dataclass
class Layer:
    name: str
    op: str
    inputs: list[str]
    output: str
    shape: list[int]                       # output, without batch, channels first
    types: dict[str, str] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    reuse: int | None = None
    strategy: str | None = None
    table_size: int | None = None


class Reader:
    """Builds the record's layers from a Project, tensor by tensor."""

    def __init__(self, p: Project):
        self.p = p
        self.shapes: dict[str, list[int]] = {}
        self.alias: dict[str, str] = {}
        self.layers: list[Layer] = []
        self.inputs: list[dict[str, Any]] = []
        self.last_output: str | None = None

    # tensors --------------------------------------------------------------------
    def src(self, name: str, shape: list[int], t: FixedType) -> str:
        """The tensor a call reads: known, aliased (a clone or a stream copy), a graph
        input, or an unnamed reshape of the previous layer's output (hls4ml leaves such
        names where an io_stream flatten was removed)."""
        name = self.alias.get(name, name)
        if name in self.shapes:
            have = self.shapes[name]
            if have != shape and int(np.prod(have)) == int(np.prod(shape)):
                return self.reshape(name, shape)
            if have != shape:
                raise ProjectError(f"tensor {name}: shape {have}, the reader wants {shape}")
            return name
        if self.layers or self.inputs:
            prev = self.last_output
            if prev is not None and int(np.prod(self.shapes[prev])) == int(np.prod(shape)) \
                    and not name.startswith("input"):
                return self.reshape(prev, shape)
        if self.layers:
            raise ProjectError(f"tensor {name} is read before anything writes it")
        self.shapes[name] = shape
        self.inputs.append({"name": name, "shape": shape, "type": t.hls()})
        return name

    def reshape(self, name: str, shape: list[int]) -> str:
        out = f"{name}_as_{'x'.join(map(str, shape))}"
        if out not in self.shapes:
            op = "FLATTEN" if len(shape) == 1 else "RESHAPE"
            attrs = {} if op == "FLATTEN" else {"shape": shape}
            t = self.type_of_tensor(name)
            self.add(Layer(out, op, [name], out, shape, {"result": t}, attrs))
        return out

    def type_of_tensor(self, name: str) -> str:
        for layer in self.layers:
            if layer.output == name:
                return layer.types["result"]
        for i in self.inputs:
            if i["name"] == name:
                return i["type"]
        raise ProjectError(f"tensor {name}: no type")

    def add(self, layer: Layer) -> None:
        self.shapes[layer.output] = layer.shape
        self.layers.append(layer)
        self.last_output = layer.output

    def raw(self, values: np.ndarray, t: FixedType) -> np.ndarray:
        return quantize(values, t)

    # layers ---------------------------------------------------------------------
    def read(self) -> None:
        for call in self.p.calls:
            handler = getattr(self, "_" + call.func, None)
            if handler is None:
                base = re.sub(r"_(cl|latency|resource|array|switch)$", "", call.func)
                handler = getattr(self, "_" + base, None)
            if handler is None:
                raise ProjectError(f"layer {call.name}: hls4ml function nnet::{call.func} is "
                                   "not one the reader knows")
            handler(call)

    def cfg(self, call: Call) -> Config:
        name = call.targs[-1]
        if name not in self.p.configs:
            raise ProjectError(f"layer {call.name}: no struct {name} in parameters.h")
        return self.p.configs[name]

    def out_type(self, call: Call, index: int = 1) -> FixedType:
        return self.p.type_of(call.targs[index])

    def _dense(self, call: Call) -> None:
        c = self.cfg(call)
        n_in, n_out = self.p.value(c, "n_in"), self.p.value(c, "n_out")
        x_t = self.p.type_of(call.targs[0])
        x = self.src(call.args[0], [n_in], x_t)
        w_t = self.p.config_type(c, "weight_t")
        b_t = self.p.config_type(c, "bias_t")
        w = self.raw(_weights(self.p.firmware, call.args[2]).reshape(n_in, n_out), w_t)
        b = self.raw(_weights(self.p.firmware, call.args[3]), b_t)
        self.add(Layer(call.name, "DENSE", [x], call.args[1], [n_out],
                       {"result": self.out_type(call).hls(), "weight": w_t.hls(),
                        "bias": b_t.hls(), "accum": self.p.config_type(c, "accum_t").hls()},
                       params={"weight": param_stats(w, 1), "bias": param_stats(b, 0)},
                       reuse=self.p.value(c, "reuse_factor", 1),
                       strategy=_dense_strategy(c)))

    def _conv(self, c: Config, x: str, out: str, out_t: FixedType,
              weights: str, bias: str | None, depthwise: bool, name: str) -> None:
        v = lambda k, d=None: self.p.value(c, k, d)               # noqa: E731
        one_d = "in_height" not in c.values
        chan = v("n_chan")
        filt = chan if depthwise else v("n_filt")
        kernel = [v("filt_width")] if one_d else [v("filt_height"), v("filt_width")]
        strides = [v("stride_width", 1)] if one_d else [v("stride_height", 1),
                                                          v("stride_width", 1)]
        if one_d:
            pads = [v("pad_left", 0), v("pad_right", 0)]
            spatial_out = [v("out_width")]
        else:
            pads = [v("pad_top", 0), v("pad_left", 0), v("pad_bottom", 0), v("pad_right", 0)]
            spatial_out = [v("out_height"), v("out_width")]
        w_t = self.p.config_type(c, "weight_t")
        b_t = self.p.config_type(c, "bias_t")
        kk = int(np.prod(kernel))
        w = _weights(self.p.firmware, weights)
        if w.size != kk * chan * (1 if depthwise else filt):
            raise ProjectError(f"layer {name}: {w.size} weights in {weights}, the config "
                               f"says {kk} x {chan} x {1 if depthwise else filt}")
        # hls4ml writes Keras' layout: (*kernel, C, F), depthwise (*kernel, C, 1)
        w = w.reshape(kk, chan, 1 if depthwise else filt)
        w = np.transpose(w, (1, 2, 0)) if depthwise else np.transpose(w, (2, 1, 0))
        w = self.raw(w.reshape([filt, 1 if depthwise else chan] + kernel), w_t)
        params = {"weight": param_stats(w, 0)}
        types = {"result": out_t.hls(), "weight": w_t.hls(),
                 "accum": self.p.config_type(c, "accum_t").hls()}
        inputs = [x]
        if bias is not None:
            b = self.raw(_weights(self.p.firmware, bias), b_t)
            params["bias"] = param_stats(b, 0)
            types["bias"] = b_t.hls()
        mult = self.p.configs.get(c.types.get("mult_config", ""))
        reuse = self.p.value(c, "reuse_factor", 1)
        strategy = _dense_strategy(mult or c)
        self.add(Layer(name, "CONV", inputs, out, [filt] + spatial_out, types,
                       {"kernel": kernel, "strides": strides, "pads": pads,
                        "groups": chan if depthwise else 1},
                       params, reuse, strategy))

    def _conv_input(self, call: Call, c: Config) -> str:
        v = lambda k: self.p.value(c, k)                          # noqa: E731
        shape = [v("n_chan"), v("in_width")] if "in_height" not in c.values else \
            [v("n_chan"), v("in_height"), v("in_width")]
        return self.src(call.args[0], shape, self.p.type_of(call.targs[0]))

    def _conv_layer(self, call: Call, depthwise: bool) -> None:
        c = self.cfg(call)
        x = self._conv_input(call, c)
        self._conv(c, x, call.args[1], self.out_type(call), call.args[2],
                   call.args[3] if len(call.args) > 3 else None, depthwise, call.name)

    _conv_1d = _conv_2d = partialmethod(_conv_layer, depthwise=False)
    _pointwise_conv_1d = _pointwise_conv_2d = partialmethod(_conv_layer, depthwise=False)
    _depthwise_conv_1d = _depthwise_conv_2d = partialmethod(_conv_layer, depthwise=True)

    def _separable_conv_2d(self, call: Call) -> None:
        c = self.cfg(call)
        dw = self.p.configs[c.types["depthwise_config"]]
        pw = self.p.configs[c.types["pointwise_config"]]
        x = self._conv_input(call, dw)
        mid = f"{call.name}_depthwise_out"
        self._conv(dw, x, mid, self.p.type_of(call.targs[1]), call.args[2], None, True,
                   f"{call.name}_depthwise")
        self._conv(pw, mid, call.args[1], self.p.type_of(call.targs[2]), call.args[3],
                   call.args[5], False, f"{call.name}_pointwise")

    _separable_conv_1d = _separable_conv_2d

    def _normalize(self, call: Call) -> None:
        c = self.cfg(call)
        shape = self._elementwise_shape(call.args[0], self.p.value(c, "n_in"))
        x = self.src(call.args[0], shape, self.p.type_of(call.targs[0]))
        s_t = self.p.config_type(c, "scale_t")
        b_t = self.p.config_type(c, "bias_t")
        s = self.raw(_weights(self.p.firmware, call.args[2]), s_t)
        b = self.raw(_weights(self.p.firmware, call.args[3]), b_t)
        self.add(Layer(call.name, "BATCH_NORM", [x], call.args[1], shape,
                       {"result": self.out_type(call).hls(), "scale": s_t.hls(),
                        "shift": b_t.hls()},
                       params={"scale": param_stats(s, 0), "shift": param_stats(b, 0)},
                       reuse=self.p.value(c, "reuse_factor", 1)))

    def _elementwise_shape(self, name: str, n_in: int) -> list[int]:
        """The shape of the tensor an element-wise layer reads: the known one when it has
        n_in elements, else a vector."""
        name = self.alias.get(name, name)
        if name in self.shapes and int(np.prod(self.shapes[name])) == n_in:
            return self.shapes[name]
        return [n_in]

    def _activation(self, call: Call, op: str, attrs: dict | None = None,
                    table: bool = False) -> None:
        c = self.cfg(call)
        n_in = self.p.value(c, "n_in")
        shape = self._elementwise_shape(call.args[0], n_in)
        x = self.src(call.args[0], shape, self.p.type_of(call.targs[0]))
        types = {"result": self.out_type(call).hls()}
        layer = Layer(call.name, op, [x], call.args[-1], shape, types, attrs or {},
                      reuse=self.p.value(c, "reuse_factor", 1))
        if table:
            layer.table_size = self.p.value(c, "table_size", 1024)
            if op == "SOFTMAX":
                for key, role in (("exp_table_t", "table"), ("inv_table_t", "inv_table"),
                                  ("accum_t", "accum"), ("inv_inp_t", "inv_inp")):
                    if key in c.types:
                        types[role] = self.p.type_of(c.types[key]).hls()
            elif "table_t" in c.types:
                types["table"] = self.p.type_of(c.types["table_t"]).hls()
        self.add(layer)

    _relu = partialmethod(_activation, op="RELU")
    _sigmoid = partialmethod(_activation, op="SIGMOID", table=True)
    _tanh = partialmethod(_activation, op="TANH", table=True)

    def _softmax(self, call: Call) -> None:
        c = self.cfg(call)
        n_in = self.p.value(c, "n_in")
        shape = self._elementwise_shape(call.args[0], n_in)
        self._activation(call, "SOFTMAX", {"axes": [len(shape)]}, table=True)

    def _linear(self, call: Call) -> None:
        c = self.cfg(call)
        shape = self._elementwise_shape(call.args[0], self.p.value(c, "n_in"))
        x = self.src(call.args[0], shape, self.p.type_of(call.targs[0]))
        self.add(Layer(call.name, "IDENTITY", [x], call.args[-1], shape,
                       {"result": self.out_type(call).hls()}))

    def _pooling(self, call: Call, dims: int) -> None:
        c = self.cfg(call)
        v = lambda k, d=None: self.p.value(c, k, d)               # noqa: E731
        op = c.values.get("pool_op", "nnet::Max").split("::")[-1]
        chan = v("n_filt")
        if dims == 1:
            shape_in, kernel = [chan, v("n_in")], [v("pool_width")]
            strides, pads = [v("stride_width")], [v("pad_left", 0), v("pad_right", 0)]
            out = [chan, v("n_out")]
        else:
            shape_in = [chan, v("in_height"), v("in_width")]
            kernel = [v("pool_height"), v("pool_width")]
            strides = [v("stride_height"), v("stride_width")]
            pads = [v("pad_top", 0), v("pad_left", 0), v("pad_bottom", 0), v("pad_right", 0)]
            out = [chan, v("out_height"), v("out_width")]
        x = self.src(call.args[0], shape_in, self.p.type_of(call.targs[0]))
        types = {"result": self.out_type(call).hls()}
        if "accum_t" in c.types:
            types["accum"] = self.p.type_of(c.types["accum_t"]).hls()
        self.add(Layer(call.name, "MAX_POOL" if op == "Max" else "AVG_POOL", [x],
                       call.args[1], out, types,
                       {"kernel": kernel, "strides": strides, "pads": pads},
                       reuse=v("reuse_factor", 1)))

    _pooling1d = partialmethod(_pooling, dims=1)
    _pooling2d = partialmethod(_pooling, dims=2)

    def _global_pooling(self, call: Call, dims: int) -> None:
        c = self.cfg(call)
        v = lambda k, d=None: self.p.value(c, k, d)               # noqa: E731
        op = c.values.get("pool_op", "nnet::Max").split("::")[-1]
        chan = v("n_filt")
        shape_in = [chan, v("n_in")] if dims == 1 else [chan, v("in_height"), v("in_width")]
        x = self.src(call.args[0], shape_in, self.p.type_of(call.targs[0]))
        types = {"result": self.out_type(call).hls()}
        if "accum_t" in c.types:
            types["accum"] = self.p.type_of(c.types["accum_t"]).hls()
        self.add(Layer(call.name, "GLOBAL_MAX_POOL" if op == "Max" else "GLOBAL_AVG_POOL",
                       [x], call.args[1], [chan] + [1] * dims, types))

    _global_pooling1d = partialmethod(_global_pooling, dims=1)
    _global_pooling2d = partialmethod(_global_pooling, dims=2)

    def _zeropad(self, call: Call, dims: int) -> None:
        c = self.cfg(call)
        v = lambda k, d=0: self.p.value(c, k, d)                  # noqa: E731
        chan = v("n_chan")
        if dims == 1:
            shape_in, out = [chan, v("in_width")], [chan, v("out_width")]
            pads = [0, v("pad_left"), 0, v("pad_right")]
        else:
            shape_in = [chan, v("in_height"), v("in_width")]
            out = [chan, v("out_height"), v("out_width")]
            pads = [0, v("pad_top"), v("pad_left"), 0, v("pad_bottom"), v("pad_right")]
        x = self.src(call.args[0], shape_in, self.p.type_of(call.targs[0]))
        self.add(Layer(call.name, "PAD", [x], call.args[1], out,
                       {"result": self.out_type(call).hls()}, {"pads": pads, "value": 0.0}))

    _zeropad1d = partialmethod(_zeropad, dims=1)
    _zeropad2d = partialmethod(_zeropad, dims=2)

    def _resize_nearest(self, call: Call) -> None:
        c = self.cfg(call)
        v = lambda k: self.p.value(c, k)                          # noqa: E731
        chan = v("n_chan")
        x = self.src(call.args[0], [chan, v("height"), v("width")],
                     self.p.type_of(call.targs[0]))
        h, w, nh, nw = v("height"), v("width"), v("new_height"), v("new_width")
        index = [[i * h // nh for i in range(nh)], [i * w // nw for i in range(nw)]]
        out_t = self.p.type_of(call.targs[1]) if len(call.targs) > 2 else \
            self.p.type_of(call.targs[0])
        self.add(Layer(call.name, "RESIZE", [x], call.args[1], [chan, nh, nw],
                       {"result": out_t.hls()}, {"index": index}))

    def _merge(self, call: Call, op: str) -> None:
        a, b, out = call.args[:3]
        a, b = self.alias.get(a, a), self.alias.get(b, b)
        if a not in self.shapes or b not in self.shapes:
            raise ProjectError(f"layer {call.name}: reads a tensor nothing wrote")
        attrs = {}
        shape = list(self.shapes[a])
        if op == "CONCAT":
            # hls4ml concatenates channels last; fxq's channels come first
            attrs["axis"] = 1
            shape[0] = self.shapes[a][0] + self.shapes[b][0]
        self.add(Layer(call.name, op, [a, b], out, shape,
                       {"result": self.p.type_of(call.targs[2]).hls()}, attrs))

    _add = partialmethod(_merge, op="ADD")
    _multiply = partialmethod(_merge, op="MUL")
    _concatenate1d = _concatenate2d = _concatenate3d = partialmethod(_merge, op="CONCAT")

    def _clone_stream(self, call: Call) -> None:
        src = self.alias.get(call.args[0], call.args[0])
        for copy in call.args[1:]:
            self.alias[copy] = src

    def _repack_stream(self, call: Call) -> None:
        src = self.alias.get(call.args[0], call.args[0])
        self.alias[call.args[1]] = src


def read_project(root: Path) -> dict[str, Any]:
    """The record of the project at `root` (see the module note); ProjectError when it
    holds something the reader does not know."""
    p = Project(root)
    reader = Reader(p)
    reader.read()
    report = root / "myproject_prj" / "solution1" / "syn" / "report" / "myproject_csynth.rpt"
    if report.is_file():
        csynth = read_csynth(report)
    elif report.with_suffix(".xml").is_file():
        csynth = read_csynth_xml(report.with_suffix(".xml"))
    else:
        raise ProjectError(f"{root}: no C synthesis report")
    vsynth_path = root / "vivado_synth.rpt"
    strategies = {l.strategy for l in reader.layers if l.strategy}
    reuses = [l.reuse for l in reader.layers if l.op in ("DENSE", "CONV") and l.reuse]
    record = {
        "tool": csynth["tool"], "part": csynth["part"], "clock_ns": csynth["clock_ns"],
        "io_type": "io_stream" if p.io_stream else "io_parallel",
        "strategy": "resource" if strategies == {"resource"} else "latency",
        "reuse_factor": max(set(reuses), key=reuses.count) if reuses else 1,
        "csynth": csynth["figures"], "available": csynth["available"],
        "clock_estimated_ns": csynth["clock_estimated_ns"],
        "inputs": reader.inputs,
        "layers": [{k: v for k, v in vars(l).items() if v not in (None, {}, [])}
                   for l in reader.layers],
    }
    if vsynth_path.is_file():
        record["vsynth"] = read_vsynth(vsynth_path)
    return record


def dumps(records: list[dict[str, Any]]) -> str:
    """The data set as JSON, one layer per line (diffs stay readable)."""
    parts = []
    for r in records:
        head = [f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in r.items() if k != "layers"]
        layers = ",\n    ".join(json.dumps(l) for l in r["layers"])
        parts.append("{\n" + ",\n".join(head) + f",\n  \"layers\": [\n    {layers}\n  ]\n}}")
    return "[\n" + ",\n".join(parts) + "\n]\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("project", type=Path)
    ap.add_argument("--name", required=True)
    ap.add_argument("--source", required=True, help="where the project is published")
    ap.add_argument("--note", default="")
    ap.add_argument("--held-out", action="store_true")
    ap.add_argument("--add", type=Path, help="the data set to add the record to")
    args = ap.parse_args(argv)
    try:
        record = read_project(args.project)
    except ProjectError as exc:
        print(f"syntheses_import: {exc}", file=sys.stderr)
        return 1
    record = {"name": args.name, "source": args.source, "held_out": args.held_out,
              **({"note": args.note} if args.note else {}), **record}
    if args.add is None:
        print(dumps([record]))
        return 0
    records = json.loads(args.add.read_text()) if args.add.is_file() else []
    records = [r for r in records if r["name"] != args.name] + [record]
    args.add.write_text(dumps(records))
    print(f"{args.name}: {len(record['layers'])} layers -> {args.add}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
