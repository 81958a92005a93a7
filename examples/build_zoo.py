"""Build the example zoo into examples/zoo/, with --set tiny the MLPerf Tiny reference
networks (examples/tiny.py) into examples/tiny/, or with --set heldout the networks kept out
of the search's development (examples/heldout.py) into examples/heldout/, or with --set lenet
the LeNet shapes of the compression bench (examples/lenet.py) into examples/lenet/ (cached: a model
is rebuilt only when its module changed since it was built, or with --force).

    python examples/build_zoo.py [--set zoo|tiny|heldout|lenet] [--force] [--out DIR] [NAME ...]
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import heldout  # noqa: E402
import lenet  # noqa: E402
import tiny  # noqa: E402
import zoo  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
FILES = ("model.onnx", "model_dynamo.onnx", "calib.npz", "test.npz")
SETS = {"zoo": (zoo, zoo.ZOO), "tiny": (tiny, tiny.TINY), "heldout": (heldout, heldout.HELDOUT),
        "lenet": (lenet, lenet.LENET)}


def source_hash(module) -> str:
    with open(module.__file__, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()[:16]


def is_current(out_dir: str, stamp: str, files: tuple[str, ...]) -> bool:
    stamp_file = os.path.join(out_dir, "STAMP")
    if not all(os.path.exists(os.path.join(out_dir, f)) for f in files):
        return False
    if not os.path.exists(stamp_file):
        return False
    with open(stamp_file) as f:
        return f.read().split()[0] == stamp


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="models to build (default: all of the set)")
    parser.add_argument("--set", choices=sorted(SETS), default="zoo")
    parser.add_argument("--out", help="default: examples/<set>")
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args()
    module, models = SETS[args.set]
    args.out = args.out or os.path.join(HERE, args.set)
    names = args.names or list(models)
    unknown = [n for n in names if n not in models]
    if unknown:
        parser.error(f"unknown {args.set} models {unknown}; known: {list(models)}")
    stamp = source_hash(module)
    for name in names:
        out_dir = os.path.join(args.out, name)
        if not args.force and is_current(out_dir, stamp, getattr(module, "FILES", FILES)):
            print(f"{args.set} {name}: up to date ({out_dir})")
            continue
        start = time.perf_counter()
        score = module.build(name, out_dir)
        with open(os.path.join(out_dir, "STAMP"), "w") as f:
            f.write(f"{stamp} test_metric={score:.4f}\n")
        print(f"{args.set} {name}: built in {time.perf_counter() - start:.1f}s, "
              f"torch test metric {score:.4f} ({out_dir})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
