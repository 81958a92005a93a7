"""The `fxq` command. User errors print one line to stderr and exit with code 2."""
from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

import numpy as np

from fxq.errors import DataError, FxqError
from fxq.quantized import ENGINES


def _inspect(args: argparse.Namespace) -> int:
    from fxq.onnx_import import load
    from fxq.summary import format_summary

    graph = load(args.model)
    print(format_summary(graph))
    if args.graph:
        print()
        print(graph)
    return 0


def _write_outputs(path: str | None, outputs: dict) -> None:
    """Every output to a .npz, or the first to a .npy."""
    if path:
        np.savez(path, **outputs) if path.endswith(".npz") else \
            np.save(path, next(iter(outputs.values())))


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input", required=True, help=".npz (one array per input) or .npy")
    p.add_argument("--output", help="write the outputs (.npy, or .npz for all outputs)")
    p.add_argument("--force", action="store_true", help="replace an existing --output file")


def _run(args: argparse.Namespace) -> int:
    from fxq.data import load_arrays, split_labels
    from fxq.onnx_import import load

    if args.output and os.path.exists(args.output) and not args.force:
        raise DataError(f"{args.output}: exists; not overwritten (pass --force to replace it)")
    graph = load(args.model)
    arrays, labels = split_labels(load_arrays(args.input), graph)
    result = graph.run(arrays)
    outputs = result if isinstance(result, dict) else {graph.outputs[0]: result}
    lines = []                           # before writing: a label error writes nothing
    for name, y in outputs.items():
        line = f"{name}: shape {y.shape}"
        if labels is not None and len(outputs) == 1 and len(graph.inputs) == 1 \
                and len(labels) == len(y):
            line += _task_line(graph, arrays, labels, y)
        lines.append(line)
    _write_outputs(args.output, outputs)
    print("\n".join(lines))
    return 0


def _task_line(graph, x, labels, y) -> str:
    """", <metric> <value>" of outputs `y` against `labels` (the task inferred)."""
    from fxq.data import bind_inputs
    from fxq.task import METRIC, infer_task, quality

    x = bind_inputs(graph, x)[graph.inputs[0]]
    task = infer_task(labels, x, y)
    value = quality(task, x, labels, y, y)["float"]
    return f", {METRIC[task]} " + ("n/a" if value is None else f"{value:.4f}")


def _refuse_existing(path: str, force: bool, what: str = "exists") -> None:
    if path and os.path.exists(path) and not force:
        if os.path.isdir(path) and not os.listdir(path):
            return
        raise DataError(f"{path}: {what}; not overwritten (pass --force to replace it)")


def _read_inputs(path: str, graph):
    """(inputs bound to the graph's inputs, labels or None) from a .npz/.npy file."""
    from fxq.data import bind_inputs, load_arrays, split_labels

    arrays, labels = split_labels(load_arrays(path), graph)
    # float32 data stays float32 (the native engine reads it as is; NumPy widens it)
    bound = bind_inputs(graph, arrays, source=path, keep_float32=True)
    for name, array in bound.items():
        if array.shape[0] == 0:
            raise DataError(f"{path}: input {name!r} holds no samples")
        if not np.isfinite(array).all():
            bad = int(np.sum(~np.isfinite(array)))
            raise DataError(f"{path}: input {name!r} holds {bad} NaN/Inf values")
    if labels is not None and len(labels) != next(iter(bound.values())).shape[0]:
        raise DataError(f"{path}: {len(labels)} labels for "
                        f"{next(iter(bound.values())).shape[0]} samples")
    return bound, labels


def _progress_bar():
    """A transient progress bar on stderr for interactive runs, else None."""
    if not sys.stderr.isatty():
        return None
    from rich.console import Console
    from rich.progress import Progress

    return Progress(transient=True, console=Console(stderr=True))


def _say(message: str) -> None:
    """A progress line on stderr (the long steps of verify: the g++ build, the batches)."""
    print(f"fxq: {message}", file=sys.stderr, flush=True)


