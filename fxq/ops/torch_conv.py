"""Exact integer convolution through PyTorch's float32 oneDNN kernels, in limbs.

A float32 convolution of integers is exact whatever its summation order, fused or not, as
long as every partial sum stays within 2^24: the sum of |x| * |w| over one output bounds them
all. oneDNN's direct convolution (what PyTorch runs for float32 on the CPU) took a tenth of
the time of fxq's NumPy paths on the zoo's small-channel convolutions. Wider operands are
split into limbs, x = x_hi * 2^s + x_lo with 0 <= x_lo < 2^s (likewise w), so that every
limb pair's convolution is exact in float32; the limb results are combined in float64, exact
below 2^53. Two limbs a side at most. Several limb convolutions still beat NumPy's strided
passes for grouped and depthwise convolutions, but not one float64 BLAS pass for ordinary
ones, so the caller (ops/linear.py) splits only the former.

The engine runs only in processes that have loaded PyTorch already (see `available`), and
only where exactness is certain: PyTorch must select its oneDNN or its
im2col ("slow") backend, never NNPACK or the Winograd depthwise kernel, and must not be
allowed reduced-precision float32 (bf16/tf32) math. Otherwise the caller's NumPy paths run.
"""
from __future__ import annotations

import sys
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

F32_EXACT = 1 << 24              # float32 holds every integer of magnitude up to this
EXACT_BACKENDS = frozenset({"Mkldnn", "Slow2d", "Slow3d"})
FULL_PRECISION = frozenset({"none", "ieee"})


@dataclass(frozen=True)
class Limb:
    """One limb of an operand: bits [shift, shift + bits) of its two's complement (the top
    limb keeps the sign and runs to the end)."""

    shift: int
    bits: int | None             # None: the top limb

    def of(self, raw):
        """This limb of integer `raw` values (a NumPy array or a torch tensor)."""
        part = raw >> self.shift if self.shift else raw
        return part if self.bits is None else part & ((1 << self.bits) - 1)


@dataclass(frozen=True)
class ConvPlan:
    """The float32 convolutions whose weighted sum is one exact integer convolution."""

    x_limbs: tuple[Limb, ...]
    weights: tuple[tuple[int, Any], ...]     # (shift, float32 torch weight) per weight limb

    @property
    def convolutions(self) -> int:
        return len(self.x_limbs) * len(self.weights)


def _split(cut: int | None) -> tuple[Limb, ...]:
    return (Limb(0, None),) if cut is None else (Limb(0, cut), Limb(cut, None))


def _limb_bound(limb: Limb, bound: int) -> int:
    """Largest |limb| of values whose magnitude is at most `bound`."""
    return (1 << limb.bits) - 1 if limb.bits is not None else -((-bound) >> limb.shift)


def _weight_limb_sum(w: np.ndarray, limb: Limb) -> int:
    part = limb.of(w)
    return int(np.abs(part.reshape(part.shape[0], -1)).sum(axis=1).max(initial=0))


def plan_conv(x_bound: int, w: np.ndarray) -> tuple[tuple[Limb, ...], tuple[Limb, ...]] | None:
    """The fewest limbs of x (values within +-x_bound) and of the int64 weights w
    (outputs, ...) for which every limb pair's convolution stays within 2^24; None when two
    limbs a side do not suffice."""
    x_bits = max(1, int(x_bound).bit_length())
    w_bits = max(1, int(np.abs(w).max(initial=0)).bit_length())
    w_splits = [(ws, max(_weight_limb_sum(w, limb) for limb in ws))
                for ws in (_split(cut) for cut in [None] + list(range(1, w_bits)))]
    best = None
    for xs in (_split(cut) for cut in [None] + list(range(1, x_bits))):
        x_max = max(_limb_bound(limb, x_bound) for limb in xs)
        for ws, w_sum in w_splits:
            fewer = best is None or len(xs) * len(ws) < len(best[0]) * len(best[1])
            if fewer and x_max * w_sum <= F32_EXACT:
                best = (xs, ws)
    return best


def _torch():
    import torch
    return torch


def exact_precision() -> bool:
    """Whether PyTorch is held to full float32 precision (no bf16 or tf32 shortcuts) in the
    kernels a convolution may run: oneDNN's and, for the im2col backend, its matmul."""
    torch = _torch()
    mkldnn = torch.backends.mkldnn
    # (the legacy torch.set_float32_matmul_precision sets mkldnn.matmul's as well)
    return {torch.backends.fp32_precision, mkldnn.fp32_precision,
            mkldnn.conv.fp32_precision, mkldnn.matmul.fp32_precision} <= FULL_PRECISION


