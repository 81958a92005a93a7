"""Fixed-point types and their arithmetic on int64 raw values, as ap_fixed computes it.

A `FixedType` (width W, fractional bits F, signed, rounding, overflow) holds a raw integer r;
its real value is r * 2^-F. F may be negative or exceed W. The arithmetic mirrors the
ap_fixed headers that hls4ml synthesizes (ap_fixed_base.h): on a conversion, rounding
happens first on the exact source value, then overflow handling on the rounded integer.
tests/test_fixed_vs_ap_fixed.py checks every mode against those headers compiled with g++.

Raw values are int64: signed widths 1..64, unsigned widths 1..63 (an unsigned 64-bit raw
value does not fit int64; such types are refused).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

import numpy as np


class Rounding(Enum):
    """What happens to the bits below the last fractional bit."""

    TRN = "AP_TRN"                  # floor, toward -inf (the ap_fixed default)
    TRN_ZERO = "AP_TRN_ZERO"        # toward zero
    RND = "AP_RND"                  # nearest, ties toward +inf
    RND_ZERO = "AP_RND_ZERO"        # nearest, ties toward zero
    RND_MIN_INF = "AP_RND_MIN_INF"  # nearest, ties toward -inf
    RND_INF = "AP_RND_INF"          # nearest, ties away from zero
    RND_CONV = "AP_RND_CONV"        # nearest, ties to even


class Overflow(Enum):
    """What happens to a rounded value outside the type's range."""

    WRAP = "AP_WRAP"                # keep the low W bits, two's complement (the default)
    SAT = "AP_SAT"                  # clamp to [min, max]
    SAT_ZERO = "AP_SAT_ZERO"        # out of range becomes 0
    SAT_SYM = "AP_SAT_SYM"          # clamp to [-max, max]; signed min itself becomes -max
                                    # (1-bit signed: to [-1, 0], as ap_fixed does)


MAX_WIDTH = 64
_HLS_TYPE = re.compile(r"(ap_fixed|ap_ufixed|ap_int|ap_uint)<([^<>]+)>")


@dataclass(frozen=True)
class FixedType:
    width: int
    frac: int
    signed: bool = True
    rounding: Rounding = Rounding.TRN
    overflow: Overflow = Overflow.WRAP

    def __post_init__(self) -> None:
        limit = MAX_WIDTH if self.signed else MAX_WIDTH - 1
        if not isinstance(self.width, int) or not 1 <= self.width <= limit:
            raise ValueError(f"width {self.width!r} out of range 1..{limit} for "
                             f"{'signed' if self.signed else 'unsigned'} types")
        if not isinstance(self.frac, int):
            raise ValueError(f"frac {self.frac!r} is not an integer")

    @property
    def integer(self) -> int:
        """Integer bits including the sign bit, as ap_fixed's second parameter I = W - F."""
        return self.width - self.frac

    @property
    def raw_min(self) -> int:
        return -(1 << (self.width - 1)) if self.signed else 0

    @property
    def raw_max(self) -> int:
        return (1 << (self.width - 1)) - 1 if self.signed else (1 << self.width) - 1

    @property
    def resolution(self) -> float:
        return 2.0 ** -self.frac

    @property
    def min(self) -> float:
        return self.raw_min * self.resolution

    @property
    def max(self) -> float:
        return self.raw_max * self.resolution

    def hls(self) -> str:
        """The C++ type hls4ml writes, e.g. "ap_fixed<8,3,AP_RND,AP_SAT>"."""
        name = "ap_fixed" if self.signed else "ap_ufixed"
        args = [str(self.width), str(self.integer)]
        if self.rounding is not Rounding.TRN or self.overflow is not Overflow.WRAP:
            args += [self.rounding.value, self.overflow.value]
        return f"{name}<{','.join(args)}>"

    def __str__(self) -> str:
        return self.hls()

    @classmethod
    def from_hls(cls, text: str) -> "FixedType":
        """The type a C++ spelling names: ap_fixed<W,I[,Q[,O[,0]]]>, ap_ufixed<...>,
        ap_int<W> or ap_uint<W> (spaces allowed); the inverse of `hls`. ValueError naming
        the text for anything else (a saturation-bits argument other than 0 included)."""
        m = _HLS_TYPE.fullmatch(text.replace(" ", ""))
        if m is None:
            raise ValueError(f"not an ap_fixed/ap_int type: {text!r}")
        kind, args = m.group(1), m.group(2).split(",")
        try:
            width = int(args[0])
            if kind in ("ap_int", "ap_uint"):
                if len(args) != 1:
                    raise ValueError
                return cls(width, 0, kind == "ap_int")
            if not 2 <= len(args) <= 5 or (len(args) == 5 and args[4] != "0"):
                raise ValueError
            rounding = Rounding(args[2]) if len(args) > 2 else Rounding.TRN
            overflow = Overflow(args[3]) if len(args) > 3 else Overflow.WRAP
            return cls(width, width - int(args[1]), kind == "ap_fixed", rounding, overflow)
        except ValueError:
            raise ValueError(f"not an ap_fixed/ap_int type: {text!r}") from None


