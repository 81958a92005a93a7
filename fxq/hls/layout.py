"""How fxq's channels-first tensors are laid out in the channels-last hls4ml project.

fxq's IR keeps the ONNX layout (N, C, *spatial). hls4ml computes channels-last, so an IR
tensor of per-sample shape (C, H, W) lives in the project as (H, W, C). A flattened tensor
is a vector in both, but in a different element order: the emitter keeps hls4ml's order
and permutes the rows of the Dense weights that read it, so no transpose is synthesized.
A `Layout` says, for any IR tensor, which IR element each hls4ml element is; the emitter
inserts hls4ml Transpose and Reshape layers only where a reader needs another one.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def channels_last_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Per-sample IR shape (C, *spatial) -> hls4ml shape (*spatial, C); vectors unchanged."""
    return tuple(shape[1:]) + (shape[0],) if len(shape) >= 2 else tuple(shape)


def to_hls(values: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Batched IR values (N, *shape) -> hls4ml's flat element order (N, size)."""
    return values.reshape(values.shape[0], -1)[:, order]


@dataclass(frozen=True)
class Layout:
    """Where an IR tensor's elements lie in an hls4ml layer's output: the tensor's value,
    reshaped (C order) to `source` and transposed by `perm`, is the hls4ml array, whose
    shape in the project is `shape`. Reshapes keep C-order flat indices, so a flattened or
    reshaped tensor keeps its input's source and perm."""

    source: tuple[int, ...]
    perm: tuple[int, ...]
    shape: tuple[int, ...]

    @property
    def order(self) -> np.ndarray:
        """Flat IR indices in the hls4ml element order."""
        index = np.arange(int(np.prod(self.source, dtype=np.int64))).reshape(self.source)
        return np.transpose(index, self.perm).ravel()

    @property
    def arranged(self) -> tuple[int, ...]:
        """The shape of the transposed array (before hls4ml's reshape to `shape`)."""
        return tuple(self.source[p] for p in self.perm)

    def same_order(self, other: "Layout") -> bool:
        return np.array_equal(self.order, other.order)

    def with_shape(self, shape: tuple[int, ...]) -> "Layout":
        return Layout(self.source, self.perm, tuple(shape))


def channels_last(shape: tuple[int, ...]) -> Layout:
    """hls4ml's own layout of a feature map of IR shape (C, *spatial): (*spatial, C)."""
    perm = tuple(range(1, len(shape))) + (0,) if len(shape) >= 2 else (0,) * len(shape)
    return Layout(tuple(shape), perm, channels_last_shape(shape))


def row_major(shape: tuple[int, ...]) -> Layout:
    """The IR's own element order, held by hls4ml as an array of the IR shape."""
    return Layout(tuple(shape), tuple(range(len(shape))), tuple(shape))
