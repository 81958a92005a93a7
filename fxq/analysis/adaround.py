"""Adaptive rounding of weights (AdaRound, Nagel et al., ICML 2020), in fixed point.

Rounding each weight to its nearest value is not what minimizes a layer's output error: the
errors of many weights add up in every sum. AdaRound chooses, per weight, the grid value
below or above it. Here the grid is the weight's fixed-point type (its fractional length is
the greedy search's choice), and the layer's output error is measured as the fixed-point
network computes it: inputs are the quantized values the earlier, already-fixed layers
produce on the calibration data, the target is the float model's output of the same node
(the "asymmetric" reconstruction of the paper), seen through the clamp (ReLU, Clip) that
reads it, if any.

Every Dense and (grouped, depthwise, N-d) Conv is the same problem on rows of patches:
    y[r, g, o] = sum_f p[r, g, f] * w[g, o, f] + b[g, o]
with w = (floor(w / lsb) + h) * lsb, h in [0, 1] per weight the rectified sigmoid of a
free variable, optimized with Adam on the reconstruction error plus the paper's
regularizer sum(1 - |2h - 1|^beta), beta annealed from 20 to 2 after a warm-up. The result
rounds h at 1/2: every weight is exactly on its type's grid (saturated to its range), so
the fixed-point kernels, hls4ml's and fxq's, compute it exactly.

The loss is normalized by the error of nearest rounding, so the regularizer's weight means
the same on every layer. The rows of patches are fxq.ops.patches' (at most MAX_ROWS, drawn
with a fixed seed, so the same calibration data gives the same weights).
"""
from __future__ import annotations

import math

import numpy as np

from fxq.fixed import FixedType, quantize
from fxq.ops.patches import Problem, conv_problem, dense_problem  # noqa: F401  (re-exported)

ZETA, GAMMA = 1.1, -0.1          # the rectified sigmoid's stretch (the paper's values)
ITERATIONS = 1000
WARMUP = 0.2                      # fraction of iterations without the regularizer
BETA = (20.0, 2.0)
REGULARIZER = 0.01
LEARNING_RATE = 1e-2
BATCH_ROWS = 1024
SEED = 0


def adaround(problem: Problem, w_t: FixedType, clamp: tuple[float, float] | None = None,
             iterations: int = ITERATIONS) -> np.ndarray:
    """The weights (in the layer's layout, float64) rounded adaptively onto w_t's grid,
    each the grid value just below or just above the float weight (saturated to the type's
    range). `clamp` (lo, hi): the error is measured after clamping to it (the ReLU or Clip
    reading the layer's output)."""
    import torch

    lsb, lo, hi = 2.0 ** -w_t.frac, w_t.raw_min, w_t.raw_max
    scaled = problem.weights.astype(np.float64) / lsb
    floor = np.floor(scaled)
    rest = scaled - floor
    nearest = quantize(problem.weights, w_t)          # (saturated to the type's range)

    torch.manual_seed(SEED)
    p = torch.from_numpy(np.ascontiguousarray(problem.patches, dtype=np.float32))
    t = torch.from_numpy(np.ascontiguousarray(problem.target, dtype=np.float32))
    b = None if problem.bias is None else \
        torch.from_numpy(problem.bias.astype(np.float32))
    f0 = torch.from_numpy(floor.astype(np.float32))
    # v where the rectified sigmoid gives each weight's fractional rest: the start is the
    # float weight itself
    r = np.clip(rest, 1e-3, 1 - 1e-3)
    v = torch.tensor(-np.log((ZETA - GAMMA) / (r - GAMMA) - 1), dtype=torch.float32,
                     requires_grad=True)
    after = (lambda y: y) if clamp is None else (lambda y: torch.clamp(y, clamp[0], clamp[1]))

    def forward(rows: torch.Tensor, raw_w: torch.Tensor) -> torch.Tensor:
        w = torch.clamp(raw_w, lo, hi) * lsb
        if w.shape[1] == 1:              # depthwise: one output per group, a product-sum
            y = torch.sum(p[rows] * w[:, 0], dim=-1, keepdim=True)
        else:
            y = torch.einsum("rgf,gof->rgo", p[rows], w)
        return after(y if b is None else y + b)

    def h_of(v: torch.Tensor) -> torch.Tensor:
        return torch.clamp(torch.sigmoid(v) * (ZETA - GAMMA) + GAMMA, 0.0, 1.0)

    everything = torch.arange(p.shape[0])
    with torch.no_grad():
        scale = float(torch.mean((forward(everything, torch.from_numpy(
            nearest.astype(np.float32))) - after(t)) ** 2))
    if not scale > 0:                      # nearest is exact here: nothing to gain
        return problem.to_layer(nearest * lsb)
    optimizer = torch.optim.Adam([v], lr=LEARNING_RATE)
    generator = torch.Generator().manual_seed(SEED)
    batch = min(BATCH_ROWS, p.shape[0])
    warm = int(WARMUP * iterations)
    for i in range(iterations):
        rows = torch.randint(0, p.shape[0], (batch,), generator=generator)
        h = h_of(v)
        loss = torch.mean((forward(rows, f0 + h) - after(t[rows])) ** 2) / scale
        if i >= warm:
            progress = (i - warm) / max(iterations - warm, 1)
            beta = BETA[1] + 0.5 * (BETA[0] - BETA[1]) * (1 + math.cos(math.pi * progress))
            loss = loss + REGULARIZER * torch.mean(1 - torch.abs(2 * h - 1) ** beta)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        up = (h_of(v) >= 0.5).numpy()
    return problem.to_layer(np.clip(floor + up, lo, hi) * lsb)


__all__ = ["Problem", "adaround", "conv_problem", "dense_problem"]