# -- rounding ---------------------------------------------------------------------------

def _round_increment(rem, half, negative, odd_floor, rounding: Rounding):
    """1 where the rounded value is floor + 1, from the dropped part `rem` in [0, 2*half).
    `negative` and `odd_floor` are callables, evaluated only by the modes that need them."""
    if rounding is Rounding.TRN:
        return np.zeros_like(rem, dtype=bool)
    if rounding is Rounding.TRN_ZERO:
        return negative() & (rem != 0)
    if rounding is Rounding.RND:
        return rem >= half
    if rounding is Rounding.RND_MIN_INF:
        return rem > half
    if rounding is Rounding.RND_ZERO:
        return (rem > half) | ((rem == half) & negative())
    if rounding is Rounding.RND_INF:
        return (rem > half) | ((rem == half) & ~negative())
    if rounding is Rounding.RND_CONV:
        return (rem > half) | ((rem == half) & odd_floor())
    raise AssertionError(rounding)


def _lowest(t: FixedType) -> int:
    """The smallest raw value a conversion to t can produce: SAT_SYM turns the signed
    minimum itself into -max (ap_fixed sets min | 1; for 1 bit that stays -1)."""
    return (t.raw_min | 1) if t.overflow is Overflow.SAT_SYM and t.signed else t.raw_min


def _in_range(r: np.ndarray, t: FixedType) -> bool:
    return r.size == 0 or (r.min() >= _lowest(t) and r.max() <= t.raw_max)


def _overflow(r: np.ndarray, t: FixedType) -> np.ndarray:
    """Apply t's overflow mode to rounded integers `r` (int64 or Python-int objects)."""
    lo, hi = t.raw_min, t.raw_max
    if r.dtype != object and _in_range(r, t):
        return r.astype(np.int64, copy=False)
    if t.overflow is Overflow.WRAP:
        if r.dtype == object:
            low = r & ((1 << t.width) - 1)
            wrapped = np.where(low > hi, low - (1 << t.width), low) if t.signed else low
            return wrapped.astype(np.int64)
        if t.width == 64:
            return r.astype(np.int64, copy=False)
        shift = 64 - t.width
        if t.signed:
            return (r.astype(np.int64, copy=False) << shift) >> shift
        return r.astype(np.int64, copy=False) & np.int64(hi)
    if t.overflow is Overflow.SAT:
        out = np.minimum(np.maximum(r, lo), hi)
    elif t.overflow is Overflow.SAT_ZERO:
        out = np.where((r < lo) | (r > hi), 0, r)
    elif t.overflow is Overflow.SAT_SYM:
        out = np.minimum(np.maximum(r, _lowest(t)), hi)
    else:
        raise AssertionError(t.overflow)
    return out.astype(np.int64)


