"""fxq's estimate against the published hls4ml syntheses of hw/syntheses.json (`make bench`).

For every design: latency, II, DSP and BRAM18 against its C synthesis report; LUT and FF
against Vivado logic synthesis where the project published it (what fxq's LUT and FF
figures predict) and, through hw/estimator.toml [csynth], against C synthesis. Then, for
the designs the coefficients were fitted on (held in) and those kept out (held out), the
median ratio estimate / published and the share of designs within 2x, per figure.

Usage: python benchmarks/syntheses.py [--designs a,b] [--held-out-only]
"""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "examples"))

from fxq.estimate import estimate  # noqa: E402
from syntheses import design, records  # noqa: E402

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
    q, target = design(r)
    e = estimate(q, target=target)
    got = {"latency": e.total.latency, "ii": e.total.ii, "dsp": e.total.dsp,
           "bram18": e.total.bram18, "lut": e.total.lut, "ff": e.total.ff,
           "csynth_lut": e.csynth()["lut"], "csynth_ff": e.csynth()["ff"]}
    pairs = {}
    for figure, (mine, report) in FIGURES.items():
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


def table(comparisons: list[Comparison]) -> str:
    cols = list(FIGURES)
    lines = ["| design | held | settings | " + " | ".join(cols) + " |",
             "|---|---|---|" + "---|" * len(cols)]
    for c in comparisons:
        cells = []
        for f in cols:
            if f in c.pairs:
                est, pub = c.pairs[f]
                cells.append(f"{est:,.0f} / {pub:,.0f}")
            else:
                cells.append("")
        lines.append(f"| {c.name} | {'out' if c.held_out else 'in'} | {c.settings} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


def summary_table(comparisons: list[Comparison]) -> str:
    lines = ["| designs | figure | n | median estimate/published | within 2x |",
             "|---|---|---|---|---|"]
    for label, chosen in (("held in", [c for c in comparisons if not c.held_out]),
                          ("held out", [c for c in comparisons if c.held_out])):
        for figure, s in summary(chosen).items():
            lines.append(f"| {label} | {figure} | {s['n']} | {s['median']:.2f} | "
                         f"{s['within_2x']:.0%} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--designs", help="comma-separated names")
    ap.add_argument("--held-out-only", action="store_true")
    args = ap.parse_args(argv)
    chosen = [r for r in records()
              if (not args.designs or r["name"] in args.designs.split(","))
              and (r["held_out"] or not args.held_out_only)]
    comparisons = [compare(r) for r in chosen]
    print(f"\nestimate / published, {len(comparisons)} hls4ml designs of hw/syntheses.json "
          "(lut, ff: Vivado logic synthesis; lut_c, ff_c: C synthesis; the rest: C synthesis)")
    print(table(comparisons))
    print()
    print(summary_table(comparisons))


if __name__ == "__main__":
    main()
