"""fxq: a fixed-point quantization compiler for FPGAs and embedded targets."""
from fxq.errors import DataError, FxqError, ModelError, UnsupportedModelError
from fxq.fixed import FixedType, Overflow, Rounding
from fxq.ir import Graph, Node, Op, Tensor
from fxq.onnx_import import load
from fxq.torch_export import from_torch

__version__ = "0.1.0"

__all__ = ["DataError", "FixedType", "FxqError", "Graph", "ModelError", "Node", "Op",
           "Overflow", "Rounding", "Tensor", "UnsupportedModelError", "from_torch", "load"]
