"""How a parameter is stored, apart from its values: a codebook of shared values plus one
index per element (weight sharing, Deep Compression's second stage).

The graph keeps every parameter's dense values, which is all the kernels, the search and
the emitters read, so no op changes for an encoded parameter: quantizing is element-wise,
so the raw values of the dense array are exactly the quantized codebook gathered by the
indices. The encoding says what the hardware (or a model file) needs to store instead,
and `Graph.build` checks that it still reproduces the dense values, so an edit that
changes a parameter without its encoding is caught.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class Codebook:
    """A parameter as `values[indices]`: K shared values, one index per element."""

    values: np.ndarray          # (K,) float64
    indices: np.ndarray         # int64, the parameter's shape

    def __post_init__(self) -> None:
        values = np.asarray(self.values, dtype=np.float64).reshape(-1)
        indices = np.asarray(self.indices)
        if not np.issubdtype(indices.dtype, np.integer):
            raise ValueError("codebook indices must be integers")
        indices = indices.astype(np.int64)
        if values.size == 0 or (indices.size and not 0 <= indices.min() <= indices.max()
                                < values.size):
            raise ValueError(f"codebook of {values.size} values indexed outside it")
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "indices", indices)

    @property
    def kind(self) -> str:
        return "codebook"

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.indices.shape)

    def dense(self) -> np.ndarray:
        return self.values[self.indices]

    def index_bits(self) -> int:
        return max(1, math.ceil(math.log2(self.values.size)))

    def storage_bits(self, width: int) -> int:
        """Bits to store it with `width`-bit values: the codebook, then the indices."""
        return self.values.size * width + self.indices.size * self.index_bits()

    def with_values(self, values: np.ndarray) -> "Codebook":
        return Codebook(values, self.indices)

    def to_json(self, values: np.ndarray | None = None) -> dict:
        v = self.values if values is None else values
        return {"kind": self.kind, "values": [float(x) for x in v],
                "indices": self.indices.ravel().tolist()}

    @staticmethod
    def from_json(d: dict, shape) -> "Codebook":
        if d.get("kind") != "codebook":
            raise ValueError(f"unknown parameter encoding {d.get('kind')!r}")
        return Codebook(np.array(d["values"], dtype=np.float64),
                        np.array(d["indices"], dtype=np.int64).reshape(shape))


Encoding = Codebook             # the encodings fxq knows (one so far)


def matches(encoding: Encoding, value: np.ndarray) -> bool:
    """Does `encoding` reproduce `value` exactly?"""
    return encoding.shape == tuple(np.shape(value)) and \
        np.array_equal(encoding.dense(), value)
