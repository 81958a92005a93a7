"""QuantizedGraph -> hls4ml ModelGraph, built from fxq's IR with every type set explicitly.

The layer dicts are the ones hls4ml's own converters produce (channels-last), handed to
`ModelGraph.from_layer_list`; hls4ml's ONNX converter is not involved. Every precision of
every layer comes from the QuantizedGraph, so nothing falls back to hls4ml's <16,6> default.
"""
from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass, field

import numpy as np

from fxq.errors import FxqError
from fxq.fixed import FixedType, quantize, to_float
from fxq.hls.extensions import clip_layer, gather_layer, register
from fxq.hls.layout import Layout, channels_last, row_major
from fxq.ir import Node, Op
from fxq.ops.registry import lookup, rule
from fxq.ops.activation import softmax_table_sizes
from fxq.quantized import QuantizedGraph
from fxq.reuse import built_reuse, unrolled
from fxq.target import DEFAULT_PART, Target

MARKER = ".fxq-hls"


class EmitError(FxqError):
    """The quantized graph holds something hls4ml cannot implement as fxq simulates it."""


@dataclass
class Emission:
    """What the emitter built: the layer dicts, the hls4ml config, and for every IR tensor
    the hls4ml layer holding it and how the tensor lies in that layer's output."""

    layers: list[dict] = field(default_factory=list)
    precisions: dict[str, dict[str, str]] = field(default_factory=dict)
    extra_config: dict[str, dict] = field(default_factory=dict)
    layer_of: dict[str, str] = field(default_factory=dict)      # IR tensor -> hls4ml layer
    layout_of: dict[str, Layout] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)
    node_of: dict[str, str] = field(default_factory=dict)       # hls4ml layer -> IR node
    # the layers that only move a tensor's elements (Transpose, Reshape, FxqGather), each
    # with the IR tensor it copies and its hls4ml class: what the estimate adds for them
    copies: dict[str, tuple[str, str]] = field(default_factory=dict)

    def order(self, tensor: str) -> np.ndarray:
        """The IR element (flat index) at each position of `tensor`'s hls4ml layer output."""
        return self.layout_of[tensor].order


CPP_KEYWORDS = frozenset("""
    alignas alignof and and_eq asm auto bitand bitor bool break case catch char char8_t
    char16_t char32_t class compl concept const consteval constexpr constinit const_cast
    continue co_await co_return co_yield decltype default delete do double dynamic_cast
    else enum explicit export extern false float for friend goto if inline int long mutable
    namespace new noexcept not not_eq nullptr operator or or_eq private protected public
    register reinterpret_cast requires return short signed sizeof static static_assert
    static_cast struct switch template this thread_local throw true try typedef typeid
    typename union unsigned using virtual void volatile wchar_t while xor xor_eq
    """.split())
# names hls4ml itself gives to variables in the generated C++ (weights w2/b2/s2, outputs
# layer2_out, configs config2, the project function): a layer named so could shadow them
HLS4ML_NAMES = re.compile(r"^(?:[wbsz]\d+|layer\d+_out|config\d+|myproject.*|nnet|std|ap_.*)$")


def _layer_name(node_name: str, taken: set[str], prefix: str = "") -> str:
    """A C++ identifier from an IR name ("/0/Conv" -> "l0_conv"), unique in the project and
    distinct from C++ keywords and the identifiers hls4ml generates. Quotes, slashes, dots,
    spaces and non-ASCII letters all become underscores."""
    base = prefix + (re.sub(r"[^0-9a-zA-Z_]+", "_", node_name).strip("_").lower() or "layer")
    if not base[0].isalpha():
        base = "l" + base
    if base in CPP_KEYWORDS or HLS4ML_NAMES.match(base):
        base = "l_" + base
    name, i = base, 1
    while name in taken:
        i += 1
        name = f"{base}_{i}"
    taken.add(name)
    return name


def _types(**named: FixedType | None) -> dict[str, str]:
    return {k: t.hls() for k, t in named.items() if t is not None}


def _weighted_sum_types(fx) -> dict[str, str]:
    """Dense and Conv precisions; without a bias, hls4ml adds zeros in the weight type."""
    w_t = fx.layer.param("weight")
    return _types(weight=w_t, bias=fx.layer.param("bias") or w_t, accum=fx.layer.accum,
                  result=fx.result)


def _with_channels(pads) -> tuple[int, ...]:
    """Spatial pads (begins, then ends) as pads over (C, *spatial), none on the channels."""
    nd = len(pads) // 2
    return (0,) + tuple(pads[:nd]) + (0,) + tuple(pads[nd:])


