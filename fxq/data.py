"""Input and calibration data: reading .npz/.npy files and binding arrays to graph inputs."""
from __future__ import annotations

import os
import zipfile
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from fxq.errors import DataError

if TYPE_CHECKING:
    from fxq.ir import Graph

LABEL_KEYS = ("y", "label", "labels")


def load_arrays(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read every array of a .npz file, or the one array of a .npy file (named "x")."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise DataError(f"{path}: no such file")
    if os.path.isdir(path):
        raise DataError(f"{path}: is a directory, expected a .npz or .npy file")
    try:
        loaded = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: not a readable .npz or .npy file ({exc})") from None
    if isinstance(loaded, np.ndarray):
        return {"x": loaded}
    with loaded:
        try:
            return {name: loaded[name] for name in loaded.files}
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
            raise DataError(f"{path}: not a readable .npz file ({exc})") from None


def split_labels(arrays: Mapping[str, np.ndarray], graph: Graph) -> tuple[dict, np.ndarray | None]:
    """Separate a label array (y/label/labels, not a graph input) from the input arrays."""
    inputs = dict(arrays)
    labels = None
    for key in LABEL_KEYS:
        if key in inputs and key not in graph.inputs:
            labels = inputs.pop(key)
            break
    return inputs, labels


def bind_inputs(graph: Graph, x: Any, *, source: str = "input",
                keep_float32: bool = False) -> dict[str, np.ndarray]:
    """Map user data onto the graph's inputs as float64 arrays, batch first (float32 ones
    kept as they are with `keep_float32`, for readers that take them: the native engine).

    Accepts one array (single-input graphs, or a mapping holding one array under any name)
    or a mapping by input name. Refuses missing inputs, non-numeric data, wrong per-sample
    shapes and inputs whose batch sizes differ, naming the input and both shapes.
    """
    if isinstance(x, Mapping):
        arrays = dict(x)
        if len(graph.inputs) == 1 and graph.inputs[0] not in arrays:
            if len(arrays) != 1:
                raise DataError(f"{source}: expected one array for input {graph.inputs[0]!r},"
                                f" found {sorted(arrays)}")
            arrays = {graph.inputs[0]: next(iter(arrays.values()))}
    elif len(graph.inputs) == 1:
        arrays = {graph.inputs[0]: x}
    else:
        raise DataError(f"{source}: the graph has inputs {list(graph.inputs)}; "
                        "give a mapping (or .npz) with one array per input name")
    bound: dict[str, np.ndarray] = {}
    for name in graph.inputs:
        if name not in arrays:
            raise DataError(f"{source}: no array for graph input {name!r}")
        array = np.asarray(arrays[name])
        if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
            raise DataError(f"{source}: array for input {name!r} has dtype {array.dtype},"
                            " expected numbers")
        expected = graph.shape(name)
        if array.ndim == len(expected) and array.shape == expected:
            raise DataError(f"{source}: input {name!r} has shape {array.shape} with no batch"
                            f" axis; expected (N, {', '.join(map(str, expected))})")
        if array.shape[1:] != expected or array.ndim != len(expected) + 1:
            raise DataError(f"{source}: input {name!r} has shape {array.shape}, expected "
                            f"(N, {', '.join(map(str, expected))})".replace(", )", ")"))
        if array.dtype == np.float64 or (keep_float32 and array.dtype == np.float32):
            # no copy: a read-only view of the caller's array
            view = array.view()
            view.flags.writeable = False
            bound[name] = view
        else:
            bound[name] = array.astype(np.float64)
    batches = {a.shape[0] for a in bound.values()}
    if len(batches) > 1:
        raise DataError(f"{source}: inputs have different batch sizes {sorted(batches)}")
    return bound
