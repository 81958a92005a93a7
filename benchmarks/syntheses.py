"""fxq's estimate against the published hls4ml syntheses of hw/syntheses.json (`make bench`).

For every design: latency, II, DSP and BRAM18 against its C synthesis report; LUT and FF
against Vivado logic synthesis where the project published it (what fxq's LUT and FF
figures predict) and, through hw/estimator.toml [csynth], against C synthesis. Then, for
the designs the coefficients were fitted on (held in) and those kept out (held out), the
median ratio estimate / published and the share of designs within 2x, per figure.

`--fit` refits the coefficients named in FITTED (hw/estimator.toml) on the held-in designs
only, by coordinate descent on the mean |log(estimate / published)| over every figure of
every held-in design (each ratio capped at 10x, so one design HLS could not build as asked
does not steer the rest), prints old and new values and both summaries; `--write` puts
the new values into hw/estimator.toml.

Usage: python benchmarks/syntheses.py [--designs a,b] [--held-out-only] [--fit [--write]]
"""
from __future__ import annotations

import argparse
import math
import os
import re
import sys
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "examples"))

from fxq.cost import COEFFICIENTS, coefficients  # noqa: E402
from published import (FIGURES, Comparison, compare, compare_built, design,  # noqa: E402
                       records, summary)


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


# the coefficients --fit moves: (section, key, integer?, (low, high)); the bounds keep
# each a physical quantity (an operation's delay on UltraScale+, a count per bit)
FITTED = (
    ("clock", "dsp_mult_ns", False, (1.0, 4.0)), ("clock", "lut_mult_ns", False, (0.5, 3.0)),
    ("clock", "add_ns", False, (0.2, 1.5)), ("clock", "add_ns_per_bit", False, (0.0, 0.1)),
    ("clock", "select_ns", False, (0.2, 1.0)),
    ("multiply", "dsp_product_bits", True, (16, 27)),
    ("multiply", "lut_max_digits", True, (1, 6)),
    ("multiply", "lut_per_adder_bit", False, (0.1, 2.0)),
    ("add", "lut_per_bit", False, (0.5, 2.0)), ("select", "lut_per_bit", False, (0.1, 2.0)), ("register", "ff_per_bit", False, (0.25, 2.0)),
    ("csynth", "lut_factor", False, (1.0, 3.0)), ("csynth", "ff_factor", False, (1.0, 3.0)),
    ("resource", "loop_cycles", True, (0, 20)), ("parallel", "call_cycles", False, (0.0, 2.0)),
    ("stream", "layer_ctrl_ff", False, (0, 2000)), ("stream", "layer_ctrl_lut", False, (0, 2000)),
    ("stream", "word_ff_per_bit", False, (0.0, 4.0)),
)
CAP = math.log(10.0)


def loss(comparisons: list[Comparison]) -> float:
    """Mean |log(estimate / published)| over every figure of every design, each capped."""
    terms = [min(abs(math.log(max(r, 1e-9))), CAP) for c in comparisons for f in FIGURES
             if (r := c.ratio(f)) is not None]
    return sum(terms) / max(len(terms), 1)


def fit(chosen: list[dict], rounds: int = 4) -> dict[tuple[str, str], float]:
    """Coordinate descent of FITTED on `chosen` (see the module note); the values found."""
    c = coefficients()                   # the cached table, moved in place while fitting
    designs = [(r, design(r)) for r in chosen]

    def current() -> float:
        return loss([compare_built(r, q, t) for r, (q, t) in designs])

    best = current()
    for _ in range(rounds):
        moved = False
        for section, key, integer, (low, high) in FITTED:
            start = c[section][key]
            steps = ([start + d for d in (-3, -2, -1, 1, 2, 3)] if integer else
                     [start * f for f in (0.5, 0.7, 0.85, 0.95, 1.05, 1.2, 1.4, 2.0)]
                     + ([] if start else [0.1 * high]))
            for value in steps:
                if not low <= value <= high:
                    continue
                c[section][key] = value
                trial = current()
                if trial < best - 1e-6:
                    best, start, moved = trial, value, True
            c[section][key] = start
        if not moved:
            break
    return {(section, key): c[section][key] for section, key, _, _ in FITTED}


def write(values: dict[tuple[str, str], float]) -> None:
    """The values into hw/estimator.toml, each in place (its comments kept)."""
    text = COEFFICIENTS.read_text()
    for (section, key), value in values.items():
        head = text.index(f"[{section}]")
        end = text.find("\n[", head + 1)
        end = len(text) if end < 0 else end
        spelled = str(int(value)) if float(value).is_integer() else f"{value:.4g}"
        body = re.sub(rf"(?m)^{key} = .*$", f"{key} = {spelled}", text[head:end], count=1)
        text = text[:head] + body + text[end:]
    COEFFICIENTS.write_text(text)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--designs", help="comma-separated names")
    ap.add_argument("--held-out-only", action="store_true")
    ap.add_argument("--fit", action="store_true", help="refit FITTED on the held-in designs")
    ap.add_argument("--write", action="store_true", help="with --fit: into hw/estimator.toml")
    args = ap.parse_args(argv)
    if args.fit:
        before = {(s, k): coefficients()[s][k] for s, k, _, _ in FITTED}
        values = fit([r for r in records() if not r["held_out"]])
        for key, value in values.items():
            print(f"{key[0]}.{key[1]}: {before[key]:.4g} -> {value:.4g}")
        if args.write:
            write(values)
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
