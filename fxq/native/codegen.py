"""C++ source of a QuantizedGraph's bit-accurate simulation (the native engine).

The generated program computes exactly what the NumPy kernels in fxq/ops compute (they stay
the reference): the same integer operations on the same raw values, in C++ compiled with
-fwrapv, where int64 arithmetic wraps as NumPy's does. It runs the graph on blocks of
`BLOCK` samples held sample-minor (element e of sample b at [e * BLOCK + b]), so every
operation is a loop over the samples of a block that the compiler vectorizes; blocks run in
parallel on OpenMP threads.

Structure (shapes, types, strides) is compiled in; values (weights, biases, tables) are
passed at run time, so one build serves every weight set with the same structure and the
same accumulator bounds. Anything outside what this engine implements (an op, a shift of 63
bits or more, a table index that could overflow) raises NativeUnsupported, and the caller
runs NumPy instead.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING
import math
from math import prod

import numpy as np

from fxq.fixed import FixedType, Overflow, outside_type, quantize, requantize, widened
from fxq.native.cpp import (FOR_B, SIMD_B, Buffer, Gen, NativeUnsupported, tree,  # noqa: F401
                            type_args, at, broadcast_index, cast, counted, elementwise, emitter, lit,
                            rq, shift_left, storage)
from fxq.op import Op
from fxq.ops import tables
from fxq.ops.activation import softmax_table_sizes
from fxq.ops.fixed_math import raw_bound
from fxq.ops.pool import window_count
from fxq.layer import FixedNode
from fxq.ops.registry import find
from fxq.ops.windows import spatial_output_shape

if TYPE_CHECKING:
    from fxq.quantized import QuantizedGraph

BLOCK = 16                      # samples per block: one AVX-512 vector of int32
DEPTHWISE_PIXELS = 4            # output pixels a depthwise convolution sums at once
MAX_ARENA_BYTES = 1 << 29       # the tensors of a block live at once, per thread
SOFTMAX_LANES_MAX = 1024        # softmax rows up to this long run across the samples at
                                # once (their exponentials on the stack: 128 bytes each)


@dataclass
class Program:
    source: str
    params: list[np.ndarray]
    inputs: list[tuple[str, tuple[int, ...]]]        # graph inputs: name, per-sample shape
    outputs: list[tuple[str, tuple[int, ...]]]
    counted: list[str]          # the tensor of each overflow count: the inputs, then nodes


# -- weighted sums ---------------------------------------------------------------------------

def _accumulator(fx: FixedNode, weights: np.ndarray, units: int) -> tuple[str, int, int]:
    """(C++ accumulator type, accum shift over the products, units per int32 chunk) for
    sum x*w over each row of `weights` (outputs, terms in `units` runs of equal length).

    int32 when every partial sum of raw products provably fits it. Otherwise int64
    (wrapping modulo 2^64 as NumPy's int64 matmul, which the accumulator's own wrap to at
    most 64 bits then makes exact); when the products fit int32, runs of units whose sums
    provably fit are added in int32 first (twice the lanes per instruction) and the
    chunk length is returned, else 0."""
    x_t, w_t, accum = fx.inputs[0], fx.param_types[0], fx.layer.accum
    shift = accum.frac - (x_t.frac + w_t.frac)
    rows, terms = weights.shape
    largest = int(np.abs(weights).max(initial=0))
    if shift < 0 or largest * terms >= 1 << 62:
        return "int64_t", shift, 0
    fits = ((1 << 31) - 1) // raw_bound(x_t)          # largest |w| sum an int32 run holds
    per_unit = np.abs(weights).reshape(rows, units, terms // max(units, 1)).sum(axis=2)
    if int(per_unit.sum(axis=1).max(initial=0)) <= fits:
        return "int32_t", shift, 0
    if largest > fits or storage(x_t) != "int32_t":
        return "int64_t", shift, 0
    chunk = 1 << (units.bit_length() - 1)
    while chunk > 1:
        padded = np.pad(per_unit, ((0, 0), (0, -units % chunk)))
        if int(padded.reshape(rows, -1, chunk).sum(axis=2).max()) <= fits:
            break
        chunk //= 2
    return "int64_t", shift, chunk if chunk > 1 else 0


def _fits_int16(x_t: FixedType, weights: np.ndarray) -> bool:
    return (x_t.raw_min >= -(1 << 15) and x_t.raw_max < 1 << 15
            and int(np.abs(weights).max(initial=0)) < 1 << 15)


def _int16_pairs(g: Gen, x: Buffer, weights: np.ndarray, units: int,
                 pairs: tuple[int, int, str], fallback: str) -> tuple[str, str]:
    """(C++ packing x by pairs of units, the term loop over the pairs) of an int32 weighted
    sum whose inputs and weights fit int16: multiply-adds of int16 pairs (AVX-512: VNNI's
    vpdpwssd where the CPU has it, else vpmaddwd and an add; AVX2: vpmaddwd and an add),
    two terms per lane and instruction.
    x is packed once per block: units 2i and 2i+1 of each sample in one int32 lane (the
    second zero past an odd count); each row's two weights in one broadcast int32. Exact:
    every partial sum fits int32 (the caller's bound), so the non-saturating int32 sums
    equal the scalar ones. Where the CPU has neither, `fallback`, the generic loop."""
    a, stride, index = pairs
    rows, terms = weights.shape
    per_unit, half = terms // units, -(-units // 2)
    w = np.zeros((rows, 2 * half, per_unit), dtype=np.int64)
    w[:, :units] = weights.reshape(rows, units, per_unit)
    packed = ((w[:, 1::2] << 16) | (w[:, 0::2] & 0xFFFF)) & 0xFFFFFFFF
    wp = g.param(np.where(packed >= 1 << 31, packed - (1 << 32), packed).reshape(rows, -1),
                 "int32_t")
    pk = g.buffer("pk", "int32_t", a * half * stride)
    t2 = half * per_unit
    pack = f"""
#if defined(FXQ_PAIRS)
  for (int a = 0; a < {a}; ++a) for (int u = 0; u < {half}; ++u) for (int s = 0; s < {stride}; ++s) {{
    const int src = (a * {units} + 2 * u) * {stride} + s;
    for (int part = 0; part < B / V32; ++part) {{
      const fxq_vi lo = FXQ_LOAD(AT(xs, src) + part * V32);
      const fxq_vi hi = 2 * u + 1 < {units} ? FXQ_LOAD(AT(xs, src + {stride}) + part * V32)
                                         : FXQ_ZERO();
      FXQ_STORE(AT({pk}, (a * {half} + u) * {stride} + s) + part * V32, FXQ_JOIN16(lo, hi));
    }}
  }}
#endif"""
    body = f"""
#if defined(FXQ_PAIRS)
    for (int u = 0; u < {half}; ++u) for (int kk = 0; kk < {per_unit}; ++kk) {{
      const int xi = {index};
      const int32_t* wr = {wp} + (ptrdiff_t)orow0 * {t2} + u * {per_unit} + kk;
      for (int part = 0; part < P; ++part) {{
        const fxq_vi xx = FXQ_LOAD(AT({pk}, xi) + part * V32);
        _Pragma("GCC unroll 4") for (int j = 0; j < OB; ++j)
          acc[j][part] = (vacc)FXQ_DOT16((fxq_vi)acc[j][part], xx, FXQ_SET1(wr[j * {t2}]));
      }}
    }}
#else
    {fallback}
#endif
"""
    return pack, body


def _narrow_epilogue(fx: FixedNode, weights: np.ndarray, acc_t: str, shift: int,
                     b_acc: np.ndarray | None, k_out: int) -> bool:
    """Whether a weighted sum's epilogue (the sum aligned to the accumulator, the bias, the
    accumulator's conversion, the result's) can run in int32: the sums are int32 and
    |sum| * 2^shift + |bias| < 2^31 for every output (the bound _accumulator proves the
    sums by), the accumulator and the result are at most 31 bits wide and the result's
    conversion shifts right by at most 30 bits. Then every intermediate value is the exact one,
    as in int64."""
    accum, result = fx.layer.accum, fx.result
    if acc_t != "int32_t" or not 0 <= shift < 31 or not 0 <= k_out <= 30 \
            or accum.width > 31 or result.width > 31:
        return False
    bound = raw_bound(fx.inputs[0])
    sums = [int(s) * bound << shift for s in np.abs(weights).sum(axis=1)]   # per output row
    bias = [0] * len(sums) if b_acc is None else [abs(int(b)) for b in np.ravel(b_acc)]
    if len(bias) != len(sums):
        return False
    return max((s + b for s, b in zip(sums, bias)), default=0) < 1 << 31


def _bias_in_accumulator(fx: FixedNode) -> np.ndarray | None:
    """The raw bias at the accumulator's resolution (None without one)."""
    if len(fx.params) < 2:
        return None
    b, b_t = fx.params[1], fx.param_types[1]
    return requantize(b, b_t.frac, fx.layer.accum, b_t.width)


def _epilogue(g: Gen, fx: FixedNode, weights: np.ndarray, acc_t: str, shift: int,
              b_acc: np.ndarray | None) -> str:
    """C++ of a weighted sum's output value from `sum[b]` (the sum of products of output
    row `orow`): aligned to the accumulator, the bias added, the accumulator's conversion,
    then the result's (counted)."""
    accum = fx.layer.accum
    k_out = accum.frac - fx.result.frac
    if _narrow_epilogue(fx, weights, acc_t, shift, b_acc, k_out):
        # every value of the epilogue fits int32 (bounded below): it runs there
        total = f"(sum[b] << {shift})" if shift else "sum[b]"
        if b_acc is not None:
            total = f"({total} + {g.param(b_acc, 'int32_t')}[orow])"
        return rq(k_out, fx.result, rq(0, accum, total, narrow=True), count=True, narrow=True)
    total = shift_left("sum[b]", shift) if shift >= 0 else "(fxq::i64)sum[b]"
    if b_acc is not None:
        total = f"({total} + {g.param(b_acc, 'int64_t')}[orow])"
    return rq(k_out, fx.result, rq(0, accum, total), count=True)


def _taps(spatial, kernel, strides, pads) -> np.ndarray:
    """(npix, taps): the flat index within one channel of x (per-sample `spatial`, padded
    by `pads`: begin..., end...) that output pixel p's tap t reads, or -1 where it reads
    the padding."""
    nd = len(spatial)
    out = spatial_output_shape(spatial, kernel, strides, pads)
    origin = np.stack(np.meshgrid(*[np.arange(n) * s - pads[i]
                                    for i, (n, s) in enumerate(zip(out, strides))],
                                  indexing="ij"), -1).reshape(-1, 1, nd)
    offset = np.stack(np.meshgrid(*[np.arange(k) for k in kernel], indexing="ij"),
                      -1).reshape(1, -1, nd)
    at = origin + offset                                           # (npix, taps, nd)
    inside = ((at >= 0) & (at < np.array(spatial))).all(axis=-1)
    flat = np.ravel_multi_index(tuple(np.moveaxis(np.where(inside[..., None], at, 0), -1, 0)),
                                spatial)
    return np.where(inside, flat, -1)


def _depthwise(g: Gen, fx: FixedNode, x: Buffer, y: Buffer, weights: np.ndarray) -> bool:
    """A depthwise convolution (one input channel per output channel) whose sums are int32,
    read from x itself (no padded copy): the output pixels whose windows lie inside x
    PB at a time, each tap's weight broadcast once for the PB pixels, which are PB
    independent sums (a per-channel sum alone is one short chain, and the generic loop
    broadcasts the weight per pixel); the pixels whose windows reach into the padding one
    at a time, skipping the taps there (zeros: their products add nothing). False (nothing
    emitted) where the generic weighted sum must run: int64 sums, or an accumulator
    coarser than the products."""
    rows, taps = weights.shape
    acc_t, shift, _ = _accumulator(fx, weights, 1)          # (one unit: no int32 runs)
    if acc_t != "int32_t" or shift < 0 or x.ctype != "int32_t":
        return False
    strides, pads = fx.node.attrs["strides"], fx.node.attrs["pads"]
    spatial, kernel = x.shape[1:], fx.params[0].shape[2:]
    reads = _taps(spatial, kernel, strides, pads)
    npix, size = len(reads), prod(spatial)
    whole = (reads >= 0).all(axis=1)
    inner, edge = np.flatnonzero(whole), np.flatnonzero(~whole)
    w = g.param(weights, "int32_t")
    out = _epilogue(g, fx, weights, acc_t, shift, _bias_in_accumulator(fx))
    code = [f"""{{ // CONV (depthwise) {fx.node.name}
  constexpr int V = FXQ_VEC / 4, P = B / V, PB = {DEPTHWISE_PIXELS};
  typedef int32_t vacc __attribute__((vector_size(FXQ_VEC)));
  const int32_t* __restrict xs = {x.var}; int32_t* __restrict ys = {y.var};
  for (int orow = 0; orow < {rows}; ++orow) {{"""]
    if len(inner):
        ni = len(inner)
        pix = g.static(inner)
        base, off = g.static(reads[inner, 0]), g.static(reads[inner[0]] - reads[inner[0], 0])
        code.append(f"""    for (int j0 = 0; j0 < {ni}; j0 += PB) {{
      vacc acc[PB][P] = {{}};
      int at[PB];                  // past the last pixel: the last one again, not stored
      for (int q = 0; q < PB; ++q) at[q] = orow * {size} + {base}[std::min(j0 + q, {ni - 1})];
      for (int kk = 0; kk < {taps}; ++kk) {{
        const int32_t wv = {w}[orow * {taps} + kk];
        for (int q = 0; q < PB; ++q) for (int part = 0; part < P; ++part) {{
          vacc xv; std::memcpy(&xv, AT(xs, at[q] + {off}[kk]) + part * V, sizeof xv);
          acc[q][part] += xv * wv;
        }}
      }}
      for (int q = 0; q < std::min(PB, {ni} - j0); ++q) {{
        const int oidx = orow * {npix} + {pix}[j0 + q];
        int32_t sum[B];
        std::memcpy(sum, acc[q], sizeof sum);
        {SIMD_B} AT(ys, oidx)[b] = {out};
      }}
    }}""")
    if len(edge):
        pix, tap = g.static(edge), g.static(reads[edge])
        code.append(f"""    for (int j = 0; j < {len(edge)}; ++j) {{
      vacc acc[P] = {{}};
      for (int kk = 0; kk < {taps}; ++kk) {{
        const int src = {tap}[j * {taps} + kk];
        if (src < 0) continue;
        const int32_t wv = {w}[orow * {taps} + kk];
        for (int part = 0; part < P; ++part) {{
          vacc xv; std::memcpy(&xv, AT(xs, orow * {size} + src) + part * V, sizeof xv);
          acc[part] += xv * wv;
        }}
      }}
      const int oidx = orow * {npix} + {pix}[j];
      int32_t sum[B];
      std::memcpy(sum, acc, sizeof sum);
      {SIMD_B} AT(ys, oidx)[b] = {out};
    }}""")
    code.append("  }\n}")
    g.body.append("\n".join(code))
    return True


def _row_block(rows_per_group: int) -> int:
    """Output rows computed together (each input vector loaded once for all of them, and
    independent accumulators to hide the add latency); they share a group."""
    return next(n for n in (4, 2, 1) if rows_per_group % n == 0)


def _weighted_sum(g: Gen, fx: FixedNode, x: Buffer, y: Buffer, weights: np.ndarray,
                  rows_per_group: int, units: int, loops: tuple[str, str, str, str],
                  pairs: tuple[int, int, str] | None = None) -> None:
    """The shared body of Dense and Conv, as multiply_accumulate: for each output element,
    acc = sum of x * w over its terms, then the bias, the accumulator's wrap and the cast to
    the result. `weights` is (rows, terms), its rows in groups of `rows_per_group` that
    read the same inputs, its terms `units` runs (input channels) of `kk` terms (kernel
    offsets). `loops` is C++ for (the loops outside the row loop; inside it; the output
    element of row `orow`; the input element of term (u, kk) for the rows from `orow0`).

    Vectors are explicit (GCC vector extensions) across the block's samples: left to
    itself GCC unrolls the sample loop and vectorizes the term loop with gathers instead
    (10x slower); they are the CPU's native width, FXQ_VEC bytes (64 with AVX-512, else
    32: wider ones spill, halves of the accumulators going through the stack).

    `pairs` = (A, S, index): x seen as (A, units, S) elements, and the C++ index of pair
    `u`'s element for term (u, kk) in x packed by pairs of units (`_int16_pairs`)."""
    outer, inner, out_index, x_index = loops
    rows, terms = weights.shape
    per_unit = terms // units
    accum = fx.layer.accum
    b_acc = _bias_in_accumulator(fx)
    acc_t, shift, chunk = _accumulator(fx, weights, units)
    w = g.param(weights, "int32_t" if chunk else acc_t)
    term = (f"const int wi = u * {per_unit} + kk, xi = {x_index};\n"
            f"      const auto* wr = w + (ptrdiff_t)orow0 * {terms} + wi;")
    if shift < 0:          # accum coarser than the products: each product rounded onto its grid
        wrap64 = FixedType(64, accum.frac, True, accum.rounding)
        product = rq(-shift, wrap64, f"(fxq::i64)AT(xs, xi)[b] * wr[j * {terms}]")
        body = f"""for (int u = 0; u < {units}; ++u) for (int kk = 0; kk < {per_unit}; ++kk) {{
      {term}
      for (int j = 0; j < OB; ++j) {{ {acc_t}* a = ({acc_t}*)acc[j]; {SIMD_B} a[b] += {product}; }}
    }}"""
    elif not chunk:
        body = f"""for (int u = 0; u < {units}; ++u) for (int kk = 0; kk < {per_unit}; ++kk) {{
      {term}
      for (int part = 0; part < P; ++part) {{
        vx xv; std::memcpy(&xv, AT(xs, xi) + part * V, sizeof xv);
        const vacc xa = __builtin_convertvector(xv, vacc);
        _Pragma("GCC unroll 4") for (int j = 0; j < OB; ++j) acc[j][part] += xa * wr[j * {terms}];
      }}
    }}"""
    else:                  # int32 runs of `chunk` units, each added into the int64 sums
        body = f"""for (int u0 = 0; u0 < {units}; u0 += {chunk}) {{
      v32 a32[OB][B / V32] = {{}};
      for (int u = u0; u < std::min(u0 + {chunk}, {units}); ++u) for (int kk = 0; kk < {per_unit}; ++kk) {{
        {term}
        for (int part = 0; part < B / V32; ++part) {{
          v32 xv; std::memcpy(&xv, AT(xs, xi) + part * V32, sizeof xv);
          _Pragma("GCC unroll 4") for (int j = 0; j < OB; ++j) a32[j][part] += xv * wr[j * {terms}];
        }}
      }}
      for (int j = 0; j < OB; ++j) for (int part = 0; part < B / V32; ++part) {{
        v16 lo, hi;
        std::memcpy(&lo, &a32[j][part], FXQ_VEC / 2);
        std::memcpy(&hi, (char*)&a32[j][part] + FXQ_VEC / 2, FXQ_VEC / 2);
        acc[j][2 * part] += __builtin_convertvector(lo, vacc);
        acc[j][2 * part + 1] += __builtin_convertvector(hi, vacc);
      }}
    }}"""
    pack = ""
    if (pairs is not None and acc_t == "int32_t" and shift >= 0 and units > 1
            and x.ctype == "int32_t" and _fits_int16(fx.inputs[0], weights)):
        pack, body = _int16_pairs(g, x, weights, units, pairs, body)
    out = _epilogue(g, fx, weights, acc_t, shift, b_acc)
    g.body.append(f"""{{ // {fx.node.op.name} {fx.node.name}
  constexpr int V = FXQ_VEC / sizeof({acc_t}), P = B / V;   // P vectors of V samples per block
  constexpr int V32 = FXQ_VEC / 4;                         // int32 lanes per vector
  typedef {acc_t} vacc __attribute__((vector_size(FXQ_VEC)));
  typedef {x.ctype} vx __attribute__((vector_size(V * sizeof({x.ctype}))));
  typedef int32_t v32 __attribute__((vector_size(FXQ_VEC)));
  typedef int32_t v16 __attribute__((vector_size(FXQ_VEC / 2)));
  constexpr int OB = {_row_block(rows_per_group)};
  const {x.ctype}* __restrict xs = {x.var}; {y.ctype}* __restrict ys = {y.var};
  const auto* __restrict w = {w};{pack}
  {outer} for (int orow0 = 0; orow0 < {rows}; orow0 += OB) {inner} {{
    vacc acc[OB][P] = {{}};
    {body}
    for (int j = 0; j < OB; ++j) {{
      const int orow = orow0 + j, oidx = {out_index};
      {acc_t} sum[B];
      std::memcpy(sum, acc[j], sizeof sum);
      {SIMD_B} AT(ys, oidx)[b] = {out};
    }}
  }}
}}""")


@emitter(Op.DENSE)
def dense(g: Gen, fx: FixedNode, x: Buffer, y: Buffer) -> None:
    w = fx.params[0]                                          # K, O
    k, o = w.shape
    loops = (f"for (int r = 0; r < {x.size // k}; ++r)", "", f"r * {o} + orow", f"r * {k} + u")
    _weighted_sum(g, fx, x, y, np.ascontiguousarray(w.T), o, k, loops,
                  (x.size // k, 1, f"r * {-(-k // 2)} + u"))


def _padded(g: Gen, x: Buffer, pads, value: int) -> tuple[str, tuple[int, ...]]:
    """x copied into a buffer padded by `pads` (begin..., end...) over the spatial axes,
    filled with the raw `value`: (its variable, padded per-sample shape). Row by row (the
    last axis): a row of x is contiguous in both (its elements' sample lanes in order), so
    each is one memcpy between its fills."""
    c, spatial = x.shape[0], x.shape[1:]
    nd = len(spatial)
    if not any(pads):
        return x.var, x.shape
    padded = (c,) + tuple(spatial[i] + pads[i] + pads[i + nd] for i in range(nd))
    width, before, row = spatial[-1], pads[nd - 1], padded[-1]
    # each padded row's first element in x, or -1 for a row of padding only
    source = np.full((c,) + padded[1:-1], -1, dtype=np.int64)
    source[(slice(None),) + tuple(slice(pads[i], pads[i] + spatial[i]) for i in range(nd - 1))] = \
        np.arange(0, x.size, width).reshape((c,) + spatial[:-1])
    var = g.buffer("pad", x.ctype, prod(padded))
    rows = g.static(source.ravel())
    fill = lit(value)
    g.body.append(f"""for (int r = 0; r < {source.size}; ++r) {{
  {x.ctype}* __restrict dst = AT({var}, r * {row});
  const int src = {rows}[r];
  if (src < 0) {{ for (int i = 0; i < {row} * B; ++i) dst[i] = {fill}; continue; }}
  for (int i = 0; i < {before} * B; ++i) dst[i] = {fill};
  std::memcpy(dst + {before} * B, AT({x.var}, src), sizeof({x.ctype}) * {width} * B);
  for (int i = {before + width} * B; i < {row} * B; ++i) dst[i] = {fill};
}}""")
    return var, padded


def _window_tables(g: Gen, padded: tuple[int, ...], kernel, strides):
    """(base, offsets): static arrays of the padded flat index of each output position's
    window origin (within one channel) and of each kernel offset relative to it (the
    same for every window of a padded input)."""
    reads = _taps(padded[1:], kernel, strides, (0,) * 2 * len(kernel))
    return g.static(reads[:, 0]), g.static(reads[0] - reads[0, 0])


@emitter(Op.CONV)
def conv(g: Gen, fx: FixedNode, x: Buffer, y: Buffer) -> None:
    strides, pads, groups = (fx.node.attrs[k] for k in ("strides", "pads", "groups"))
    w = fx.params[0]                                          # O, C/G, *k
    o, cg = w.shape[:2]
    kernel = w.shape[2:]
    out_spatial = spatial_output_shape(x.shape[1:], kernel, strides, pads)
    og, k = o // groups, prod(kernel)
    if og == 1 and cg == 1 and _depthwise(g, fx, x, y, w.reshape(o, k)):
        return
    xp, padded = _padded(g, x, pads, 0)
    base, off = _window_tables(g, padded, kernel, strides)
    ps, npix = prod(padded[1:]), prod(out_spatial)
    loops = ("", f"for (int pix = 0; pix < {npix}; ++pix)", f"orow * {npix} + pix",
             f"((orow0 / {og}) * {cg} + u) * {ps} + {base}[pix] + {off}[kk]")
    pairs = (groups, ps, f"((orow0 / {og}) * {-(-cg // 2)} + u) * {ps} + {base}[pix] + {off}[kk]")
    _weighted_sum(g, fx, Buffer(xp, x.ctype, padded), y, w.reshape(o, cg * k), og,
                  cg, loops, pairs)


@emitter(Op.BATCH_NORM)
def batch_norm(g: Gen, fx: FixedNode, x: Buffer, y: Buffer) -> None:
    (scale, shift), (scale_t, shift_t) = fx.params, fx.param_types
    c = x.shape[0]
    inner = x.size // c
    frac_a, frac_b = fx.inputs[0].frac + scale_t.frac, shift_t.frac
    frac = max(frac_a, frac_b)
    s, t = g.param(scale, "int64_t"), g.param(shift, "int64_t")
    total = (f"{shift_left(f'(fxq::i64)AT({x.var}, e)[b] * {s}[ch]', frac - frac_a)} + "
             f"{shift_left(f'{t}[ch]', frac - frac_b)}")
    g.body.append(f"""for (int ch = 0, e = 0; ch < {c}; ++ch) for (int i = 0; i < {inner}; ++i, ++e) {{
  {FOR_B} AT({y.var}, e)[b] = {rq(frac - fx.result.frac, fx.result, total, count=True)};
}}""")


# -- element-wise ------------------------------------------------------------------------------
@emitter(Op.RELU)
def relu(g, fx, x, y):
    elementwise(g, y, cast(fx.inputs[0], fx.result, f"({at(x)} > 0 ? {at(x)} : 0)", count=True))


@emitter(Op.LEAKY_RELU)
def leaky_relu(g, fx, x, y):
    alpha_t = fx.layer.param("alpha")
    alpha = int(quantize(fx.node.attrs["alpha"], alpha_t))
    scaled = rq(fx.inputs[0].frac + alpha_t.frac - fx.result.frac, fx.result,
                f"{at(x)} * {lit(alpha)}", count=True)
    elementwise(g, y, f"({at(x)} > 0 ? {cast(fx.inputs[0], fx.result, at(x), count=True)} "
                      f": {scaled})")


@emitter(Op.CLIP)
def clip(g, fx, x, y):
    t = fx.inputs[0]
    if t.width > 53:
        raise NativeUnsupported(f"clip of the {t.width}-bit type {t}")
    lo, hi = fx.node.attrs["lo"], fx.node.attrs["hi"]
    expr = cast(t, fx.result, at(x), count=True)
    scale = Fraction(2) ** t.frac
    if math.isfinite(lo):                         # raw r < lo * 2^frac  <=>  r <= below
        below = math.ceil(Fraction(lo) * scale) - 1
        expr = f"({at(x)} <= {lit(below)} ? {_bound(lo, fx.result)} : {expr})"
    if math.isfinite(hi):                         # raw r > hi * 2^frac  <=>  r >= above
        above = math.floor(Fraction(hi) * scale) + 1     # (checked last: hi wins, as NumPy)
        expr = f"({at(x)} >= {lit(above)} ? {_bound(hi, fx.result)} : {expr})"
    elementwise(g, y, expr)


def _bound(value: float, t: FixedType) -> str:
    """C++ of a Clip bound as the result type holds it, counted as an overflow when the
    type cannot hold it (as fxq.quantized counts it)."""
    wide = quantize(value, widened(t))
    return counted(int(quantize(value, t)), bool(outside_type(wide, t, above=False)),
                   bool(outside_type(wide, t, below=False)))


def _sides(sides: tuple[bool, bool]) -> int:
    """runtime.h's SIDES (BELOW = 1 | ABOVE = 2) of QuantizedGraph.counted_sides'."""
    return int(sides[0]) | 2 * int(sides[1])


def _lookup(g, fx, x, y, table: np.ndarray, input_range: int):
    t, size = fx.inputs[0], fx.layer.table_size
    if t.width + size.bit_length() > 62 or abs(t.frac) > 62:
        raise NativeUnsupported(f"lookup-table input type {t} is too wide")
    largest = raw_bound(t) * size // input_range
    largest = largest >> t.frac if t.frac >= 0 else largest << -t.frac
    if largest >= 1 << 31:
        raise NativeUnsupported(f"lookup-table input type {t} may overflow the index")
    q = f"((fxq::i64)AT({x.var}, e)[b] * {size} / {input_range})"
    whole = (f"({q} < 0 ? -((-{q}) >> {t.frac}) : ({q} >> {t.frac}))" if t.frac >= 0
             else f"({q} << {-t.frac})")
    tab = g.param(table, storage(fx.layer.table))
    index = f"std::min<fxq::i64>(std::max<fxq::i64>({whole} + {size // 2}, 0), {size - 1})"
    elementwise(g, y, cast(fx.layer.table, fx.result, f"{tab}[{index}]", count=True))


@emitter(Op.SIGMOID)
def sigmoid(g, fx, x, y):
    _lookup(g, fx, x, y, tables.sigmoid_table(fx.layer.table_size, fx.layer.table), 16)


@emitter(Op.TANH)
def tanh(g, fx, x, y):
    _lookup(g, fx, x, y, tables.tanh_table(fx.layer.table_size, fx.layer.table), 8)


def _top_bits(expr: str, t: FixedType, bits: int) -> str:
    """softmax_idx_from_real_val: the top `bits` bits of t's raw two's-complement word."""
    if t.width >= 64:
        raise NativeUnsupported(f"softmax index of the 64-bit type {t}")
    return f"(((fxq::i64)({expr}) & {lit((1 << t.width) - 1)}) >> {t.width - bits})"


@emitter(Op.SOFTMAX)
def softmax(g, fx, x, y):
    layer, data_t, accum = fx.layer, fx.inputs[0], fx.layer.accum
    exp_size, inv_size, inp_norm = softmax_table_sizes(data_t, layer)
    exp_bits, inv_bits = (exp_size - 1).bit_length(), (inv_size - 1).bit_length()
    n = x.shape[-1]
    exp_tab = g.param(tables.softmax_exp_table(exp_size, inp_norm, layer.table, True),
                      storage(layer.table))
    inv_tab = g.param(tables.softmax_invert_table(inv_size, layer.inv_inp, layer.inv_table),
                      storage(layer.inv_table))
    add = rq(0, accum, "a + c")
    index = _top_bits(rq(data_t.frac - inp_norm.frac, inp_norm, "top - v"), inp_norm, exp_bits)
    exp = cast(layer.table, accum, f"{exp_tab}[{index}]")
    out = rq(accum.frac + layer.inv_table.frac - fx.result.frac, fx.result, "ex_i * inv",
             count=True)
    if n <= SOFTMAX_LANES_MAX:
        # each step across the block's samples (the lookups gather), the exponentials of a
        # row held per sample lane
        g.body.append(f"""for (int row = 0; row < {x.size // n}; ++row) {{
  auto addf = [](fxq::i64 a, fxq::i64 c) {{ return {add}; }};
  fxq::i64 tops[B], ex[{n}][B];
  {SIMD_B} tops[b] = AT({x.var}, row * {n})[b];
  for (int i = 1; i < {n}; ++i) {{ {SIMD_B} tops[b] = std::max<fxq::i64>(tops[b], AT({x.var}, row * {n} + i)[b]); }}
  for (int i = 0; i < {n}; ++i) {{
    {SIMD_B} {{ const fxq::i64 top = tops[b], v = AT({x.var}, row * {n} + i)[b]; ex[i][b] = {exp}; }}
  }}
  fxq::i64 invs[B];
  {SIMD_B} {{
    const fxq::i64 sum = {cast(accum, layer.inv_inp, tree("ex[{}][b]", 0, n))};
    invs[b] = {inv_tab}[{_top_bits("sum", layer.inv_inp, inv_bits)}];
  }}
  for (int i = 0; i < {n}; ++i) {{
    {SIMD_B} {{ const fxq::i64 ex_i = ex[i][b], inv = invs[b]; AT({y.var}, row * {n} + i)[b] = {out}; }}
  }}
}}""")
        return
    g.body.append(f"""for (int row = 0; row < {x.size // n}; ++row) {{
  auto addf = [](fxq::i64 a, fxq::i64 c) {{ return {add}; }};
  {FOR_B} {{
    const {x.ctype}* v0 = {x.var} + row * {n} * B + b;
    fxq::i64 top = v0[0];
    for (int i = 1; i < {n}; ++i) top = std::max<fxq::i64>(top, v0[i * B]);
    fxq::i64 ex[{n}];
    for (int i = 0; i < {n}; ++i) {{
      const fxq::i64 v = v0[i * B];
      ex[i] = {exp};
    }}
    const fxq::i64 sum = {cast(accum, layer.inv_inp, tree("ex", 0, n))};
    const fxq::i64 inv = {inv_tab}[{_top_bits("sum", layer.inv_inp, inv_bits)}];
    for (int i = 0; i < {n}; ++i) {{ const fxq::i64 ex_i = ex[i]; AT({y.var}, row * {n} + i)[b] = {out}; }}
  }}
}}""")


# -- pooling -----------------------------------------------------------------------------------

def _pool_windows(g, fx, x, kernel, strides, pads, value):
    xp, padded = _padded(g, x, pads, value)
    out_spatial = spatial_output_shape(x.shape[1:], kernel, strides, pads)
    base, off = _window_tables(g, padded, kernel, strides)
    return xp, prod(padded[1:]), prod(out_spatial), base, off


def _window_loop(g, x: Buffer, y: Buffer, npix: int, body: str) -> None:
    """The loop over a pooling's output elements; `body` computes element (ch, pix) for the
    block's samples, the sample loop innermost (one vector instruction per step of a
    window, where a loop over the window inside one over samples runs scalar)."""
    g.body.append(f"""for (int ch = 0; ch < {x.shape[0]}; ++ch) for (int pix = 0; pix < {npix}; ++pix) {{
  const int oidx = ch * {npix} + pix;
  {body}
}}""")


def _narrow_type(t: FixedType) -> bool:
    return t.width <= 31


def _narrow_stream_sum(fx, x: Buffer) -> bool:
    """Whether an io_stream average pooling (each value cast to the accumulator, the casts
    added in the accumulator) runs in int32: int32 values and an accumulator that wraps,
    of at most 30 bits, so each cast is exact modulo 2^32 where the wrap keeps it (a shift
    right of an exact value, or left by less than 32) and each sum of two accumulator
    values is exact."""
    data_t, accum = fx.inputs[0], fx.layer.accum
    k = data_t.frac - accum.frac
    return (x.ctype == "int32_t" and accum.width <= 30 and accum.overflow is Overflow.WRAP
            and -32 < k <= 30)


def _stream_cast(fx, value: str, narrow: bool) -> str:
    """The cast of a raw input value to an io_stream pooling's accumulator."""
    data_t, accum = fx.inputs[0], fx.layer.accum
    if narrow:
        return rq(data_t.frac - accum.frac, accum, f"(int32_t)({value})", narrow=True)
    return cast(data_t, accum, value)


def _final_cast(src: FixedType, dst: FixedType, expr: str, narrow: bool) -> str:
    """The counted conversion of `expr` (a raw value of src) to dst: in int32 when `expr`
    is an int32 (narrow) and the conversion is one rq allows there."""
    k = src.frac - dst.frac
    if narrow and 0 <= k <= 30 and _narrow_type(dst):
        return rq(k, dst, f"(int32_t)({expr})", count=True, narrow=True)
    return cast(src, dst, expr, count=True)


def _max_body(m_t: str, elem: str, n: int, target: str, out: str) -> str:
    """C++ of target = out(m), m the maximum of elem(i) over i < n, across the block's
    samples (the loop over the window inside theirs: one vector per step)."""
    return f"""{SIMD_B} {{
    {m_t} m = std::numeric_limits<{m_t}>::min();   // (std::max's references stop vectorizing)
    for (int i = 0; i < {n}; ++i) {{ const {m_t} v = {elem}; m = v > m ? v : m; }}
    {target} = {out};
  }}"""


def _max_parts(fx, x: Buffer, value: str) -> tuple[str, str, str]:
    """(C++ type of the running maximum m, the value compared at window step i, the result
    from m) of a max pooling as the NumPy kernel computes it: io_stream casts each value to
    the accumulator, then takes the maximum; io_parallel takes the maximum of the raw
    values, then casts it."""
    data_t, accum = fx.inputs[0], fx.layer.accum or fx.inputs[0]
    if fx.io_type == "io_stream" and fx.layer.accum is not None:
        return "fxq::i64", cast(data_t, accum, value), cast(accum, fx.result, "m", count=True)
    return x.ctype, value, cast(accum, fx.result, cast(data_t, accum, "m"), count=True)


@emitter(Op.MAX_POOL)
def max_pool(g, fx, x, y):
    kernel, strides, pads = (fx.node.attrs[k] for k in ("kernel", "strides", "pads"))
    xp, ps, npix, base, off = _pool_windows(g, fx, x, kernel, strides, pads,
                                            fx.inputs[0].raw_min)
    m_t, elem, out = _max_parts(fx, x, f"AT({xp}, ch * {ps} + {base}[pix] + {off}[i])[b]")
    _window_loop(g, x, y, npix, _max_body(m_t, elem, prod(kernel), f"AT({y.var}, oidx)[b]", out))


@emitter(Op.GLOBAL_MAX_POOL)
def global_max_pool(g, fx, x, y):
    n = x.size // x.shape[0]
    m_t, elem, out = _max_parts(fx, x, f"AT({x.var}, ch * {n} + i)[b]")
    g.body.append(f"""for (int ch = 0; ch < {x.shape[0]}; ++ch) {{
  {_max_body(m_t, elem, n, f"AT({y.var}, ch)[b]", out)}
}}""")


def _sum_steps(fx, x: Buffer, value: str) -> tuple[str, str]:
    """(C++ type of the running total, C++ of one step total += value(i)) as hls4ml's
    windowed average pooling adds them in io_parallel (pool.py: _average_of): each step
    the running total aligned, plus the value aligned, converted to the accumulator. In
    int32 when that is exact: int32 values, an accumulator of at most 31 bits, every
    step's value below 2^31."""
    data_t, accum = fx.inputs[0], fx.layer.accum
    frac = max(accum.frac, data_t.frac)
    s1, s2 = frac - accum.frac, frac - data_t.frac
    if (x.ctype == "int32_t" and _narrow_type(accum) and s1 <= 30
            and (raw_bound(accum) << s1) + (raw_bound(data_t) << s2) < 1 << 31):
        step = f"(total << {s1}) + ((int32_t){value} << {s2})"
        return "int32_t", rq(s1, accum, step, narrow=True)
    step = f"{shift_left('total', s1)} + {shift_left(value, s2)}"
    return "fxq::i64", rq(s1, accum, step)


@emitter(Op.AVG_POOL)
def avg_pool(g, fx, x, y):
    kernel, strides, pads = (fx.node.attrs[k] for k in ("kernel", "strides", "pads"))
    xp, ps, npix, base, off = _pool_windows(g, fx, x, kernel, strides, pads, 0)
    count = window_count(x.shape[1:], kernel, strides, pads, fx.node.attrs["count_include_pad"])
    count = str(count) if isinstance(count, int) else f"{g.static(count)}[pix]"
    data_t, accum, n = fx.inputs[0], fx.layer.accum, prod(kernel)
    value = f"AT({xp}, ch * {ps} + {base}[pix] + {off}[i])[b]"
    # C++'s `/` rounds toward zero, as fixed_math.truncating_divide
    if fx.io_type == "io_stream":
        # each value cast to the accumulator, then hls4ml's balanced tree of sums
        narrow = _narrow_stream_sum(fx, x)
        el_t = "int32_t" if narrow else "fxq::i64"
        add = rq(0, accum, "a + c", narrow=narrow)
        out = _final_cast(accum, fx.result, f"total / {count}", narrow)
        body = f"""auto addf = []({el_t} a, {el_t} c) {{ return {add}; }};
  {el_t} el[{n}][B];
  for (int i = 0; i < {n}; ++i) {{ {SIMD_B} el[i][b] = {_stream_cast(fx, value, narrow)}; }}
  {SIMD_B} {{ const {el_t} total = {tree("el[{}][b]", 0, n)};
    AT({y.var}, oidx)[b] = {out}; }}"""
    else:
        total_t, step = _sum_steps(fx, x, value)
        out = _final_cast(accum, fx.result, f"total / {count}", total_t == "int32_t")
        body = f"""{SIMD_B} {{
    {total_t} total = 0;
    for (int i = 0; i < {n}; ++i) total = {step};
    AT({y.var}, oidx)[b] = {out};
  }}"""
    _window_loop(g, x, y, npix, body)


@emitter(Op.GLOBAL_AVG_POOL)
def global_avg_pool(g, fx, x, y):
    """The sum in order (as the windowed sum of a parallel average pooling)."""
    n = x.size // x.shape[0]
    data_t, accum = fx.inputs[0], fx.layer.accum
    value = f"AT({x.var}, ch * {n} + i)[b]"
    if fx.io_type == "io_stream":
        narrow = _narrow_stream_sum(fx, x)
        total_t = "int32_t" if narrow else "fxq::i64"
        step = rq(0, accum, f"total + {_stream_cast(fx, value, narrow)}", narrow=narrow)
    else:
        total_t, step = _sum_steps(fx, x, value)
    out = _final_cast(accum, fx.result, f"total / {n}", total_t == "int32_t")
    g.body.append(f"""for (int ch = 0; ch < {x.shape[0]}; ++ch) {{
  {SIMD_B} {{
    {total_t} total = 0;
    for (int i = 0; i < {n}; ++i) total = {step};
    AT({y.var}, ch)[b] = {out};
  }}
}}""")


# -- merges and layout -------------------------------------------------------------------------

def _operands(g, fx, ins, y):
    """[(expression of raw value at output element e, type)] for the two operands."""
    out = []
    for buf, t in zip(ins, fx.inputs):
        out.append((f"(fxq::i64)AT({buf.var}, {broadcast_index(g, buf.size, buf.shape, y.shape)})[b]", t))
    if len(ins) == 1:
        const = fx.params[0]
        try:
            idx = broadcast_index(g, const.size, const.shape, y.shape)
        except ValueError:
            raise NativeUnsupported(f"constant of shape {const.shape} in {fx.node.name!r}")
        out.append((f"{g.param(const.ravel(), 'int64_t')}[{idx}]", fx.param_types[0]))
    return out


def _aligned(g, fx, ins, y, sign: str) -> None:
    """y = a + b or a - b (`sign`), both operands on the finer grid, cast once."""
    (a, at), (c, ct) = _operands(g, fx, ins, y)
    frac = max(at.frac, ct.frac)
    total = f"{shift_left(a, frac - at.frac)} {sign} {shift_left(c, frac - ct.frac)}"
    elementwise(g, y, rq(frac - fx.result.frac, fx.result, total, count=True))


@emitter(Op.ADD)
def add(g, fx, *args):
    *ins, y = args
    _aligned(g, fx, ins, y, "+")


@emitter(Op.SUB)
def sub(g, fx, *args):
    *ins, y = args
    _aligned(g, fx, ins, y, "-")


@emitter(Op.MUL)
def mul(g, fx, *args):
    *ins, y = args
    (a, at), (c, ct) = _operands(g, fx, ins, y)
    elementwise(g, y, rq(at.frac + ct.frac - fx.result.frac, fx.result, f"{a} * {c}", count=True))


@emitter(Op.CONCAT)
def concat(g, fx, *args):
    *ins, y = args
    axis = fx.node.attrs["axis"] - 1                     # per-sample axis
    positions = np.arange(y.size).reshape(y.shape)
    start = 0
    for buf, t in zip(ins, fx.inputs):
        n = buf.shape[axis]
        index = [slice(None)] * len(y.shape)
        index[axis] = slice(start, start + n)
        start += n
        where = g.static(positions[tuple(index)].ravel())
        g.body.append(f"""for (int e = 0; e < {buf.size}; ++e) {{
  {FOR_B} AT({y.var}, {where}[e])[b] = {cast(t, fx.result, at(buf), count=True)};
}}""")


@emitter(Op.TRANSPOSE)
def transpose(g, fx, x, y):
    perm = [p - 1 for p in fx.node.attrs["perm"][1:]]
    source = np.transpose(np.arange(x.size).reshape(x.shape), perm).ravel()
    src = g.static(source)
    elementwise(g, y, f"AT({x.var}, {src}[e])[b]")


@emitter(Op.PAD)
def pad(g, fx, x, y):
    pads = fx.node.attrs["pads"]
    nd = len(x.shape)
    value = int(quantize(fx.node.attrs["value"], fx.result))
    where = np.pad(np.arange(x.size).reshape(x.shape),
                   [(pads[i], pads[i + nd]) for i in range(nd)], constant_values=-1)
    src = g.static(where.ravel())
    elementwise(g, y, f"({src}[e] < 0 ? {lit(value)} : (fxq::i64)AT({x.var}, {src}[e])[b])")


@emitter(Op.FLATTEN, Op.RESHAPE, Op.IDENTITY)
def alias(g, fx, x, y):
    """Same elements in the same order: the output is the input's buffer (no code)."""
    raise AssertionError("generate() aliases these buffers without calling the rule")


# -- the program -------------------------------------------------------------------------------

def _arena_layout(arena: list[tuple[str, str, int]], live: dict[str, tuple[int, int]],
                  block: int) -> tuple[list[str], int]:
    """(C++ declarations placing each buffer in the per-thread arena, its size in bytes).
    Buffers whose live ranges (first and last node position using them) overlap get
    disjoint bytes; others share them, so the arena follows the widest set of tensors
    live at once rather than the whole graph. Placed largest first, each at the lowest
    offset free over its live range."""
    sizes = {var: -(-n * block * (4 if ctype == "int32_t" else 8) // 64) * 64
             for var, ctype, n in arena}
    placed: list[tuple[int, int, int, int]] = []          # offset, end, first, last
    offset_of = {}
    for var in sorted(sizes, key=lambda v: (-sizes[v], v)):
        first, last = live[var]
        busy = sorted((o, e) for o, e, f, l in placed if f <= last and first <= l)
        at = 0
        for o, e in busy:
            if at + sizes[var] <= o:
                break
            at = max(at, e)
        offset_of[var] = at
        placed.append((at, at + sizes[var], first, last))
    total = max((e for _, e, _, _ in placed), default=0)
    return ([f"{ctype}* {var}_ = ({ctype}*)(arena + {offset_of[var]});"
             for var, ctype, _ in arena], total)


LOAD_RUN = 256                  # elements of a sample quantized in one run


def _load_input(i: int, buf: Buffer, t: FixedType, sides: str, narrow: bool) -> str:
    """C++ of graph input i into the arena: sample by sample, each sample's values read in
    order (contiguous), quantized in runs of LOAD_RUN elements (float32 values in float32
    lanes when `narrow`, else widened to double first: exact, and the quantize loop then
    vectorizes); the lanes past the batch's end are zeros. int32 values go through a tile
    of the block's runs, written sample-minor 8 x 8 at a time (fxq::transpose)."""
    size, R = buf.size, LOAD_RUN
    convert = f"fxq::quantizen<{t.frac}, {type_args(t)}, {sides}>"
    wide = buf.ctype != "int32_t"        # (quantizen32's int32 values copied to int64 ones)
    q32, q32_at, q32_copy = ((f" int32_t q32[{R}];", "q32[e]",
                              "\n      for (int e = 0; e < n; ++e) run[e] = q32[e];")
                             if wide else ("", "run[e]", ""))
    float32 = f"""if constexpr (std::is_same_v<In, float>) {{   // (over: at most {R}, int32)
      int32_t over32 = 0, fine32 = 1;{q32}
      _Pragma("omp simd reduction(+:over32) reduction(&:fine32)")
      for (int e = 0; e < n; ++e)
        fine32 &= fxq::quantizen32<{t.frac}, {type_args(t)}, {sides}>(src[e], {q32_at}, over32);{q32_copy}
      over += over32; fine &= fine32;
    }} else """ if narrow else ""
    quantized = f"""{float32}if constexpr (!std::is_same_v<In, int64_t>) {{
      double real[{R}]; fxq::i64 q64[{R}];
      for (int e = 0; e < n; ++e) real[e] = src[e];
      _Pragma("omp simd reduction(+:over) reduction(&:fine)")
      for (int e = 0; e < n; ++e) fine &= {convert}(real[e], q64[e], over);
      for (int e = 0; e < n; ++e) run[e] = ({buf.ctype})q64[e];
    }} else {{
      for (int e = 0; e < n; ++e) run[e] = ({buf.ctype})src[e];
    }}"""
    if buf.ctype == "int32_t":
        target = f"int32_t* __restrict run = tile + b * {R};"
        zero, after = ("std::fill(run, run + n, 0); continue;",
                       f"fxq::transpose(tile, {R}, {buf.var}_ + e0 * B, B, B, n);")
        head = f"int32_t tile[B * {R}];"
    else:                   # int64 values, written sample-minor one at a time
        target = f"{buf.ctype} run[{R}];"
        zero, after = (f"for (int e = 0; e < n; ++e) {buf.var}_[(e0 + e) * B + b] = 0; continue;", "")
        head = ""
    scatter = "" if buf.ctype == "int32_t" else \
        f"\n    for (int e = 0; e < n; ++e) {buf.var}_[(e0 + e) * B + b] = run[e];"
    return f"""{{ {head}
for (int e0 = 0; e0 < {size}; e0 += {R}) {{
  const int n = std::min({size} - e0, {R});
  for (int b = 0; b < B; ++b) {{
    {target}
    if (b >= nb) {{ {zero} }}
    const In* __restrict src = in[{i}] + (s0 + b) * {size} + e0;
    fxq::i64 over = 0, fine = 1;
    {quantized}{scatter}
    ok &= fine; cnt[{i}] += over;
  }}
  {after}
}}
}}"""


def _store_output(i: int, buf: Buffer) -> str:
    """C++ of graph output i from the arena into out[i], sample by sample: raw int64
    values, or with `scales` real ones (double: raw * scales[i], as fxq.fixed.to_float
    computes them). int32 values go through a tile, read sample-minor 8 x 8 at a time."""
    size, R = buf.size, LOAD_RUN
    if buf.ctype == "int32_t":
        head, fetch, value = (f"int32_t tile[B * {R}];",
                              f"fxq::transpose({buf.var}_ + e0 * B, B, tile, {R}, n, B);",
                              f"tile[b * {R} + e]")
    else:
        head, fetch, value = "", "", f"{buf.var}_[(e0 + e) * B + b]"
    return f"""{{ {head}
for (int e0 = 0; e0 < {size}; e0 += {R}) {{
  const int n = std::min({size} - e0, {R});
  {fetch}
  for (int b = 0; b < nb; ++b) {{
    const int64_t at = (s0 + b) * {size} + e0;
    if (scales) {{
      double* __restrict dst = (double*)out[{i}] + at; const double scale = scales[{i}];
      for (int e = 0; e < n; ++e) dst[e] = (double){value} * scale;
    }} else {{
      int64_t* __restrict dst = (int64_t*)out[{i}] + at;
      for (int e = 0; e < n; ++e) dst[e] = {value};
    }}
  }}
}}
}}"""


def generate(q: QuantizedGraph, block: int = BLOCK) -> Program:
    """The C++ program simulating `q`, or NativeUnsupported."""
    graph = q.graph
    g = Gen()
    buffers: dict[str, Buffer] = {}
    loads, stores = [], []
    for i, name in enumerate(graph.inputs):
        t = q.inputs[name]
        buf = Buffer(g.buffer("t", storage(t), prod(graph.shape(name))), storage(t),
                     graph.shape(name))
        buffers[name] = buf
        if not -1000 < t.frac < 1000:
            raise NativeUnsupported(f"input type {t}")
        sides = f"COUNT ? {_sides(q.counted_sides(name))} : 0"
        # float32 data into a narrow saturating type: quantized in float32 lanes
        narrow = 0 <= t.frac <= 62 and t.width <= 24 and t.overflow is not Overflow.WRAP
        loads.append(_load_input(i, buf, t, sides, narrow))
    # the node positions each buffer is used at (-1: the loads; len(nodes): the stores)
    uses: dict[str, list[int]] = {buf.var: [-1] for buf in buffers.values()}
    for pos, node in enumerate(graph.nodes):
        k = len(graph.inputs) + pos
        fx = q.fixed_node(node)
        ins = [buffers[n] for n in graph.activation_inputs(node)]
        shape = graph.shape(node.output)
        emit = find("native", node.op)
        if emit is None:
            raise NativeUnsupported(f"op {node.op.name} ({node.name!r})")
        if emit is alias:
            buffers[node.output] = Buffer(ins[0].var, ins[0].ctype, shape)
            continue
        ctype = storage(fx.result)
        first = len(g.arena)
        y = Buffer(g.buffer("t", ctype, prod(shape)), ctype, shape)
        # the node's code in a scope counting, per sample lane, its values whose conversion
        # to the result type overflowed; the lanes of real samples are then summed. The
        # scope declares the buffers it touches __restrict: none of them overlap there.
        head = len(g.body)
        g.body.append("")
        emit(g, fx, *ins, y)
        touched = {b.var: b.ctype for b in ins}
        touched.update({var: ct for var, ct, _ in g.arena[first:]})
        for var in touched:
            uses.setdefault(var, []).append(pos)
        # (int32 counts: a lane converts each of the node's values once, fewer than 2^23
        # per sample within MAX_ARENA_BYTES; int64 ones cost widening adds per value)
        g.body[head] = (f"{{ int32_t ovf[B] = {{}};   // {node.op.name} {node.name}\n  "
                        f"constexpr int SIDES = COUNT ? "
                        f"{_sides(q.counted_sides(node.output))} : 0;\n  " +
                        " ".join(f"{ct}* __restrict {v} = {v}_;" for v, ct in touched.items()))
        g.body.append(f"for (int b = 0; b < nb; ++b) cnt[{k}] += ovf[b]; }}")
        buffers[node.output] = y
    for i, name in enumerate(graph.outputs):
        buf = buffers[name]
        uses[buf.var].append(len(graph.nodes))
        stores.append(_store_output(i, buf))
    offsets, arena = _arena_layout(g.arena, {v: (min(u), max(u)) for v, u in uses.items()},
                                   block)
    if arena > MAX_ARENA_BYTES:
        raise NativeUnsupported(f"its feature maps need {arena >> 20} MiB per thread")
    source = "\n".join([
        "// generated by fxq.native.codegen: the bit-accurate simulation of one "
        "QuantizedGraph", "#include <algorithm>", "#include <cstddef>", "#include <cstdlib>",
        "#include <cstring>", "#include <limits>", "#include <type_traits>", "#include <omp.h>",
        '#include "runtime.h"', "#include <immintrin.h>",
        "#if defined(__AVX512F__)   // bytes of the vectors the weighted sums are written in",
        "#define FXQ_VEC 64",
        "#else                      // (AVX2 splits 64-byte ones badly: halves spill)",
        "#define FXQ_VEC 32",
        "#endif",
        "// int16 pairs (Dense/Conv sums whose terms fit int16): x, w packed two per int32",
        "// lane; FXQ_DOT16 adds both products of each lane's pair into it",
        "#if defined(__AVX512BW__)",
        "#define FXQ_PAIRS 1",
        "typedef __m512i fxq_vi;",
        "#define FXQ_LOAD(p) _mm512_loadu_si512(p)",
        "#define FXQ_STORE(p, v) _mm512_storeu_si512(p, v)",
        "#define FXQ_ZERO() _mm512_setzero_si512()",
        "#define FXQ_JOIN16(lo, hi) _mm512_mask_blend_epi16(0xAAAAAAAAu, lo, _mm512_slli_epi32(hi, 16))",
        "#define FXQ_SET1(w) _mm512_set1_epi32(w)",
        "#if defined(__AVX512VNNI__)",
        "#define FXQ_DOT16(acc, x, w) _mm512_dpwssd_epi32(acc, x, w)",
        "#else",
        "#define FXQ_DOT16(acc, x, w) _mm512_add_epi32(acc, _mm512_madd_epi16(x, w))",
        "#endif",
        "#elif defined(__AVX2__) && FXQ_VEC == 32   // (AVX-512F without BW: no pairs)",
        "#define FXQ_PAIRS 1",
        "typedef __m256i fxq_vi;",
        "#define FXQ_LOAD(p) _mm256_loadu_si256((const __m256i*)(p))",
        "#define FXQ_STORE(p, v) _mm256_storeu_si256((__m256i*)(p), v)",
        "#define FXQ_ZERO() _mm256_setzero_si256()",
        "#define FXQ_JOIN16(lo, hi) _mm256_blend_epi16(lo, _mm256_slli_epi32(hi, 16), 0xAA)",
        "#define FXQ_SET1(w) _mm256_set1_epi32(w)",
        "#define FXQ_DOT16(acc, x, w) _mm256_add_epi32(acc, _mm256_madd_epi16(x, w))",
        "#endif", f"static constexpr int B = {block};",
        "#define AT(p, i) ((p) + (ptrdiff_t)(i) * B)   // element i's samples in a block",
        *g.statics,
        f"static constexpr int NC = {len(graph.inputs) + len(graph.nodes)};",
        "// block b's inputs into the arena: In is double or float (real inputs, quantized",
        "// here) or int64_t (raw inputs). False when a real input could not be quantized.",
        "// COUNT: the overflow counts are wanted (else every SIDES is 0: nothing counted)",
        "template <class In, bool COUNT> static bool load(const In* const* in, char* arena,",
        "                                                 int64_t s0, int nb, int64_t* cnt) {",
        *("  " + line for line in offsets),
        "  bool ok = true;",
        *loads,
        "  return ok;",
        "}",
        "// the graph on the block in the arena; cnt[i] gains the values of graph input i,",
        "// then of node i - inputs, that overflowed in their conversion to its type",
        "template <bool COUNT>",
        "static void block(char* arena, const void* const* p, int nb, int64_t* cnt) {",
        *("  " + line for line in offsets),
        *g.body,
        "}",
        "// block b's outputs into out: raw int64 values, or real ones (double) scaled by",
        "// `scales` (2^-frac of each output's type) when it is not null",
        "static void store(void* const* out, char* arena, int64_t s0, int nb,",
        "                  const double* scales) {",
        *("  " + line for line in offsets),
        *stores,
        "}",
        "// every block of the batch; returns 0, or 1 when a real input could not be",
        "// quantized here. With COUNT, counts gains the overflow counts.",
        "template <class In, bool COUNT>",
        "static int run(const In* const* in, void* const* out, const void* const* p,",
        "               int64_t n, int64_t* counts, const double* scales, int threads) {",
        "  const int64_t blocks = (n + B - 1) / B;",
        "  int failed = 0;",
        "  // threads: how many to run (0: OpenMP's own choice)",
        "  #pragma omp parallel reduction(|:failed) num_threads(threads > 0 ? threads : omp_get_max_threads())",
        "  {",
        f"  char* arena = (char*)std::aligned_alloc(64, {max(arena, 64)});",
        "  bool ok = arena != nullptr;",
        "  int64_t cnt[NC] = {};",
        "  // blocks handed out one at a time: a thread sharing its core with another",
        "  // process takes fewer, so a busy machine costs at most one block's wait",
        "  #pragma omp for schedule(dynamic, 1)",
        "  for (int64_t blk = 0; blk < blocks; ++blk) {",
        "    if (!arena) continue;",
        "    const int64_t s0 = blk * B;",
        "    const int nb = (int)std::min<int64_t>(B, n - s0);",
        "    ok &= load<In, COUNT>(in, arena, s0, nb, cnt);",
        "    block<COUNT>(arena, p, nb, cnt);",
        "    store(out, arena, s0, nb, scales);",
        "  }",
        "  std::free(arena);",
        "  if (COUNT) for (int i = 0; i < NC; ++i) {",
        "    #pragma omp atomic",
        "    counts[i] += cnt[i];",
        "  }",
        "  failed |= !ok;",
        "  }",
        "  return failed;",
        "}",
        # compiled twice (fxq.native.build.VARIANTS), one object per variant: counts null
        # runs the simulation without its overflow counts (1.1-1.4x faster)
        *(f"""extern "C" int fxq_counting_{kind}(const {ct}* const* in, void* const* out,
                  const void* const* p, int64_t n, int64_t* counts, const double* scales,
                  int threads)
#if FXQ_COUNTING
{{ return run<{ct}, true>(in, out, p, n, counts, scales, threads); }}
#else
;
extern "C" int fxq_run_{kind}(const {ct}* const* in, void* const* out,
                  const void* const* p, int64_t n, int64_t* counts, const double* scales,
                  int threads) {{
  return counts ? fxq_counting_{kind}(in, out, p, n, counts, scales, threads)
                : run<{ct}, false>(in, out, p, n, counts, scales, threads);
}}
#endif""" for kind, ct in (("real", "double"), ("real32", "float"), ("raw", "int64_t"))),
 ""])
    return Program(source, g.params,
                   [(n, graph.shape(n)) for n in graph.inputs],
                   [(n, graph.shape(n)) for n in graph.outputs],
                   list(graph.inputs) + [node.output for node in graph.nodes])
