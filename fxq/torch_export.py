"""PyTorch -> fxq: export through torch.onnx and load the result.

Both of torch's exporters: the TorchScript one (`dynamo=False`, the default here: it keeps
BatchNorm nodes when asked and writes opset 17) and the torch.export-based one
(`dynamo=True`, torch's own default since 2.9: opset 18 and up, through onnxscript, folding
BatchNorm and writing AdaptiveAvgPool2d as ReduceMean).
"""
from __future__ import annotations

import os
import tempfile
import warnings
from typing import Any

import numpy as np

from fxq.errors import ModelError
from fxq.ir import Graph

DEFAULT_OPSET = 17


def export_onnx(module: Any, example_input: Any, path: str | os.PathLike, *,
                opset: int | None = None, fold_constants: bool = True,
                dynamo: bool = False) -> None:
    """Write `module` (in eval mode) as ONNX with a dynamic batch axis on its inputs ("x",
    or "x0", "x1", ...) and output "y". `opset` defaults to 17 (TorchScript) or the
    exporter's own (dynamo)."""
    import torch

    module = module.eval()
    args = example_input if isinstance(example_input, tuple) else (example_input,)
    # arrays (numpy, or anything array-like) as float32 tensors of the module's inputs
    args = tuple(a if isinstance(a, torch.Tensor) else torch.as_tensor(
        np.asarray(a, dtype=np.float32)) for a in args)
    names = ["x"] if len(args) == 1 else [f"x{i}" for i in range(len(args))]
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)      # torch.export's own notices
        if dynamo:
            # torch.export specializes a dimension of size 1: export with two samples
            args = tuple(torch.cat([a, a]) if a.shape[0] == 1 else a for a in args)
            batch = torch.export.Dim("N", min=1)
            program = torch.onnx.export(module, args, dynamo=True, opset_version=opset,
                                        input_names=names, output_names=["y"],
                                        dynamic_shapes=tuple({0: batch} for _ in args),
                                        verbose=False)
            program.save(os.fspath(path))
        else:
            # the TorchScript exporter is deprecated upstream: its notice is expected
            torch.onnx.export(module, args, os.fspath(path), dynamo=False,
                              opset_version=opset or DEFAULT_OPSET, input_names=names,
                              output_names=["y"],
                              dynamic_axes={n: {0: "N"} for n in names + ["y"]},
                              do_constant_folding=fold_constants)


def from_torch(module: Any, example_input: Any, *, opset: int | None = None,
               dynamo: bool = False) -> Graph:
    """An fxq Graph of a torch.nn.Module, exported through torch.onnx (`dynamo` picks the
    torch.export-based exporter).

    `example_input` is a tensor or array (or a tuple of them) with a batch axis first; the batch
    axis is exported as dynamic. Export failures become a ModelError naming the cause.
    """
    from fxq.onnx_import import load

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, f"{type(module).__name__}.onnx")
        try:
            export_onnx(module, example_input, path, opset=opset, dynamo=dynamo)
        except (RuntimeError, TypeError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"torch.onnx export of {type(module).__name__} failed: "
                             f"{first}") from None
        return load(path)
