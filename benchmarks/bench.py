"""`make bench`: per zoo model, in one run,

1. throughput of fxq's bit-accurate simulation (both engines: the generated C++ and the
   NumPy reference) against hls4ml's C simulation of the same emitted project and
   onnxruntime float, with 16-bit uniform types and with the 8-bit types the dynamic
   analysis chooses; and the default engine ("auto", its build cached) at 500 samples;
2. top-1 accuracy on the held-out test set of float, fxq dynamic fixed point at 16, 8 and 6
   bits (Qiu et al.'s greedy pass; "refined": then refined against the output), 4-bit
   weights with 8-bit feature maps (nearest, refined, AdaRound), fxq static at 8 bits, and
   hls4ml's uniform default ap_fixed<16,6> everywhere; on the zoo, on the networks kept out
   of the search's development (examples/heldout.py: other architectures, seeds and data,
   four of them random) and on the three MLPerf Tiny classifiers;
3. analysis time against depth, on generated deep MLPs of 1x, 2x and 4x the layers; the
   wall time of `fxq compile` at 8 bits on every example model (benchmarks/compile_time.py);
4. fxq's cycle/resource estimate against published synthesis results (the two designs of
   examples/published.py, then every design of hw/syntheses.json, held in and held out,
   benchmarks/syntheses.py); every compression
   method on the example models (benchmarks/compression.py); the open RTL path's Yosys
   counts against fxq's estimate, Verilator against fxq (benchmarks/rtl.py);
5. the MLPerf Tiny reference networks (examples/tiny.py, the dynamo export): the same
   throughputs as 1. at 8 bits (each in its io type), then end to end, each in a process
   of its own: compile, simulate and verify time, peak memory, the task metric
   float vs fixed, the estimate after --fit on xczu9eg, and --fit's outcome on xc7z020.

Usage: python benchmarks/bench.py [--zoo DIR] [--tiny DIR] [--samples N] [--models a,b]
                                  [--skip-csim]
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
from fxq.hls.emit import build_model_graph, prepare_dir  # noqa: E402
from fxq.target import Target  # noqa: E402
from fxq.hls.layout import to_hls  # noqa: E402
from fxq.hls.verify import compile_cached, hls_inputs  # noqa: E402
from fxq.analysis import quantize  # noqa: E402
from fxq.quantized import QuantizedGraph, uniform  # noqa: E402
from heldout import HELDOUT  # noqa: E402
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


TYPE_SETS = ("16-bit uniform", "8-bit dynamic")
DEFAULT_SAMPLES = 500             # the batch at which the default engine is compared


def bench_model(name: str, zoo: str, samples: int, workdir: str, types: str,
                model_file: str = "model.onnx", io_type: str = "io_parallel",
                csim_samples: int | None = None) -> dict:
    """One row: throughputs, ratios, build times and bit-exactness of one model. The C
    simulation runs on the first `csim_samples` (all when None) in `io_type`."""
    path = os.path.join(zoo, name, model_file)
    graph = fxq.load(path)
    x = np.load(os.path.join(zoo, name, "test.npz"))["x"]
    x = np.concatenate([x] * (samples // len(x) + 1))[:samples]
    calib = np.load(os.path.join(zoo, name, "calib.npz"))["x"]
    start = time.perf_counter()
    if types == "8-bit dynamic":
        q = quantize(graph, calib, bits=8, io_type=io_type)
    else:
        q = uniform(graph, data=FixedType(16, 10), weight=FixedType(16, 12), io_type=io_type)
    analysis_s = time.perf_counter() - start

    start = time.perf_counter()
    q.simulate(x[:1], engine="native")            # generate, compile (or load) the C++
    native_build_s = time.perf_counter() - start
    native_rate = rate(lambda: q.simulate(x, engine="native"), samples)
    numpy_rate = rate(lambda: q.simulate(x, engine="numpy"), samples)
    # the default engine ("auto") at 500 samples, its build cached, on a fresh object of the
    # same design (as a new session would load it), against the native engine at that size
    fresh = QuantizedGraph(q.graph, q.inputs, q.layers, q.io_type)
    small = x[:DEFAULT_SAMPLES]
    default_rate = rate(lambda: fresh.simulate(small), len(small))
    native_small = rate(lambda: q.simulate(small, engine="native"), len(small))

    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    x32 = x.astype(np.float32)
    feed = session.get_inputs()[0].name
    ort_rate = rate(lambda: session.run(None, {feed: x32}), samples)

    settings = Target(io_type=io_type)
    out = os.path.join(workdir, name + types.replace(" ", "_"))
    model, e = build_model_graph(q, out, settings, trace=False)
    prepare_dir(out, overwrite=True)
    start = time.perf_counter()
    compile_cached(model)
    compile_s = time.perf_counter() - start
    xc = x[:csim_samples] if csim_samples else x
    (xin,) = hls_inputs(q, e, q.quantize_inputs(xc))
    csim_rate = rate(lambda: model.predict(xin), len(xc), min_seconds=0.5)
    csim_y = np.asarray(model.predict(xin)).reshape(len(xc), -1)
    agree = all(np.array_equal(csim_y, to_hls(q.simulate(xc, engine=engine),
                                              e.order(graph.outputs[0])))
                for engine in ("native", "numpy"))
    return {"model": name, "native": native_rate, "numpy": numpy_rate, "csim": csim_rate,
            "default": default_rate, "native_small": native_small, "analysis_s": analysis_s,
            "io": io_type, "csim_samples": len(xc),
            "ort": ort_rate, "compile_s": compile_s, "native_build_s": native_build_s,
            "bit_exact": agree}


# "dynamic" is the default (bias correction on); "no bc" without it; "refined" with it
ACCURACY_SETTINGS = {"dynamic 16": dict(bits=16), "static 8": dict(bits=8, method="static"),
                     "dynamic 8": dict(bits=8),
                     "8 no bc": dict(bits=8, bias_correction=False),
                     "refined 8": dict(bits=8, refine=True), "dynamic 6": dict(bits=6),
                     "6 no bc": dict(bits=6, bias_correction=False),
                     "refined 6": dict(bits=6, refine=True),
                     "w4 a8": dict(weight_bits=4, act_bits=8),
                     "w4 a8 no bc": dict(weight_bits=4, act_bits=8, bias_correction=False),
                     "w4 a8 refined": dict(weight_bits=4, act_bits=8, refine=True),
                     "w4 a8 adaround": dict(weight_bits=4, act_bits=8,
                                            weight_rounding="adaround")}
TINY_CLASSIFIERS = ("resnet8", "ds_cnn", "mobilenet")     # (the autoencoder has no top-1)
HLS4ML_DEFAULT = FixedType(16, 10)          # ap_fixed<16,6>, hls4ml's model-wide default


def accuracy_row(name: str, zoo: str, held_out: bool | str = False) -> dict:
    graph = fxq.load(os.path.join(zoo, name, "model.onnx"))
    calib = np.load(os.path.join(zoo, name, "calib.npz"))["x"]
    test = np.load(os.path.join(zoo, name, "test.npz"))

    def top1(y):
        return 100.0 * float(np.mean(np.asarray(y).argmax(axis=1) == test["y"]))

    tag = {True: " (held out)", False: ""}.get(held_out, f" ({held_out})")
    row = {"model": name + tag,
           "float": top1(graph.run(test["x"]))}
    for label, kw in ACCURACY_SETTINGS.items():
        start = time.perf_counter()
        q = quantize(graph, calib, task="classify", **kw)
        row[label + " s"] = time.perf_counter() - start
        row[label] = top1(q.simulate(test["x"]))
    default = uniform(graph, data=HLS4ML_DEFAULT, weight=HLS4ML_DEFAULT, bias=HLS4ML_DEFAULT,
                      accum=HLS4ML_DEFAULT)
    row["hls4ml <16,6>"] = top1(default.simulate(test["x"]))
    return row


def depth_scaling(base_layers: int = 8, width: int = 64, samples: int = 256,
                  refine: bool = False) -> list[tuple]:
    """(dense layers, analysis seconds, seconds per layer) on generated ReLU MLPs."""
    from fxq.ir import Graph, Node, Op, Tensor

    rng = np.random.default_rng(0)
    rows = []
    for factor in (1, 2, 4):
        depth = base_layers * factor
        nodes, tensors, params, x = [], {"x": Tensor("x", (width,))}, {}, "x"
        for i in range(depth):
            params[f"w{i}"] = rng.normal(0, np.sqrt(2 / width), (width, width))
            params[f"b{i}"] = rng.normal(0, 0.05, width)
            nodes += [Node(f"dense{i}", Op.DENSE, (x, f"w{i}", f"b{i}"), (f"d{i}",)),
                      Node(f"relu{i}", Op.RELU, (f"d{i}",), (f"r{i}",))]
            tensors[f"d{i}"], tensors[f"r{i}"] = Tensor(f"d{i}", (width,)), Tensor(f"r{i}", (width,))
            x = f"r{i}"
        graph = Graph.build(f"mlp{depth}", ["x"], [x], nodes, tensors, params)
        calib = rng.normal(0, 1, (samples, width))
        start = time.perf_counter()
        quantize(graph, calib, bits=8, refine=refine)
        seconds = time.perf_counter() - start
        rows.append((depth, seconds, seconds / depth))
    return rows


def normalize_scaling(sizes=(100, 800, 3200)) -> list[tuple]:
    """(nodes, normalize seconds, rewrites, prune seconds, pruned layers) on generated
    chains of Conv -> BatchNorm -> Identity -> Add(constant) -> ReLU blocks: every pass of
    the pipeline finds work in every block; then the prune transform (sparsity 0.5) on the
    normalized graph changes every convolution."""
    from fxq.ir import Graph, Node, Op, Tensor
    from fxq.passes import PIPELINE, run_pipeline
    from fxq.transforms.prune import MagnitudePrune

    rng = np.random.default_rng(0)
    rows = []
    for size in sizes:
        nodes, tensors, params, x = [], {"x": Tensor("x", (4, 6, 6))}, {}, "x"
        for i in range(size // 5):
            params[f"w{i}"] = rng.normal(0, 0.3, (4, 4, 3, 3))
            params[f"s{i}"], params[f"t{i}"] = rng.normal(1, 0.1, 4), rng.normal(0, 0.1, 4)
            params[f"c{i}"] = rng.normal(0, 0.1, (4, 1, 1))
            names = [f"{k}{i}" for k in ("conv", "bn", "id", "add", "relu")]
            outs = [f"{k}{i}_out" for k in ("conv", "bn", "id", "add", "relu")]
            ins = [(x, f"w{i}"), (outs[0], f"s{i}", f"t{i}"), (outs[1],), (outs[2], f"c{i}"),
                   (outs[3],)]
            ops = [Op.CONV, Op.BATCH_NORM, Op.IDENTITY, Op.ADD, Op.RELU]
            attrs = [dict(strides=(1, 1), pads=(1, 1, 1, 1), groups=1), {}, {}, {}, {}]
            for name, op, i_, o, a in zip(names, ops, ins, outs, attrs):
                nodes.append(Node(name, op, i_, (o,), a))
                tensors[o] = Tensor(o, (4, 6, 6))
            x = outs[-1]
        graph = Graph.build(f"chain{size}", ["x"], [x], nodes, tensors, params)
        start = time.perf_counter()
        normal, changes = run_pipeline(graph, PIPELINE)
        seconds = time.perf_counter() - start
        start = time.perf_counter()
        _, pruned = run_pipeline(normal, [MagnitudePrune(0.5)])
        rows.append((len(graph.nodes), seconds, len(changes), time.perf_counter() - start,
                     len(pruned)))
    return rows


def print_accuracy(rows: list[dict]) -> None:
    labels = list(ACCURACY_SETTINGS)
    print("\ntop-1 accuracy on the held-out test set, % (analysis seconds in brackets)\n")
    header = ["model", "float"] + labels + ["hls4ml <16,6>", "dynamic 8 - float"]
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for r in rows:
        cells = [r["model"], f"{r['float']:.2f}"]
        cells += [f"{r[k]:.2f} ({r[k + ' s']:.2f})" for k in labels]
        cells += [f"{r['hls4ml <16,6>']:.2f}", f"{r['dynamic 8'] - r['float']:+.2f}"]
        print("| " + " | ".join(cells) + " |")


EQUALIZE_MODELS = (("jet", "heldout"), ("dwsep", "zoo"), ("ds_cnn", "tiny"))


def print_equalization(dirs: dict[str, str]) -> None:
    """Cross-layer equalization on models whose channels were spread: every pair's channels
    rescaled by 2^-3..2^3 (the float function unchanged, as BatchNorm folding leaves real
    networks), 8 and 6 bits, without and with equalization."""
    from fxq.ir import Op
    from fxq.transforms.equalize import equalize, pairs, scale_channels

    print("\ncross-layer equalization: top-1 %, held-out test set; 'spread': every "
          "equalizable pair's channels rescaled by 2^-3..2^3 (seed 0), the same float "
          "function\n")
    print("| model | float | 8 as trained | 8 spread | 8 spread + equalized | 6 as trained | "
          "6 spread | 6 spread + equalized |\n|---|---|---|---|---|---|---|---|")
    for name, where in EQUALIZE_MODELS:
        d = os.path.join(dirs[where], name)
        graph = fxq.load(os.path.join(d, "model.onnx"))
        calib = np.load(os.path.join(d, "calib.npz"))["x"]
        test = np.load(os.path.join(d, "test.npz"))
        rng, params = np.random.default_rng(0), dict(graph.params)
        for pair in pairs(graph):
            w = params[dict(graph.param_inputs(pair.producer))["weight"]]
            channels = w.shape[1] if pair.producer.op is Op.DENSE else w.shape[0]
            scale_channels(graph, pair, rng.integers(-3, 4, channels), params)
        spread = graph.rebuild(graph.nodes, params=params)
        balanced = equalize(spread)[0]

        def top1(y):
            return 100.0 * float(np.mean(np.asarray(y).argmax(axis=1) == test["y"]))

        cells = [name, f"{top1(graph.run(test['x'])):.2f}"]
        for bits in (8, 6):
            cells += [f"{top1(quantize(g, calib, bits=bits, task='classify').simulate(test['x'])):.2f}"
                      for g in (graph, spread, balanced)]
        print("| " + " | ".join(cells) + " |")


BUDGET_MODELS = ("jet", "mlp", "mlp_s1", "cnn_bn", "resnet_bn")
BUDGET_POINTS = 0.5


def print_budget(models: list[tuple[str, str]]) -> None:
    """fxq.analysis.budget at --budget 0.5 --minimize ebops from uniform 8 bits: the cost
    against uniform 8-bit's, top-1 on the calibration data the search sees and on the
    held-out test set; then the same search without pruning (widths and accumulators)."""
    from fxq.analysis.budget import budget_search

    print(f"\nper-layer widths under a budget ({BUDGET_POINTS} top-1 points on the calibration "
          "data and its boundary probes, least EBOPs = LUT + 55 x DSP of the estimate, from "
          "uniform 8 bits)\n")
    print("| model | search s | designs | EBOPs 8-bit | EBOPs budget | ratio | calib float | "
          "calib budget | test float | test 8-bit | test budget | budget - float | "
          "no prune: ratio | no prune: test - float |")
    print("|" + "|".join("---" for _ in range(14)) + "|")
    for name, zoo in models:
        graph = fxq.load(os.path.join(zoo, name, "model.onnx"))
        calib = np.load(os.path.join(zoo, name, "calib.npz"))
        test = np.load(os.path.join(zoo, name, "test.npz"))

        def top1(y):
            return 100.0 * float(np.mean(np.asarray(y).argmax(axis=1) == test["y"]))
        start = time.perf_counter()
        b = budget_search(graph, calib["x"], labels=calib["y"], points=BUDGET_POINTS)
        seconds = time.perf_counter() - start
        uniform = quantize(graph, calib["x"], bits=8, task="classify")
        f, u, got = top1(graph.run(test["x"])), top1(uniform.simulate(test["x"])), \
            top1(b.result.q.simulate(test["x"]))
        widths = budget_search(graph, calib["x"], labels=calib["y"], points=BUDGET_POINTS,
                               prune=False)          # --no-budget-prune
        print(f"| {name} | {seconds:.0f} | {b.evaluations} | {b.start.cost:.0f} | "
              f"{b.chosen.cost:.0f} | {b.chosen.cost / b.start.cost:.2f} | "
              f"{b.float_accuracy:.2f} | {b.chosen.accuracy:.2f} | {f:.2f} | {u:.2f} | "
              f"{got:.2f} | {got - f:+.2f} | {widths.chosen.cost / widths.start.cost:.2f} | "
              f"{top1(widths.result.q.simulate(test['x'])) - f:+.2f} |")


def print_estimator_comparison() -> None:
    from fxq.estimate import estimate
    from published import FC16X5, JET_TAGGER, fc16x5, jet_tagger

    for design, build, init in ((FC16X5, fc16x5, "Glorot-uniform"),
                                (JET_TAGGER, jet_tagger, "LeCun-uniform")):
        runs = [estimate(build(seed), io_type=design["io_type"], part=design["part"]).total
                for seed in range(5)]
        print(f"\nestimate against published synthesis: {design['design']}")
        print(f"(fxq: mean over 5 {init} weight draws, the published weights being unknown; "
              "error of the mean)\n")
        print("| figure | fxq estimate | HLS C synthesis | error | Vivado logic synthesis "
              "| error |")
        print("|---|---|---|---|---|---|")
        for key in ("latency", "ii", "dsp", "lut", "ff", "bram18"):
            ours = float(np.mean([getattr(r, key) for r in runs]))
            spread = f"{min(getattr(r, key) for r in runs)}-{max(getattr(r, key) for r in runs)}"
            cells = [f"{ours:.0f} ({spread})"]
            for source in ("csynth", "vsynth"):
                ref = design[source].get(key)
                if ref is None:
                    cells += ["", ""]
                else:
                    err = f"{(ours - ref) / ref:+.0%}" if ref else ("exact" if ours == 0 else "")
                    cells += [str(ref), err]
            print(f"| {key} | " + " | ".join(cells) + " |")


def print_tiny(tiny_dir: str, samples: int, workdir: str) -> None:
    """Section 5: one subprocess per model (benchmarks/tiny_run.py), then the fit on the
    small part in this process."""
    import json
    import subprocess

    from fxq.fit import FitError, fit
    from tiny import TINY

    print(f"\nMLPerf Tiny reference networks, dynamo export, 8 bits, on xczu9eg (--fit "
          f"--fit-vary strategy --fit-vary io_type --max-util 0.8); simulate: {samples} "
          "samples, native; verify: 16 samples, g++ build included\n")
    print("| model | io | compile s | simulate s | verify s | peak MB | metric | float | "
          "fixed | bit-exact | fit | latency | LUT | FF | BRAM18 | DSP |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name in TINY:
        out = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "tiny_run.py"),
                              name, tiny_dir, "xczu9eg-ffvb1156-2-e", str(samples), workdir],
                             capture_output=True, text=True)
        if out.returncode:
            print(f"| {name} | failed: {out.stderr.strip().splitlines()[-1]} |")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        u = r["util"]
        print(f"| {name} | {r['io']} | {r['compile_s']:.1f} | {r['simulate_s']:.2f} | "
              f"{r['verify_s']:.1f} | {r['peak_mb']:.0f} | {r['metric']} | {r['float']:.4f} | "
              f"{r['fixed']:.4f} | {'yes' if r['bit_exact'] else 'NO'} | {r['fit']} | "
              f"{r['latency']:,} | {u['lut']:.0%} | {u['ff']:.0%} | {u['bram18']:.0%} | "
              f"{u['dsp']:.0%} |")
    print("\n--fit on xc7z020 at 80 % (8 bits, strategy and io type may vary)\n")
    print("| model | outcome |\n|---|---|")
    for name, entry in TINY.items():
        graph = fxq.load(os.path.join(tiny_dir, name, "model_dynamo.onnx"))
        calib = np.load(os.path.join(tiny_dir, name, "calib.npz"))["x"]
        q = quantize(graph, calib, bits=8, io_type=entry.io_type)
        try:
            t, e = fit(q, Target(io_type=entry.io_type, part="xc7z020clg400-1"), 0.8,
                       vary=("strategy", "io_type"))
            u = e.utilization()
            outcome = (f"fits ({t.strategy}, {t.io_type}): latency {e.total.latency:,}, "
                       f"LUT {u['lut']:.0%}, BRAM18 {u['bram18']:.0%}, DSP {u['dsp']:.0%}")
        except FitError as exc:
            outcome = "refused: " + exc.need
        print(f"| {name} | {outcome} |")
    calib_n = 2000
    out = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "tiny_run.py"),
                          "mobilenet", tiny_dir, "xczu9eg-ffvb1156-2-e", str(samples), workdir,
                          str(calib_n)], capture_output=True, text=True)
    if out.returncode:
        print(f"\nmobilenet on {calib_n} calibration samples: failed: "
              f"{out.stderr.strip().splitlines()[-1]}")
    else:
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"\nmobilenet compiled on {calib_n} calibration samples (its set repeated): "
              f"compile {r['compile_s']:.1f} s, whole run's peak {r['peak_mb']:.0f} MB")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zoo", default=os.path.join(ROOT, "examples", "zoo"))
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--tiny", default=os.path.join(ROOT, "examples", "tiny"))
    parser.add_argument("--heldout", default=os.path.join(ROOT, "examples", "heldout"))
    parser.add_argument("--models", default=",".join(ZOO))
    parser.add_argument("--skip-csim", action="store_true",
                        help="accuracy and analysis time only (no g++ builds)")
    args = parser.parse_args(argv)
    models = args.models.split(",")
    print_accuracy([accuracy_row(name, args.zoo) for name in models] +
                   [accuracy_row(name, args.heldout, held_out=True) for name in HELDOUT] +
                   [accuracy_row(name, args.tiny, held_out="MLPerf Tiny")
                    for name in TINY_CLASSIFIERS])
    print("\nanalysis time against depth (8-bit dynamic, 64-wide ReLU MLP, 256 samples)\n")
    print("| dense layers | analysis s | s per layer | refined s | s per layer |\n"
          "|---|---|---|---|---|")
    for (depth, seconds, per_layer), (_, refined, refined_per_layer) in zip(
            depth_scaling(), depth_scaling(refine=True)):
        print(f"| {depth} | {seconds:.2f} | {per_layer:.3f} | {refined:.2f} | "
              f"{refined_per_layer:.3f} |")
    print("\nnormalizing passes and a transform against graph size (Conv-BN-Identity-Add-ReLU"
          " chains; prune at sparsity 0.5 on the normalized graph)\n")
    print("| nodes | normalize s | rewrites | us per node | prune s | pruned layers |\n"
          "|---|---|---|---|---|---|")
    for nodes, seconds, changes, prune_s, pruned in normalize_scaling():
        print(f"| {nodes} | {seconds:.3f} | {changes} | {seconds / nodes * 1e6:.0f} | "
              f"{prune_s:.3f} | {pruned} |")
    print_equalization({"zoo": args.zoo, "heldout": args.heldout, "tiny": args.tiny})
    print_budget([(name, args.zoo if name in ZOO else args.heldout) for name in BUDGET_MODELS])
    print_estimator_comparison()
    from compile_time import main as compile_time_main
    compile_time_main(["--runs", "3"])
    from syntheses import main as syntheses_main
    syntheses_main([])
    from compression import main as compression_main
    compression_main([] if not args.skip_csim else ["--no-csim"])
    from rtl import main as rtl_main
    rtl_main(["--heldout", args.heldout])
    if args.skip_csim:
        return 0
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        # a fresh build cache: the build columns are real g++ times, not cache hits
        os.environ["FXQ_BUILD_CACHE"] = os.path.join(workdir, "builds")
        for types in TYPE_SETS:
            for name in models:
                rows.append({"types": types,
                             **bench_model(name, args.zoo, args.samples, workdir, types)})
                print(f"{types}: {name} done", file=sys.stderr)
    from fxq.ops import torch_conv
    engine = "on" if torch_conv.available() else "off (PyTorch not loaded)"
    for types in TYPE_SETS:
        print(f"\nthroughput, samples/s ({args.samples} samples, {types} types, io_parallel; "
              f"fxq native = generated C++, numpy = the reference kernels with the PyTorch "
              f"convolution engine {engine})\n")
        print_throughput([r for r in rows if r["types"] == types])
    with tempfile.TemporaryDirectory() as workdir:
        # before the throughput rows grow this process: a child's peak memory counts the
        # parent's it was forked from (Linux keeps ru_maxrss across exec)
        os.environ["FXQ_BUILD_CACHE"] = os.path.join(workdir, "builds")
        print_tiny(args.tiny, args.samples, workdir)
    tiny_rows = []
    with tempfile.TemporaryDirectory() as workdir:
        os.environ["FXQ_BUILD_CACHE"] = os.path.join(workdir, "builds")
        from tiny import TINY
        for name, entry in TINY.items():
            tiny_rows.append(bench_model(name, args.tiny, args.samples, workdir, "8-bit dynamic",
                                         "model_dynamo.onnx", entry.io_type, TINY_CSIM_SAMPLES))
            print(f"throughput: {name} done", file=sys.stderr)
        print(f"\nthroughput of the MLPerf Tiny networks, samples/s ({args.samples} samples, "
              f"8-bit dynamic types, the dynamo export, each in the io type it is compiled "
              f"for; hls4ml csim on the first {TINY_CSIM_SAMPLES}; analysis s: fxq.quantize at "
              "8 bits)\n")
        print_throughput(tiny_rows, analysis=True)
    return 0 if all(r["bit_exact"] for r in rows + tiny_rows) else 1


TINY_CSIM_SAMPLES = 64           # hls4ml's C simulation of MobileNet runs ~0.1 s a sample


def print_throughput(rows: list[dict], analysis: bool = False) -> None:
    header = ("model", "io", "fxq native", "fxq numpy", "hls4ml csim", "onnxruntime",
              "native/csim", "native/ort", "numpy/csim", "numpy/ort",
              f"default at {DEFAULT_SAMPLES}", f"default/native at {DEFAULT_SAMPLES}",
              "native build s", "csim build s") + (("analysis s",) if analysis else ()) + \
        ("bit-exact",)
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for r in rows:
        extra = f"{r['analysis_s']:.1f} | " if analysis else ""
        print(f"| {r['model']} | {r['io']} | {r['native']:,.0f} | {r['numpy']:,.0f} | "
              f"{r['csim']:,.0f} | {r['ort']:,.0f} | {r['native'] / r['csim']:.0f}x | "
              f"{r['native'] / r['ort']:.2f}x | {r['numpy'] / r['csim']:.0f}x | "
              f"{r['numpy'] / r['ort']:.2f}x | {r['default']:,.0f} | "
              f"{r['default'] / r['native_small']:.2f}x | {r['native_build_s']:.1f} | "
              f"{r['compile_s']:.1f} | {extra}{'yes' if r['bit_exact'] else 'NO'} |")


if __name__ == "__main__":
    sys.exit(main())
