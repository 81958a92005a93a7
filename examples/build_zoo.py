"""Build the example zoo into examples/zoo/ (cached: a model is rebuilt only when
examples/zoo.py changed since it was built, or with --force).

    python examples/build_zoo.py [--force] [--out DIR] [NAME ...]
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import zoo  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
FILES = ("model.onnx", "calib.npz", "test.npz")


def source_hash() -> str:
    with open(os.path.join(HERE, "zoo.py"), "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()[:16]


def is_current(out_dir: str, stamp: str) -> bool:
    stamp_file = os.path.join(out_dir, "STAMP")
    if not all(os.path.exists(os.path.join(out_dir, f)) for f in FILES):
        return False
    if not os.path.exists(stamp_file):
        return False
    with open(stamp_file) as f:
        return f.read().split()[0] == stamp


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"models to build (default all: {list(zoo.ZOO)})")
    parser.add_argument("--out", default=os.path.join(HERE, "zoo"))
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args()
    names = args.names or list(zoo.ZOO)
    unknown = [n for n in names if n not in zoo.ZOO]
    if unknown:
        parser.error(f"unknown zoo models {unknown}; known: {list(zoo.ZOO)}")
    stamp = source_hash()
    for name in names:
        out_dir = os.path.join(args.out, name)
        if not args.force and is_current(out_dir, stamp):
            print(f"zoo {name}: up to date ({out_dir})")
            continue
        start = time.perf_counter()
        acc = zoo.build(name, out_dir)
        with open(os.path.join(out_dir, "STAMP"), "w") as f:
            f.write(f"{stamp} test_accuracy={acc:.4f}\n")
        print(f"zoo {name}: built in {time.perf_counter() - start:.1f}s, "
              f"torch test accuracy {acc:.4f} ({out_dir})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