def make_plan(x_bound: int, w: np.ndarray, scale: float = 1.0) -> ConvPlan | None:
    """The plan for inputs within +-x_bound and int64 weights w, its results multiplied by
    `scale` (a power of two: folded into the weights, where it is exact)."""
    limbs = plan_conv(x_bound, w)
    if limbs is None:
        return None
    xs, ws = limbs
    torch = _torch()
    weights = tuple((limb.shift, torch.from_numpy(limb.of(w).astype(np.float32)
                                                  * np.float32(scale))) for limb in ws)
    return ConvPlan(xs, weights)


def conv_sum(plan: ConvPlan, x: np.ndarray, strides: Sequence[int], pads: Sequence[int],
             groups: int, dtype, bias: np.ndarray | None = None) -> np.ndarray | None:
    """scale * sum over (C/G, *k) of x * w (+ bias) for the int64 raw x (N, C, *spatial), as
    an array of `dtype` (float32 only for a single limb pair) shaped (N, O, *out), channels
    last in memory; None when PyTorch would not compute it exactly. The bias (O,) is added
    inside a single float32 convolution when dtype is float32, which the caller chooses only
    when the whole sum, bias included, is exact there; else afterwards in float64."""
    torch = _torch()
    F = torch.nn.functional
    nd = x.ndim - 2
    conv = (F.conv1d, F.conv2d, F.conv3d)[nd - 1]
    begin, end = tuple(pads[:nd]), tuple(pads[nd:])
    if begin != end:                       # PyTorch pads symmetrically: pad beforehand
        x = np.pad(x, [(0, 0), (0, 0)] + list(zip(begin, end)))
        begin = (0,) * nd
    in_kernel = dtype == np.float32 and plan.convolutions == 1
    with _one_thread():
        total = _limb_sum(plan, x, conv, strides, begin, groups, dtype,
                          bias if in_kernel else None)
    if bias is not None and not in_kernel and total is not None:
        total += bias.reshape((1, -1) + (1,) * nd)
    return total


@contextmanager
def _one_thread():
    """PyTorch on one thread while fxq runs it. Its OpenMP workers spin after each
    convolution and starve NumPy's OpenBLAS threads of the cores (measured: 2 to 4 times
    slower simulations on 2 cores when both pools run)."""
    torch = _torch()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _limb_sum(plan, x, conv, strides, begin, groups, dtype, bias):
    torch = _torch()
    if bias is not None:
        bias = torch.from_numpy(np.asarray(bias, dtype=np.float32))
    # limbs are cut and summed with PyTorch's element-wise ops, channels last
    xi = torch.from_numpy(np.moveaxis(x, 1, -1))     # a free view when x is one already
    total = None
    for limb in plan.x_limbs:
        # contiguous channels last, the layout oneDNN is fastest on, whatever x's layout
        xt = torch.empty(xi.shape, dtype=torch.float32).copy_(limb.of(xi)).movedim(-1, 1)
        for w_shift, wt in plan.weights:
            if total is None and not _exact_backend(xt, wt, strides, begin, groups):
                return None
            y = conv(xt, wt, bias, tuple(strides), begin, 1, groups)
            if plan.convolutions == 1:
                return y.numpy() if dtype == np.float32 else y.to(torch.float64).numpy()
            scale = 2.0 ** (limb.shift + w_shift)
            if total is None:
                total = y.to(torch.float64).mul_(scale)
            else:
                total.add_(y, alpha=scale)
    return total.numpy()


def _exact_backend(xt, wt, strides, pads, groups) -> bool:
    """Whether PyTorch would run this convolution on a backend known to be exact. Asked of
    a private function (torch is pinned); without it, the answer is no."""
    torch = _torch()
    select = getattr(torch._C, "_select_conv_backend", None)
    if select is None:
        return False
    nd = xt.dim() - 2
    backend = select(xt, wt, None, list(strides), list(pads), [1] * nd, False, [0] * nd,
                     groups, None)
    return getattr(backend, "name", None) in EXACT_BACKENDS and exact_precision()


def available() -> bool:
    """Whether the engine may run: only once PyTorch is loaded. Importing it takes about 2 s,
    which only batches of hundreds of thousands of samples would win back, so fxq never
    loads it for this; a process that uses PyTorch anyway (training, fine-tuning, the
    benchmark) gets the engine for free."""
    return "torch" in sys.modules