# -- conversions -------------------------------------------------------------------------

def _exact(values: np.ndarray) -> np.ndarray:
    """The same integers as Python ints (object dtype): shifts and masks of any size exact."""
    return np.array([int(v) for v in values.ravel()], dtype=object).reshape(values.shape)


FLOAT_EXACT_BITS = 53            # float64 holds every integer below 2^53 exactly


def quantize(x, t: FixedType) -> np.ndarray:
    """Raw int64 values of float data converted to `t`, as ap_fixed's double constructor.

    Refuses NaN and infinities (ValueError): they have no fixed-point value.
    """
    x = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError(f"cannot quantize {int(np.sum(~np.isfinite(x)))} NaN/Inf values "
                         f"to {t}")
    return _quantize_scaled(times_pow2(x, t.frac), t)


def requantize_exact_float(values: np.ndarray, frac: int, dst: FixedType) -> np.ndarray:
    """`requantize` of raw values held in floats: integers of magnitude at most 2^52 in
    float64, or 2^23 in float32, with `frac` fractional bits (what the BLAS fast path of the
    kernels produces). Works in place: `values` is overwritten.

    Within those bounds values * 2^-k + 1/2 is exact (no value within half an LSB of a tie
    needs more than the format's 53 or 24 bits), so each rounding mode is one or two exact
    float operations (floor(s + 1/2) is round half up, rint ties to even).
    """
    shift = dst.frac - frac
    return _overflow_float(round_float(values, shift, dst.rounding), dst)


def round_float(values: np.ndarray, shift: int, r: Rounding) -> np.ndarray:
    """Float-held integers times 2^shift, rounded by `r` to integers, in place (exact within
    requantize_exact_float's bounds)."""
    if shift >= 0:                               # integers stay integers: nothing to round
        if shift:
            values *= 2.0 ** shift
        return values
    s = np.multiply(values, 2.0 ** shift, out=values)
    if r is Rounding.TRN:
        np.floor(s, out=s)
    elif r is Rounding.TRN_ZERO:
        np.trunc(s, out=s)
    elif r is Rounding.RND:
        np.floor(np.add(s, 0.5, out=s), out=s)
    elif r is Rounding.RND_MIN_INF:
        np.ceil(np.subtract(s, 0.5, out=s), out=s)
    elif r is Rounding.RND_CONV:
        np.rint(s, out=s)
    else:                                        # ties away from zero / toward zero
        sign = np.sign(s)
        np.abs(s, out=s)
        if r is Rounding.RND_INF:
            np.floor(np.add(s, 0.5, out=s), out=s)
        else:
            np.ceil(np.subtract(s, 0.5, out=s), out=s)
        s *= sign
    return s


def requantizes_in_float(bits: int, dst: FixedType) -> bool:
    """Whether requantized_real gives the conversion of `bits`-wide integers to `dst`."""
    return bits <= FLOAT_EXACT_BITS and dst.width <= FLOAT_EXACT_BITS and \
        dst.overflow is not Overflow.WRAP


def requantized_real(raw: np.ndarray, frac: int, dst: FixedType,
                     clamp: tuple[float, float] | None = None) -> np.ndarray:
    """to_float(requantize(raw, frac, dst), dst) computed in float64 without the integers,
    for `raw` of at most 53 bits (int64, or integers held in float64) and a `dst` that
    requantizes_in_float: each value rounded as requantize_exact_float rounds, then
    saturated (the bounds are exact in float64), then with `clamp` = (lo, hi) clipped to
    [lo, hi] (a ReLU or Clip reading the result; folded into the saturation where
    saturation_bounds can). `raw` is not overwritten."""
    s = round_float(np.array(raw, dtype=np.float64), dst.frac - frac, dst.rounding)
    low, high, folded = saturation_bounds(dst, clamp)
    s = _saturated_float(s, dst, low, high)
    if abs(dst.frac) > 1000:
        s = times_pow2(s, -dst.frac)
    else:
        s *= 2.0 ** -dst.frac                    # exact: a product by a power of two
    if clamp is not None and not folded:
        np.clip(s, clamp[0], clamp[1], out=s)
    return s


