"""`fxq compress --budget PT`: the most pruning whose task figure on the labelled calibration
data stays within PT points of the float model's (top-1 for classifiers, AUC for anomaly
detectors, times 100).

The other methods stay as given (sharing, weight sets, the pruning's structure and
saliency); the amount pruned (`prune`: the fraction of weights, or of MACs with channel
pruning) is searched: every level of LEVELS, then BISECTIONS halvings between the largest
that held and the next level up. The figure need not fall monotonically with the amount
(hence every level), and the result is the largest amount tried that held (no pruning when
none did). Held-out data can lose more than the calibration data
does: the budget holds on the data it was measured on.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable

import numpy as np

from fxq.compress.config import CompressConfig, CompressError

LEVELS = (0.3, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95)
BISECTIONS = 3
TASKS = ("classify", "anomaly")        # figures where higher is better, on a 0..1 scale


def _points(result) -> float:
    q = result.quality
    return 100.0 * (q["float"] - q["compressed"])


def compress_within(compress: Callable, budget: float, config: CompressConfig,
                    labels: np.ndarray | None, progress: Callable[[str], None] | None):
    """The result of the most pruning within `budget` points (see the note), with its
    `budget` section (the amounts tried and their losses); `compress(config)` compresses
    with a config and the labels."""
    if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not budget >= 0 \
            or budget == float("inf"):
        raise CompressError(f"budget = {budget!r}: expected a number of points >= 0")
    if labels is None:
        raise CompressError("a compression budget needs labelled calibration data (labels "
                            "'y' in the calibration file)")
    say = progress or (lambda _: None)
    tried: list[dict] = []
    best = None

    def attempt(level: float):
        cfg = CompressConfig(replace(config.default, prune=level).checked(""), config.layers)
        result = compress(cfg)
        if result.quality["task"] not in TASKS:
            raise CompressError(f"a compression budget is in points of a higher-is-better "
                                f"figure ({', '.join(TASKS)}); this model's task is "
                                f"{result.quality['task']}")
        loss = _points(result)
        tried.append({"prune": level, "loss_points": loss, "held": loss <= budget})
        say(f"compress: prune {level:.4g}: {loss:+.2f} points")
        return result, loss <= budget

    low, high = 0.0, None
    results = [(level, *attempt(level)) for level in LEVELS]
    for i, (level, result, held) in enumerate(results):
        if held:
            best, low = result, level
            high = results[i + 1][0] if i + 1 < len(results) else None
    if best is None:
        high = LEVELS[0]
    if high is not None:
        for _ in range(BISECTIONS):
            mid = (low + high) / 2
            result, held = attempt(mid)
            if held:
                best, low = result, mid
            else:
                high = mid
    if best is None:
        unpruned = CompressConfig(replace(config.default, prune=None), config.layers)
        if not unpruned.any:
            raise CompressError(f"no pruning keeps the calibration figure within {budget} "
                                f"points (prune {LEVELS[0]} loses "
                                f"{tried[0]['loss_points']:.2f})")
        best = compress(unpruned)
    section = {"budget_points": budget, "chosen_prune": low if low > 0 else None,
               "tried": tried}
    return replace(best, budget=section)
