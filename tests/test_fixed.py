"""FixedType: spelling, limits, refusals (the arithmetic is proven in test_fixed_vs_ap_fixed)."""
from __future__ import annotations

import numpy as np
import pytest

from fxq.fixed import FixedType, Overflow, Rounding, cast, quantize, to_float


@pytest.mark.parametrize("t, text", [
    (FixedType(16, 10), "ap_fixed<16,6>"),
    (FixedType(8, 3, rounding=Rounding.RND, overflow=Overflow.SAT), "ap_fixed<8,5,AP_RND,AP_SAT>"),
    (FixedType(6, 8, signed=False), "ap_ufixed<6,-2>"),
    (FixedType(7, -2, rounding=Rounding.RND_CONV), "ap_fixed<7,9,AP_RND_CONV,AP_WRAP>"),
])
def test_hls_spelling(t, text):
    assert t.hls() == text and str(t) == text
    assert FixedType.from_hls(text) == t


@pytest.mark.parametrize("text, t", [
    ("ap_int<8>", FixedType(8, 0)), ("ap_uint<1>", FixedType(1, 0, signed=False)),
    ("ap_fixed< 18, 8, AP_RND, AP_SAT, 0 >", FixedType(18, 10, True, Rounding.RND, Overflow.SAT)),
    ("ap_fixed<16,6,AP_RND_CONV>", FixedType(16, 10, rounding=Rounding.RND_CONV)),
])
def test_hls_spellings_read(text, t):
    assert FixedType.from_hls(text) == t


@pytest.mark.parametrize("text", ["ap_fixed<16>", "ap_fixed<16,6,AP_FOO>", "float",
                                  "ap_fixed<16,6,AP_RND,AP_SAT,2>", "ap_int<8,2>", "ap_fixed<0,0>"])
def test_bad_hls_spellings_are_refused_by_name(text):
    with pytest.raises(ValueError, match="ap_fixed"):
        FixedType.from_hls(text)


def test_range_and_resolution():
    t = FixedType(8, 4)
    assert (t.raw_min, t.raw_max, t.min, t.max, t.resolution) == (-128, 127, -8.0, 7.9375, 0.0625)
    u = FixedType(8, 4, signed=False)
    assert (u.raw_min, u.raw_max, u.max) == (0, 255, 15.9375)


@pytest.mark.parametrize("width, signed", [(0, True), (-3, True), (65, True), (64, False)])
def test_widths_out_of_range_are_refused(width, signed):
    with pytest.raises(ValueError, match="width"):
        FixedType(width, 0, signed)


def test_nan_and_inf_are_refused():
    with pytest.raises(ValueError, match="2 NaN/Inf"):
        quantize([1.0, np.nan, np.inf], FixedType(8, 4))


def test_round_trip_is_exact_on_representable_values():
    t = FixedType(12, 5, rounding=Rounding.RND, overflow=Overflow.SAT)
    raw = np.arange(t.raw_min, t.raw_max + 1)
    assert np.array_equal(quantize(to_float(raw, t), t), raw)
    wider = FixedType(20, 9)
    assert np.array_equal(cast(cast(raw, t, wider), wider, t), raw)