def saturation_bounds(dst: FixedType, clamp: tuple[float, float] | None) \
        -> tuple[float, float, bool]:
    """(low, high, folded): the bounds, in LSBs of dst, a saturating conversion to dst
    clips its rounded values to; with `clamp` = (lo, hi) real bounds applied to the result
    afterwards, folded in (folded True) where that is one clip: [L, H] then [lo, hi]
    scaled to LSBs (exactly) is [max(L, lo), min(H, hi)] when that is not empty. (SAT_ZERO
    is no clip: nothing folds into it.)"""
    low, high = float(_lowest(dst)), float(dst.raw_max)
    if clamp is None or dst.overflow is Overflow.SAT_ZERO or abs(dst.frac) > 1000:
        return low, high, False
    lo, hi = (times_pow2(b, dst.frac) for b in clamp)
    exact = all(times_pow2(v, -dst.frac) == b for v, b in zip((lo, hi), clamp))
    lo, hi = max(low, float(lo)), min(high, float(hi))
    if exact and lo <= hi:
        return lo, hi, True
    return low, high, False


def _quantize_scaled(scaled: np.ndarray, t: FixedType) -> np.ndarray:
    """Raw int64 values of t from finite float64 values already in units of t's LSB.
    `scaled` is overwritten (no temporaries beyond one array: they cost more than the
    arithmetic on large batches)."""
    scaled = np.asarray(scaled)
    floor = np.floor(scaled, out=np.empty_like(scaled))   # an array even when 0-d
    if t.rounding is not Rounding.TRN:
        rem = np.subtract(scaled, floor, out=scaled)       # exact, in [0, 1)
        inc = _round_increment(rem, 0.5, lambda: floor < 0,   # floor < 0 iff scaled < 0
                               lambda: np.fmod(floor, 2.0) != 0, t.rounding)
        np.add(floor, inc, out=floor)
    return _overflow_float(floor, t)


def _overflow_float(rounded: np.ndarray, t: FixedType) -> np.ndarray:
    """Raw int64 values of t from float integers: t's overflow mode applied."""
    if rounded.dtype == np.float32 and t.width > 24:
        rounded = rounded.astype(np.float64)      # t's bounds are exact in float64 only
    if rounded.size == 0:
        return rounded.astype(np.int64)
    if t.width <= FLOAT_EXACT_BITS and t.overflow is not Overflow.WRAP:
        # the bounds are exact in float64: saturate before leaving float
        return _saturated_float(rounded, t, float(_lowest(t)), float(t.raw_max)) \
            .astype(np.int64)
    low, high = rounded.min(), rounded.max()
    if low >= _lowest(t) and high <= t.raw_max:
        return rounded.astype(np.int64)
    if low > -2.0 ** 62 and high < 2.0 ** 62:
        return _overflow(rounded.astype(np.int64), t)
    return _overflow(_exact(rounded), t)


def _saturated_float(rounded: np.ndarray, t: FixedType, low: float, high: float) \
        -> np.ndarray:
    """t's saturating overflow mode on float-held integers (t's bounds exact in their
    dtype): SAT_ZERO zeroes the values outside t, the other modes clip to [low, high]
    (t's, or narrower: saturation_bounds), in place where `rounded` is an array."""
    if t.overflow is Overflow.SAT_ZERO:
        return np.where((rounded < t.raw_min) | (rounded > t.raw_max), 0.0, rounded)
    return np.clip(rounded, low, high, out=rounded if rounded.ndim else None)


