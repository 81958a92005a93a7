"""Fit the open RTL path's LUT estimate (fxq.rtl.cost) to Yosys, and measure it held out.

Random quantized Dense layers (examples/random_layers.py: 4-32 inputs, 2-16 outputs,
3-8-bit weights, 4-8-bit feature maps, 0-80 % zero weights, ReLU or not) are traced into
da4ml logic and mapped by Yosys synth_xilinx; every fourth seed is held out of the fit.
Writes hw/rtl_layers.csv (the data set) and prints the coefficients for hw/estimator.toml
[rtl] and the held-out errors of the fit and of da4ml's own cost.

    python benchmarks/rtl_fit.py [--layers 48] [--out hw/rtl_layers.csv]
"""
from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "examples"))

from random_layers import random_layer  # noqa: E402

from fxq.rtl import cost, design  # noqa: E402

HELD_OUT = 4           # every 4th seed is held out of the fit


def measure(seed: int, part: str) -> dict:
    q, desc = random_layer(seed)
    with tempfile.TemporaryDirectory() as tmp:
        d = design.build(q, os.path.join(tmp, "rtl"), part=part)
        f = cost.features(d.model._pipe)
        y = design.synthesize(d)
    return {**desc, **f, "da4ml_lut": d.info["da4ml_lut"], "reg_bits": d.info["da4ml_ff"],
            "yosys_lut": y["lut"], "yosys_ff": y["ff"], "yosys_carry": y["carry"],
            "held_out": seed % HELD_OUT == HELD_OUT - 1}


def fit(rows: list[dict]) -> dict[str, float]:
    """Weights of the features minimizing the squared *relative* error (each row divided
    by its count), non-negative; a feature no layer has keeps da4ml's own weight, 1."""
    from scipy.optimize import nnls

    a = np.array([[r[k] for k in cost.FEATURES] for r in rows], dtype=float)
    b = np.array([r["yosys_lut"] for r in rows], dtype=float)
    used = a.any(axis=0)
    x = np.ones(a.shape[1])
    rel = a / b[:, None]
    x[used], _ = nnls(rel[:, used], 1.0 - rel[:, ~used] @ x[~used])
    return {f"lut_per_{k}": float(x[i]) for i, k in enumerate(cost.FEATURES)}


def predict(coef: dict[str, float], row: dict) -> float:
    return sum(coef[f"lut_per_{k}"] * row[k] for k in cost.FEATURES)


def errors(rows, guess) -> np.ndarray:
    return np.array([guess(r) / r["yosys_lut"] - 1 for r in rows])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--layers", type=int, default=48)
    p.add_argument("--part", default="xcvu13p-flga2577-2-e")
    p.add_argument("--out", default=os.path.join(ROOT, "hw", "rtl_layers.csv"))
    args = p.parse_args(argv)
    rows = []
    for seed in range(args.layers):
        rows.append(measure(seed, args.part))
        r = rows[-1]
        print(f"layer {seed:3d}: {r['n_in']:2d}x{r['n_out']:2d} w{r['weight_bits']} "
              f"a{r['act_bits']} zeros {r['sparsity']:.0%}: Yosys {r['yosys_lut']} LUT "
              f"{r['yosys_ff']} FF, da4ml {r['da4ml_lut']}", flush=True)
    held_in = [r for r in rows if not r["held_out"]]
    held_out = [r for r in rows if r["held_out"]]
    coef = fit(held_in)
    for name, rs in (("held in", held_in), ("held out", held_out)):
        e = errors(rs, lambda r: predict(coef, r))
        e0 = errors(rs, lambda r: r["da4ml_lut"])
        ff = np.array([r["reg_bits"] / max(r["yosys_ff"], 1) - 1 for r in rs])
        print(f"{name} ({len(rs)} layers): fxq LUT error median {np.median(np.abs(e)):.1%}, "
              f"max {np.max(np.abs(e)):.1%}, {np.mean(np.abs(e) <= 0.15):.0%} within 15 %; "
              f"da4ml's cost median {np.median(np.abs(e0)):.1%}, "
              f"max {np.max(np.abs(e0)):.1%}; FF (register bits) median "
              f"{np.median(np.abs(ff)):.1%}, max {np.max(np.abs(ff)):.1%}")
    print("\n[rtl] coefficients for hw/estimator.toml:")
    for k, v in coef.items():
        print(f"{k} = {v:.4f}")
    with open(args.out, "w", newline="", encoding="utf-8") as f:
        f.write(f"# benchmarks/rtl_fit.py --layers {args.layers} --part {args.part}: random "
                "Dense layers through da4ml, mapped by Yosys synth_xilinx; held_out rows "
                "were kept out of the [rtl] fit\n")
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
