"""`fxq compile` wall time at 8 bits on every example model, each run a fresh process (as a
user runs it: interpreter start, imports, analysis, estimate, hls4ml project, report and
plots), with the bundled calibration data and its labels, `--allow-overfit` (the larger
models overfill the default part; the design is written all the same).

With `--baseline PATH`, the same runs of another fxq checkout (PATH put first on
PYTHONPATH; e.g. a `git worktree` of an older commit), alternated with this one's in the
same run, and the ratio of the medians. Runs are from a scratch directory, so the checkout
imported is the one named (tests hold no figure of this: the machine is shared and noisy).

Usage: python benchmarks/compile_time.py [--runs N] [--baseline PATH] [--models a,b]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SETS = ("zoo", "heldout", "lenet", "tiny")


def example_models(root: str = ROOT) -> list[str]:
    """Every example model directory that holds a model and calibration data."""
    found = []
    for kind in SETS:
        base = os.path.join(root, "examples", kind)
        if not os.path.isdir(base):
            continue
        for name in sorted(os.listdir(base)):
            d = os.path.join(base, name)
            if os.path.exists(os.path.join(d, "model.onnx")) and \
                    os.path.exists(os.path.join(d, "calib.npz")):
                found.append(d)
    return found


def compile_seconds(model_dir: str, out: str, checkout: str | None) -> float:
    """One `fxq compile` of model_dir into out, in a fresh interpreter importing fxq from
    `checkout` (None: this one)."""
    env = dict(os.environ)
    if checkout is not None:
        env["PYTHONPATH"] = checkout + os.pathsep + env.get("PYTHONPATH", "")
    code = ("import sys, fxq.cli; sys.exit(fxq.cli.main())")
    cmd = [sys.executable, "-c", code, "compile", os.path.join(model_dir, "model.onnx"),
           "--calib", os.path.join(model_dir, "calib.npz"), "-o", out, "--bits", "8",
           "--force", "--allow-overfit"]
    start = time.perf_counter()
    result = subprocess.run(cmd, cwd=os.path.dirname(out), env=env, capture_output=True,
                            text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise SystemExit(f"fxq compile of {model_dir} failed: {last}")
    return seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--baseline", help="another fxq checkout to time alongside")
    parser.add_argument("--models", help="comma-separated model names (default: all)")
    args = parser.parse_args(argv)
    models = example_models()
    if args.models:
        wanted = set(args.models.split(","))
        models = [m for m in models if os.path.basename(m) in wanted]
    checkouts = [("this", None)] + ([("baseline", os.path.abspath(args.baseline))]
                                    if args.baseline else [])
    print(f"\n`fxq compile` at 8 bits, wall seconds, median of {args.runs} fresh processes "
          "(min-max)" + (f"; baseline: {args.baseline}" if args.baseline else "") + "\n")
    header = ["model"] + [name for name, _ in checkouts] + \
        (["baseline / this"] if args.baseline else [])
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    with tempfile.TemporaryDirectory() as work:
        for model in models:
            times = {name: [] for name, _ in checkouts}
            for _ in range(args.runs):
                for name, checkout in checkouts:                  # alternated
                    out = os.path.join(work, f"{name}_{os.path.basename(model)}")
                    times[name].append(compile_seconds(model, out, checkout))
            cells = [f"{statistics.median(t):.2f} ({min(t):.2f}-{max(t):.2f})"
                     for t in times.values()]
            if args.baseline:
                cells.append(f"{statistics.median(times['baseline']) / statistics.median(times['this']):.2f}x")
            print(f"| {os.path.basename(model)} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
