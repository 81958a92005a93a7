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
    dsp_units: int = 0        # of those, the ones in DSP slices (HLS's `mul` operations)
    zeros: int = 0            # zero weights
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
                   product_bits=x_t.width + w_t.width, zeros=int(np.sum(w == 0)))
    if not constant:
        n = w.size
        out.units = n
        if x_t.width + w_t.width > c["dsp_product_bits"]:
            out.dsp, out.uses_dsp = n * dsps_for(x_t.width, w_t.width, device), True
            out.dsp_units = n
        else:
            out.lut = n * x_t.width * w_t.width * c["lut_per_partial_product_bit"]
        return out
    magnitudes, counts = np.unique(np.abs(w[w != 0]), return_counts=True)
    for m, n in zip(magnitudes.tolist(), counts.tolist()):
        if m & (m - 1) == 0:
            continue                                    # a power of two: a shift
        bits = m.bit_length() + 1                       # the constant with its sign
        out.units += n
        digits = csd_digits(m)
        # a wide product goes to a DSP slice unless its constant has so few non-zero
        # digits that shifts and adds are cheaper
        if x_t.width + bits > c["dsp_product_bits"] and digits > c["lut_max_digits"]:
            out.dsp += n * dsps_for(x_t.width, bits, device)
            out.dsp_units += n
            out.uses_dsp = True
        else:
            out.lut += n * (digits - 1) * (x_t.width + bits) * c["lut_per_adder_bit"]
    return out


# -- per layer ------------------------------------------------------------------------

def elements(shape) -> int:
    return int(np.prod(shape, dtype=np.int64))


def tree_levels(fan_in: int) -> int:
    """Adder levels of a balanced tree summing `fan_in` terms."""
    return max(0, math.ceil(math.log2(max(int(fan_in), 1))))


# -- the clock: how much logic HLS chains into one cycle -------------------------------

def usable_ns(clock_ns: float) -> float:
    """The part of a clock period HLS schedules logic into (the rest is its default
    clock uncertainty, 12.5 %)."""
    return clock_ns * (1 - coefficients()["clock"]["uncertainty"])


def delay_scale(family: str) -> float:
    """How much slower a part's logic is than UltraScale+'s, by generation (the delays of
    hw/estimator.toml [clock] are UltraScale+ figures)."""
    c = coefficients()["clock"]
    if "UltraScale+" in family:
        return 1.0
    return c["scale_ultrascale"] if "UltraScale" in family else c["scale_7series"]


def add_ns(width: int, scale: float = 1.0) -> float:
    """HLS's delay estimate of one carry-chain adder of `width` bits."""
    c = coefficients()["clock"]
    return (c["add_ns"] + c["add_ns_per_bit"] * width) * scale


def cycles_for(path_ns: float, clock_ns: float) -> int:
    """Registers HLS puts into a chain of operations of `path_ns` in all: none while it
    fits in one cycle (the layer's function then has latency 0 and chains into its
    neighbours), one more per further cycle."""
    return max(math.ceil(path_ns / usable_ns(clock_ns) - 1e-9) - 1, 0)


@dataclass(frozen=True)
class Pipeline:
    cycles: int           # registers along the path (the layer's latency at R = 1)
    ff: int               # flip-flops of those registers


def sum_pipeline(terms: np.ndarray, width: int, first_ns: float, step_ns: float,
                 clock_ns: float, first_in_dsp: bool, product_bits: int) -> Pipeline:
    """A product stage of `first_ns`, then one balanced adder tree per output summing
    `terms[o]` values of `width` bits, each level `step_ns`, scheduled as HLS does: as
    soon as possible, each operation in the current cycle if it still fits there, else in
    the next one. Each cut between cycles registers the values live across it: the
    products of `product_bits` (a product longer than a cycle is cut too) or the partial
    sums of the level the tree has reached; none where a DSP product that fits in the
    cycle and its first addition (the slice's post-adder) end: the slice's own output
    register holds them."""
    terms = np.asarray(terms, dtype=np.int64)
    usable = usable_ns(clock_ns)
    cycles = cycles_for(first_ns, clock_ns)
    now, ff = first_ns - cycles * usable, cycles * int(terms.sum()) * product_bits
    first_in_dsp = first_in_dsp and not cycles
    for level in range(tree_levels(int(terms.max(initial=1)))):
        if now + step_ns > usable + 1e-9:
            cycles += 1
            if not (first_in_dsp and level <= 1):
                ff += int(np.ceil(terms / 2 ** level).sum()) * (product_bits if level == 0
                                                                else width)
            now = 0.0
        now += step_ns
    return Pipeline(cycles, ff)


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
