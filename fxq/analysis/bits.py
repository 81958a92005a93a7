"""Bit widths per layer: one for all, weights and activations apart, per layer kind, per layer.

`BitConfig` answers "how many bits does this node's weight and output get" with the most
specific setting that applies: the layer by name, then its kind (conv, dense, ...), then the
global weight/activation widths. `load_config` reads the same from a TOML file:

    weight_bits = 8            # or bits = 8 for both
    act_bits = 8
    objective = "l1"           # or "l2"
    weight_rounding = "nearest"  # or "adaround" (fxq.analysis.adaround)
    rounding = "RND"           # of feature maps (results): any Rounding name
    overflow = "SAT"           # of feature maps: any Overflow name

    [kind.conv]
    weight_bits = 8
    [kind.dense]
    weight_bits = 4

    [layer."/0/Conv"]
    act_bits = 10
    accum_drop = 3             # a Dense/Conv accumulator 3 bits coarser than its exact
                               # products: each product truncated onto its grid (0: exact)
    [layer."input"]            # a graph input by name: its act_bits is the input's width
    act_bits = 12
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Mapping

from fxq.compress.config import KEYS as COMPRESS_KEYS   # [layer."name"] keys fxq.compress reads
from fxq.errors import FxqError
from fxq.fixed import MAX_WIDTH, Overflow, Rounding
from fxq.ir import Node
from fxq.op import KINDS          # every op names its kind when it is defined

OBJECTIVES = ("l1", "l2")
WEIGHT_ROUNDINGS = ("nearest", "adaround")
WIDTH_KEYS = ("weight_bits", "act_bits", "accum_drop")
ACCUMULATING_KINDS = ("dense", "conv")      # whose accumulators accum_drop coarsens


class ConfigError(FxqError):
    """A bit-width setting or configuration file is invalid."""


def check_bits(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_WIDTH:
        raise ConfigError(f"{what}: {value!r} is not a bit width (an integer 1..{MAX_WIDTH})")
    return value


@dataclass(frozen=True)
class Widths:
    """The bit widths of one node: its weights (and other parameters) and its output."""

    weight: int
    act: int
    accum_drop: int = 0      # low bits of the exact products a Dense/Conv accumulator drops


@dataclass(frozen=True)
class BitConfig:
    """Bit widths, the search objective, the result rounding and how Dense/Conv weights are
    rounded (nearest, or AdaRound's per-weight choice of the grid value below or above),
    from global to per layer.

    `class_scores`: the graph outputs are a classifier's scores, read by an argmax (task
    "classify"). They may then saturate their largest values when that lowers their error,
    like any inner tensor: a clipped top score changes the class only if the runner-up
    clips too. Otherwise (a regression output, an anomaly score, or unknown) each output
    holds its whole calibrated range."""

    weight_bits: int = 8
    act_bits: int = 8
    kinds: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    layers: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    objective: str = "l1"
    rounding: Rounding = Rounding.RND
    overflow: Overflow = Overflow.SAT
    weight_rounding: str = "nearest"
    class_scores: bool = False

    def __post_init__(self) -> None:
        check_bits(self.weight_bits, "weight bits")
        check_bits(self.act_bits, "activation bits")
        if self.objective not in OBJECTIVES:
            raise ConfigError(f"objective {self.objective!r}: expected one of {OBJECTIVES}")
        if self.weight_rounding not in WEIGHT_ROUNDINGS:
            raise ConfigError(f"weight rounding {self.weight_rounding!r}: expected one of "
                              f"{WEIGHT_ROUNDINGS}")
        for kind, widths in self.kinds.items():
            if kind not in KINDS:
                raise ConfigError(f"layer kind {kind!r}: expected one of {sorted(KINDS)}")
            _check_widths(widths, f"kind {kind!r}")
            if "accum_drop" in widths and kind not in ACCUMULATING_KINDS:
                raise ConfigError(f"kind {kind!r}: accum_drop applies to the accumulators of "
                                  f"{' and '.join(ACCUMULATING_KINDS)} layers only")
        for name, widths in self.layers.items():
            _check_widths(widths, f"layer {name!r}")
        object.__setattr__(self, "kinds", MappingProxyType(
            {k: MappingProxyType(dict(v)) for k, v in self.kinds.items()}))
        object.__setattr__(self, "layers", MappingProxyType(
            {k: MappingProxyType(dict(v)) for k, v in self.layers.items()}))

    @classmethod
    def of(cls, bits: int | None = None, weight_bits: int | None = None,
           act_bits: int | None = None, **rest: Any) -> "BitConfig":
        """`bits` for both, overridden by `weight_bits` / `act_bits` where given."""
        base = 8 if bits is None else check_bits(bits, "bits")
        return cls(weight_bits=base if weight_bits is None else weight_bits,
                   act_bits=base if act_bits is None else act_bits, **rest)

    def widths(self, node: Node) -> Widths:
        out = {"weight_bits": self.weight_bits, "act_bits": self.act_bits}
        out.update(self.kinds.get(node.op.kind, {}))
        out.update(self.layers.get(node.name, {}))
        return Widths(weight=out["weight_bits"], act=out["act_bits"],
                      accum_drop=out.get("accum_drop", 0))

    def input_width(self, name: str) -> int:
        """The width of graph input `name`: its own act_bits entry under `layers`, else
        act_bits."""
        return self.layers.get(name, {}).get("act_bits", self.act_bits)

    def check_layers(self, names: set[str]) -> None:
        """Refuse per-layer settings for layers the graph does not have."""
        unknown = sorted(set(self.layers) - names)
        if unknown:
            raise ConfigError(f"layer {unknown[0]!r} in the bit configuration is not a node "
                              f"of the graph (known: {', '.join(sorted(names)[:8])}...)")

    def with_overrides(self, **changes: Any) -> "BitConfig":
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


def _is_bit_count(value: Any) -> bool:
    """An integer 0..MAX_WIDTH (a number of bits, zero allowed: accum_drop)."""
    return not isinstance(value, bool) and isinstance(value, int) and 0 <= value <= MAX_WIDTH


def _check_widths(widths: Mapping[str, Any], where: str) -> None:
    for key, value in widths.items():
        if key not in WIDTH_KEYS:
            raise ConfigError(f"{where}: unknown key {key!r} (expected {', '.join(WIDTH_KEYS)})")
        if key == "accum_drop":
            if not _is_bit_count(value):
                raise ConfigError(f"{where} accum_drop: {value!r} is not a number of bits "
                                  f"(an integer 0..{MAX_WIDTH})")
            continue
        check_bits(value, f"{where} {key}")


TOP_KEYS = ("bits", "weight_bits", "act_bits", "objective", "weight_rounding", "rounding",
            "overflow", "kind", "layer", "transform",      # [[transform]]: read by fxq.transforms
            "compress")                                    # [compress]: read by fxq.compress



def load_config(path: str) -> BitConfig:
    """A BitConfig from a TOML file; every error names the file, the key and its line."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    text = raw.decode("utf-8", errors="replace")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None

    def fail(key: str, why: str) -> None:
        raise ConfigError(f"{path}:{_line_of(text, key)}: {key}: {why}")

    for key in data:
        if key not in TOP_KEYS:
            fail(key, f"unknown key (expected one of {', '.join(TOP_KEYS)})")
    def width(key: str, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or \
                not 1 <= value <= MAX_WIDTH:
            fail(key, f"{value!r} is not a bit width (an integer 1..{MAX_WIDTH})")

    def setting(key: str, value: Any) -> None:
        if key != "accum_drop":
            return width(key, value)
        if not _is_bit_count(value):
            fail(key, f"{value!r} is not a number of bits (an integer 0..{MAX_WIDTH})")

    for key in ("bits", "weight_bits", "act_bits"):
        if key in data:
            width(key, data[key])
    for key in ("kind", "layer"):
        if key in data and not isinstance(data[key], dict):
            fail(key, "expected a table, e.g. [kind.conv]")
        for name, widths in data.get(key, {}).items():
            if key == "kind" and name not in KINDS:
                fail(name, f"unknown layer kind (expected one of {', '.join(sorted(KINDS))})")
            if not isinstance(widths, dict):
                fail(name, "expected a table of weight_bits / act_bits")
            for k, v in widths.items():
                if key == "layer" and k in COMPRESS_KEYS:
                    continue
                if k not in WIDTH_KEYS:
                    fail(k, f"unknown key in [{key}.{name}] (expected "
                            f"{', '.join(WIDTH_KEYS)})")
                setting(k, v)
    if data.get("objective", "l1") not in OBJECTIVES:
        fail("objective", f"{data['objective']!r} is not one of {', '.join(OBJECTIVES)}")
    if data.get("weight_rounding", "nearest") not in WEIGHT_ROUNDINGS:
        fail("weight_rounding", f"{data['weight_rounding']!r} is not one of "
                                f"{', '.join(WEIGHT_ROUNDINGS)}")
    enums = {}
    for key, enum in (("rounding", Rounding), ("overflow", Overflow)):
        if key in data:
            try:
                enums[key] = enum[str(data[key]).upper().removeprefix("AP_")]
            except KeyError:
                fail(key, f"{data[key]!r} is not one of {', '.join(m.name for m in enum)}")
    return BitConfig.of(data.get("bits"), data.get("weight_bits"), data.get("act_bits"),
                        kinds=data.get("kind", {}),
                        layers={name: {k: v for k, v in widths.items() if k not in COMPRESS_KEYS}
                                for name, widths in data.get("layer", {}).items()},
                        objective=data.get("objective", "l1"),
                        weight_rounding=data.get("weight_rounding", "nearest"), **enums)


def _line_of(text: str, key: str) -> int:
    """1-based line where `key` first appears as a TOML key, else 1."""
    pattern = re.compile(rf'^\s*(\[.*{re.escape(key)}.*\]|"?{re.escape(key)}"?\s*=)')
    for number, line in enumerate(text.splitlines(), start=1):
        if pattern.search(line):
            return number
    return 1
