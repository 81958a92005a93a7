"""fxq: a fixed-point quantization compiler for FPGAs and embedded targets."""
from fxq.analysis import BitConfig, load_config, quantize
from fxq.compile import CompileResult, compile  # noqa: A004  (fxq.compile is the API)
from fxq.compress import CompressConfig, Compressed, compress  # (fxq.compress is the API)
from fxq.errors import DataError, FxqError, ModelError, UnsupportedModelError
from fxq.fixed import FixedType, Overflow, Rounding
from fxq.hls import emit_hls, verify
from fxq.ir import Graph, Node, Op, Tensor
from fxq.model_file import load_quantized
from fxq.onnx_export import save_onnx, to_onnx
from fxq.onnx_import import load
from fxq.quantized import LayerTypes, QuantizedGraph
from fxq.target import Backend, IoType, Strategy, Target
from fxq.torch_export import from_torch

__version__ = "0.1.0"

__all__ = ["Backend", "BitConfig", "CompileResult", "IoType", "Strategy", "Target",
           "compile", "compress", "CompressConfig", "Compressed", "DataError", "FixedType", "FxqError", "Graph", "LayerTypes",
           "ModelError", "Node", "Op", "Overflow", "QuantizedGraph", "Rounding", "Tensor",
           "UnsupportedModelError", "emit_hls", "from_torch", "load", "load_config",
           "load_quantized", "quantize", "save_onnx", "to_onnx", "verify"]