def _zero_padding(shape: tuple[int, ...], begin, end) -> dict:
    """hls4ml's ZeroPadding1D/2D layer dict padding a feature map of IR shape (C, *spatial)
    by `begin` and `end` per spatial axis."""
    out = [s + b + e for s, b, e in zip(shape[1:], begin, end)]
    if len(shape) == 2:
        return {"class_name": "ZeroPadding1D", "in_width": shape[1], "n_chan": shape[0],
                "out_width": out[0], "pad_left": begin[0], "pad_right": end[0]}
    return {"class_name": "ZeroPadding2D", "in_height": shape[1], "in_width": shape[2],
            "n_chan": shape[0], "out_height": out[0], "out_width": out[1],
            "pad_top": begin[0], "pad_bottom": end[0], "pad_left": begin[1],
            "pad_right": end[1]}


class _Builder:
    def __init__(self, q: QuantizedGraph, settings: Target):
        self.q, self.g, self.settings = q, q.graph, settings
        self.e = Emission()
        self.taken: set[str] = set()

    def fail(self, node: Node, why: str) -> None:
        raise EmitError(f"node {node.name!r} ({node.op.name}): {why}")

    def param(self, name: str) -> np.ndarray:
        """A parameter as the exact value of its quantized raw integers. hls4ml writes
        weights as decimal text with as many digits as the type has fractional bits, which
        would round an arbitrary float before C++ converts it; these values survive exactly."""
        return to_float(self.q.params[name], self.q.types[name])

    def shape(self, tensor: str) -> tuple[int, ...]:
        return self.g.shape(tensor)

    def layout(self, tensor: str) -> Layout:
        return self.e.layout_of[tensor]

    def add(self, node: Node, layer: dict, precision: dict[str, str], layout: Layout,
            extra: dict | None = None, *, inputs: list[str] | None = None,
            internal: str | None = None) -> str:
        """Add one hls4ml layer computing `node`'s output (laid out as `layout`); its name.
        `internal` names a layer computing an intermediate value of the node instead (one
        op emitted as several layers): it takes its inputs from `inputs` (layer names) and
        is neither traced against an IR tensor nor read by later nodes."""
        name = _layer_name(node.name + (f"_{internal}" if internal else ""), self.taken)
        sources = inputs if inputs is not None else \
            [self.e.layer_of[t] for t in self.g.activation_inputs(node)]
        layer = {"name": name, "data_format": "channels_last", "inputs": sources, **layer}
        self.e.layers.append(layer)
        self.e.precisions[name] = precision
        self.e.extra_config[name] = extra or {}
        if internal is None:
            self.e.layer_of[node.output] = name
            self.e.layout_of[node.output] = layout
            self.e.node_of[name] = node.name
        return name

    def arrange(self, node: Node, tensor: str, source: tuple[int, ...], perm: tuple[int, ...],
                shape: tuple[int, ...] | None = None) -> str:
        """The hls4ml layer holding `tensor` laid out as (source, perm) and, where given,
        as an array of `shape`: its layer if it already is, else layers appended after it
        (hls4ml's Transpose where the element order changes, its Reshape where only the
        array's shape does; copies, no arithmetic). Later readers of `tensor` share them."""
        if not self.layout(tensor).same_order(Layout(source, perm, ())):
            cur = self.layout(tensor)
            if cur.source != tuple(source):
                self._permute(node, tensor, tuple(range(len(cur.source))))
                # now in the IR's own order, which any source of its size holds unpermuted
                self.e.layout_of[tensor] = Layout(tuple(source), tuple(range(len(source))),
                                                  self.layout(tensor).shape)
            self._permute(node, tensor, tuple(perm))
        if shape is not None and self.layout(tensor).shape != tuple(shape):
            self._relayout(node, tensor, {"class_name": "Reshape", "target_shape": list(shape)},
                           self.layout(tensor).with_shape(tuple(shape)), "reshape")
        return self.e.layer_of[tensor]

    def _permute(self, node: Node, tensor: str, perm: tuple[int, ...]) -> None:
        """Transpose `tensor`'s hls4ml array to `perm` of its layout's source (reshaping it
        to the transposed source first where its shape differs), where that moves any."""
        cur = self.layout(tensor)
        want = Layout(cur.source, perm, tuple(cur.source[p] for p in perm))
        if want.same_order(cur):
            return
        if cur.shape != cur.arranged:
            self._relayout(node, tensor, {"class_name": "Reshape",
                                          "target_shape": list(cur.arranged)},
                           cur.with_shape(cur.arranged), "reshape")
        axes = [cur.perm.index(p) for p in perm]
        self._relayout(node, tensor, {"class_name": "Transpose", "perm": axes}, want,
                       "transpose")

    def _relayout(self, node: Node, tensor: str, layer: dict, layout: Layout, what: str):
        name = self.add(node, layer, _types(result=self.q.types[tensor]), layout,
                        inputs=[self.e.layer_of[tensor]], internal=f"{what}_{tensor}")
        self.e.copies[name] = (tensor, layer["class_name"])
        self.e.layer_of[tensor] = name
        self.e.layout_of[tensor] = layout

    def as_channels_last(self, node: Node, tensor: str) -> str:
        """`tensor` (a feature map) in hls4ml's channels-last layout: its layer."""
        want = channels_last(self.shape(tensor))
        return self.arrange(node, tensor, want.source, want.perm, want.shape)

    def as_vector(self, node: Node, tensor: str) -> str:
        """`tensor` (IR rank 1) as a vector in hls4ml, in any element order: its layer."""
        cur = self.layout(tensor)
        return self.arrange(node, tensor, cur.source, cur.perm, (int(cur.order.size),))

    @staticmethod
    def precisions(**named: FixedType | None) -> dict[str, str]:
        """A layer's "Precision" config: hls4ml type names by key, None entries dropped."""
        return _types(**named)

    @staticmethod
    def hls_type(t: FixedType):
        """`t` as an hls4ml precision object (for layer attributes that take one)."""
        from hls4ml.backends.fpga.fpga_backend import FPGABackend
        return FPGABackend.convert_precision_string(t.hls())

    def build(self) -> Emission:
        for name in self.g.inputs:
            # hls4ml names the top function's input argument after this layer
            layer = _layer_name(name, self.taken, prefix="input_")
            self.e.layers.append({"name": layer, "class_name": "InputLayer",
                                  "input_shape": list(channels_last(self.shape(name)).shape)})
            self.e.precisions[layer] = _types(result=self.q.inputs[name])
            self.e.extra_config[layer] = {}
            self.e.layer_of[name] = layer
            self.e.layout_of[name] = channels_last(self.shape(name))
        for node in self.g.nodes:
            lookup("hls", node.op, node.name)(self, node, self.q.fixed_node(node))
        self.e.outputs = [self.e.layer_of[t] for t in self.g.outputs]
        return self.e

    # -- per op ----------------------------------------------------------------------

    @rule("hls", Op.DENSE)
    def _dense(self, node, fx):
        x = self.g.activation_inputs(node)[0]
        if len(self.shape(x)) != 1:
            self.fail(node, f"Dense over a tensor of shape {self.shape(x)}; hls4ml's Dense "
                      "takes vectors")
        self.as_vector(node, x)
        w = self.param(node.inputs[1])[self.e.order(x)]          # rows in hls4ml's order
        n_out = w.shape[1]
        b = self.param(node.inputs[2]) if len(node.inputs) > 2 else np.zeros(n_out)
        layer = {"class_name": "Dense", "n_in": w.shape[0], "n_out": n_out,
                 "weight_data": w, "bias_data": b}
        self.add(node, layer, _weighted_sum_types(fx), row_major((n_out,)),
                 self._dense_strategy(node, w))

    def _dense_strategy(self, node: Node, w: np.ndarray) -> dict:
        """{"Strategy": "Resource_unrolled"} for a Dense layer whose weights (in hls4ml's
        row order) leave a multiplier of the resource strategy without a nonzero weight
        (fxq.reuse.unrolled), else nothing."""
        s = self.settings
        built = built_reuse(self.q, node, s.strategy, s.reuse_for(node.name))
        return {"Strategy": "Resource_unrolled"} if unrolled(w, s.strategy, built) else {}

    @rule("hls", Op.CONV)
    def _conv(self, node, fx):
        x = self.g.activation_inputs(node)[0]
        self.as_channels_last(node, x)
        w = self.param(node.inputs[1])
        a = node.attrs
        c, spatial = self.shape(x)[0], self.shape(x)[1:]
        o, nd = w.shape[0], w.ndim - 2
        out_shape = self.shape(node.output)
        b = self.param(node.inputs[2]) if len(node.inputs) > 2 else np.zeros(o)
        if a["groups"] == 1:
            kind = "Conv"
            kernel = np.transpose(w, tuple(range(2, 2 + nd)) + (1, 0))     # *k, C, O
            data = {"weight_data": kernel}
        elif a["groups"] == c and o == c:
            kind = "DepthwiseConv"
            kernel = np.transpose(w, tuple(range(2, 2 + nd)) + (0, 1))     # *k, C, 1
            data = {"depthwise_data": kernel, "weight_data": kernel, "depth_multiplier": 1}
        else:
            # hls4ml has no grouped Conv: one Conv over all channels whose weights are zero
            # between groups. The zero products add exact zeros to the same sums, so the
            # accumulator and result types fxq chose for the groups hold (the latency
            # strategy's constant zero products synthesize to nothing)
            groups = a["groups"]
            dense = np.zeros((o, c) + w.shape[2:])
            og, cg = o // groups, c // groups
            for i in range(groups):
                dense[i * og:(i + 1) * og, i * cg:(i + 1) * cg] = w[i * og:(i + 1) * og]
            kind = "Conv"
            data = {"weight_data": np.transpose(dense, tuple(range(2, 2 + nd)) + (1, 0))}
        layer = {"class_name": f"{kind}{nd}D", "n_chan": c, "n_filt": o, "bias_data": b,
                 **data, **self._window_attrs(nd, spatial, out_shape[1:], w.shape[2:],
                                              a["strides"], a["pads"], prefix="filt")}
        self.add(node, layer, _weighted_sum_types(fx), channels_last(out_shape))

    @staticmethod
    def _window_attrs(nd, spatial, out, kernel, strides, pads, prefix):
        if nd == 1:
            return {"in_width": spatial[0], "out_width": out[0], f"{prefix}_width": kernel[0],
                    "stride_width": strides[0], "pad_left": pads[0], "pad_right": pads[1]}
        if nd == 2:
            return {"in_height": spatial[0], "in_width": spatial[1],
                    "out_height": out[0], "out_width": out[1],
                    f"{prefix}_height": kernel[0], f"{prefix}_width": kernel[1],
                    "stride_height": strides[0], "stride_width": strides[1],
                    "pad_top": pads[0], "pad_left": pads[1],
                    "pad_bottom": pads[2], "pad_right": pads[3]}
        raise EmitError(f"{nd}-D windows: hls4ml implements 1-D and 2-D")

    def _pool(self, node, fx, kind):
        x = self.g.activation_inputs(node)[0]
        self.as_channels_last(node, x)
        a = node.attrs
        nd = len(a["kernel"])
        shape, out_shape = self.shape(x), self.shape(node.output)
        pads, sources = a["pads"], None
        if self.settings.io_type == "io_stream" and tuple(a["kernel"]) != tuple(a["strides"]):
            self.fail(node, f"pooling windows {list(a['kernel'])} with strides "
                      f"{list(a['strides'])} in io_stream: hls4ml's streaming pooling takes "
                      "non-overlapping windows (strides equal to the window) only")
        if any(pads) and self.settings.io_type == "io_stream":
            sources = [self._stream_pool_padding(node, fx, kind, x)]
            shape, pads = self._padded_shape(shape, pads), (0,) * len(pads)
        elif any(pads) and kind == "Max" and not fx.inputs[0].signed:
            # hls4ml's io_parallel pooling pads with the sign bit set (a large value for
            # an unsigned type); fxq pads with the least value: padded before, by FxqGather
            sources = [self._padded(node, x, _with_channels(pads), fx.inputs[0].min)[0]]
            shape, pads = self._padded_shape(shape, pads), (0,) * len(pads)
        attrs = self._window_attrs(nd, shape[1:], out_shape[1:], a["kernel"], a["strides"],
                                   pads, prefix="pool")
        if nd == 1:   # Pooling1D names its widths n_in / n_out
            attrs["n_in"], attrs["n_out"] = attrs.pop("in_width"), attrs.pop("out_width")
        layer = {"class_name": f"{kind}Pooling{nd}D", "n_filt": shape[0],
                 "count_pad": bool(a.get("count_include_pad", False)), **attrs}
        self.add(node, layer, _types(accum=fx.layer.accum or fx.inputs[0], result=fx.result),
                 channels_last(out_shape), inputs=sources)

    def _stream_pool_padding(self, node, fx, kind, x) -> str:
        """hls4ml's streaming pooling ignores padding: an internal layer padding its input
        before it (its name): ZeroPadding where zeros are what fxq pads with (an average
        counting the padding, a max of an unsigned type), else FxqGather with the signed
        type's least value."""
        pads, x_t = node.attrs["pads"], fx.inputs[0]
        if kind == "Max" and x_t.signed:
            # fxq pads a max with the type's least value: FxqGather pads with it
            return self._padded(node, x, _with_channels(pads), x_t.min)[0]
        if kind == "Average" and not node.attrs.get("count_include_pad", False):
            self.fail(node, "padded average pooling that does not count the padding, in "
                      "io_stream: hls4ml's streaming pooling ignores padding")
        shape = self.shape(x)
        nd = len(shape) - 1
        return self.add(node, _zero_padding(shape, pads[:nd], pads[nd:]), _types(result=x_t),
                        channels_last(self._padded_shape(shape, pads)),
                        inputs=[self.e.layer_of[x]], internal="pad")

    @staticmethod
    def _padded_shape(shape, pads):
        nd = len(shape) - 1
        return (shape[0],) + tuple(shape[1 + i] + pads[i] + pads[i + nd] for i in range(nd))

    @rule("hls", Op.MAX_POOL)
    def _max_pool(self, node, fx):
        self._pool(node, fx, "Max")

    @rule("hls", Op.AVG_POOL)
    def _avg_pool(self, node, fx):
        self._pool(node, fx, "Average")

    def _global_pool(self, node, fx, kind):
        x = self.g.activation_inputs(node)[0]
        self.as_channels_last(node, x)
        shape = self.shape(x)
        nd = len(shape) - 1
        attrs = {"n_in": shape[1]} if nd == 1 else {"in_height": shape[1], "in_width": shape[2]}
        if nd > 2:
            self.fail(node, f"{nd}-D global pooling: hls4ml implements 1-D and 2-D")
        layer = {"class_name": f"Global{kind}Pooling{nd}D", "n_filt": shape[0], **attrs}
        self.add(node, layer, _types(accum=fx.layer.accum or fx.inputs[0], result=fx.result),
                 row_major((shape[0],)))

    @rule("hls", Op.GLOBAL_AVG_POOL)
    def _global_avg_pool(self, node, fx):
        self._global_pool(node, fx, "Average")

    @rule("hls", Op.GLOBAL_MAX_POOL)
    def _global_max_pool(self, node, fx):
        self._global_pool(node, fx, "Max")

    def _activation(self, node, fx, name, **extra_types):
        x = self.g.activation_inputs(node)[0]
        layer = {"class_name": "Activation", "activation": name,
                 "n_in": int(np.prod(self.shape(x)))}
        extra = {}
        if "table" in extra_types:
            # hls4ml takes table types from the layer config's "*_t" keys, not "Precision"
            extra = {"TableSize": fx.layer.table_size, "table_t": extra_types["table"].hls()}
        self.add(node, layer, _types(result=fx.result, **extra_types), self.layout(x), extra)

    @rule("hls", Op.RELU)
    def _relu(self, node, fx):
        self._activation(node, fx, "relu")

    @rule("hls", Op.SIGMOID)
    def _sigmoid(self, node, fx):
        self._activation(node, fx, "sigmoid", table=fx.layer.table)

    @rule("hls", Op.TANH)
    def _tanh(self, node, fx):
        self._activation(node, fx, "tanh", table=fx.layer.table)

    @rule("hls", Op.CLIP)
    def _clip(self, node, fx):
        """hls4ml's ReLU1/ReLU6 where it has them (io_parallel), else fxq's own FxqClip."""
        lo, hi = node.attrs["lo"], node.attrs["hi"]
        if lo == 0 and hi in (1, 6) and self.settings.io_type == "io_parallel":
            return self._activation(node, fx, f"relu{int(hi)}")
        x = self.g.activation_inputs(node)[0]
        if fx.inputs[0].width > 53:
            self.fail(node, f"Clip of a {fx.inputs[0].width}-bit input: fxq writes the bounds "
                      "as doubles, exact up to 53 bits")
        layer = clip_layer(lo, hi, fx.inputs[0], fx.result, int(np.prod(self.shape(x))))
        self.add(node, layer, _types(result=fx.result), self.layout(x))

    @rule("hls", Op.LEAKY_RELU)
    def _leaky_relu(self, node, fx):
        x = self.g.activation_inputs(node)[0]
        alpha_t = fx.layer.param("alpha")
        layer = {"class_name": "LeakyReLU", "activation": "leaky_relu",
                 "activ_param": float(to_float(quantize(node.attrs["alpha"], alpha_t), alpha_t)),
                 "n_in": int(np.prod(self.shape(x)))}
        self.add(node, layer, _types(result=fx.result, param=alpha_t), self.layout(x))

    @rule("hls", Op.SOFTMAX)
    def _softmax(self, node, fx):
        x = self.g.activation_inputs(node)[0]
        if len(self.shape(x)) != 1 or tuple(node.attrs["axes"]) != (1,):
            self.fail(node, f"softmax over axes {node.attrs['axes']} of a tensor of shape "
                      f"{self.shape(x)}; fxq emits softmax over a vector")
        layer_t = fx.layer
        exp_size, inv_size, inp_norm = softmax_table_sizes(fx.inputs[0], layer_t)
        # sizes given as attributes: hls4ml's fix_softmax_table_size pass then keeps them
        layer = {"class_name": "Softmax", "activation": "softmax", "n_in": self.shape(x)[0],
                 "implementation": "stable", "axis": -1, "exp_table_size": exp_size,
                 "inv_table_size": inv_size}
        self.add(node, layer, _types(result=fx.result, exp_table=layer_t.table,
                                     inv_table=layer_t.inv_table, accum=layer_t.accum,
                                     inv_inp=layer_t.inv_inp),
                 self.layout(x),
                 {"TableSize": inv_size, "Implementation": "stable",
                  # hls4ml reads these from the layer config's "*_t" keys only
                  "exp_table_t": layer_t.table.hls(), "inv_table_t": layer_t.inv_table.hls(),
                  "inv_inp_t": layer_t.inv_inp.hls(), "accum_t": layer_t.accum.hls(),
                  "inp_norm_t": inp_norm.hls()})

    def _merge(self, node, fx, op):
        """hls4ml's Merge of two maps in one layout: to the channels-last input's where there
        is one (what a feature map's readers take), else the first full-shape input's. An
        input broadcast over the other's shape is first gathered to the full shape (FxqGather:
        wires in io_parallel)."""
        ins = self.g.activation_inputs(node)
        if len(ins) == 1:
            return self._constant_operand(node, fx, op)
        out = self.shape(node.output)
        full = [t for t in ins if self.shape(t) == out]
        cl = channels_last(out)
        keep = next((t for t in full if self.layout(t).same_order(cl)), full[0] if full else None)
        want = self.layout(keep) if keep is not None else cl
        sources = [self.arrange(node, t, want.source, want.perm, want.shape) if t in full
                   else self._broadcast(node, t, want) for t in ins]
        self.add(node, {"class_name": "Merge", "op": op}, _types(result=fx.result), want,
                 inputs=sources)

    def _broadcast(self, node, tensor, want: Layout) -> str:
        """An internal layer holding `tensor` broadcast (numpy's rule) to `want`'s source
        shape, laid out as `want`: its name."""
        shape = self.shape(tensor)
        size = int(np.prod(shape, dtype=np.int64))
        spread = np.broadcast_to(np.arange(size).reshape(shape), want.source)
        return self._gather(node, tensor, spread, want, "broadcast")

    def _gather(self, node, tensor, where: np.ndarray, want: Layout, what: str,
                fill: float = 0.0) -> str:
        """An internal FxqGather layer (its name) whose output, laid out as `want`, holds at
        each element of `want.source` the element `where` names of `tensor` (IR flat
        index), or `fill` where `where` is negative; in `tensor`'s type."""
        position = np.argsort(self.e.order(tensor))       # IR element -> hls4ml position
        source = np.asarray(where).reshape(-1)[want.order]
        index = np.where(source < 0, -1, position[np.maximum(source, 0)])
        size = int(np.prod(self.shape(tensor), dtype=np.int64))
        name = self.add(node, gather_layer(index, size, want.shape, fill),
                        _types(result=self.q.types[tensor]), want,
                        inputs=[self.e.layer_of[tensor]], internal=f"{what}_{tensor}")
        self.e.copies[name] = (tensor, "FxqGather")
        return name

    def _padded(self, node, tensor, pads, value: float) -> tuple[str, Layout]:
        """`tensor` padded by `pads` (ONNX order over its IR axes: begins, then ends) with
        `value` (held exactly by its type), channels-last: an FxqGather (its name, layout)."""
        shape = self.shape(tensor)
        nd = len(shape)
        where = np.pad(np.arange(int(np.prod(shape))).reshape(shape),
                       [(pads[i], pads[i + nd]) for i in range(nd)], constant_values=-1)
        want = channels_last(where.shape)
        return self._gather(node, tensor, where, want, "pad", value), want

    def _constant_operand(self, node, fx, op):
        """x + c or x * c with a constant c of any shape that broadcasts to x: hls4ml's
        BatchNormalization with one scale and bias per element (n_filt -1), which computes
        the exact product x * scale plus bias and assigns it to the result type, as fxq's
        ADD and MUL kernels do (scale 1 for an Add, bias 0 for a Mul)."""
        x = self.g.activation_inputs(node)[0]
        name = next(n for n in node.inputs if n in self.q.params)
        c_t = fx.layer.param("operand")
        shape = self.shape(x)
        c = np.broadcast_to(self.param(name), (1,) + shape).reshape(-1)[self.e.order(x)]
        one = FixedType(2, 0, signed=False)
        if op == "add":
            scale, bias, types = np.ones_like(c), c, _types(scale=one, bias=c_t)
        else:
            scale, bias, types = c, np.zeros_like(c), _types(scale=c_t, bias=c_t)
        layer = {"class_name": "BatchNormalization", "n_in": int(c.size), "n_filt": -1,
                 "scale_data": scale, "bias_data": bias}
        self.add(node, layer, {**types, **_types(result=fx.result)}, self.layout(x))

    @rule("hls", Op.ADD)
    def _add(self, node, fx):
        self._merge(node, fx, "add")

    @rule("hls", Op.SUB)
    def _sub(self, node, fx):
        self._merge(node, fx, "subtract")

    @rule("hls", Op.MUL)
    def _mul(self, node, fx):
        self._merge(node, fx, "multiply")

    @rule("hls", Op.CONCAT)
    def _concat(self, node, fx):
        ins = self.g.activation_inputs(node)
        if len(ins) < 2:
            self.fail(node, "concatenation of one tensor (fxq keeps it as a node)")
        rank = len(self.shape(ins[0]))
        axis = node.attrs["axis"]
        for t in ins:       # vectors joined in the IR's order, feature maps channels-last
            self.as_channels_last(node, t)
        cl_axis = axis if rank == 1 else (rank if axis == 1 else axis - 1)
        order = channels_last(self.shape(node.output))
        layer = {"class_name": "Concatenate", "op": f"concatenate{rank}d", "axis": cl_axis}
        # hls4ml joins two tensors: more are joined left to right, each partial result in
        # the result type (a cast to it is idempotent, so the values are the same)
        joined = self.e.layer_of[ins[0]]
        for i, t in enumerate(ins[1:-1], start=1):
            joined = self.add(node, dict(layer), _types(result=fx.result), order,
                              inputs=[joined, self.e.layer_of[t]], internal=f"join{i}")
        self.add(node, layer, _types(result=fx.result), order,
                 inputs=[joined, self.e.layer_of[ins[-1]]])

    @rule("hls", Op.FLATTEN)
    def _flatten(self, node, fx):
        x = self.g.activation_inputs(node)[0]
        size = int(np.prod(self.shape(x)))
        self.add(node, {"class_name": "Reshape", "target_shape": [size]},
                 _types(result=fx.result), self.layout(x).with_shape((size,)))

    @rule("hls", Op.RESHAPE)
    def _reshape(self, node, fx):
        """To a vector: a flatten (the element order kept). To any other shape: the IR's
        element order first (a transpose where the layout differs), then hls4ml's Reshape,
        whose output is the new shape in the IR's order."""
        out = self.shape(node.output)
        if len(out) == 1:
            return self._flatten(node, fx)
        x = self.g.activation_inputs(node)[0]
        shape = self.shape(x)
        self.arrange(node, x, shape, tuple(range(len(shape))))
        self.add(node, {"class_name": "Reshape", "target_shape": list(out)},
                 _types(result=fx.result), row_major(out))

    @rule("hls", Op.TRANSPOSE)
    def _transpose(self, node, fx):
        """No layer: the output is the input's hls4ml array, read in another order (a
        transpose is synthesized only where a reader needs another layout)."""
        x = self.g.activation_inputs(node)[0]
        shape = self.shape(x)
        if self.layout(x).source != shape:
            self.arrange(node, x, shape, tuple(range(len(shape))))
        cur = self.layout(x)
        inverse = np.argsort([p - 1 for p in node.attrs["perm"][1:]])
        self.e.layer_of[node.output] = self.e.layer_of[x]
        self.e.layout_of[node.output] = Layout(self.shape(node.output),
                                               tuple(int(inverse[p]) for p in cur.perm),
                                               cur.shape)

    @rule("hls", Op.IDENTITY)
    def _identity(self, node, fx):
        x = self.g.activation_inputs(node)[0]
        self.e.layer_of[node.output] = self.e.layer_of[x]
        self.e.layout_of[node.output] = self.layout(x)

    @rule("hls", Op.PAD)
    def _pad(self, node, fx):
        """hls4ml's ZeroPadding1D/2D: zeros around the spatial axes of a feature map."""
        x = self.g.activation_inputs(node)[0]
        pads, shape = node.attrs["pads"], self.shape(x)
        nd = len(shape)
        if nd > 3:
            self.fail(node, f"padding of a tensor of shape {shape}; fxq pads vectors and 1D "
                      "and 2D feature maps")
        value = quantize(node.attrs["value"], fx.result)
        if nd == 1 or pads[0] or pads[nd] or value != 0:
            # another value, or the channel axis: fxq's FxqGather pads with any constant
            name, layout = self._padded(node, x, pads, float(to_float(value, fx.result)))
            self.e.layer_of[node.output], self.e.layout_of[node.output] = name, layout
            self.e.node_of[name] = node.name
            return
        self.as_channels_last(node, x)
        layer = _zero_padding(shape, pads[1:nd], pads[nd + 1:])
        self.add(node, layer, _types(result=fx.result), channels_last(self.shape(node.output)))

    @rule("hls", Op.BATCH_NORM)
    def _batch_norm(self, node, fx):
        x = self.g.activation_inputs(node)[0]
        shape = self.shape(x)
        scale, shift = (self.param(n) for n in node.inputs[1:])
        if len(shape) == 1:
            order = self.e.order(x)
            scale, shift, n_filt = scale[order], shift[order], -1
        else:
            self.as_channels_last(node, x)
            n_filt = shape[0]
        layer = {"class_name": "BatchNormalization", "n_in": int(np.prod(shape)),
                 "n_filt": n_filt, "scale_data": scale, "bias_data": shift}
        self.add(node, layer, _types(scale=fx.layer.param("scale"),
                                     bias=fx.layer.param("shift"),
                                     result=fx.result), self.layout(x))


