"""Integer building blocks the bit-accurate kernels share: multiply-accumulate and reductions.

Everything here works on int64 raw values and is exact. The multiply-accumulate follows
hls4ml's dense and convolution templates: every product is cast to accum_t, the bias is cast
to accum_t, the sum runs in accum_t. Accumulators must wrap (the QuantizedGraph checks it):
a wrapping sum is the same in every summation order, which is what lets one matmul stand in
for the latency, resource and streaming loops alike.
"""
from __future__ import annotations

import numpy as np

from fxq.fixed import (FLOAT_EXACT_BITS, FixedType, Overflow, requantize, round_float,
                       requantize_exact_float, shift_left_wrapping)

FLOAT_EXACT = 2.0 ** FLOAT_EXACT_BITS  # float64 holds every integer below this exactly
CHUNK_ELEMENTS = 1 << 22         # products held at once on the per-product rounding path


def raw_bound(t: FixedType) -> int:
    """Largest magnitude a raw value of `t` can have."""
    return max(abs(t.raw_min), t.raw_max)


def signed_weight_sums(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sum of the positive, sum of the negative) raw weights into each output, in float64:
    `w` is (..., K, O), output o sums over axis -2."""
    w = np.asarray(w, dtype=np.float64)
    return np.where(w > 0, w, 0.0).sum(axis=-2), np.where(w < 0, w, 0.0).sum(axis=-2)


def exact_float_dtype(x_t: FixedType, sums: tuple[np.ndarray, np.ndarray], w_t: FixedType,
                      bias_acc: np.ndarray | None, accum: FixedType):
    """The float dtype in which sum_k x[k] * w[k] (+ bias), on accum's grid, is exact for
    every input of type x_t, or None. `sums` are the weights' signed_weight_sums per
    output, `bias_acc` (..., O) on accum's grid. Requires accum at least as fine
    as the products (no per-product rounding) and every sum within accum's range (its wrap
    is the identity: each input at the end of x_t's range its weight's sign favours, then
    at the other end). float32 when every partial sum is at most 2^23 in magnitude, float64
    at most 2^52: one bit of margin below each format's exact integers, because
    requantize_exact_float rounds by adding half an LSB."""
    shift = accum.frac - (x_t.frac + w_t.frac)
    if shift < 0:
        return None
    positive, negative = sums
    weight_sum = float((positive - negative).max(initial=0.0))
    lo, hi = float(x_t.raw_min), float(x_t.raw_max)
    largest = (positive * hi + negative * lo) * 2.0 ** shift
    smallest = (positive * lo + negative * hi) * 2.0 ** shift
    bound = raw_bound(x_t) * weight_sum * 2.0 ** shift
    if bias_acc is not None and bias_acc.size:
        b = np.asarray(bias_acc, dtype=np.float64)
        largest, smallest = largest + b, smallest + b
        bound += float(np.abs(b).max())
    if largest.max(initial=0.0) > float(accum.raw_max) or \
            smallest.min(initial=0.0) < float(accum.raw_min):
        return None
    if bound <= 2.0 ** 23 and x_t.width <= 24:
        return np.float32
    if bound <= FLOAT_EXACT / 2 and x_t.width <= 53:
        return np.float64
    return None


def _exact_matmul(x: np.ndarray, w: np.ndarray, x_bound: int, weight_sum: float) -> np.ndarray:
    """x @ w on int64 raw values, batched over the leading axis, exact modulo 2^64.

    Runs through float64 BLAS when every partial sum provably stays below 2^53 (the bound:
    the type's largest |x| times `weight_sum`, the largest sum of |w| into one output),
    in int64 otherwise.
    """
    if x_bound * weight_sum < FLOAT_EXACT:
        return np.matmul(x.astype(np.float64), w.astype(np.float64)).astype(np.int64)
    return np.matmul(x, w)


def multiply_accumulate(x: np.ndarray, x_t: FixedType, w: np.ndarray, w_t: FixedType,
                        b: np.ndarray | None, b_t: FixedType | None,
                        accum: FixedType, result: FixedType) -> np.ndarray:
    """Raw `result` values of sum_k cast(x[..., k] * w[k, o]) + cast(b[o]), summed in `accum`.

    `x` is (G, M, K) raw values (int64, or float64 holding the same integers), `w` is
    (G, K, O), `b` is (G, O) or None: G independent groups (1 for dense and ordinary
    convolution, the channels for depthwise). Returns (G, M, O) raw values of `result`.
    """
    assert accum.overflow is Overflow.WRAP, "the QuantizedGraph refuses other accumulators"
    b_acc = requantize(b, b_t.frac, accum, b_t.width) if b is not None else None
    sums = signed_weight_sums(w)
    weight_sum = float((sums[0] - sums[1]).max(initial=0.0))   # the largest sum of |w|
    dtype = exact_float_dtype(x_t, sums, w_t, b_acc, accum)
    if dtype is not None:
        total = np.matmul(x.astype(dtype, copy=False), w.astype(dtype))
        shift = accum.frac - (x_t.frac + w_t.frac)
        if shift:
            total *= 2.0 ** shift
        if b_acc is not None:
            total += b_acc[:, None, :].astype(dtype)
        return requantize_exact_float(total, accum.frac, result)
    x = x.astype(np.int64, copy=False)
    product_frac = x_t.frac + w_t.frac
    shift = accum.frac - product_frac
    if shift >= 0:
        # the products need no rounding: sum them exactly, then scale onto the accum grid
        total = shift_left_wrapping(_exact_matmul(x, w, raw_bound(x_t), weight_sum), shift)
    else:
        total = _rounded_products_sum(x, w, product_frac, accum, raw_bound(x_t), weight_sum)
    if b_acc is not None:
        total = total + b_acc[:, None, :]
    return requantize(requantize(total, accum.frac, accum, 64), accum.frac, result,
                      accum.width)


def _rounded_products_sum(x, w, product_frac, accum, x_bound: int, weight_sum: float):
    """Sum of products each rounded onto the accumulator grid first (accum has fewer
    fractional bits than the products), in chunks of rows to bound memory.

    In float64 when every product and every partial sum of the rounded products is an
    integer below 2^52 (`x_bound` the largest |x|, `weight_sum` the largest sum of |w| into
    one output; a product rounds to at most one more than its magnitude scaled), where each
    product's rounding is exact (requantize_exact_float's rule); in int64 otherwise."""
    g, m, k = x.shape
    o = w.shape[-1]
    rows = max(1, CHUNK_ELEMENTS // max(1, k * o))
    shift = accum.frac - product_frac
    largest_w = float(np.abs(w).max(initial=0))
    in_float = x_bound * largest_w < FLOAT_EXACT / 2 and \
        x_bound * weight_sum * 2.0 ** shift + k < FLOAT_EXACT / 2
    wrap64 = FixedType(64, accum.frac, True, accum.rounding, Overflow.WRAP)
    out = np.empty((g, m, o), dtype=np.int64)
    if in_float:
        xf, wf = x.astype(np.float64), w.astype(np.float64)
    for start in range(0, m, rows):
        if in_float:
            part = xf[:, start:start + rows, :, None] * wf[:, None, :, :]  # G, rows, K, O
            out[:, start:start + rows] = round_float(part, shift, accum.rounding).sum(axis=2)
            continue
        part = x[:, start:start + rows, :, None] * w[:, None, :, :]      # G, rows, K, O
        out[:, start:start + rows] = requantize(part, product_frac, wrap64, 64).sum(axis=2)
    return out


def aligned_sum(a: np.ndarray, a_frac: int, b: np.ndarray, b_frac: int):
    """(a + b, frac): the exact sum of two raw arrays with different fractional bits, both
    shifted onto the finer grid, as ap_fixed's `+` computes it before any assignment."""
    frac = max(a_frac, b_frac)
    return (a << (frac - a_frac)) + (b << (frac - b_frac)), frac


