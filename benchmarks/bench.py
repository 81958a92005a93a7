"""`make bench`: throughput of fxq's bit-accurate simulation against hls4ml's C simulation of
the same emitted project and onnxruntime float, per zoo model, measured in the same run.

Usage: python benchmarks/bench.py [--zoo DIR] [--samples N] [--models a,b]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "examples"))

import onnxruntime as ort  # noqa: E402

import fxq  # noqa: E402
from fxq.fixed import FixedType  # noqa: E402
from fxq.hls.emit import HlsSettings, build_model_graph, prepare_dir  # noqa: E402
from fxq.hls.layout import to_hls  # noqa: E402
from fxq.hls.verify import compile_cached, hls_inputs  # noqa: E402
from fxq.quantized import uniform  # noqa: E402
from zoo import ZOO  # noqa: E402


def rate(fn, samples: int, min_seconds: float = 1.0) -> float:
    """Samples per second of fn() over `samples` inputs, best of repeated runs."""
    fn()                                   # warm up (tables, BLAS, caches)
    best, spent = float("inf"), 0.0
    while spent < min_seconds:
        start = time.perf_counter()
        fn()
        elapsed = time.perf_counter() - start
        best, spent = min(best, elapsed), spent + elapsed
    return samples / best


def bench_model(name: str, zoo: str, samples: int, workdir: str) -> dict:
    path = os.path.join(zoo, name, "model.onnx")
    graph = fxq.load(path)
    x = np.load(os.path.join(zoo, name, "test.npz"))["x"]
    x = np.concatenate([x] * (samples // len(x) + 1))[:samples]
    q = uniform(graph, data=FixedType(16, 10), weight=FixedType(16, 12))

    fxq_rate = rate(lambda: q.simulate(x), samples)

    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    x32 = x.astype(np.float32)
    ort_rate = rate(lambda: session.run(None, {"x": x32}), samples)

    settings = HlsSettings()
    out = os.path.join(workdir, name)
    model, e = build_model_graph(q, out, settings, trace=False)
    prepare_dir(out, overwrite=True)
    start = time.perf_counter()
    compile_cached(model)
    compile_s = time.perf_counter() - start
    (xin,) = hls_inputs(q, e, q.quantize_inputs(x))
    csim_rate = rate(lambda: model.predict(xin), samples, min_seconds=0.5)
    agree = np.array_equal(np.asarray(model.predict(xin)).reshape(samples, -1),
                           to_hls(q.simulate(x), e.order_of[graph.outputs[0]]))
    return {"model": name, "fxq": fxq_rate, "csim": csim_rate, "ort": ort_rate,
            "compile_s": compile_s, "bit_exact": agree}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zoo", default=os.path.join(ROOT, "examples", "zoo"))
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--models", default=",".join(ZOO))
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        for name in args.models.split(","):
            rows.append(bench_model(name, args.zoo, args.samples, workdir))
            r = rows[-1]
            print(f"{r['model']:8s} done", file=sys.stderr)
    print(f"\nthroughput, samples/s ({args.samples} samples, 16-bit types, io_parallel)\n")
    header = ("model", "fxq simulate", "hls4ml csim", "onnxruntime", "fxq/csim", "fxq/ort",
              "csim build s", "bit-exact")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for r in rows:
        print(f"| {r['model']} | {r['fxq']:,.0f} | {r['csim']:,.0f} | {r['ort']:,.0f} | "
              f"{r['fxq'] / r['csim']:.0f}x | {r['fxq'] / r['ort']:.2f}x | "
              f"{r['compile_s']:.1f} | {'yes' if r['bit_exact'] else 'NO'} |")
    return 0 if all(r["bit_exact"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
