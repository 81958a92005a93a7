"""`make bench`, compression: every method of fxq.compress on the example models, one table
per method, figures on the held-out test set.

Columns: parameters and nonzero weights of the Dense/Conv layers, MACs with a nonzero weight
(against the dense MACs), Deep Compression storage (Huffman-coded, float32 values) against
float32 dense, the estimate's DSPs at uniform 16 bits, reuse 1 (uncompressed -> compressed),
top-1: float -> compressed float -> compressed at 8-bit dynamic fixed point, the 8-bit
design's mismatches against hls4ml's C simulation (every traced layer and the outputs, on
CSIM_SAMPLES test samples; designs of at most CSIM_MAX_PARAMS weights), and the
compression's time.
Usage: python benchmarks/compression.py [--models a,b] [--methods share,ttq] [--no-csim]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import fxq  # noqa: E402
from fxq.analysis import quantize  # noqa: E402
from fxq.hls import verify  # noqa: E402

CSIM_SAMPLES = 32
CSIM_MAX_PARAMS = 20000   # larger designs (the LeNets) take minutes of g++ per method: not
                          # C-simulated here (tests/test_compress.py covers the method kinds)

MODELS = (("zoo", "mlp"), ("zoo", "cnn_bn"), ("zoo", "resnet"), ("zoo", "dwsep"),
          ("zoo", "conv1d"), ("heldout", "jet"), ("heldout", "mlp_s1"),
          ("heldout", "resnet_bn"), ("heldout", "mbv2"), ("lenet", "lenet300"),
          ("lenet", "lenet5"))
METHODS = (("prune 0.5", dict(prune=0.5)), ("prune 0.7", dict(prune=0.7)),
           ("prune 0.7 (uniform)", dict(prune=0.7, allocation="uniform")),
           ("channels: 50 % of the MACs removed", dict(prune=0.5, prune_structure="channel")),
           ("Deep Compression: prune 0.8, share 16", dict(prune=0.8, share=16)),
           ("Deep Compression: prune 0.9, share 16", dict(prune=0.9, share=16)),
           ("share 16", dict(share=16)), ("ternary", dict(weights="ternary")),
           ("ternary, a scale per sign (ttq)", dict(weights="ttq")),
           ("binary", dict(weights="binary")), ("pow2", dict(weights="pow2")),
           ("low rank, svd_energy 0.99", dict(svd_energy=0.99)),
           ("low rank, half the weights (rank_params 0.5)", dict(rank_params=0.5)))


def _dsp(graph, x) -> int:
    q = quantize(graph, x, bits=16)
    return int(fxq.compile(q.graph, x, config=fxq.BitConfig.of(16), equalize="off",
                           bias_correction=False, allow_overfit=True)
               .estimate.to_json()["total"]["dsp"])


def _mismatches(q, x, where: str) -> str:
    """Mismatching values (layers and outputs) of the design against its C simulation."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="fxq-bench-") as tmp:
        r = verify(q, os.path.join(tmp, where), x[:CSIM_SAMPLES])
    return str(r.mismatches + sum(layer.mismatches for layer in r.layers))


