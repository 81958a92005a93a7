"""fxq's own hls4ml layers, for what fxq simulates and hls4ml has no layer for, added through
hls4ml's extension API: `register_layer` for the layer class, the backends' `register_template`
for its C++ config and call, `register_source` for the header (cpp/nnet_fxq.h, copied into
every project's firmware/nnet_utils).

- FxqGather: out[i] = in[index[i]] or a constant, a gather; the emitter uses it to
  broadcast one operand of a merge over the other's shape, and to pad where hls4ml's
  ZeroPadding cannot (another value, the channel axis, a max pooling's least value).
- FxqClip: Clip with any bounds, in both io types (hls4ml has ReLU1/ReLU6 in io_parallel).
"""
from __future__ import annotations

import math
import os

import numpy as np

from fxq.fixed import FixedType, quantize, to_float

HEADER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cpp", "nnet_fxq.h")
INCLUDE = ["nnet_utils/nnet_fxq.h"]
_registered = False


def register() -> None:
    """Register fxq's layers with hls4ml (once per process; before a ModelGraph is built)."""
    global _registered
    if _registered:
        return
    from hls4ml.backends import get_backend
    from hls4ml.backends.template import FunctionCallTemplate, LayerConfigTemplate
    from hls4ml.model.layers import Layer, register_layer
    from hls4ml.model.attributes import Attribute

    class FxqGather(Layer):
        _expected_attributes = [Attribute("n_in"), Attribute("n_out"),
                                Attribute("out_shape", value_type=list)]

        def initialize(self):
            self.add_output_variable([int(d) for d in self.get_attr("out_shape")])

    class FxqClip(Layer):
        _expected_attributes = [Attribute("n_in")]

        def initialize(self):
            self.add_output_variable(list(self.get_input_variable().shape))

    class GatherConfig(LayerConfigTemplate):
        def __init__(self):
            super().__init__(FxqGather)

        def format(self, node):
            name = f"config{node.index}"
            index = ", ".join(str(int(i)) for i in node.get_attr("gather_index"))
            return (f"struct {name} : nnet::fxq_gather_config {{\n"
                    f"    static const unsigned n_in = {node.get_attr('n_in')};\n"
                    f"    static const unsigned n_out = {node.get_attr('n_out')};\n"
                    f"    static const unsigned *const index;\n"
                    f"    template <class T> static T fill() {{ return T({node.get_attr('fill')!r}); }}\n}};\n"
                    f"unsigned {name}_index[{node.get_attr('n_out')}] = {{{index}}};\n"
                    f"const unsigned *const {name}::index = {name}_index;\n")

    class ClipConfig(LayerConfigTemplate):
        def __init__(self):
            super().__init__(FxqClip)

        def format(self, node):
            b = node.get_attr("bounds")
            funcs = "".join(
                f"    template <class T> static T {key}() {{ return T({b[key]!r}); }}\n"
                for key in ("lo_in", "lo_out", "hi_in", "hi_out"))
            return (f"struct config{node.index} : nnet::fxq_clip_config {{\n"
                    f"    static const unsigned n_in = {node.get_attr('n_in')};\n"
                    f"    static const unsigned lo_mode = {b['lo_mode']};\n"
                    f"    static const unsigned hi_mode = {b['hi_mode']};\n{funcs}}};\n")

    def call(layer_class, function):
        class Call(FunctionCallTemplate):
            def __init__(self):
                super().__init__(layer_class, include_header=INCLUDE)

            def format(self, node):
                params = self._default_function_params(node)
                return (f"nnet::{function}<{params['input_t']}, {params['output_t']}, "
                        f"{params['config']}>({params['input']}, {params['output']});")
        Call.__name__ = f"{layer_class.__name__}Call"
        return Call

    register_layer("FxqGather", FxqGather)
    register_layer("FxqClip", FxqClip)
    for backend_name in ("Vivado", "Vitis"):
        backend = get_backend(backend_name)
        for template in (GatherConfig, ClipConfig, call(FxqGather, "fxq_gather"),
                         call(FxqClip, "fxq_clip")):
            backend.register_template(template)
        backend.register_source(HEADER)
    _registered = True


def gather_layer(index: np.ndarray, n_in: int, out_shape: tuple[int, ...],
                 fill: float = 0.0) -> dict:
    """The layer dict of out[i] = in[index[i]] (flat hls4ml positions; a negative index
    gives `fill`, a value the result type holds exactly), output `out_shape`."""
    index = np.where(index < 0, n_in, index)
    return {"class_name": "FxqGather", "n_in": int(n_in), "n_out": int(index.size),
            "out_shape": [int(d) for d in out_shape], "gather_index": [int(i) for i in index],
            "fill": float(fill)}


def clip_layer(lo: float, hi: float, x_t: FixedType, result: FixedType, n_in: int) -> dict:
    """The layer dict of Clip(lo, hi) from `x_t` to `result`. fxq compares the exact input
    with the real bounds: x < lo holds exactly when x is below lo rounded up to the input's
    grid (x > hi: above hi rounded down), which an ap_fixed of the input type holds when it
    is within its range; outside, the compare has one answer for every input (mode 0 never,
    2 always)."""
    step, low, high = x_t.resolution, x_t.min, x_t.max

    def bound(value, grid, below):
        if not math.isfinite(value):
            return 0, 0.0, 0.0
        on_grid = grid(value / step) * step
        if below:           # x < value
            mode = 0 if on_grid <= low else 2 if on_grid > high else 1
        else:               # x > value
            mode = 0 if on_grid >= high else 2 if on_grid < low else 1
        inside = min(max(on_grid, low), high)
        return mode, float(inside), float(to_float(quantize(value, result), result))

    lo_mode, lo_in, lo_out = bound(lo, math.ceil, True)
    hi_mode, hi_in, hi_out = bound(hi, math.floor, False)
    return {"class_name": "FxqClip", "n_in": int(n_in),
            "bounds": {"lo_mode": lo_mode, "lo_in": lo_in, "lo_out": lo_out,
                       "hi_mode": hi_mode, "hi_in": hi_in, "hi_out": hi_out}}