def add_in(t: FixedType):
    """One addition of two raw values of t, its result assigned back to t (a node of
    hls4ml's Op_add reduce, or one step of a running sum in t)."""
    def add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return requantize(a + b, t.frac, t, 64)
    return add


def tree_reduce(values: np.ndarray, combine) -> np.ndarray:
    """hls4ml's balanced-tree `reduce` over the last axis: the left part takes the largest
    power of two below N, recursively; `combine(a, b)` applies one node of the tree."""
    n = values.shape[-1]
    if n == 1:
        return values[..., 0]
    if n == 2:
        return combine(values[..., 0], values[..., 1])
    left = 1 << ((n - 1).bit_length() - 1)
    return combine(tree_reduce(values[..., :left], combine),
                   tree_reduce(values[..., left:], combine))


def truncating_divide(raw: np.ndarray, divisor) -> np.ndarray:
    """ap_fixed divided by an integer: same fractional bits, quotient rounded toward zero.
    `divisor` is an int or an int64 array broadcasting against raw; |raw| < 2^62."""
    if isinstance(divisor, (int, np.integer)) and divisor > 0 and divisor & (divisor - 1) == 0:
        # a power of two: an arithmetic shift floors, so negatives first add divisor - 1
        return (raw + ((raw >> 63) & (int(divisor) - 1))) >> (int(divisor).bit_length() - 1)
    q = np.abs(raw) // divisor
    return np.where(raw < 0, -q, q)
