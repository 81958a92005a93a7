"""The least-squares algebra of compressing one Dense or Conv layer on calibration data.

Every method works on a layer's rows of patches (fxq.ops.patches.Problem: inputs p as the
compressed network before the layer computes them, the float model's output as the target)
and refits what it keeps so that the layer reproduces the float output as well as it can:

* `prune`: zero the weights of least saliency (magnitude, or Optimal Brain Damage's
  w^2 * H_ii with H the layer's Hessian of its output's squared error, whose diagonal is
  the inputs' second moment), a step at a time, each step followed by a least-squares refit
  of every output's surviving weights and its bias (Han et al.'s pruning without retraining;
  the refit stands in for the retraining);
* `low_rank`: the rank-r weights closest to the float output on the data (reduced-rank
  regression: the least-squares weights projected on the top r right singular vectors of
  their fitted responses), as two factors: a layer into r values, then r -> outputs;
* `ternary`, `binary`, `pow2`: weight sets whose products are shifts: each output's weights
  {-a, 0, a} (from thresholds around TWN's 0.7 E|w|, the best per output on the data),
  {-a, a}, or a power of two each,
  with `a` the least-squares scale rounded to a power of two (so the hardware shifts);
  `share`: the weights rounded to a codebook's values. All four round with the error fed
  forward (`feedback_round`, GPTQ's update), so later weights of each output make up for
  the rounding of earlier ones; `refit_values` then moves the shared values themselves to
  their least-squares optimum;
* `refit_bias`: the bias that zeroes the mean error, after any change of the weights.

Arrays are in the Problem's layout: weights (G, O, F), biases (G, O). Everything here is
float64; fxq.compress rounds the result to float32, the model file's type.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from fxq.ops.patches import Problem

RIDGE = 1e-9            # relative ridge of the normal equations (rank-deficient inputs)
PRUNE_STEPS = 4         # prune a quarter of the target, refit, repeat
TERNARY_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)   # ternary thresholds tried, fractions
                        # of the mean |w| (TWN's, Li & Liu 2016, is 0.7)
TERNARY_ALTERNATIONS = 4    # ternary: rounds of (pattern given the scales, scales given it)
POW2_EXPONENTS = 8      # power-of-two weights: exponents within 8 of the layer's largest


@dataclass(frozen=True)
class Moments:
    """A layer's data, reduced to what least squares needs: per group the inputs' mean
    (G, F) and the outputs' (G, O), the centered Gram matrix P'P (G, F, F) and the centered
    cross moments P'T (G, F, O), over `rows` rows."""

    p_mean: np.ndarray
    t_mean: np.ndarray
    gram: np.ndarray
    cross: np.ndarray
    rows: int

    @staticmethod
    def of(problem: Problem) -> "Moments":
        p = problem.patches.astype(np.float64)
        t = problem.target.astype(np.float64)
        p_mean, t_mean = p.mean(axis=0), t.mean(axis=0)
        pc, tc = p - p_mean, t - t_mean
        gram = np.einsum("rgf,rgh->gfh", pc, pc)
        cross = np.einsum("rgf,rgo->gfo", pc, tc)
        return Moments(p_mean, t_mean, gram, cross, p.shape[0])

    def second_moment(self) -> np.ndarray:
        """E[p_f^2] about the mean per group and feature (G, F): the Hessian's diagonal."""
        return np.einsum("gff->gf", self.gram) / max(self.rows, 1)

    def solve(self, g: int, keep: np.ndarray, o: int) -> np.ndarray:
        """Least-squares weights of output o of group g on the features `keep` (bool, F)."""
        idx = np.flatnonzero(keep)
        if idx.size == 0:
            return np.zeros(0)
        a = self.gram[g][np.ix_(idx, idx)]
        ridge = RIDGE * (np.trace(a) / idx.size + 1e-30)
        return np.linalg.solve(a + ridge * np.eye(idx.size), self.cross[g][idx, o])


def refit_bias(m: Moments, weights: np.ndarray) -> np.ndarray:
    """The bias (G, O) making the mean output equal the float one, for these weights."""
    return m.t_mean - np.einsum("gf,gof->go", m.p_mean, weights)