def _add_compress_args(p: argparse.ArgumentParser, budget: tuple[str, ...]) -> None:
    g = p.add_argument_group("compression (post-training, on the calibration data)")
    g.add_argument("--prune", type=float, metavar="SPARSITY",
                   help="zero this fraction of the Dense/Conv weights (per-layer sparsities "
                        "from each layer's sensitivity), survivors refit; with "
                        "--prune-structure channel: remove this fraction of the Dense/Conv "
                        "MACs by removing whole channels")
    g.add_argument("--prune-structure", choices=("weight", "channel", "column"),
                   help="weight (default): single weights; channel: whole output channels "
                        "of Dense/Conv layers and the inputs reading them (shapes shrink); "
                        "column: in Dense layers, the blocks of weights one multiplier of "
                        "the resource strategy computes at --reuse-factor (the multiplier "
                        "goes: hls4ml's ResourceUnrolled)")
    g.add_argument("--prune-by", choices=("magnitude", "obd"),
                   help="which weights: smallest |w| (default) or Optimal Brain Damage's "
                        "w^2 E[x^2]")
    g.add_argument("--prune-allocation", choices=("sensitivity", "uniform"),
                   default="sensitivity", help="per-layer sparsities: from sensitivity "
                   "curves (default) or the same for every layer")
    g.add_argument(*budget, type=float, metavar="PT", dest="compress_budget",
                   help="instead of --prune's amount: the most pruning whose top-1 (AUC) on "
                        "the labelled calibration data stays within PT points of float")
    g.add_argument("--rank", type=int, help="low-rank factorization of Dense and Conv "
                   "layers at this rank")
    g.add_argument("--svd-energy", type=float, metavar="E",
                   help="low rank: the least rank keeping this fraction of the response energy")
    g.add_argument("--rank-params", type=float, metavar="F",
                   help="low rank: the Dense/Conv layers keep this fraction of their weights "
                        "together, each layer's rank from its sensitivity curve")
    g.add_argument("--share", type=int, metavar="K", help="k-means weight sharing, K values "
                   "per layer")
    sets = g.add_mutually_exclusive_group()
    for name in ("ternary", "ttq", "binary", "pow2"):
        sets.add_argument(f"--{name}", dest="weights", action="store_const", const=name,
                          help={"ternary": "weights {-a, 0, a} per output (a a power of two)",
                                "ttq": "weights {-a_n, 0, a_p} per output: ternary with a "
                                       "scale per sign (powers of two; TTQ's value set)",
                                "binary": "weights {-a, a} per output (a a power of two)",
                                "pow2": "every weight 0 or a power of two"}[name])


def _compress_config(args: argparse.Namespace):
    """The compression settings of --config's [compress] and [layer] tables, overridden by
    the command line's."""
    from fxq.compress.config import CompressConfig, from_toml

    config = from_toml(args.config) if args.config else CompressConfig()
    structure = args.prune_structure or config.default.prune_structure
    reuse = args.reuse_factor if structure == "column" else None
    return config.with_default(prune=args.prune, prune_by=args.prune_by,
                               prune_structure=args.prune_structure, reuse_factor=reuse,
                               rank=args.rank,
                               svd_energy=args.svd_energy, rank_params=args.rank_params,
                               share=args.share,
                               weights=args.weights)


