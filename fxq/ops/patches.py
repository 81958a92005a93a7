"""A Dense or Conv layer as rows of patches: the least-squares view of a linear layer that
adaptive rounding and the compression methods (pruning's refit, low-rank factorization)
solve on calibration data.

Every Dense and (grouped, depthwise, N-d) Conv is
    y[r, g, o] = sum_f p[r, g, f] * w[g, o, f] + b[g, o]
over rows r (one per sample and output position), groups g, the group's outputs o and
features f (its input channels times the kernel's positions). At most MAX_ROWS rows are
used, drawn at random with a fixed seed from every sample and position, so the same data
gives the same problem.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from fxq.fixed import FixedType, to_float
from fxq.ops.windows import pad_spatial, windows

MAX_ROWS = 16384
MAX_PATCH_VALUES = 1 << 24        # rows x features held at once (float64: 128 MiB)
SEED = 0


def _real(x: np.ndarray, x_t: FixedType | None) -> np.ndarray:
    return np.asarray(x, dtype=np.float64) if x_t is None else to_float(x, x_t)


@dataclass(frozen=True)
class Problem:
    """A layer's rounding problem: patches p (rows, G, F), weights w (G, O/G, F), the
    bias b (G, O/G) or None, the float target (rows, G, O/G), and the function giving
    weights of w's layout back in the layer's own."""

    patches: np.ndarray
    weights: np.ndarray
    bias: np.ndarray | None
    target: np.ndarray
    to_layer: Callable[[np.ndarray], np.ndarray]


def _rows(total: int, limit: int, rng: np.random.Generator) -> np.ndarray:
    return np.arange(total) if total <= limit else np.sort(rng.choice(total, limit, replace=False))


def dense_problem(x: np.ndarray, x_t: FixedType | None, w: np.ndarray, b: np.ndarray | None,
                  target: np.ndarray) -> Problem:
    """Dense: x (..., in) the layer's inputs (raw values of type x_t, or float when x_t is
    None), w (in, out), target (..., out)."""
    x2 = x.reshape(-1, x.shape[-1])
    rng = np.random.default_rng(SEED)
    limit = max(1, min(MAX_ROWS, MAX_PATCH_VALUES // max(x2.shape[1], 1)))
    rows = _rows(x2.shape[0], limit, rng)
    return Problem(_real(x2[rows], x_t)[:, None, :], w.T[None],
                   None if b is None else b[None],
                   target.reshape(-1, target.shape[-1])[rows][:, None, :],
                   lambda r: r[0].T)


def conv_problem(x: np.ndarray, x_t: FixedType | None, w: np.ndarray, b: np.ndarray | None,
                 target: np.ndarray, *, strides, pads, groups: int) -> Problem:
    """Conv: x (N, C, *spatial) the layer's inputs (raw values of type x_t, or float when
    x_t is None), w (O, C/G, *k) as ONNX, target (N, O, *out). Only the rows drawn are
    converted to float."""
    n, c = x.shape[:2]
    o = w.shape[0]
    win = windows(pad_spatial(x, pads), w.shape[2:], strides)     # N, C, *out, *k (a view)
    nd = w.ndim - 2
    pixels = int(np.prod(win.shape[2:2 + nd], dtype=np.int64))
    k = int(np.prod(w.shape[2:], dtype=np.int64))
    features = (c // groups) * k
    rng = np.random.default_rng(SEED)
    limit = max(1, min(MAX_ROWS, MAX_PATCH_VALUES // max(c * k, 1)))
    rows = _rows(n * pixels, limit, rng)
    sample, pixel = np.divmod(rows, pixels)
    win = win.reshape(n, c, pixels, k)
    patches = _real(win[sample, :, pixel, :], x_t).reshape(len(rows), groups, features)
    tgt = target.reshape(n, o, pixels)[sample, :, pixel].reshape(len(rows), groups, o // groups)
    return Problem(patches, w.reshape(groups, o // groups, features),
                   None if b is None else b.reshape(groups, o // groups), tgt,
                   lambda r: r.reshape(w.shape))


__all__ = ["MAX_ROWS", "Problem", "conv_problem", "dense_problem"]
