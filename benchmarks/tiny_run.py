"""One MLPerf Tiny model end to end in a process of its own, so its peak memory is its own:
compile (8 bits, fit to the part at 80 % where the estimate allows, varying the reuse
factors, strategy and io type; else written anyway),
simulate N samples with the native engine, verify a few samples against the C simulation,
and the task metric float vs fixed on the test set. Prints one JSON line.

    python benchmarks/tiny_run.py NAME TINY_DIR PART SAMPLES WORKDIR [CALIB_SAMPLES]
"""
from __future__ import annotations

import json
import os
import resource
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "examples"))

import fxq  # noqa: E402
from fxq.fit import FitError  # noqa: E402
from fxq.hls import verify  # noqa: E402
from fxq.task import quality  # noqa: E402
from tiny import TINY  # noqa: E402


def main() -> int:
    name, tiny_dir, part, samples, workdir = sys.argv[1:6]
    d = os.path.join(tiny_dir, name)
    calib = np.load(os.path.join(d, "calib.npz"))["x"]
    if len(sys.argv) > 6:                      # a larger calibration set: the set repeated
        n = int(sys.argv[6])
        calib = np.concatenate([calib] * -(-n // len(calib)))[:n]
    test = np.load(os.path.join(d, "test.npz"))
    io = TINY[name].io_type
    target = fxq.Target(io_type=io, part=part)
    config = fxq.analysis.BitConfig.of(8)
    model = os.path.join(d, "model_dynamo.onnx")
    start = time.perf_counter()
    try:
        result = fxq.compile(model, calib, config=config, target=target, fit=True,
                             max_util=0.8, fit_vary=("strategy", "io_type"))
        fit = f"fits ({result.target.strategy}, {result.target.io_type})"
    except FitError as exc:
        result = fxq.compile(model, calib, config=config, target=target, allow_overfit=True)
        fit = "refused: " + exc.need
    compile_s = time.perf_counter() - start
    q = result.q
    reps = -(-int(samples) // len(test["x"]))
    x = np.concatenate([test["x"]] * reps)[:int(samples)]
    q.simulate(x[:32], engine="native")                    # the build, not timed
    start = time.perf_counter()
    q.simulate(x, engine="native")
    simulate_s = time.perf_counter() - start
    start = time.perf_counter()
    v = verify(q, os.path.join(workdir, name), test["x"][:16], overwrite=True,
               target=result.target)
    verify_s = time.perf_counter() - start
    task = "anomaly" if name == "autoencoder" else "classify"
    y_float = fxq.load(model).run(test["x"])     # (q's graph holds corrected biases)
    scores = quality(task, test["x"], test["y"], y_float, q.simulate(test["x"]))
    util = result.estimate.utilization()
    print(json.dumps({
        "model": name, "io": io, "compile_s": compile_s, "simulate_s": simulate_s,
        "verify_s": verify_s, "bit_exact": v.ok, "compared": v.compared,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "metric": "AUC" if task == "anomaly" else "top-1", "float": scores["float"],
        "fixed": scores["fixed"], "fit": fit, "latency": result.estimate.total.latency,
        "util": {k: round(v_, 3) for k, v_ in util.items()}}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