def plan(q: QuantizedGraph, settings: Target) -> Emission:
    """The layer dicts and layout for `q`, without touching hls4ml or the disk."""
    if settings.io_type != q.io_type:
        q = q.with_io_type(str(settings.io_type))
    return _Builder(q, settings).build()


def hls_config(e: Emission, settings: Target, out_dir: str, *, trace: bool) -> dict:
    layer_config = {}
    for name, precision in e.precisions.items():
        layer_config[name] = {"Precision": precision, "Trace": trace, **e.extra_config[name]}
        node = e.node_of.get(name)
        if node is not None and node in settings.layer_reuse:
            layer_config[name]["ReuseFactor"] = settings.layer_reuse[node]
    return {
        "Backend": settings.backend.value, "OutputDir": os.fspath(out_dir),
        "ProjectName": settings.project, "Part": settings.part,
        "ClockPeriod": settings.clock_ns, "IOType": settings.io_type.value, "TraceOutput": trace,
        "HLSConfig": {"Model": {"Precision": "ap_fixed<16,6>", "ReuseFactor": settings.reuse_factor,
                                "Strategy": settings.strategy.value.capitalize()},
                      "LayerName": layer_config},
    }


def prepare_dir(out_dir: str, overwrite: bool) -> None:
    """Create `out_dir`, refusing a non-empty directory fxq did not write unless asked."""
    if os.path.exists(out_dir):
        if not os.path.isdir(out_dir):
            raise EmitError(f"{out_dir}: exists and is not a directory")
        if os.listdir(out_dir) and not os.path.exists(os.path.join(out_dir, MARKER)) \
                and not overwrite:
            raise EmitError(f"{out_dir}: directory is not empty and was not written by fxq; "
                            "choose another or pass overwrite=True")
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, MARKER), "w") as marker:
        marker.write("written by fxq.emit_hls\n")


