"""requantize and requantize_exact_float against a plain Python-integer reference.

The ap_fixed harness (test_fixed_vs_ap_fixed) proves the modes; this covers the shortcuts
the kernels take on wide intermediate values: large left shifts that wrap modulo 2^64 or
saturate by clipping first, right shifts of 63 bits and more, and the float64 path.
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from fxq.fixed import (FixedType, Overflow, Rounding, requantize, requantize_exact_float,
                       requantized_real, requantizes_in_float, times_pow2, to_float)


def reference(raw: int, frac: int, t: FixedType) -> int:
    """raw * 2^-frac converted to t with Python integers (unbounded)."""
    shift = t.frac - frac
    if shift >= 0:
        r = raw << shift
    else:
        k = -shift
        floor, rem, half = raw >> k, raw & ((1 << k) - 1), 1 << (k - 1)
        negative, tie, above = raw < 0, rem == half, rem > half
        inc = {Rounding.TRN: False,
               Rounding.TRN_ZERO: negative and rem != 0,
               Rounding.RND: rem >= half,
               Rounding.RND_MIN_INF: above,
               Rounding.RND_ZERO: above or (tie and negative),
               Rounding.RND_INF: above or (tie and not negative),
               Rounding.RND_CONV: above or (tie and floor % 2 == 1)}[t.rounding]
        r = floor + int(inc)
    lo, hi = t.raw_min, t.raw_max
    if t.overflow is Overflow.SAT_SYM and t.signed:
        lo |= 1                      # the signed minimum itself becomes -max (ap_fixed)
    if lo <= r <= hi:
        return r
    if t.overflow is Overflow.WRAP:          # (lo is raw_min here)
        low = r & ((1 << t.width) - 1)
        return low - (1 << t.width) if t.signed and low > hi else low
    if t.overflow is Overflow.SAT_ZERO:
        return 0
    return min(max(r, lo), hi)


def _raw_values(rng, bits: int) -> np.ndarray:
    top = 1 << (bits - 1)
    edges = [0, 1, -1, top - 1, -top, top // 2, -(top // 2)]
    return np.concatenate([np.array(edges, dtype=np.int64),
                           rng.integers(-top, top, size=200, dtype=np.int64, endpoint=False)])


TYPES = [FixedType(w, f, s, r, o) for (w, f, s), r, o in itertools.product(
    [(8, 3, True), (13, 20, False), (40, 10, True), (63, 0, True), (64, 5, True)],
    list(Rounding), list(Overflow))]


@pytest.mark.parametrize("bits, frac", [(64, 0), (64, 40), (40, 70), (20, -30), (64, 100),
                                        (12, -80)])
def test_requantize_matches_python_integers(bits, frac):
    rng = np.random.default_rng(bits * 1000 + frac)
    raw = _raw_values(rng, bits)
    for t in TYPES:
        got = requantize(raw, frac, t, bits)
        want = [reference(int(v), frac, t) for v in raw]
        assert got.dtype == np.int64
        assert got.tolist() == want, (t, frac, bits)


@pytest.mark.parametrize("frac", [0, 7, 30])
def test_requantize_exact_float_matches_integers(frac):
    rng = np.random.default_rng(frac)
    raw = _raw_values(rng, 53)
    for t in TYPES:
        got = requantize_exact_float(raw.astype(np.float64), frac, t)
        assert got.tolist() == [reference(int(v), frac, t) for v in raw], (t, frac)


@pytest.mark.parametrize("frac", [0, 5, 23, 30])
def test_requantize_exact_float32_matches_integers(frac):
    """The float32 fast path: integers up to 2^23 in magnitude."""
    rng = np.random.default_rng(100 + frac)
    raw = _raw_values(rng, 24)                         # [-2^23, 2^23)
    for t in TYPES:
        got = requantize_exact_float(raw.astype(np.float32), frac, t)
        assert got.tolist() == [reference(int(v), frac, t) for v in raw], (t, frac)


@pytest.mark.parametrize("bits, frac", [(53, 0), (53, 30), (20, -7), (8, 12)])
def test_requantized_real_is_the_integers_real_values(bits, frac):
    """The search's float scoring of a candidate type: the same real values as converting
    the integers, for every type it accepts (and it refuses only wide or wrapping ones)."""
    rng = np.random.default_rng(bits + frac)
    raw = _raw_values(rng, bits)
    for t in TYPES + [FixedType(w, f, s, r, o) for (w, f, s), r, o in itertools.product(
            [(8, -3, True), (16, 40, False), (53, 2, True)], list(Rounding), list(Overflow))]:
        if not requantizes_in_float(bits, t):
            assert t.width > 53 or t.overflow is Overflow.WRAP
            continue
        want = to_float(np.array([reference(int(v), frac, t) for v in raw]), t)
        got = requantized_real(raw, frac, t)
        assert got.tolist() == want.tolist(), (t, frac, bits)
        # (its input is not overwritten)
        assert raw.tolist() == _raw_values(np.random.default_rng(bits + frac), bits).tolist()
        # a clamp reading the result, folded into the saturation or applied after it
        for clamp in [(0.0, np.inf), (0.0, 1.5), (0.25, 3.0), (1e6, np.inf), (0.0, 2.0 ** -60)]:
            clamped = requantized_real(raw.astype(np.float64), frac, t, clamp)
            assert clamped.tolist() == np.clip(want, *clamp).tolist(), (t, frac, bits, clamp)


def test_times_pow2_is_ldexp():
    rng = np.random.default_rng(5)
    x = np.concatenate([rng.normal(size=100) * 10.0 ** rng.integers(-300, 300, 100),
                        [0.0, -0.0, 5e-324, 1.7e308, -2.5e-310]])
    for e in (-1100, -1030, -60, -1, 0, 3, 52, 1023, 1100):
        with np.errstate(over="ignore"):
            assert times_pow2(x, e).tobytes() == np.ldexp(x, e).tobytes(), e
    ints = rng.integers(-2 ** 62, 2 ** 62, 100)
    assert times_pow2(ints, -7).tobytes() == np.ldexp(ints.astype(np.float64), -7).tobytes()


@pytest.mark.parametrize("divisor", [1, 2, 4, 64, 3, 9, 49])
def test_truncating_divide_rounds_toward_zero(divisor):
    from fxq.ops.fixed_math import truncating_divide
    rng = np.random.default_rng(divisor)
    raw = np.concatenate([rng.integers(-2**61, 2**61, 500), np.arange(-3 * divisor, 3 * divisor)])
    want = [-(-v // divisor) if v < 0 else v // divisor for v in raw.tolist()]
    assert truncating_divide(raw, divisor).tolist() == want