def cast(raw, src: FixedType, dst: FixedType) -> np.ndarray:
    """Raw values of type `src` converted to `dst` (rounding, then overflow), as ap_fixed's
    assignment between types."""
    if src.frac == dst.frac and src.raw_min >= _lowest(dst) and src.raw_max <= dst.raw_max:
        return np.asarray(raw, dtype=np.int64)   # every value of src is one of dst
    return requantize(raw, src.frac, dst, src.width)


def requantize(raw, frac: int, dst: FixedType, bits: int = 64) -> np.ndarray:
    """Raw int64 values with `frac` fractional bits, each fitting in `bits` two's-complement
    bits, converted to `dst` (rounding, then overflow), as an ap_fixed assignment.

    The intermediate results of the layer kernels (sums, products) are such values: exact
    integers wider than any declared type, known only by their fractional bits.
    """
    raw = np.asarray(raw, dtype=np.int64)
    shift = dst.frac - frac
    if shift == 0:
        return _overflow(raw, dst)
    if shift > 0:
        if bits + shift <= 63:
            return _overflow(raw << shift, dst)
        if dst.overflow is Overflow.WRAP:      # modulo 2^64, then modulo 2^width: exact
            return _overflow(shift_left_wrapping(raw, shift), dst)
        if dst.raw_max < 1 << 62 and shift < 62:
            # every |raw| >= 2^(62 - shift) saturates: clip it there, then shift in int64
            limit = 1 << (62 - shift)
            return _overflow(np.clip(raw, -limit, limit) << shift, dst)
        return _overflow(_exact(raw) << shift, dst)
    k = -shift
    values = raw if k < 63 else _exact(raw)      # int64 shifts stop at 63 bits
    floor = values >> k
    if dst.rounding is not Rounding.TRN:
        rem = values - (floor << k)
        inc = _round_increment(rem, 1 << (k - 1), lambda: raw < 0,
                               lambda: (floor & 1) == 1, dst.rounding)
        floor = floor + inc.astype(np.int64)
    return _overflow(floor, dst)


def widened(t: FixedType) -> FixedType:
    """t's fraction and rounding in 64 saturating bits: a conversion to it gives the rounded
    value a conversion to t would have before t's overflow mode (up to int64's range)."""
    return FixedType(MAX_WIDTH, t.frac, True, t.rounding, Overflow.SAT)


def outside_type(raw, t: FixedType, below: bool = True, above: bool = True) -> np.ndarray:
    """Where rounded integers `raw` (e.g. values of `widened(t)`) are ones t's overflow
    mode changes: outside its range (SAT_SYM: the signed minimum too); only those below
    it when not `above`, only those above it when not `below`."""
    raw = np.asarray(raw)
    low = raw < _lowest(t) if below else np.zeros(raw.shape, dtype=bool)
    return (low | (raw > t.raw_max)) if above else low


def shift_left_wrapping(v: np.ndarray, s: int) -> np.ndarray:
    """v * 2^s modulo 2^64 (int64 two's complement)."""
    if s >= 64:
        return np.zeros_like(v)
    return (v.view(np.uint64) << np.uint64(s)).view(np.int64)


def pow2_factor(e: int) -> float | None:
    """2^e as the double times_pow2 multiplies by, or None where 2^e is not a normal double
    (|e| > 1000: ldexp then)."""
    return 2.0 ** e if abs(e) <= 1000 else None


def times_pow2(x: np.ndarray, e: int) -> np.ndarray:
    """x * 2^e as float64: np.ldexp's values (a product by a power of two is correctly
    rounded, as ldexp's result), without NumPy's element-by-element ldexp, 9x slower."""
    factor = pow2_factor(e)
    if factor is None:
        return np.ldexp(np.asarray(x, dtype=np.float64), e)
    return np.multiply(x, factor, dtype=np.float64)      # (integers converted as read)


def to_float(raw, t: FixedType) -> np.ndarray:
    """Real values of raw integers (exact while |raw| < 2^53)."""
    return times_pow2(raw, -t.frac)
