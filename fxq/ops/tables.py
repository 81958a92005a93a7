"""hls4ml's activation lookup tables, computed the way its C++ computes them.

The tables are filled in single-precision float with the C library's expf and tanhf
(nnet_activation.h), then converted to the table's fixed-point type. Calling the same libm
functions through ctypes gives the same floats the C simulation and the synthesis tool see,
so the simulator needs no compiled code. Tables are cached per (size, type).
"""
from __future__ import annotations

import ctypes
import ctypes.util
from functools import lru_cache

import numpy as np

from fxq.fixed import FixedType, quantize

_LIBM = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")
for _name in ("expf", "tanhf"):
    getattr(_LIBM, _name).argtypes = [ctypes.c_float]
    getattr(_LIBM, _name).restype = ctypes.c_float

f32 = np.float32


def _expf(x: float) -> np.float32:
    return f32(_LIBM.expf(float(f32(x))))


def _tanhf(x: float) -> np.float32:
    return f32(_LIBM.tanhf(float(f32(x))))


def _table_inputs(size: int, half_range: float) -> list[np.float32]:
    # float in_val = 2 * R * (ii - float(N) / 2.0) / float(N), evaluated in double
    return [f32(2 * half_range * (i - float(size) / 2.0) / float(size)) for i in range(size)]


@lru_cache(maxsize=None)
def sigmoid_table(size: int, table_t: FixedType) -> np.ndarray:
    """Raw table_t values of init_sigmoid_table: 1.0 / (1 + expf(-x)) over [-8, 8)."""
    values = []
    for x in _table_inputs(size, 8.0):
        denominator = f32(f32(1.0) + _expf(-x))             # int + float: float arithmetic
        values.append(float(f32(1.0 / float(denominator))))  # double division, returned as float
    return quantize(np.array(values), table_t)


@lru_cache(maxsize=None)
def tanh_table(size: int, table_t: FixedType) -> np.ndarray:
    """Raw table_t values of init_tanh_table: tanhf(x) over [-4, 4)."""
    return quantize(np.array([float(_tanhf(x)) for x in _table_inputs(size, 4.0)]), table_t)


@lru_cache(maxsize=None)
def elu_table(size: int, table_t: FixedType) -> np.ndarray:
    """Raw table_t values of init_elu_table: expf(x) - 1. over x = -8.0 * i / N (double,
    then float), the difference in double (1. is a double) returned as float."""
    values = []
    for i in range(size):
        x = f32(-8.0 * i / float(size))
        values.append(float(f32(float(_expf(x)) - 1.0)))
    return quantize(np.array(values), table_t)


@lru_cache(maxsize=None)
def selu_table(size: int, table_t: FixedType) -> np.ndarray:
    """Raw table_t values of init_selu_table: 1.0507... * (1.6732... * (expf(x) - 1.)) in
    double (the constants are double literals), returned as float, over x as elu_table's."""
    values = []
    for i in range(size):
        x = f32(-8.0 * i / float(size))
        values.append(float(f32(1.0507009873554804934193349852946
                                * (1.6732632423543772848170429916717 * (float(_expf(x)) - 1.0)))))
    return quantize(np.array(values), table_t)


def top_bits_value(i: int, bits: int, t: FixedType) -> float:
    """The value of type `t` whose top `bits` bits are the index `i` and the rest zero, as
    softmax_real_val_from_idx builds it (converted to float)."""
    raw = i << (t.width - bits)
    if t.signed and raw >= 1 << (t.width - 1):
        raw -= 1 << t.width
    return float(f32(raw * 2.0 ** -t.frac))


@lru_cache(maxsize=None)
def softmax_exp_table(size: int, index_t: FixedType, table_t: FixedType,
                      negative: bool) -> np.ndarray:
    """Raw exp_table_t values of init_exp_table, indexed by the top bits of `index_t`."""
    bits = (size - 1).bit_length()
    values = []
    for i in range(size):
        x = top_bits_value(i, bits, index_t)
        values.append(float(_expf(-x if negative else x)))
    return quantize(np.array(values), table_t)


@lru_cache(maxsize=None)
def softmax_invert_table(size: int, index_t: FixedType, table_t: FixedType) -> np.ndarray:
    """Raw inv_table_t values of init_invert_table: 1 / x over the top bits of `index_t`.

    x = 0 (index 0) gives +inf in float; fxq takes the type's maximum there, which is what
    ap_fixed gives under the saturating modes hls4ml defaults this table to. Other overflow
    modes at that one entry are not checked against the C simulation (an exp sum of 0 does
    not occur in the stable softmax, whose largest term is exp(0) = 1).
    """
    bits = (size - 1).bit_length()
    values = []
    for i in range(size):
        x = f32(top_bits_value(i, bits, index_t))
        values.append(float(f32(1) / x) if x != 0 else table_t.max)
    return quantize(np.array(values), table_t)


def index_from_top_bits(raw: np.ndarray, t: FixedType, bits: int) -> np.ndarray:
    """softmax_idx_from_real_val: the top `bits` bits of the raw two's-complement word."""
    unsigned = raw & ((1 << t.width) - 1) if t.width < 64 else raw.view(np.uint64)
    return (np.asarray(unsigned).astype(np.uint64) >> np.uint64(t.width - bits)).astype(np.int64)
