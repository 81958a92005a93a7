"""The estimator's vocabulary, apart from any op: a Cost, the calibrated coefficients, and
how products, adder trees and memories map to cycles and resources.

Cost rules (registered per op under fxq.ops.registry's "cost" stage, in fxq.estimate and
the op modules) build their figures from these; hw/estimator.toml holds the coefficients
and where each comes from.
"""
from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from fxq.devices import Device
from fxq.fixed import FixedType

COEFFICIENTS = Path(__file__).resolve().parent.parent / "hw" / "estimator.toml"


@lru_cache(maxsize=1)
def coefficients() -> dict[str, dict[str, float]]:
    with open(COEFFICIENTS, "rb") as f:
        return tomllib.load(f)


@dataclass
class Cost:
    """Cycles and resources of one layer (or a whole design)."""

    latency: int = 0          # cycles from first input to last output
    ii: int = 1               # cycles between successive inputs
    dsp: int = 0
    lut: int = 0
    ff: int = 0
    bram18: int = 0

    def whole(self) -> "Cost":
        """Every figure rounded up to a whole count."""
        return Cost(*(math.ceil(v) for v in (self.latency, self.ii, self.dsp, self.lut,
                                             self.ff, self.bram18)))

    def add_resources(self, other: "Cost") -> None:
        self.dsp += other.dsp
        self.lut += other.lut
        self.ff += other.ff
        self.bram18 += other.bram18


# -- multiplications ------------------------------------------------------------------

def csd_digits(v: int) -> int:
    """Non-zero digits of |v| in canonical signed digit form (non-adjacent form)."""
    v, digits = abs(int(v)), 0
    while v:
        if v & 1:
            digits += 1
            v -= 2 - (v & 3)            # +1 or -1 digit, leaving the rest even
        v >>= 1
    return digits


def dsps_for(a: int, b: int, device: Device) -> int:
    """DSP slices for an a x b bit product, in the better orientation on the ports."""
    pa, pb = device.dsp_a, device.dsp_b
    return min(math.ceil(a / pa) * math.ceil(b / pb), math.ceil(a / pb) * math.ceil(b / pa))


@dataclass
class Products:
    """The multiplications of a weight matrix (K inputs x O outputs) by inputs of a type."""

    dsp: int = 0              # DSP slices, all products together (before reuse)
    lut: float = 0.0          # LUTs of LUT-built products
    units: int = 0            # products that need a multiplier (not zero, not a shift)
    nonzero_per_output: np.ndarray = field(default_factory=lambda: np.zeros(0))
    uses_dsp: bool = False
    product_bits: int = 0


def products(w: np.ndarray, w_t: FixedType, x_t: FixedType, constant: bool,
             device: Device) -> Products:
    """Classify every product x * w[k, o]. `constant`: weights known at synthesis (the
    latency strategy), so zeros vanish, powers of two are shifts and narrow constants are
    shift-and-add logic; otherwise each product is a general multiplier of both widths."""
    c = coefficients()["multiply"]
    w = np.asarray(w, dtype=np.int64).reshape(-1, w.shape[-1])
    out = Products(nonzero_per_output=np.count_nonzero(w, axis=0),
                   product_bits=x_t.width + w_t.width)
    if not constant:
        n = w.size
        out.units = n
        if x_t.width + w_t.width > c["dsp_product_bits"]:
            out.dsp, out.uses_dsp = n * dsps_for(x_t.width, w_t.width, device), True
        else:
            out.lut = n * x_t.width * w_t.width * c["lut_per_partial_product_bit"]
        return out
    magnitudes, counts = np.unique(np.abs(w[w != 0]), return_counts=True)
    for m, n in zip(magnitudes.tolist(), counts.tolist()):
        if m & (m - 1) == 0:
            continue                                    # a power of two: a shift
        bits = m.bit_length() + 1                       # the constant with its sign
        out.units += n
        if x_t.width + bits > c["dsp_product_bits"]:
            out.dsp += n * dsps_for(x_t.width, bits, device)
            out.uses_dsp = True
        else:
            out.lut += n * (csd_digits(m) - 1) * (x_t.width + bits) * c["lut_per_adder_bit"]
    return out


# -- per layer ------------------------------------------------------------------------

def elements(shape) -> int:
    return int(np.prod(shape, dtype=np.int64))


def tree_cycles(fan_in: int) -> int:
    levels = max(0, math.ceil(math.log2(max(fan_in, 1))))
    return math.ceil(levels / coefficients()["add"]["levels_per_cycle"])


def memory(bits: float, ports: int = 1) -> tuple[int, int]:
    """(BRAM18, LUT) holding `bits`, read through `ports` independent ports."""
    m = coefficients()["memory"]
    if bits < m["bram_min_bits"]:
        return 0, math.ceil(bits * ports / m["lut_bits"])
    return math.ceil(ports / 2) * math.ceil(bits / m["bram18_bits"]), 0


@dataclass(frozen=True)
class Lanes:
    x: str              # the activation input
    steps: int          # sequential steps (pixels in io_stream, else 1)
    width: int          # result width
    out: int            # output elements per step
    inp: int            # input elements per step
