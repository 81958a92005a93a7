"""Sliding windows over the spatial axes of NC... arrays, shared by conv and pooling."""
from __future__ import annotations

from typing import Sequence

import numpy as np


def output_size(size: int, kernel: int, stride: int, pad_begin: int, pad_end: int) -> int:
    """Output length of a window sweep (floor mode, as ONNX with ceil_mode=0)."""
    return (size + pad_begin + pad_end - kernel) // stride + 1


def spatial_output_shape(spatial: Sequence[int], kernel: Sequence[int],
                         strides: Sequence[int], pads: Sequence[int]) -> tuple[int, ...]:
    nd = len(spatial)
    return tuple(output_size(spatial[i], kernel[i], strides[i], pads[i], pads[i + nd])
                 for i in range(nd))


def pad_spatial(x: np.ndarray, pads: Sequence[int], value: float = 0.0) -> np.ndarray:
    """Pad the axes after (N, C) with `pads` = (begin..., end...)."""
    nd = x.ndim - 2
    if not any(pads):
        return x
    width = [(0, 0), (0, 0)] + [(pads[i], pads[i + nd]) for i in range(nd)]
    return np.pad(x, width, mode="constant", constant_values=value)


def offset_slices(offset: Sequence[int], strides: Sequence[int],
                  out_spatial: Sequence[int]) -> tuple[slice, ...]:
    """The spatial slices picking, for every output position, the input element at kernel
    offset `offset`: a window reduction is one pass per offset over these strided views."""
    return tuple(slice(offset[i], offset[i] + strides[i] * (out_spatial[i] - 1) + 1, strides[i])
                 for i in range(len(offset)))


def windows(x: np.ndarray, kernel: Sequence[int], strides: Sequence[int]) -> np.ndarray:
    """View of shape (N, C, *out, *kernel) over an already padded (N, C, *spatial) array."""
    nd = len(kernel)
    view = np.lib.stride_tricks.sliding_window_view(x, tuple(kernel), axis=tuple(range(2, 2 + nd)))
    index = (slice(None), slice(None)) + tuple(slice(None, None, s) for s in strides)
    return view[index]
