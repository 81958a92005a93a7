"""fxq's estimate of an RTL design's LUTs and FFs, before any synthesis.

The features are counted on the pipelined da4ml logic itself: da4ml's cost (its model of
carry-chain LUTs) of the adders, of the multiplexers (the sign-bit selects of max, ReLU-like
and saturation logic), of the variable-by-variable products and of the lookup tables, and
the pipeline's register bits. LUTs are a weighted sum of the four costs with the weights of
hw/estimator.toml [rtl], fitted by non-negative least squares to
Yosys `synth_xilinx` counts of random layers (benchmarks/rtl_fit.py, the data in
hw/rtl_layers.csv, where the fit and its held-out error are recorded); FFs are the register
bits. Yosys counts LUTs before Vivado's packing of two small LUTs into one LUT6; Vivado's
count is lower by that packing.
"""
from __future__ import annotations

from typing import Any

from fxq.cost import coefficients

# da4ml's own cost (about a LUT per bit of carry logic) of each kind of operation
KINDS = {0: "adders", 1: "adders", 4: "adders", 2: "muxes", 6: "muxes", 7: "products",
         8: "tables"}
FEATURES = ("adders", "muxes", "products", "tables")


def features(pipe) -> dict[str, float]:
    """da4ml's cost of the design's operations by kind, over every stage of a da4ml
    Pipeline (or one CombLogic): the quantities the LUT estimate weighs."""
    stages = getattr(pipe, "solutions", None) or [pipe]
    out = dict.fromkeys(FEATURES, 0.0)
    for comb in stages:
        for op in comb.ops:
            kind = KINDS.get(abs(op.opcode))
            if kind is not None:
                out[kind] += float(op.cost)
    return out


def register_bits(pipe) -> int:
    return int(getattr(pipe, "reg_bits", 0))


def estimate(pipe) -> dict[str, Any]:
    """{"lut", "ff", "features"}: fxq's estimate of the design Yosys maps."""
    c = coefficients()["rtl"]
    f = features(pipe)
    lut = sum(c[f"lut_per_{name}"] * value for name, value in f.items())
    return {"model": "fxq RTL estimate (hw/estimator.toml [rtl], fitted to Yosys)",
            "lut": int(round(lut)), "ff": register_bits(pipe), "features": f}