def build_model_graph(q: QuantizedGraph, out_dir: str, settings: Target, *,
                      trace: bool = True):
    """The hls4ml ModelGraph of `q` (not yet written) and the Emission behind it."""
    from hls4ml.model.graph import ModelGraph

    register()
    e = plan(q, settings)
    config = hls_config(e, settings, out_dir, trace=trace)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = ModelGraph.from_layer_list(config, e.layers,
                                           inputs=[e.layer_of[n] for n in q.graph.inputs],
                                           outputs=e.outputs)
    return model, e


def emit_hls(q: QuantizedGraph, out_dir, *, backend: str = "Vitis", io_type: str | None = None,
             strategy: str = "latency", reuse_factor: int = 1, part: str = DEFAULT_PART,
             clock_ns: float = 5.0, overwrite: bool = False, target: Target | None = None):
    """Write the hls4ml project of `q` to `out_dir` and return its ModelGraph.

    `target` gives every hardware setting at once; without it, the keyword settings make
    one (io_type defaults to the one `q` was simulated for). Refuses (EmitError) what hls4ml
    cannot implement the way fxq simulates it, naming the node; refuses a non-empty
    `out_dir` that fxq did not write, unless overwrite=True.
    """
    settings = target or Target(backend=backend, io_type=io_type or q.io_type,
                                strategy=strategy, reuse_factor=reuse_factor, part=part,
                                clock_ns=clock_ns)
    out_dir = os.fspath(out_dir)
    model, _ = build_model_graph(q, out_dir, settings)
    prepare_dir(out_dir, overwrite)
    model.write()
    return model
