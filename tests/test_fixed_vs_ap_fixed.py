"""fxq.fixed against the real ap_fixed library (the ap_types headers inside hls4ml), compiled
with g++: the same doubles quantized, and the same raw values cast between types, for every
rounding and overflow mode, with edge values at the range limits and exact ties.
The build is cached (pytest's cache directory, keyed by the generated source)."""
from __future__ import annotations

import hashlib
import itertools
import os
import subprocess

import numpy as np
import pytest

import hls4ml
from fxq.fixed import FixedType, Overflow, Rounding, cast, quantize

AP_TYPES = os.path.join(os.path.dirname(hls4ml.__file__), "templates", "vivado", "ap_types")
SHAPES = [  # (width, frac, signed): ordinary, F > W, F < 0, 1-bit, wide
    (8, 4, True), (8, 4, False), (6, 8, True), (7, -2, True), (5, 9, False),
    (1, 0, True), (1, 1, False), (16, 10, True), (32, 20, True), (64, 30, True),
    (63, 10, False), (12, 0, True),
]
TYPES = [FixedType(w, f, s, r, o) for (w, f, s), r, o in
         itertools.product(SHAPES, Rounding, Overflow)]
CAST_PAIRS = [  # (source, destination shape): narrowing, widening, sign change, big shifts
    ((16, 10, True), (8, 4, True)), ((16, 10, True), (8, 4, False)),
    ((8, 4, False), (6, 2, True)), ((12, 2, True), (10, 6, True)),
    ((24, 20, True), (6, -1, True)), ((32, 16, True), (32, 8, True)),
    ((64, 40, True), (16, 4, True)), ((10, 3, True), (3, 0, True)),
]
CASTS = [(FixedType(*src), FixedType(*dst, rounding=r, overflow=o))
         for (src, dst), r, o in itertools.product(CAST_PAIRS, Rounding, Overflow)]
PER_TYPE = 300


def doubles_for(t: FixedType, rng: np.random.Generator) -> np.ndarray:
    """Random values over 1.5x the range, exact ties, and the range limits and beyond."""
    res, lo, hi = t.resolution, t.min, t.max
    # raw neighbourhoods; kept below 2^50 so that (k + 0.5) * res is an exact double
    k = rng.integers(max(t.raw_min - 4, -2**50), min(t.raw_max + 4, 2**50), 60,
                     endpoint=True).astype(np.float64)
    edges = [lo, hi, lo - res, hi + res, lo - res / 2, hi + res / 2, lo + res / 2,
             hi - res / 2, 0.0, -0.0, res / 2, -res / 2, res / 4, -res / 4, 3 * res / 2,
             -3 * res / 2, 1e20, -1e20, 2 * hi + 2 * res, 2 * lo - 2 * res]
    span = max(abs(lo), abs(hi), res)
    values = np.concatenate([
        rng.uniform(-1.5 * span, 1.5 * span, PER_TYPE - 60 - 60 - len(edges)),
        (k + 0.5) * res,                                    # exact ties
        k * res + rng.choice([-1, 1], 60) * res * rng.uniform(0, 1, 60),
        edges])
    return values[:PER_TYPE]


def raws_for(t: FixedType, rng: np.random.Generator) -> np.ndarray:
    values = rng.integers(t.raw_min, t.raw_max, PER_TYPE - 6, endpoint=True, dtype=np.int64) \
        if t.width < 64 else rng.integers(-2**63, 2**63 - 1, PER_TYPE - 6, dtype=np.int64)
    edges = [t.raw_min, t.raw_max, 0, -1 if t.signed else 1, t.raw_min + 1, t.raw_max - 1]
    return np.concatenate([values, np.array(edges, dtype=np.int64)])


def cpp_type(t: FixedType) -> str:
    name = "ap_fixed" if t.signed else "ap_ufixed"
    return f"{name}<{t.width},{t.integer},{t.rounding.value},{t.overflow.value}>"


def raw_expr(t: FixedType, var: str) -> str:
    kind, conv = ("ap_int", "to_int64") if t.signed else ("ap_uint", "to_uint64")
    return (f"{{ {kind}<{t.width}> r; r.range({t.width - 1}, 0) = {var}.range({t.width - 1}, 0);"
            f" out.push_back((long long)r.{conv}()); }}")


