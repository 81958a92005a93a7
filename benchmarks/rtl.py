"""`make bench`, the open RTL path (fxq rtl): the jet-tagger MLP (examples/heldout jet,
16-64-32-32-5 with softmax, 8-bit dynamic fixed point) and random Dense layers the LUT fit
never saw (seeds 1000 and up), each written through da4ml, mapped by Yosys and checked by
Verilator on 10,000 random inputs; Yosys' LUT/FF against fxq's estimate and da4ml's.
Then the fit's own data set (hw/rtl_layers.csv, benchmarks/rtl_fit.py) summarized.

    python benchmarks/rtl.py [--layers 8] [--heldout examples/heldout] [--no-jet]
"""
from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "examples"))

from random_layers import random_layer  # noqa: E402

import fxq  # noqa: E402
from fxq.cost import coefficients  # noqa: E402
from fxq.rtl import cost, write_rtl  # noqa: E402


def _row(name: str, q, samples: int) -> dict:
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        doc = write_rtl(q, os.path.join(tmp, "rtl"), samples=samples)
    y, e = doc["yosys"], doc["estimate"]
    return {"name": name, "lut": y["lut"], "ff": y["ff"], "carry": y["carry"],
            "est_lut": e["lut"], "est_ff": e["ff"], "da4ml_lut": doc["da4ml_lut"],
            "stages": doc["stages"], "equal": all(c["equal"] for c in doc["simulation"]),
            "samples": samples, "yosys_s": y["seconds"],
            "seconds": time.perf_counter() - start}


def _print(rows: list[dict]) -> None:
    print("| design | Yosys LUT | fxq est. | error | da4ml est. | error | Yosys FF | fxq est. "
          "| error | CARRY | stages | Verilator = fxq | Yosys s | total s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['name']} | {r['lut']} | {r['est_lut']} | {r['est_lut'] / r['lut'] - 1:+.1%} "
              f"| {r['da4ml_lut']} | {r['da4ml_lut'] / r['lut'] - 1:+.1%} | {r['ff']} | "
              f"{r['est_ff']} | {r['est_ff'] / max(r['ff'], 1) - 1:+.1%} | {r['carry']} | "
              f"{r['stages']} | {'yes' if r['equal'] else 'NO'} ({r['samples']} inputs) | "
              f"{r['yosys_s']:.0f} | {r['seconds']:.0f} |")


def summarize_dataset(path: str) -> None:
    c = coefficients()["rtl"]
    with open(path, encoding="utf-8") as f:
        rows = list(csv.DictReader(line for line in f if not line.startswith("#")))
    for label, held in (("held in", "False"), ("held out", "True")):
        rs = [r for r in rows if r["held_out"] == held]
        est = np.array([sum(c[f"lut_per_{k}"] * float(r[k]) for k in cost.FEATURES)
                        for r in rs])
        lut = np.array([float(r["yosys_lut"]) for r in rs])
        e = np.abs(est / lut - 1)
        e0 = np.abs(np.array([float(r["da4ml_lut"]) for r in rs]) / lut - 1)
        print(f"- {label}: {len(rs)} layers, fxq LUT error median {np.median(e):.1%}, max "
              f"{e.max():.1%}, {np.mean(e <= 0.15):.0%} within 15 %; da4ml's own cost "
              f"median {np.median(e0):.1%}, max {e0.max():.1%}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--heldout", default=os.path.join(ROOT, "examples", "heldout"))
    p.add_argument("--no-jet", action="store_true")
    args = p.parse_args(argv)
    print("\nopen RTL path (fxq rtl: da4ml Verilog, Yosys synth_xilinx for xcvu13p, "
          "Verilator against fxq's simulation)\n")
    rows = []
    if not args.no_jet:
        jet = os.path.join(args.heldout, "jet")
        graph = fxq.load(os.path.join(jet, "model.onnx"))
        q = fxq.quantize(graph, np.load(os.path.join(jet, "calib.npz"))["x"], 8)
        rows.append(_row("jet tagger 16-64-32-32-5, 8-bit", q, 10_000))
    for seed in range(1000, 1000 + args.layers):
        q, d = random_layer(seed)
        rows.append(_row(f"random {d['n_in']}x{d['n_out']} w{d['weight_bits']} "
                         f"a{d['act_bits']} {d['sparsity']:.0%} zeros", q, 10_000))
    _print(rows)
    layers = rows[0 if args.no_jet else 1:]
    if layers:
        e = np.array([abs(r["est_lut"] / r["lut"] - 1) for r in layers])
        print(f"\nrandom layers: fxq LUT error median {np.median(e):.1%}, max {e.max():.1%}, "
              f"{np.mean(e <= 0.15):.0%} within 15 %")
    print("\nthe fit's data set (hw/rtl_layers.csv, benchmarks/rtl_fit.py):")
    summarize_dataset(os.path.join(ROOT, "hw", "rtl_layers.csv"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
