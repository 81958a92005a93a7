"""Memory planning: refuse work that would exhaust memory, with an estimate of its need.

The analysis holds the tensors live at once (each dropped after its last reader) for the
whole calibration set (`check_live_fits`); `verify`, the report's statistics and the range
check run in batches sized by `batch_size`; `simulate` runs in chunks and needs little. A
run whose estimate exceeds the memory fxq may use is refused before it starts, naming what
it would need and how to bring it down. `FXQ_MEMORY_BYTES` sets that memory (default: 3/4
of the machine's physical memory).
"""
from __future__ import annotations

import os
from typing import Mapping

import numpy as np

from fxq.errors import DataError
from fxq.ir import Graph

USABLE_SHARE = 0.75
GIB = float(1 << 30)


def usable_bytes() -> int:
    override = os.environ.get("FXQ_MEMORY_BYTES")
    if override:
        try:
            return int(float(override))
        except ValueError:
            raise DataError(f"FXQ_MEMORY_BYTES={override!r} is not a number of bytes") from None
    return int(USABLE_SHARE * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def values_per_sample(graph: Graph) -> int:
    """Elements of every activation tensor (inputs included) of one sample."""
    names = list(graph.inputs) + [n.output for n in graph.nodes]
    return int(sum(int(np.prod(graph.shape(n), dtype=np.int64)) for n in names))


def _size(n: float) -> str:
    return f"{n / GIB:.1f} GiB" if n >= GIB else f"{n / (1 << 20):.1f} MiB"


def batch_size(graph: Graph, bytes_per_value: int, what: str) -> int:
    """How many samples at once fit in the usable memory when every tensor of each is held
    (bytes_per_value per value, working copies included); refuses when one does not fit."""
    per_sample = values_per_sample(graph) * bytes_per_value
    have = usable_bytes()
    if per_sample > have:
        raise DataError(f"{what} of one sample needs about {_size(per_sample)} "
                        f"({values_per_sample(graph):,} values); fxq may use {_size(have)}")
    return max(1, have // per_sample)


def live_values_per_sample(graph: Graph) -> tuple[int, int]:
    """(the most elements of one sample live at once when each tensor is dropped after its
    last reader, the elements of the widest tensor)."""
    last = graph.last_readers()
    size = {n: int(np.prod(graph.shape(n), dtype=np.int64))
            for n in list(graph.inputs) + [node.output for node in graph.nodes]}
    live = {n: size[n] for n in graph.inputs}
    peak = sum(live.values())
    for i, node in enumerate(graph.nodes):
        live[node.output] = size[node.output]
        peak = max(peak, sum(live.values()))
        for name in graph.activation_inputs(node) + [node.output]:
            if last.get(name, -1) <= i:
                live.pop(name, None)
    return peak, max(size.values())


def check_live_fits(graph: Graph, inputs: Mapping[str, np.ndarray], bytes_live: int,
                    bytes_widest: int, what: str) -> None:
    """Refuse work holding the live tensors of the batch `inputs` (bytes_live per value)
    and a few copies of the widest (bytes_widest per value) when that exceeds the usable
    memory."""
    samples = next(iter(inputs.values())).shape[0]
    live, widest = live_values_per_sample(graph)
    per_sample = live * bytes_live + widest * bytes_widest
    need, have = samples * per_sample, usable_bytes()
    if need > have:
        most = max(0, have // max(per_sample, 1))
        raise DataError(f"{what} on {samples} samples needs about {_size(need)} "
                        f"({live:,} values per sample live at once); fxq may use "
                        f"{_size(have)}: use at most {most} samples")