def harness_source() -> str:
    lines = ['#include "ap_fixed.h"', "#include <cstdio>", "#include <vector>",
             "int main() {", "  std::vector<long long> out;",
             f"  static double d[{len(TYPES) * PER_TYPE}];",
             f"  static long long s[{len(CASTS) * PER_TYPE}];",
             f"  if (fread(d, 8, {len(TYPES) * PER_TYPE}, stdin) != {len(TYPES) * PER_TYPE})"
             " return 1;",
             f"  if (fread(s, 8, {len(CASTS) * PER_TYPE}, stdin) != {len(CASTS) * PER_TYPE})"
             " return 1;"]
    for i, t in enumerate(TYPES):
        lines.append(f"  for (int k = 0; k < {PER_TYPE}; k++) {{ {cpp_type(t)} v = "
                     f"d[{i * PER_TYPE} + k]; {raw_expr(t, 'v')} }}")
    for i, (src, dst) in enumerate(CASTS):
        lines.append(f"  for (int k = 0; k < {PER_TYPE}; k++) {{ {cpp_type(src)} a; "
                     f"a.range({src.width - 1}, 0) = ap_int<64>(s[{i * PER_TYPE} + k]);"
                     f" {cpp_type(dst)} v = a; {raw_expr(dst, 'v')} }}")
    lines += ["  fwrite(out.data(), 8, out.size(), stdout);", "  return 0;", "}"]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def harness(request) -> str:
    source = harness_source()
    key = hashlib.sha256((source + AP_TYPES).encode()).hexdigest()[:16]
    build = request.config.cache.mkdir(f"ap_fixed_harness_{key}")
    binary = os.path.join(build, "harness")
    if not os.path.exists(binary):
        src = os.path.join(build, "harness.cpp")
        with open(src, "w") as f:
            f.write(source)
        subprocess.run(["g++", "-O1", "-std=c++14", "-w", f"-I{AP_TYPES}", src, "-o",
                        binary + ".tmp"], check=True)
        os.replace(binary + ".tmp", binary)
    return binary


@pytest.fixture(scope="module")
def results(harness):
    rng = np.random.default_rng(2016)
    doubles = np.concatenate([doubles_for(t, rng) for t in TYPES])
    raws = np.concatenate([raws_for(src, rng) for src, _ in CASTS])
    out = subprocess.run([harness], input=doubles.tobytes() + raws.tobytes(),
                         capture_output=True, check=True).stdout
    got = np.frombuffer(out, dtype=np.int64)
    assert got.size == doubles.size + raws.size
    return doubles.reshape(len(TYPES), PER_TYPE), raws.reshape(len(CASTS), PER_TYPE), \
        got[:doubles.size].reshape(len(TYPES), PER_TYPE), \
        got[doubles.size:].reshape(len(CASTS), PER_TYPE)


@pytest.mark.parametrize("index", range(len(TYPES)), ids=[str(t) for t in TYPES])
def test_quantize_matches_ap_fixed(results, index):
    doubles, _, expected, _ = results
    t = TYPES[index]
    got = quantize(doubles[index], t)
    bad = np.flatnonzero(got != expected[index])
    assert bad.size == 0, (f"{t}: {bad.size} mismatches, e.g. {doubles[index][bad[0]]!r} -> "
                           f"fxq {got[bad[0]]}, ap_fixed {expected[index][bad[0]]}")


@pytest.mark.parametrize("index", range(len(CASTS)),
                         ids=[f"{s}->{d}" for s, d in CASTS])
def test_cast_matches_ap_fixed(results, index):
    _, raws, _, expected = results
    src, dst = CASTS[index]
    got = cast(raws[index], src, dst)
    bad = np.flatnonzero(got != expected[index])
    assert bad.size == 0, (f"{src} -> {dst}: {bad.size} mismatches, e.g. raw "
                           f"{raws[index][bad[0]]} -> fxq {got[bad[0]]}, "
                           f"ap_fixed {expected[index][bad[0]]}")


def test_value_count():
    assert len(TYPES) * PER_TYPE + len(CASTS) * PER_TYPE >= 30_000