def _compress(args: argparse.Namespace) -> int:
    import json

    from fxq.compress import compress
    from fxq.compress.summary import markdown
    from fxq.onnx_export import to_onnx
    from fxq.onnx_import import load

    if not args.output.endswith(".onnx"):
        raise DataError(f"-o {args.output}: expected a path ending in .onnx")
    side = args.output[:-len(".onnx")] + ".json"
    for path in (args.output, side):
        _refuse_existing(path, args.force)
    config = _compress_config(args)
    if not config.any and args.compress_budget is None:
        raise DataError("no compression method given (--prune, --rank, --svd-energy, "
                        "--rank-params, --share, --ternary, --ttq, --binary, --pow2, or a "
                        "[compress] table)")
    graph = load(args.model)
    calib, labels = _read_inputs(args.calib, graph)
    result = compress(graph, calib, config, labels=labels, allocation=args.prune_allocation,
                      progress=_say, budget=args.compress_budget)
    model = to_onnx(result.graph)             # checked before anything is written
    doc = {"model": os.path.abspath(args.model), "calibration_samples": _samples(calib),
           **result.to_json()}
    directory = os.path.dirname(os.path.abspath(args.output))
    os.makedirs(directory, exist_ok=True)
    import onnx
    onnx.save(model, args.output)
    with open(side, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print("\n".join(markdown(doc)))
    print(f"\nwrote {args.output}, {side}")
    return 0


def _compile(args: argparse.Namespace) -> int:
    from fxq.analysis import BitConfig, check_bits, load_config
    from fxq.compile import compile as compile_model
    from fxq.onnx_import import load
    from fxq.target import Target
    from fxq.transforms import pipeline

    out = args.output or os.path.splitext(os.path.basename(args.model))[0] + "_fxq"
    _refuse_existing(out, args.force, "exists and is not empty")
    if args.rtl:
        from fxq.rtl.design import require_tools
        require_tools(synth=True)                  # before any work: a missing tool
    for value, what in ((args.bits, "--bits"), (args.weight_bits, "--weight-bits"),
                        (args.act_bits, "--act-bits")):
        if value is not None:
            check_bits(value, what)
    target = Target(backend=args.backend, io_type=f"io_{args.io}", strategy=args.strategy,
                    reuse_factor=args.reuse_factor, part=args.part, clock_ns=args.clock_ns)
    config = load_config(args.config) if args.config else BitConfig()
    transforms = pipeline(args.config, args.transform or ())
    if args.bits is not None:
        config = config.with_overrides(weight_bits=args.bits, act_bits=args.bits)
    config = config.with_overrides(weight_bits=args.weight_bits, act_bits=args.act_bits,
                                   objective=args.objective,
                                   weight_rounding=args.weight_rounding)
    compression = _compress_config(args)
    graph = load(args.model)
    calib, labels = _read_inputs(args.calib, graph)
    bar = _progress_bar()

    def run(progress=None):
        return compile_model(graph, calib, out=out, config=config, method=args.method,
                             target=target, labels=labels, progress=progress,
                             source=args.model, transforms=transforms, fit=args.fit,
                             max_util=args.max_util, allow_overfit=args.allow_overfit,
                             task=args.task, fit_vary=tuple(args.fit_vary or ()),
                             refine=args.refine, bias_correction=args.bias_correction,
                             sensitivity=args.sensitivity, budget=args.budget,
                             budget_sqnr=args.budget_sqnr, minimize=args.minimize,
                             budget_prune=args.budget_prune,
                             equalize=args.equalize, compress=compression,
                             compress_allocation=args.prune_allocation,
                             compress_budget=args.compress_budget)
    if bar is not None:
        with bar:
            task = bar.add_task("choosing formats", total=len(graph.nodes))
            result = run(lambda _: bar.advance(task))
    else:
        result = run()
    print(result.report.markdown(), end="")
    if args.fit:
        chosen = ", ".join(f"{k} {v}" for k, v in result.target.layer_reuse.items())
        print(f"\nfit: {result.target.strategy} strategy, {result.target.io_type}, "
              f"reuse factors {chosen}")
    if result.overuse:
        from fxq.fit import describe
        print(f"\nwarning: {describe(result.estimate, args.max_util, list(result.overuse))}",
              file=sys.stderr)
    print(f"\nwrote {out}/: fxq_model.json, hls/, report.json, report.md, plots/")
    if args.rtl:
        from argparse import Namespace

        from fxq.model_file import load_quantized
        from fxq.rtl import DEFAULT_SAMPLES

        q, model_doc = load_quantized(out)
        print()
        _write_rtl(q, model_doc, _report_doc(out), out, os.path.join(out, "rtl"),
                   Namespace(part=None, latency_cutoff=5.0, samples=DEFAULT_SAMPLES,
                             no_synth=False, input=None))
    return 0


def _saved_settings(q, model_doc: dict):
    """The Target `fxq compile` used, from its fxq_model.json; where absent, the
    defaults, with the io type the model was quantized for."""
    from fxq.target import Target

    hls = model_doc.get("compile", {}).get("hls", {})
    return Target.from_json({"io_type": q.io_type, **hls})


def _print_range_excess(q, overflows, samples: int) -> None:
    """Numerical honesty: say per layer how many values the formats could not hold."""
    from fxq.report import range_excess

    excess = range_excess(q, overflows, samples)
    if excess:
        print(f"{len(excess)} layer(s) see values outside the range chosen on the calibration "
              "data:")
        for e in excess:
            print(f"  {e}")
    else:
        print("every value fits the formats chosen on the calibration data")


def _prepare_native(q, engine: str) -> None:
    """The CLI runs the native engine whenever it can ("auto" and "native"): build it now,
    saying so; with "auto", say when NumPy runs instead and why."""
    if engine == "numpy":
        return
    why = q.prepare_native(progress=_say)
    if why is not None and engine == "auto":
        _say(f"the native engine cannot run this design ({why}); simulating with NumPy")


def _samples(bound: dict) -> int:
    """The sample count of inputs bound by _read_inputs."""
    return next(iter(bound.values())).shape[0]


def _simulate(args: argparse.Namespace) -> int:
    from fxq.fixed import to_float
    from fxq.model_file import load_quantized

    q, _ = load_quantized(args.out)
    _refuse_existing(args.output, args.force)
    x, labels = _read_inputs(args.input, q.graph)
    _prepare_native(q, args.engine)
    result, overflows = q.simulate_overflows(x, raw=args.raw, engine=args.engine)
    outputs = result if isinstance(result, dict) else {q.graph.outputs[0]: result}
    lines = []                           # before writing: a label error writes nothing
    for name, y in outputs.items():
        line = f"{name}: shape {y.shape}, {'raw ' + str(q.types[name]) if args.raw else 'real'}"
        if labels is not None and len(outputs) == 1 and len(q.graph.inputs) == 1:
            real = to_float(y, q.types[name]) if args.raw else y
            line += _task_line(q.graph, x, labels, real)
        lines.append(line)
    _write_outputs(args.output, outputs)
    print("\n".join(lines))
    _print_range_excess(q, overflows, _samples(x))
    return 0


def _verify(args: argparse.Namespace) -> int:
    from fxq.hls import verify
    from fxq.model_file import load_quantized

    q, doc = load_quantized(args.out)
    settings = _saved_settings(q, doc)
    x, _ = _read_inputs(args.input, q.graph)
    if args.samples:
        x = {k: v[:args.samples] for k, v in x.items()}
    result = verify(q, os.path.join(args.out, "csim"), x, target=settings, overwrite=True,
                    engine=args.engine, progress=_say)
    print(result)
    _prepare_native(q, "auto")
    _print_range_excess(q, q.simulate_overflows(x, engine="auto")[1], _samples(x))
    return 0 if result.ok else 1


def _profile(args: argparse.Namespace) -> int:
    from fxq.analysis.stats import float_stats
    from fxq.onnx_import import load
    from fxq.plots import write_plots

    out = args.output or os.path.splitext(os.path.basename(args.model))[0] + "_profile"
    _refuse_existing(out, args.force, "exists and is not empty")
    graph = load(args.model)
    calib, _ = _read_inputs(args.calib, graph)
    stats = float_stats(graph, calib)
    paths = write_plots(graph, stats, None, None, out)
    print(f"{'layer':30s} {'min':>12s} {'max':>12s} {'integer bits':>12s}")
    rows = [(f"input {n}", n) for n in graph.inputs] + [(n.name, n.output) for n in graph.nodes]
    for label, tensor in rows:
        v = stats[tensor]
        top = v.max_abs
        bits = int(np.floor(np.log2(top))) + 1 if top > 0 else 0       # excluding the sign
        print(f"{label[:30]:30s} {v.low:12.4g} {v.high:12.4g} {bits:12d}")
    print(f"\nwrote {', '.join(paths)}")
    return 0


def _report_doc(out: str) -> dict:
    import json

    path = os.path.join(out, "report.json")
    if not os.path.isfile(path):
        raise DataError(f"{path}: no such file (expected the output of `fxq compile`)")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable report ({exc})") from None


def _report(args: argparse.Namespace) -> int:
    import json

    from fxq.report import render_markdown

    doc = _report_doc(args.out)
    print(json.dumps(doc, indent=1) if args.json else render_markdown(doc), end="\n"
          if args.json else "")
    return 0


def _synth(args: argparse.Namespace) -> int:
    from fxq.hls.emit import build_model_graph
    from fxq.hls.synth import read_synthesis, synthesize
    from fxq.model_file import load_quantized
    from fxq.report import render_markdown, write_report

    q, model_doc = load_quantized(args.out)
    doc = _report_doc(args.out)
    hls_dir = os.path.join(args.out, "hls")
    if args.read:
        synthesis = read_synthesis(hls_dir)
    else:
        settings = _saved_settings(q, model_doc)
        model, _ = build_model_graph(q, hls_dir, settings, trace=False)
        synthesis = synthesize(model, str(settings.backend), vsynth=args.vsynth)
    doc["synthesis"] = synthesis
    write_report(doc, args.out)
    print(render_markdown(doc), end="")
    return 0


def _add_rtl_args(p: argparse.ArgumentParser) -> None:
    from fxq.rtl import DEFAULT_SAMPLES

    p.add_argument("--samples", type=int, default=DEFAULT_SAMPLES,
                   help=f"random inputs over the input types' ranges on which Verilator "
                   f"must equal fxq's simulation ({DEFAULT_SAMPLES})")
    p.add_argument("--latency-cutoff", type=float, default=5.0,
                   help="da4ml's pipelining: the most adder delays between registers (5)")
    p.add_argument("--no-synth", action="store_true", help="skip the Yosys mapping")


def _rtl(args: argparse.Namespace) -> int:
    from fxq.model_file import load_quantized

    q, model_doc = load_quantized(args.out)
    doc = _report_doc(args.out)
    dest = os.path.join(args.out, "rtl")
    _refuse_existing(dest, args.force)
    _write_rtl(q, model_doc, doc, args.out, dest, args)
    return 0


def _write_rtl(q, model_doc: dict, doc: dict, out: str, dest: str, args) -> None:
    """The open RTL path into OUT/rtl, its section in OUT/report.*, and its summary."""
    import shutil

    from fxq.report import rtl_markdown, write_report
    from fxq.rtl import write_rtl

    settings = _saved_settings(q, model_doc)
    inputs = _read_inputs(args.input, q.graph)[0] if getattr(args, "input", None) else None
    part = args.part or settings.part
    staged = dest + ".new"
    shutil.rmtree(staged, ignore_errors=True)
    rtl = write_rtl(q, staged, part=part, clock_ns=settings.clock_ns,
                    latency_cutoff=args.latency_cutoff, samples=args.samples, inputs=inputs,
                    synth=not args.no_synth, say=_say)
    if os.path.exists(dest):                          # --force: replaced only on success
        shutil.rmtree(dest)
    os.replace(staged, dest)
    rtl["path"] = dest
    doc["rtl"] = rtl
    write_report(doc, out)
    print("\n".join(rtl_markdown(rtl)))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fxq", description="Fixed-point quantization "
                                     "compiler for FPGAs: ONNX in, bit-accurate HLS out.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("inspect", help="print the model as fxq sees it, layer by layer")
    p.add_argument("model", help="ONNX model file")
    p.add_argument("--graph", action="store_true", help="also print the IR graph")
    p.set_defaults(func=_inspect)

    p = sub.add_parser("run", help="run the float reference on input data")
    p.add_argument("model", help="ONNX model file")
    _add_data_args(p)
    p.set_defaults(func=_run)

    p = sub.add_parser("compile", help="choose fixed-point formats from calibration data, "
                       "write the quantized model, the hls4ml project and a report")
    p.add_argument("model", help="ONNX model file")
    p.add_argument("--calib", required=True, help="calibration data: .npz (one array per "
                   "input; labels under y give accuracy figures) or .npy")
    p.add_argument("-o", "--output", help="output directory (default: MODEL_fxq)")
    p.add_argument("--bits", type=int, help="bit width of weights and feature maps (8)")
    p.add_argument("--weight-bits", type=int, help="bit width of weights")
    p.add_argument("--act-bits", type=int, help="bit width of feature maps")
    p.add_argument("--config", help="TOML file: widths per layer kind and per layer, "
                   "[[transform]] tables")
    p.add_argument("--transform", action="append", metavar="NAME:KEY=VALUE,...",
                   help="a value-changing transform run before the search, after the "
                   "config's (repeatable); e.g. prune:sparsity=0.5")
    p.add_argument("--method", choices=("dynamic", "static"), default="dynamic",
                   help="a fractional length per layer (dynamic, Qiu et al.) or one for all")
    p.add_argument("--objective", choices=("l1", "l2"),
                   help="error the greedy search minimizes")
    p.add_argument("--weight-rounding", choices=("nearest", "adaround"),
                   help="round each Dense/Conv weight to its nearest grid value (the "
                   "default) or choose below/above per weight for the layer's output "
                   "(AdaRound, Nagel et al. 2020; slower; helps at 4-bit weights)")
    p.add_argument("--equalize", choices=("auto", "on", "off"), default="auto",
                   help="cross-layer equalization with power-of-two scales before the "
                   "search (the float function unchanged); auto: the layers whose "
                   "channel ranges spread more than 16x")
    p.add_argument("--refine", action="store_true",
                   help="refine the greedy search against the network's output (slower; "
                   "helps at 6 bits and 4-bit weights)")
    p.add_argument("--budget", type=float, metavar="PT",
                   help="choose per-layer widths of least cost whose top-1 on the labelled "
                   "calibration data is within PT points of float (from the --bits widths)")
    p.add_argument("--budget-sqnr", type=float, metavar="DB",
                   help="the same with the outputs' SQNR at least DB (no labels needed)")
    p.add_argument("--minimize", choices=("ebops", "dsp", "lut", "latency"), default="ebops",
                   help="the cost the width search lowers (ebops: LUT + 55 x DSP)")
    p.add_argument("--budget-prune", action=argparse.BooleanOptionalAction, default=True,
                   help="let the width search also prune each Dense/Conv layer's smallest "
                   "weights, a tenth at a time, survivors refit (on by default)")
    p.add_argument("--sensitivity", action="store_true",
                   help="measure each layer's share of the output error and the cost of one "
                   "bit less (report.json's sensitivity section, report.md)")
    p.add_argument("--bias-correction", action=argparse.BooleanOptionalAction, default=True,
                   help="correct each Dense/Conv bias by its layer's mean error on the "
                   "calibration data where that lowers its error (Nagel et al. 2019; on by "
                   "default, dynamic method)")
    p.add_argument("--backend", choices=("Vitis", "Vivado"), default="Vitis")
    p.add_argument("--io", choices=("parallel", "stream"), default="parallel")
    p.add_argument("--strategy", choices=("latency", "resource"), default="latency")
    p.add_argument("--reuse-factor", type=int, default=1)
    p.add_argument("--part", default="xcvu13p-flga2577-2-e")
    p.add_argument("--clock-ns", type=float, default=5.0)
    p.add_argument("--rtl", action="store_true", help="also run `fxq rtl` on the result: "
                   "Verilog through da4ml, Yosys LUT/FF counts, a Verilator check against "
                   "fxq's simulation on 10,000 random inputs (OUT/rtl)")
    p.add_argument("--task", choices=("classify", "regression", "anomaly"),
                   help="what the labels y measure (default: inferred from them); "
                   "classify also searches the outputs as class scores, which may saturate "
                   "their largest values (otherwise an output holds its calibrated range)")
    p.add_argument("--fit", action="store_true", help="choose per-layer reuse factors "
                   "whose estimate fits the part (at --max-util)")
    p.add_argument("--fit-vary", action="append", choices=("strategy", "io_type"),
                   help="with --fit, also try hls4ml's resource strategy (strategy) or "
                   "io_stream (io_type) where the given settings cannot fit (repeatable)")
    p.add_argument("--max-util", type=float, default=1.0, metavar="FRACTION",
                   help="the share of each resource of the part a design may use (1.0)")
    p.add_argument("--allow-overfit", action="store_true",
                   help="write a design whose estimate exceeds the part (with a warning)")
    p.add_argument("--force", action="store_true", help="write into an existing directory")
    p.set_defaults(func=_compile)

    _add_compress_args(p, ("--compress-budget",))

    p = sub.add_parser("compress", help="compress a model (pruning, low rank, weight "
                       "sharing, ternary/binary/power-of-two weights) into a float ONNX model")
    p.add_argument("model", help="ONNX model file")
    p.add_argument("--calib", required=True, help="calibration data (.npz or .npy; labels "
                   "'y' add the task's figure)")
    p.add_argument("-o", "--output", required=True, help="the compressed model, OUT.onnx "
                   "(OUT.json beside it: what was done, storage per layer)")
    p.add_argument("--config", help="TOML file: [compress] settings, per layer in "
                   "[layer.\"name\"] tables")
    p.add_argument("--force", action="store_true", help="replace existing output files")
    p.add_argument("--reuse-factor", type=int, help="the reuse factor column pruning aligns "
                   "its blocks to (the one the design will be compiled with)")
    _add_compress_args(p, ("--budget", "--compress-budget"))
    p.set_defaults(func=_compress)

    p = sub.add_parser("simulate", help="bit-accurate fixed-point run of a compiled model")
    p.add_argument("out", help="directory written by fxq compile (or its fxq_model.json)")
    _add_data_args(p)
    p.add_argument("--raw", action="store_true", help="the raw integers, not real values")
    p.add_argument("--engine", choices=ENGINES, default="auto",
                   help="numpy: the reference kernels; native: the same arithmetic compiled "
                   "with g++ (cached); auto: native whenever it can, else numpy "
                   "(default)")
    p.set_defaults(func=_simulate)

    p = sub.add_parser("verify", help="C-simulate the HLS project (hls4ml, g++) and compare "
                       "it with fxq's simulation bit for bit")
    p.add_argument("out", help="directory written by fxq compile")
    p.add_argument("--input", required=True, help=".npz (one array per input) or .npy")
    p.add_argument("--samples", type=int, help="use only the first N samples")
    p.add_argument("--engine", choices=("numpy", "native"), default="numpy",
                   help="the fxq simulation engine whose outputs are compared")
    p.set_defaults(func=_verify)

    p = sub.add_parser("profile", help="per-layer value ranges of the float model on "
                       "calibration data: a table and histograms (DIR/ranges.png)")
    p.add_argument("model", help="ONNX model file")
    p.add_argument("--calib", required=True, help="calibration data (.npz or .npy)")
    p.add_argument("-o", "--output", help="output directory (default: MODEL_profile)")
    p.add_argument("--force", action="store_true", help="write into an existing directory")
    p.set_defaults(func=_profile)

    p = sub.add_parser("report", help="print the report of a compiled model (report.md)")
    p.add_argument("out", help="directory written by fxq compile")
    p.add_argument("--json", action="store_true", help="print report.json instead")
    p.set_defaults(func=_report)

    p = sub.add_parser("rtl", help="write the model as Verilog through da4ml, count its LUTs "
                       "and FFs with Yosys, and check its Verilator simulation against fxq's")
    p.add_argument("out", help="directory written by fxq compile")
    _add_rtl_args(p)
    p.add_argument("--input", help="also compare on these inputs (.npz or .npy)")
    p.add_argument("--part", help="FPGA part for Yosys' family (default: the compile's)")
    p.add_argument("--force", action="store_true", help="replace an existing OUT/rtl")
    p.set_defaults(func=_rtl)

    p = sub.add_parser("synth", help="run the vendor HLS tool (where installed) and add its "
                       "figures to the report, apart from fxq's estimate")
    p.add_argument("out", help="directory written by fxq compile")
    p.add_argument("--vsynth", action="store_true", help="also run logic synthesis")
    p.add_argument("--read", action="store_true", help="only read the reports of a "
                   "synthesis already run in OUT/hls (e.g. on another machine)")
    p.set_defaults(func=_synth)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except FxqError as exc:
        print(f"fxq {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"fxq {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:            # output piped into `head` and the like
        sys.stderr.close()
        return 0
    except Exception as exc:  # a bug in fxq: still one line, the traceback on request
        if os.environ.get("FXQ_DEBUG"):
            raise
        print(f"fxq {args.command}: internal error: {type(exc).__name__}: {exc} "
              "(a bug in fxq; set FXQ_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1