def refit(m: Moments, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares weights (G, O, F), zero outside `mask`, and their bias."""
    g_count, o_count, f_count = mask.shape
    w = np.zeros(mask.shape)
    for g in range(g_count):
        if mask[g].all():                              # every output at once
            a = m.gram[g]
            ridge = RIDGE * (np.trace(a) / f_count + 1e-30)
            w[g] = np.linalg.solve(a + ridge * np.eye(f_count), m.cross[g]).T
            continue
        for o in range(o_count):
            w[g, o, mask[g, o]] = m.solve(g, mask[g, o], o)
    return w, refit_bias(m, w)


def saliency(m: Moments, weights: np.ndarray, by: str) -> np.ndarray:
    """How much removing each weight costs: |w|, or OBD's w^2 * E[p^2] / 2."""
    if by == "magnitude":
        return np.abs(weights)
    if by == "obd":
        return 0.5 * weights ** 2 * m.second_moment()[:, None, :]
    raise ValueError(f"unknown saliency {by!r}")


def prune(m: Moments, weights: np.ndarray, sparsity: float, by: str = "magnitude",
          steps: int = PRUNE_STEPS, groups: np.ndarray | None = None) -> \
        tuple[np.ndarray, np.ndarray]:
    """Weights with `sparsity` of them zero (ties by position) and every output's
    survivors and bias refit, in `steps` steps; the layer's weights are (G, O, F). With
    `groups` (an id per weight, same shape), whole groups go together, those of least summed
    saliency first, until at least `sparsity` of the weights are zero."""
    total = weights.size
    mask = weights != 0
    w = weights.astype(np.float64)
    bias = refit_bias(m, w)
    target = int(round(sparsity * total))
    for step in range(1, steps + 1):
        zeros = int(round(target * step / steps))
        if zeros <= total - int(mask.sum()):
            continue
        score = saliency(m, w, by)
        if groups is None:
            order = np.argsort(np.where(mask, score, -np.inf).ravel(), kind="stable")
            keep = np.ones(total, dtype=bool)
            keep[order[:zeros]] = False
            mask = keep.reshape(mask.shape) & mask
        else:
            ids = groups.ravel()
            live = np.bincount(ids, mask.ravel(), minlength=ids.max() + 1)
            summed = np.bincount(ids, np.where(mask, score, 0.0).ravel(), minlength=live.size)
            order = [g for g in np.argsort(summed, kind="stable") if live[g] > 0]
            gone = total - int(mask.sum())
            dropped = []
            for g in order:
                if gone >= zeros:
                    break
                dropped.append(g)
                gone += int(live[g])
            mask = mask & ~np.isin(groups, dropped)
        w, bias = refit(m, mask)
    return w, bias


@dataclass(frozen=True)
class Factors:
    """A layer as two: `first` (F -> r, no bias), then `second` (r -> O) and `bias`
    (groups of one)."""

    first: np.ndarray      # (r, F)
    second: np.ndarray     # (O, r)
    bias: np.ndarray       # (O,)
    energy: float          # fraction of the fitted responses' energy kept


def response_spectrum(m: Moments) -> tuple[np.ndarray, np.ndarray]:
    """The least-squares weights (F, O) of a one-group layer and the singular values and
    right singular vectors of their fitted responses: (B, s, V)."""
    a = m.gram[0]
    ridge = RIDGE * (np.trace(a) / a.shape[0] + 1e-30)
    b = np.linalg.solve(a + ridge * np.eye(a.shape[0]), m.cross[0])
    fitted = b.T @ a @ b                                  # (O, O): the responses' Gram
    s2, v = np.linalg.eigh((fitted + fitted.T) / 2)
    order = np.argsort(s2)[::-1]
    return b, np.sqrt(np.maximum(s2[order], 0.0)), v[:, order]


def rank_for_energy(s: np.ndarray, energy: float) -> int:
    """The smallest rank keeping `energy` of the squared singular values."""
    e = np.cumsum(s ** 2)
    if e[-1] <= 0:
        return 1
    return int(np.searchsorted(e / e[-1], energy - 1e-12) + 1)


def low_rank(m: Moments, rank: int) -> Factors:
    """The rank-`rank` layer closest to the target on the data, factored."""
    b, s, v = response_spectrum(m)
    vr = v[:, :rank]                                      # (O, r)
    first = (b @ vr).T                                    # (r, F)
    projected = b @ vr @ vr.T                             # (F, O)
    bias = m.t_mean[0] - m.p_mean[0] @ projected
    energy = float(np.sum(s[:rank] ** 2) / max(np.sum(s ** 2), 1e-300))
    return Factors(first, vr, bias, energy)


# -- rounding onto a set of values, with the error fed forward ---------------------------------

DAMP = 0.01             # the Hessian's damping, a fraction of its mean diagonal (GPTQ's)


def feedback_round(m: Moments, weights: np.ndarray,
                   nearest: Callable[[np.ndarray, int], np.ndarray]) -> np.ndarray:
    """Weights (G, O, F) rounded feature by feature with `nearest(column (G, O), f)`, each
    rounding's error on the layer's output compensated by the features not yet rounded
    (Optimal Brain Quantization's update, in GPTQ's order and Cholesky form: Frantar et al.
    2022). Zero weights stay zero where `nearest` keeps them."""
    w = weights.astype(np.float64).copy()
    live = w != 0
    groups, _, features = w.shape
    upper = []
    for g in range(groups):
        h = m.gram[g] / max(m.rows, 1)
        h = h + DAMP * (np.mean(np.diag(h)) + 1e-30) * np.eye(features)
        upper.append(np.linalg.cholesky(np.linalg.inv(h)).T)
    for f in range(features):
        q = nearest(w[:, :, f], f)
        for g in range(groups):
            u = upper[g]
            err = (w[g, :, f] - q[g]) / u[f, f]
            w[g, :, f + 1:] -= np.outer(err, u[f, f + 1:]) * live[g, :, f + 1:]
        w[:, :, f] = q
    return w


# -- weight sets whose products are shifts ---------------------------------------------------

def _power_of_two(a: np.ndarray) -> np.ndarray:
    """Each positive `a` as the nearer of the powers of two around it (0 stays 0)."""
    out = np.zeros_like(a, dtype=np.float64)
    pos = a > 0
    low = 2.0 ** np.floor(np.log2(a[pos]))
    out[pos] = np.where(a[pos] - low <= 2 * low - a[pos], low, 2 * low)
    return out


def _scaled_patterns(m: Moments, patterns: np.ndarray, two_scales: bool = False) -> np.ndarray:
    """Each output's pattern (G, O, F) of -1/0/+1 times its least-squares scale on the data,
    the scale a power of two chosen between the two around the optimum by the error. With
    `two_scales` the +1s and the -1s get a scale each (a_p, a_n: TTQ's value set), each a
    power of two around the joint optimum, or the one scale where that fits better."""
    quad = np.einsum("gof,gfh,goh->go", patterns, m.gram, patterns)
    lin = np.einsum("gof,gfo->go", patterns, m.cross)
    one = patterns * _pow2_scale(np.where(quad > 0, lin / np.where(quad > 0, quad, 1.0), 0.0),
                                 lambda s: s ** 2 * quad - 2 * s * lin)[..., None]
    if not two_scales:
        return one
    pos, neg = (patterns > 0).astype(np.float64), (patterns < 0).astype(np.float64)

    def q(a, b):
        return np.einsum("gof,gfh,goh->go", a, m.gram, b)

    a11, a22, a12 = q(pos, pos), q(neg, neg), q(pos, neg)
    b1 = np.einsum("gof,gfo->go", pos, m.cross)
    b2 = -np.einsum("gof,gfo->go", neg, m.cross)
    det = a11 * a22 - a12 ** 2
    ok = det > 1e-12 * np.maximum(a11 * a22, 1e-300)
    safe = np.where(ok, det, 1.0)
    s_pos = np.where(ok, (a22 * b1 + a12 * b2) / safe, 0.0)      # the error of (p, n):
    s_neg = np.where(ok, (a11 * b2 + a12 * b1) / safe, 0.0)      # p²a11 + n²a22 - 2pn a12
    best, best_err = one, _output_errors(m, one)                  #   - 2p b1 - 2n b2
    for p in _pow2_around(s_pos):
        for n in _pow2_around(s_neg):
            w = pos * p[..., None] - neg * n[..., None]
            err = _output_errors(m, w)
            better = ok & (err < best_err)
            best = np.where(better[..., None], w, best)
            best_err = np.where(better, err, best_err)
    return best


def _pow2_around(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The powers of two below and above each positive `s` (0 where s <= 0)."""
    low = np.where(s > 0, 2.0 ** np.floor(np.log2(np.where(s > 0, s, 1.0))), 0.0)
    return low, 2 * low


def _pow2_scale(s: np.ndarray, error) -> np.ndarray:
    """Of the powers of two around each optimum `s`, the one of least `error(scale)` (0 for
    s <= 0: a negative scale is no fit at all)."""
    low, high = _pow2_around(s)
    return np.where(error(high) < error(low), high, low)


def _output_errors(m: Moments, weights: np.ndarray) -> np.ndarray:
    """Each output's squared error on the data, less a constant of the output's own (G, O):
    w'Hw - 2 w'c, the bias refit taking the means (the moments are centered)."""
    return np.einsum("gof,gfh,goh->go", weights, m.gram, weights) - \
        2 * np.einsum("gof,gfo->go", weights, m.cross)


def ternary(m: Moments, weights: np.ndarray, two_scales: bool = False) -> np.ndarray:
    """{-a, 0, a} per output (with `two_scales`, {-a_n, 0, a_p}): for each threshold of
    TERNARY_THRESHOLDS (fractions of the mean |w|; TWN's is 0.7) the pattern zero below it
    and the data's power-of-two scale(s) for that pattern; then, in turn, every weight
    rounded to the nearest of its sign's scale and 0 with the error fed forward, and the
    scale(s) refit to that pattern, while that lowers some output's error (at most
    TERNARY_ALTERNATIONS times); each output keeps the candidate of least error on the data
    (outputs round independently)."""
    mag = np.abs(weights)
    live = np.maximum(np.count_nonzero(mag, axis=-1), 1)[..., None]
    mean = mag.sum(axis=-1, keepdims=True) / live                       # pruned ones aside
    pruned = weights == 0

    def rounded(scaled: np.ndarray) -> np.ndarray:
        """The weights rounded onto `scaled`'s values per output, error fed forward, and
        the scales refit to the pattern that gives."""
        top = np.max(np.abs(scaled), axis=-1)                           # (G, O)
        up = np.max(np.where(scaled > 0, scaled, 0.0), axis=-1)
        down = np.max(np.where(scaled < 0, -scaled, 0.0), axis=-1)
        up, down = np.where(up > 0, up, top), np.where(down > 0, down, top)

        def nearest(col: np.ndarray, f: int) -> np.ndarray:
            scale = np.where(col > 0, up, down)
            q = np.sign(col) * scale * (np.abs(col) > scale / 2)
            return np.where(pruned[:, :, f], 0.0, q)

        return _scaled_patterns(m, np.sign(feedback_round(m, weights, nearest)), two_scales)

    best, best_err = None, None
    for fraction in TERNARY_THRESHOLDS:
        w = rounded(_scaled_patterns(m, np.sign(weights) * (mag > fraction * mean), two_scales))
        err = _output_errors(m, w)
        for _ in range(TERNARY_ALTERNATIONS - 1):
            again = rounded(w)
            again_err = _output_errors(m, again)
            better = again_err < err
            if not better.any():
                break
            w = np.where(better[..., None], again, w)
            err = np.minimum(again_err, err)
        if best is None:
            best, best_err = w, err
        else:
            better = err < best_err
            best = np.where(better[..., None], w, best)
            best_err = np.minimum(err, best_err)
    return best


def binary(m: Moments, weights: np.ndarray, keep_zeros: bool = False) -> np.ndarray:
    """{-a, a} per output, a the data's power-of-two scale, signs rounded with the error
    fed forward; zero weights become +-a, or with `keep_zeros` (pruned ones) stay zero."""
    pruned = (weights == 0) if keep_zeros else np.zeros(weights.shape, dtype=bool)
    pattern = np.where(weights < 0, -1.0, 1.0) * ~pruned
    scale = np.max(np.abs(_scaled_patterns(m, pattern)), axis=-1)

    def nearest(col: np.ndarray, f: int) -> np.ndarray:
        q = np.where(col < 0, -scale, scale)
        return np.where(pruned[:, :, f], 0.0, q)

    rounded = feedback_round(m, weights, nearest)
    return _scaled_patterns(m, np.sign(rounded))


def pow2_grid(weights: np.ndarray, exponents: int = POW2_EXPONENTS) -> Callable:
    """The nearest of 0 and +-2^e, e within `exponents` of the layer's largest power."""
    top = _power_of_two(np.array([np.max(np.abs(weights))]))[0]
    smallest = top * 2.0 ** -(exponents - 1)

    def nearest(v: np.ndarray) -> np.ndarray:
        mag = _power_of_two(np.minimum(np.abs(v), top))
        small = np.abs(v) < smallest
        mag = np.where(small, np.where(np.abs(v) <= smallest / 2, 0.0, smallest), mag)
        return np.sign(v) * mag

    return nearest


def pow2(m: Moments, weights: np.ndarray, exponents: int = POW2_EXPONENTS) -> np.ndarray:
    """Every weight 0 or +-2^e (e within `exponents` of the layer's largest), rounded
    with the error fed forward: each product a shift."""
    if not np.any(weights):
        return np.zeros_like(weights, dtype=np.float64)
    nearest = pow2_grid(weights, exponents)
    pruned = weights == 0
    return feedback_round(m, weights, lambda col, f: np.where(pruned[:, :, f], 0.0, nearest(col)))


def share(m: Moments, weights: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Weights rounded to the nearest of `values` (a codebook holding 0 when some are
    pruned), with the error fed forward; zeros stay zero."""
    values = np.sort(np.asarray(values, dtype=np.float64))
    pruned = weights == 0
    live = values[values != 0] if np.any(values != 0) else values

    def nearest(col: np.ndarray, f: int) -> np.ndarray:
        idx = np.clip(np.searchsorted(live, col), 1, max(live.size - 1, 1))
        lo, hi = live[idx - 1], live[np.minimum(idx, live.size - 1)]
        q = np.where(np.abs(col - lo) <= np.abs(hi - col), lo, hi) if live.size > 1 else \
            np.full_like(col, live[0])
        return np.where(pruned[:, :, f], 0.0, q)

    return feedback_round(m, weights, nearest)


def refit_values(m: Moments, weights: np.ndarray) -> np.ndarray:
    """The weights with each distinct nonzero value (a shared value's cluster) replaced by
    the value of least output error on the data, all clusters together: the error is
    quadratic in the K values, c'Ac - 2b'c with A_kl the sum over outputs of m_k' H m_l
    and b_k that of m_k' P'T (m_k an output's mask of cluster k), so one solve gives them
    (the least-squares stand-in for Han et al.'s fine-tuning of the centroids). Zeros stay
    zero."""
    values = np.unique(weights[weights != 0])
    if values.size == 0:
        return weights.astype(np.float64)
    masks = [(weights == v).astype(np.float64) for v in values]        # each (G, O, F)
    k = values.size
    a, b = np.zeros((k, k)), np.zeros(k)
    for g in range(weights.shape[0]):
        mh = [mask[g] @ m.gram[g] for mask in masks]                     # (O, F) each
        for i in range(k):
            b[i] += np.sum(masks[i][g] * m.cross[g].T)
            for j in range(i, k):
                a[i, j] += np.sum(mh[i] * masks[j][g])
    a = np.triu(a) + np.triu(a, 1).T
    ridge = RIDGE * (np.trace(a) / k + 1e-30)
    fitted = np.linalg.solve(a + ridge * np.eye(k), b)
    return sum(c * mask for c, mask in zip(fitted, masks))
