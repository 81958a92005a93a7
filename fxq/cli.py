"""The `fxq` command. User errors print one line to stderr and exit with code 2."""
from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

import numpy as np

from fxq.errors import DataError, FxqError


def _inspect(args: argparse.Namespace) -> int:
    from fxq.onnx_import import load
    from fxq.summary import format_summary

    graph = load(args.model)
    print(format_summary(graph))
    if args.graph:
        print()
        print(graph)
    return 0


def _run(args: argparse.Namespace) -> int:
    from fxq.data import load_arrays, split_labels
    from fxq.onnx_import import load

    if args.output and os.path.exists(args.output) and not args.force:
        raise DataError(f"{args.output}: exists; not overwritten (pass --force to replace it)")
    graph = load(args.model)
    arrays, labels = split_labels(load_arrays(args.input), graph)
    result = graph.run(arrays)
    outputs = result if isinstance(result, dict) else {graph.outputs[0]: result}
    if args.output:
        np.savez(args.output, **outputs) if args.output.endswith(".npz") else \
            np.save(args.output, next(iter(outputs.values())))
    for name, y in outputs.items():
        line = f"{name}: shape {y.shape}"
        if labels is not None and y.ndim == 2 and len(labels) == len(y):
            line += f", top-1 accuracy {np.mean(y.argmax(axis=1) == labels):.4f}"
        print(line)
    return 0


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
    p.add_argument("--input", required=True, help=".npz (one array per input) or .npy")
    p.add_argument("--output", help="write the outputs (.npy, or .npz for all outputs)")
    p.add_argument("--force", action="store_true", help="replace an existing --output file")
    p.set_defaults(func=_run)
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
    except Exception as exc:  # a bug in fxq: still one line, the traceback on request
        if os.environ.get("FXQ_DEBUG"):
            raise
        print(f"fxq {args.command}: internal error: {type(exc).__name__}: {exc} "
              "(a bug in fxq; set FXQ_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1
