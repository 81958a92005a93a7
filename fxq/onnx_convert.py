"""ONNX node -> IR node converters, one per supported ONNX op type.

A converter reads one ONNX node through a `Context` (constants, shapes, attributes) and
emits IR nodes with `ctx.emit`. It raises `UnsupportedModelError` naming the node, the
attribute and its value for every case it does not handle, rather than guessing.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Callable

import numpy as np
import onnx
from onnx import helper

from fxq.errors import UnsupportedModelError
from fxq.op import Op
from fxq.ops.registry import CONVERTERS, converter  # noqa: F401  (re-exported)

if TYPE_CHECKING:
    from fxq.onnx_import import Context

Converter = Callable[["Context", onnx.NodeProto], None]


def attrs_of(node: onnx.NodeProto) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def text_attr(attrs: dict, name: str, default: str) -> str:
    """A string attribute (onnx gives bytes)."""
    value = attrs.get(name, default)
    return value.decode() if isinstance(value, bytes) else value


def refuse(ctx: "Context", node: onnx.NodeProto, why: str) -> UnsupportedModelError:
    return UnsupportedModelError(f"{ctx.path}: {node.op_type} node {ctx.name_of(node)!r}: {why}")


def present(names) -> list[str]:
    """Inputs or outputs that are given (ONNX marks omitted optional ones with "")."""
    return [n for n in names if n]


# -- windows: conv and pooling ---------------------------------------------------------

def _window_attrs(ctx, node, attrs: dict, kernel: tuple[int, ...]) -> tuple[tuple, tuple]:
    """Strides and explicit (begin..., end...) pads, resolving auto_pad; refuses dilation."""
    nd = len(kernel)
    spatial = ctx.shape(node.input[0])[1:]
    if any(d != 1 for d in attrs.get("dilations", [1] * nd)):
        raise refuse(ctx, node, f"dilations {list(attrs['dilations'])} are not supported (only 1)")
    strides = tuple(int(s) for s in attrs.get("strides", [1] * nd))
    auto_pad = text_attr(attrs, "auto_pad", "NOTSET")
    if auto_pad in ("NOTSET", ""):
        pads = tuple(int(p) for p in attrs.get("pads", [0] * 2 * nd))
    elif auto_pad == "VALID":
        pads = (0,) * 2 * nd
    elif auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        begin, end = [], []
        for size, k, s in zip(spatial, kernel, strides):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            small, large = total // 2, total - total // 2
            begin.append(small if auto_pad == "SAME_UPPER" else large)
            end.append(large if auto_pad == "SAME_UPPER" else small)
        pads = tuple(begin + end)
    else:
        raise refuse(ctx, node, f"auto_pad {auto_pad!r} is not supported")
    if any(p < 0 for p in pads):
        raise refuse(ctx, node, f"negative pads {list(pads)} are not supported")
    for i, (size, k) in enumerate(zip(spatial, kernel)):
        if size + pads[i] + pads[i + nd] < k:
            raise refuse(ctx, node, f"kernel {list(kernel)} is larger than the padded input")
    return strides, pads


def _spatial_rank(ctx, node) -> int:
    rank = len(ctx.shape(node.input[0])) - 1
    if rank not in (1, 2):
        raise refuse(ctx, node, f"input {node.input[0]!r} has shape "
                     f"{ctx.describe(node.input[0])}; only 1D (N,C,L) and 2D (N,C,H,W) "
                     "are supported")
    return rank


@converter("Conv")
def convert_conv(ctx, node):
    attrs = attrs_of(node)
    nd = _spatial_rank(ctx, node)
    w = ctx.require_const(node, 1, "weight")
    channels = ctx.shape(node.input[0])[0]
    groups = int(attrs.get("group", 1))
    if w.ndim != nd + 2:
        raise refuse(ctx, node, f"weight shape {w.shape} does not fit a {nd}D convolution")
    kernel = tuple(int(k) for k in attrs.get("kernel_shape", w.shape[2:]))
    if kernel != w.shape[2:]:
        raise refuse(ctx, node, f"kernel_shape {list(kernel)} disagrees with weight {w.shape}")
    if groups < 1 or w.shape[1] * groups != channels or w.shape[0] % groups:
        raise refuse(ctx, node, f"weight {w.shape} in {groups} groups does not fit "
                     f"{channels} input channels")
    strides, pads = _window_attrs(ctx, node, attrs, kernel)
    inputs = [node.input[0], ctx.param(node, w, "weight")]
    if len(present(node.input)) == 3:
        inputs.append(ctx.param(node, ctx.require_const(node, 2, "bias"), "bias"))
    ctx.emit(node, Op.CONV, inputs, strides=strides, pads=pads, groups=groups)


def _pool_attrs(ctx, node, attrs):
    nd = _spatial_rank(ctx, node)
    kernel = tuple(int(k) for k in attrs["kernel_shape"])
    if len(kernel) != nd:
        raise refuse(ctx, node, f"kernel_shape {list(kernel)} does not fit a {nd}D input")
    if attrs.get("storage_order", 0):
        raise refuse(ctx, node, "storage_order=1 is not supported")
    if len(present(node.output)) > 1:
        raise refuse(ctx, node, "the Indices output is not supported")
    strides, pads = _window_attrs(ctx, node, attrs, kernel)
    if attrs.get("ceil_mode", 0):
        # ceil_mode=1 is ceil_mode=0 where the windows tile the padded input exactly (no
        # partial window at the end); elsewhere hls4ml's pooling has no partial windows
        spatial = ctx.shape(node.input[0])[1:]
        spans = [size + pads[i] + pads[i + nd] - k
                 for i, (size, k) in enumerate(zip(spatial, kernel))]
        if any(span % s for span, s in zip(spans, strides)):
            raise refuse(ctx, node, "ceil_mode=1 with a partial window at the end (input "
                         f"{ctx.describe(node.input[0])}, kernel {list(kernel)}, strides "
                         f"{list(strides)}) is not supported")
    return dict(kernel=kernel, strides=strides, pads=pads)


@converter("MaxPool")
def convert_max_pool(ctx, node):
    ctx.emit(node, Op.MAX_POOL, [node.input[0]], **_pool_attrs(ctx, node, attrs_of(node)))


@converter("AveragePool")
def convert_avg_pool(ctx, node):
    attrs = attrs_of(node)
    ctx.emit(node, Op.AVG_POOL, [node.input[0]], **_pool_attrs(ctx, node, attrs),
             count_include_pad=bool(attrs.get("count_include_pad", 0)))


@converter("GlobalAveragePool", "GlobalMaxPool")
def convert_global_pool(ctx, node):
    if len(ctx.shape(node.input[0])) < 2:
        raise refuse(ctx, node, f"input shape {ctx.describe(node.input[0])} has no spatial axes")
    op = Op.GLOBAL_AVG_POOL if node.op_type == "GlobalAveragePool" else Op.GLOBAL_MAX_POOL
    ctx.emit(node, op, [node.input[0]])


@converter("ReduceMean", "ReduceMax", "ReduceSum")
def convert_spatial_reduce(ctx, node):
    """A mean or max over every spatial axis is global pooling (what PyTorch's dynamo
    exporter writes for AdaptiveAvgPool2d(1) and x.mean((2, 3))); a sum over them is a
    depthwise convolution whose kernel, all ones, covers the map (hls4ml has no sum
    pooling; ones are exact in any weight type, the products and sums exact in the
    accumulator). Without keepdims the reduced (C, 1, ...) map is flattened to (C,). Any
    other axes are refused."""
    attrs = attrs_of(node)
    rank = ctx.batched_rank(node.input[0])
    if len(present(node.input)) > 1:                    # opset 18: axes as an input
        axes = [int(a) for a in ctx.require_const(node, 1, "axes").reshape(-1)]
    else:
        axes = [int(a) for a in attrs.get("axes", [])]
    if not axes and attrs.get("noop_with_empty_axes", 0):
        raise refuse(ctx, node, "noop_with_empty_axes=1 without axes is not supported")
    axes = sorted({a + rank if a < 0 else a for a in axes}) or list(range(rank))
    spatial = list(range(2, rank))
    if axes != spatial or not spatial:
        raise refuse(ctx, node, f"axes {axes} of the input {ctx.describe(node.input[0])}; "
                     f"only a reduction over every spatial axis ({spatial}) is supported, as"
                     " global pooling")
    inputs, reduce_attrs = [node.input[0]], {}
    if node.op_type == "ReduceSum":
        c, *size = ctx.shape(node.input[0])
        op = Op.CONV
        inputs.append(ctx.param(node, np.ones((c, 1) + tuple(size), np.float32), "weight"))
        reduce_attrs = dict(strides=(1,) * len(size), pads=(0,) * (2 * len(size)), groups=c)
    else:
        op = Op.GLOBAL_AVG_POOL if node.op_type == "ReduceMean" else Op.GLOBAL_MAX_POOL
    if attrs.get("keepdims", 1):
        ctx.emit(node, op, inputs, **reduce_attrs)
        return
    pooled = ctx.fresh(f"{node.output[0]}/pooled")
    ctx.emit_part(node, op, inputs, pooled, ctx.fresh(f"{ctx.name_of(node)}/pool"),
                  **reduce_attrs)
    ctx.emit(node, Op.FLATTEN, [pooled])


# -- dense -----------------------------------------------------------------------------

@converter("Gemm")
def convert_gemm(ctx, node):
    attrs = attrs_of(node)
    if len(ctx.shape(node.input[0])) != 1:
        raise refuse(ctx, node, f"input {ctx.describe(node.input[0])} is not (N, features)")
    if attrs.get("transA", 0):
        raise refuse(ctx, node, "transA=1 would mix the batch axis into the features")
    b = ctx.require_const(node, 1, "weight (B)")
    w = float(attrs.get("alpha", 1.0)) * (b.T if attrs.get("transB", 0) else b)
    inputs = [node.input[0], ctx.param(node, w, "weight")]
    if len(present(node.input)) == 3:
        c = float(attrs.get("beta", 1.0)) * ctx.require_const(node, 2, "bias (C)")
        if c.size not in (1, w.shape[1]) or (c.ndim == 2 and c.shape[0] != 1) or c.ndim > 2:
            raise refuse(ctx, node, f"bias C of shape {c.shape} varies over the batch")
        inputs.append(ctx.param(node, np.broadcast_to(c.reshape(-1), (w.shape[1],)).copy(),
                                "bias"))
    ctx.emit(node, Op.DENSE, inputs)


@converter("MatMul")
def convert_matmul(ctx, node):
    if ctx.is_const(node.input[0]):
        raise refuse(ctx, node, "a constant first operand is not supported")
    w = ctx.require_const(node, 1, "second operand")
    if w.ndim != 2:
        raise refuse(ctx, node, f"second operand of shape {w.shape} is not a 2-D matrix")
    ctx.emit(node, Op.DENSE, [node.input[0], ctx.param(node, w, "weight")])


# -- element-wise ----------------------------------------------------------------------

def _binary_inputs(ctx, node) -> list[str]:
    """Operands of Add/Mul/Sub/Div, refusing broadcasts that would touch the batch axis."""
    names = list(node.input[:2])
    ranks = {ctx.batched_rank(n) for n in names if not ctx.is_const(n)}
    if len(ranks) > 1:
        raise refuse(ctx, node, f"operands {ctx.describe(names[0])} and "
                     f"{ctx.describe(names[1])} have different ranks")
    rank = ranks.pop()
    for name in names:
        value = ctx.consts.get(name)
        if value is not None and (value.ndim > rank or (value.ndim == rank and value.shape[0] != 1)):
            raise refuse(ctx, node, f"constant {name!r} of shape {value.shape} "
                         "broadcasts over the batch axis")
    return names


def _per_sample(ctx, node, value: np.ndarray) -> np.ndarray:
    """A broadcast constant as the IR holds it, without the batch axis: one of the batched
    rank (its leading axis 1, _binary_inputs checked) loses that axis; a lower rank
    broadcasts from the right as it is."""
    rank = ctx.batched_rank(node.input[0] if not ctx.is_const(node.input[0]) else node.input[1])
    return value[0] if value.ndim == rank else value


@converter("Add", "Mul")
def convert_add_mul(ctx, node):
    names = _binary_inputs(ctx, node)
    inputs = [ctx.param(node, _per_sample(ctx, node, ctx.consts[n]), "const")
              if ctx.is_const(n) else n for n in names]
    ctx.emit(node, Op.ADD if node.op_type == "Add" else Op.MUL, inputs)


@converter("Sub", "Div")
def convert_sub_div(ctx, node):
    """x - c and x / c with a constant c become Add(x, -c) and Mul(x, 1/c); c - x becomes
    Add(Mul(x, -1), c); x - y of two activations is a Sub."""
    names = _binary_inputs(ctx, node)
    if node.op_type == "Sub" and not any(ctx.is_const(n) for n in names):
        ctx.emit(node, Op.SUB, names)
        return
    if node.op_type == "Sub" and ctx.is_const(names[0]) and not ctx.is_const(names[1]):
        # c - x: the negation (a Mul by the constant -1), then + c
        minus = ctx.param(node, np.array([-1.0]), "minus_one")
        negated = ctx.fresh(f"{ctx.name_of(node)}/negated")
        ctx.emit_part(node, Op.MUL, [names[1], minus], negated,
                      ctx.fresh(f"{ctx.name_of(node)}/negate"))
        c = ctx.consts[names[0]].astype(np.float64)
        ctx.emit(node, Op.ADD, [negated, ctx.param(node, _per_sample(ctx, node, c), "const")])
        return
    if not ctx.is_const(names[1]) or ctx.is_const(names[0]):
        raise refuse(ctx, node, "a divisor that is not a constant is not supported")
    c = ctx.consts[names[1]].astype(np.float64)
    if node.op_type == "Div" and np.any(c == 0):
        raise refuse(ctx, node, f"divisor {names[1]!r} holds zeros")
    value = _per_sample(ctx, node, -c if node.op_type == "Sub" else 1.0 / c)
    op = Op.ADD if node.op_type == "Sub" else Op.MUL
    ctx.emit(node, op, [names[0], ctx.param(node, value, "const")])


@converter("Relu", "Sigmoid", "Tanh")
def convert_unary(ctx, node):
    op = {"Relu": Op.RELU, "Sigmoid": Op.SIGMOID, "Tanh": Op.TANH}[node.op_type]
    ctx.emit(node, op, [node.input[0]])


@converter("LeakyRelu")
def convert_leaky_relu(ctx, node):
    ctx.emit(node, Op.LEAKY_RELU, [node.input[0]],
             alpha=float(attrs_of(node).get("alpha", np.float32(0.01))))  # a float32 attr


@converter("Clip")
def convert_clip(ctx, node):
    bounds = []
    for index, default in ((1, -np.inf), (2, np.inf)):
        if len(node.input) > index and node.input[index]:
            value = ctx.require_const(node, index, "bound")
            if value.size != 1:
                raise refuse(ctx, node, f"bound of shape {value.shape} is not a scalar")
            bounds.append(float(value.reshape(())))
        else:
            bounds.append(default)
    ctx.emit(node, Op.CLIP, [node.input[0]], lo=bounds[0], hi=bounds[1])


@converter("Softmax")
def convert_softmax(ctx, node):
    rank = ctx.batched_rank(node.input[0])
    legacy = ctx.opset < 13
    axis = int(attrs_of(node).get("axis", 1 if legacy else -1))
    axis = axis + rank if axis < 0 else axis
    if axis == 0:
        raise refuse(ctx, node, "axis 0 normalizes over the batch")
    axes = tuple(range(axis, rank)) if legacy else (axis,)
    ctx.emit(node, Op.SOFTMAX, [node.input[0]], axes=axes)


@converter("BatchNormalization")
def convert_batch_norm(ctx, node):
    attrs = attrs_of(node)
    if attrs.get("training_mode", 0):
        raise refuse(ctx, node, "training_mode=1 is not supported")
    if len(present(node.output)) > 1:
        raise refuse(ctx, node, "running mean/var outputs are not supported")
    scale, bias, mean, var = (ctx.require_const(node, i, what).astype(np.float64)
                              for i, what in ((1, "scale"), (2, "bias"), (3, "mean"), (4, "var")))
    channels = ctx.shape(node.input[0])[0] if ctx.shape(node.input[0]) else None
    for what, v in (("scale", scale), ("bias", bias), ("mean", mean), ("var", var)):
        if v.shape != (channels,):
            raise refuse(ctx, node, f"{what} of shape {v.shape} for {channels} channels")
    factor = scale / np.sqrt(var + float(attrs.get("epsilon", 1e-5)))
    ctx.emit(node, Op.BATCH_NORM, [node.input[0], ctx.param(node, factor, "scale"),
                                   ctx.param(node, bias - mean * factor, "shift")])


# -- layout ----------------------------------------------------------------------------

@converter("Identity", "Dropout")
def convert_identity(ctx, node):
    if len(present(node.output)) > 1:
        raise refuse(ctx, node, "the mask output is not supported")
    if node.op_type == "Dropout" and len(node.input) > 2 and node.input[2]:
        training = ctx.require_const(node, 2, "training_mode")
        if bool(np.asarray(training).reshape(-1)[0]):
            raise refuse(ctx, node, "training_mode=true drops values at random; fxq "
                         "compiles inference graphs")
    ctx.emit(node, Op.IDENTITY, [node.input[0]])


@converter("Flatten")
def convert_flatten(ctx, node):
    axis = int(attrs_of(node).get("axis", 1))
    rank = ctx.batched_rank(node.input[0])
    if (axis + rank if axis < 0 else axis) != 1:
        raise refuse(ctx, node, f"axis={axis} would merge the batch axis; only axis=1")
    ctx.emit(node, Op.FLATTEN, [node.input[0]])


@converter("Reshape")
def convert_reshape(ctx, node):
    target = [int(d) for d in ctx.require_const(node, 1, "shape", batch_first=True).reshape(-1)]
    in_shape = ctx.shape(node.input[0])
    batch = ctx.declared_batch
    if not target or not (target[0] in (0, -1) or (batch is not None and target[0] == batch)):
        raise refuse(ctx, node, f"target shape {target} does not keep the batch axis first")
    if attrs_of(node).get("allowzero", 0) and 0 in target[1:]:
        raise refuse(ctx, node, "allowzero=1 with a zero in the shape is not supported")
    per_sample = [in_shape[i] if d == 0 and i < len(in_shape) else d
                  for i, d in enumerate(target[1:])]
    size = int(np.prod(in_shape, dtype=np.int64))
    if per_sample.count(-1) > 1 or (target[0] == -1 and -1 in per_sample):
        raise refuse(ctx, node, f"target shape {target} has more than one -1")
    if -1 in per_sample:
        known = int(np.prod([d for d in per_sample if d != -1], dtype=np.int64))
        per_sample[per_sample.index(-1)] = size // known if known else 0
    if int(np.prod(per_sample, dtype=np.int64)) != size or any(d <= 0 for d in per_sample):
        raise refuse(ctx, node, f"target shape {target} does not fit input "
                     f"{ctx.describe(node.input[0])}")
    ctx.emit(node, Op.RESHAPE, [node.input[0]], shape=tuple(per_sample))


def _axes(ctx, node, what: str) -> list[int]:
    """The axes of Squeeze/Unsqueeze: an attribute before opset 13, an input from it."""
    if ctx.opset < 13:
        axes = attrs_of(node).get("axes")
    else:
        axes = ctx.require_const(node, 1, "axes").reshape(-1) if len(node.input) > 1 and \
            node.input[1] else None
    if axes is None:
        raise refuse(ctx, node, f"{what} without axes: whether it removes the batch axis "
                     "depends on the batch size")
    return [int(a) for a in axes]


@converter("Unsqueeze")
def convert_unsqueeze(ctx, node):
    """Axes of size 1 inserted: a reshape of each sample."""
    shape = list(ctx.shape(node.input[0]))
    given = _axes(ctx, node, "Unsqueeze")
    rank = len(shape) + 1 + len(given)                   # the output's, batch included
    axes = sorted(a + rank if a < 0 else a for a in given)
    if any(a <= 0 or a >= rank for a in axes) or len(set(axes)) != len(axes):
        raise refuse(ctx, node, f"axes {axes} must be distinct and after the batch axis "
                     f"(output rank {rank})")
    for a in axes:
        shape.insert(a - 1, 1)
    ctx.emit(node, Op.RESHAPE, [node.input[0]], shape=tuple(shape))


@converter("Squeeze")
def convert_squeeze(ctx, node):
    """Axes of size 1 removed: a reshape of each sample."""
    shape = ctx.shape(node.input[0])
    rank = len(shape) + 1
    axes = {a + rank if a < 0 else a for a in _axes(ctx, node, "Squeeze")}
    if any(a <= 0 or a >= rank or shape[a - 1] != 1 for a in axes):
        raise refuse(ctx, node, f"axes {sorted(axes)} must be axes of size 1 after the batch "
                     f"axis of {ctx.describe(node.input[0])}")
    ctx.emit(node, Op.RESHAPE, [node.input[0]],
             shape=tuple(d for i, d in enumerate(shape, start=1) if i not in axes))


@converter("Transpose")
def convert_transpose(ctx, node):
    rank = ctx.batched_rank(node.input[0])
    perm = tuple(int(p) for p in attrs_of(node).get("perm", range(rank - 1, -1, -1)))
    perm = tuple(p + rank if p < 0 else p for p in perm)
    if perm[0] != 0:
        raise refuse(ctx, node, f"perm {list(perm)} moves the batch axis")
    ctx.emit(node, Op.TRANSPOSE, [node.input[0]], perm=perm)


@converter("Concat")
def convert_concat(ctx, node):
    names = present(node.input)
    if any(ctx.is_const(n) for n in names):
        raise refuse(ctx, node, "constant inputs are not supported")
    rank = ctx.batched_rank(names[0])
    axis = int(attrs_of(node)["axis"])
    axis = axis + rank if axis < 0 else axis
    if axis == 0:
        raise refuse(ctx, node, "axis 0 concatenates over the batch")
    ctx.emit(node, Op.CONCAT, names, axis=axis)


@converter("Pad")
def convert_pad(ctx, node):
    attrs = attrs_of(node)
    mode = text_attr(attrs, "mode", "constant")
    if mode != "constant":
        raise refuse(ctx, node, f"mode {mode!r} is not supported (only 'constant')")
    rank = ctx.batched_rank(node.input[0])
    pads = [int(p) for p in ctx.require_const(node, 1, "pads").reshape(-1)]
    if len(node.input) > 3 and node.input[3]:
        axes = [int(a) + (rank if a < 0 else 0) for a in ctx.require_const(node, 3, "axes")]
        full = [0] * 2 * rank
        for i, a in enumerate(axes):
            full[a], full[a + rank] = pads[i], pads[i + len(axes)]
        pads = full
    if len(pads) != 2 * rank:
        raise refuse(ctx, node, f"pads {pads} do not fit rank {rank}")
    if pads[0] or pads[rank]:
        raise refuse(ctx, node, f"pads {pads} pad the batch axis")
    if any(p < 0 for p in pads):
        raise refuse(ctx, node, f"negative pads {pads} are not supported")
    value = 0.0
    if len(node.input) > 2 and node.input[2]:
        value = float(ctx.require_const(node, 2, "constant_value").reshape(-1)[0])
    ctx.emit(node, Op.PAD, [node.input[0]],
             pads=tuple(pads[1:rank] + pads[rank + 1:]), value=value)
