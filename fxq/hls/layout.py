"""How fxq's channels-first tensors are laid out in the channels-last hls4ml project.

fxq's IR keeps the ONNX layout (N, C, *spatial). hls4ml computes channels-last, so an IR
tensor of per-sample shape (C, H, W) lives in the project as (H, W, C). A flattened tensor
is a vector in both, but in a different element order: the emitter keeps hls4ml's order
and permutes the rows of the Dense weights that read it, so no transpose is synthesized.
`hls_order` says, for any IR tensor, which IR element each hls4ml element is.
"""
from __future__ import annotations

import numpy as np


def channels_last_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Per-sample IR shape (C, *spatial) -> hls4ml shape (*spatial, C); vectors unchanged."""
    return tuple(shape[1:]) + (shape[0],) if len(shape) >= 2 else tuple(shape)


def channels_last_order(shape: tuple[int, ...]) -> np.ndarray:
    """Flat IR indices in hls4ml's channels-last element order."""
    index = np.arange(int(np.prod(shape, dtype=np.int64))).reshape(shape)
    return np.moveaxis(index, 0, -1).ravel() if len(shape) >= 2 else index.ravel()


def to_hls(values: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Batched IR values (N, *shape) -> hls4ml's flat element order (N, size)."""
    return values.reshape(values.shape[0], -1)[:, order]
