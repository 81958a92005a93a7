"""The vocabulary of the native engine's C++: buffers, raw-value conversions, the block loop.

What every native emitter builds with, apart from any op: `Gen` collects the program's
constant arrays, run-time parameters, body and arena; `rq` and `cast` are the C++ of a
conversion to a fixed-point type (runtime.h's fxq::rq, which rounds and overflows as
fxq.fixed.requantize does); `elementwise` is the loop over a block's elements and samples.
Op modules register their emitters with `emitter` (fxq.ops.registry's "native" stage).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from math import prod

import numpy as np

from fxq.errors import FxqError
from fxq.fixed import FixedType, Overflow
from fxq.ops.registry import rule


class NativeUnsupported(FxqError):
    """The native engine does not implement this graph; NumPy simulates it."""


@dataclass
class Buffer:
    """One tensor of a block: its C++ variable, element type and per-sample shape."""

    var: str
    ctype: str
    shape: tuple[int, ...]

    @property
    def size(self) -> int:
        return prod(self.shape)


def storage(t: FixedType) -> str:
    """The narrowest C++ integer holding every raw value of t."""
    return "int32_t" if t.raw_min >= -(1 << 31) and t.raw_max < (1 << 31) else "int64_t"


def lit(v: int) -> str:
    v = int(v)
    if v == -(1 << 63):
        return "(-9223372036854775807LL - 1)"
    return f"{v}LL"


# the counter of a node's values its conversion to the result type changed, per sample lane
# of the block, and the sides of the type's range it counts (runtime.h BELOW | ABOVE):
# generate() declares both around each node's code and sums the counter (the range check)
OVERFLOWS = "ovf[b]"
SIDES = "SIDES"


def rq(k: int, t: FixedType, expr: str, count: bool = False, narrow: bool = False) -> str:
    """C++ of `expr` (an exact integer with k more fractional bits than t) converted to t.
    count: this is the node's conversion to its result type, whose overflows are counted
    (every emitter passes it for exactly the conversions that produce its output).
    narrow: `expr` is an int32_t and the caller has proved that every value of the
    conversion fits int32 (0 <= k <= 30, t at most 31 bits), or k < 0 and t wraps (a left
    shift modulo 2^32, which t's wrap to at most 31 bits keeps): it runs in int32."""
    if not -63 < k < 63:
        raise NativeUnsupported(f"a conversion to {t} shifts by {abs(k)} bits")
    wraps = -32 < k < 0 and t.overflow is Overflow.WRAP
    if narrow and not ((0 <= k <= 30 or wraps) and t.width <= 31):
        raise AssertionError(f"an int32 conversion to {t} by {k} bits")
    args = type_args(t) + (f", {SIDES}" if count else "") + (", int32_t" if narrow else "")
    if count:
        return f"fxq::rqn<{k}, {args}>({expr}, {OVERFLOWS})"
    return f"fxq::rq<{k}, {args}>({expr})"


def counted(raw: int, below: bool, above: bool) -> str:
    """C++ of a raw result value known here: a constant the result type holds, or saturated
    at generation time from one `below` or `above` its range, then counted as an overflow
    on that side."""
    return f"fxq::counted<{SIDES}>({lit(raw)}, {OVERFLOWS}, {int(below)}, {int(above)})"


def type_args(t: FixedType) -> str:
    """The template arguments naming t in runtime.h: rounding, overflow, width, signed."""
    return (f"fxq::{t.rounding.name}, fxq::{t.overflow.name}, {t.width}, "
            f"{'true' if t.signed else 'false'}")


def cast(src: FixedType, dst: FixedType, expr: str, count: bool = False) -> str:
    return rq(src.frac - dst.frac, dst, f"(fxq::i64)({expr})", count)


def shift_left(expr: str, s: int) -> str:
    if not 0 <= s < 63:
        raise NativeUnsupported(f"an alignment shifts by {s} bits")
    return f"((fxq::i64)({expr}) << {s})" if s else f"(fxq::i64)({expr})"


def tree(leaf: str, lo: int, hi: int) -> str:
    """C++ of hls4ml's balanced `reduce` over leaf[lo:hi] with `addf` at every node, as
    fixed_math.tree_reduce: the left part takes the largest power of two below the count.
    A `leaf` holding "{}" is the format of element i's expression instead."""
    if hi - lo == 1:
        return leaf.format(lo) if "{}" in leaf else f"{leaf}[{lo}]"
    left = 1 << ((hi - lo - 1).bit_length() - 1)
    return f"addf({tree(leaf, lo, lo + left)}, {tree(leaf, lo + left, hi)})"


FOR_B = "for (int b = 0; b < B; ++b)"
# the same loop, vectorized across the samples: without the pragma GCC unrolls it and
# vectorizes the loop around it instead (gathers over the kernel offsets, 10x slower)
SIMD_B = '_Pragma("omp simd") ' + FOR_B


@dataclass
class Gen:
    """What the emitters build: file-level constant arrays, run-time parameters, the block
    body and the per-thread arena layout."""

    statics: list[str] = field(default_factory=list)
    params: list[np.ndarray] = field(default_factory=list)
    body: list[str] = field(default_factory=list)
    arena: list[tuple[str, str, int]] = field(default_factory=list)   # var, ctype, elements

    def param(self, values: np.ndarray, ctype: str) -> str:
        """A run-time array (weights, tables): its C++ expression."""
        dtype = {"int32_t": np.int32, "int64_t": np.int64}[ctype]
        arr = np.ascontiguousarray(values, dtype=dtype)
        if not np.array_equal(arr, values):
            raise AssertionError("a parameter does not fit its C++ type")
        self.params.append(arr)
        return f"((const {ctype}*)p[{len(self.params) - 1}])"

    def static(self, values, ctype: str = "int32_t") -> str:
        """A compiled-in constant array (index maps, window offsets): its name."""
        name = f"map{len(self.statics)}"
        items = ", ".join(str(int(v)) for v in np.ravel(values)) or "0"
        self.statics.append(f"static const {ctype} {name}[] = {{{items}}};")
        return name

    def buffer(self, prefix: str, ctype: str, elements: int) -> str:
        var = f"{prefix}{len(self.arena)}"
        self.arena.append((var, ctype, elements))
        return var


def emitter(*ops):
    """Register the decorated function as the native-engine rule of `ops`."""
    return rule("native", *ops)


def elementwise(g: Gen, y: Buffer, expr: str) -> None:
    g.body.append(f"""for (int e = 0; e < {y.size}; ++e) {{
  {SIMD_B} AT({y.var}, e)[b] = {expr};
}}""")


def at(x: Buffer) -> str:
    return f"(fxq::i64)AT({x.var}, e)[b]"


def broadcast_index(g: Gen, size: int, shape: tuple[int, ...], out_shape) -> str:
    """The flat index of an operand element for output element e, NumPy broadcasting."""
    if tuple(shape) == tuple(out_shape):
        return "e"
    index = np.broadcast_to(np.arange(size).reshape((1,) + tuple(shape)), (1,) + tuple(out_shape))
    return f"{g.static(index.ravel())}[e]"
