"""PyTorch -> fxq: export through torch.onnx (TorchScript exporter) and load the result."""
from __future__ import annotations

import os
import tempfile
import warnings
from typing import Any

from fxq.errors import ModelError
from fxq.ir import Graph

DEFAULT_OPSET = 17


def export_onnx(module: Any, example_input: Any, path: str | os.PathLike, *,
                opset: int = DEFAULT_OPSET, fold_constants: bool = True) -> None:
    """Write `module` (in eval mode) as ONNX with a dynamic batch axis on input "x"."""
    import torch

    module = module.eval()
    args = example_input if isinstance(example_input, tuple) else (example_input,)
    names = ["x"] if len(args) == 1 else [f"x{i}" for i in range(len(args))]
    # The TorchScript exporter (dynamo=False) is deprecated upstream; the torch.export-based
    # one needs onnxscript, which fxq does not depend on. Its deprecation notice is expected.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(module, args, os.fspath(path), dynamo=False, opset_version=opset,
                          input_names=names, output_names=["y"],
                          dynamic_axes={n: {0: "N"} for n in names + ["y"]},
                          do_constant_folding=fold_constants)


def from_torch(module: Any, example_input: Any, *, opset: int = DEFAULT_OPSET) -> Graph:
    """An fxq Graph of a torch.nn.Module, exported through torch.onnx.

    `example_input` is a tensor (or tuple of tensors) with a batch axis first; the batch
    axis is exported as dynamic. Export failures become a ModelError naming the cause.
    """
    from fxq.onnx_import import load

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, f"{type(module).__name__}.onnx")
        try:
            export_onnx(module, example_input, path, opset=opset)
        except (RuntimeError, TypeError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"torch.onnx export of {type(module).__name__} failed: "
                             f"{first}") from None
        return load(path)