def print_compression(examples: str, models=MODELS, csim: bool = True,
                      methods=METHODS) -> None:
    loaded = []
    for folder, name in models:
        d = os.path.join(examples, folder, name)
        graph = fxq.load(os.path.join(d, "model.onnx"))
        calib, test = np.load(os.path.join(d, "calib.npz")), np.load(os.path.join(d, "test.npz"))
        loaded.append((name, graph, calib, test, _dsp(graph, calib["x"])))

    for title, settings in methods:
        print(f"\ncompression: {title} (post-training, calibration data only)\n")
        print("| model | params | nonzero | MACs nonzero/dense | storage x | DSP16 before -> "
              "after | top-1 float | compressed | compressed 8-bit | C sim mismatches | s |")
        print("|" + "|".join("---" for _ in range(11)) + "|")
        for name, graph, calib, test, dsp0 in loaded:
            def top1(y):
                return 100.0 * float(np.mean(np.asarray(y).argmax(axis=1) == test["y"]))
            methods = {k: v for k, v in settings.items() if k != "allocation"}
            start = time.perf_counter()
            out = fxq.compress(graph, calib["x"], allocation=settings.get(
                "allocation", "sensitivity"), **methods)
            seconds = time.perf_counter() - start
            s = out.after
            q8 = quantize(out.graph, calib["x"], bits=8, task="classify")
            mismatches = _mismatches(q8, test["x"], name) \
                if csim and s.total("params") <= CSIM_MAX_PARAMS else "-"
            print(f"| {name} | {s.total('params')} | {s.total('nonzeros')} | "
                  f"{s.total('nonzero_macs') / max(out.before.total('macs'), 1):.2f} | "
                  f"{out.before.total('dense_bits') / s.total('huffman_bits'):.1f} | {dsp0} -> {_dsp(out.graph, calib['x'])} | "
                  f"{top1(graph.run(test['x'])):.2f} | {top1(out.graph.run(test['x'])):.2f} | "
                  f"{top1(q8.simulate(test['x'])):.2f} | {mismatches} | {seconds:.1f} |")


COLUMN_MODELS = ("mlp", "jet", "mlp_s1", "lenet300")
COLUMN_REUSE = 4


def print_columns(examples: str, models=MODELS) -> None:
    """Column pruning aligned to reuse factor 4: DSPs of the resource strategy at 16 bits."""
    target = fxq.Target(strategy="resource", reuse_factor=COLUMN_REUSE)

    def dsp(graph, x) -> int:
        return int(fxq.compile(graph, x, config=fxq.BitConfig.of(16), target=target,
                               equalize="off", bias_correction=False, allow_overfit=True)
                   .estimate.to_json()["total"]["dsp"])

    print(f"\ncompression: column pruning at reuse factor {COLUMN_REUSE} (resource strategy, "
          "ResourceUnrolled; DSP estimate at 16 bits)\n")
    print("| model | prune | DSP before -> after | fewer | top-1 float | compressed | s |")
    print("|---|---|---|---|---|---|---|")
    for folder, name in models:
        if name not in COLUMN_MODELS:
            continue
        d = os.path.join(examples, folder, name)
        graph = fxq.load(os.path.join(d, "model.onnx"))
        calib, test = np.load(os.path.join(d, "calib.npz")), np.load(os.path.join(d, "test.npz"))

        def top1(g):
            return 100.0 * float(np.mean(np.asarray(g.run(test["x"])).argmax(axis=1)
                                         == test["y"]))
        before = dsp(graph, calib["x"])
        for s in (0.5, 0.6, 0.7):
            start = time.perf_counter()
            out = fxq.compress(graph, calib["x"], prune=s, prune_structure="column",
                               reuse_factor=COLUMN_REUSE)
            seconds = time.perf_counter() - start
            after = dsp(out.graph, calib["x"])
            print(f"| {name} | {s} | {before} -> {after} | {1 - after / before:.0%} | "
                  f"{top1(graph):.2f} | {top1(out.graph):.2f} | {seconds:.1f} |")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", default=os.path.join(ROOT, "examples"))
    parser.add_argument("--models", help="names among " + ",".join(n for _, n in MODELS))
    parser.add_argument("--no-csim", action="store_true", help="skip the C simulations")
    parser.add_argument("--methods", help="only the methods whose title contains one of these "
                        "comma-separated words (and no column-pruning table)")
    args = parser.parse_args(argv)
    models = MODELS if not args.models else \
        tuple(m for m in MODELS if m[1] in args.models.split(","))
    methods = METHODS if not args.methods else \
        tuple(m for m in METHODS if any(w in m[0] for w in args.methods.split(",")))
    print_compression(args.examples, models, csim=not args.no_csim, methods=methods)
    if not args.methods:
        print_columns(args.examples, models)
    return 0


if __name__ == "__main__":
    sys.exit(main())
