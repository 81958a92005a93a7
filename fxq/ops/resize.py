"""Resize in nearest mode: every output element copies one input element.

Every stage's rule of the op is here. A nearest resize is separable: output position i of
spatial axis a copies input position index[a][i]. The converter does not re-derive ONNX's
coordinate modes (half_pixel, asymmetric, align_corners, ...), rounding modes and opset
differences: it runs onnx's reference implementation of the node itself on an input that
holds its own positions and reads the map off the output, for whatever scales or sizes,
modes and opset the model has. The op only moves elements, so its result keeps the input's
type (kind "layout") and its kernels are one gather.

hls4ml's Resize layer (nnet_image.h `resize_nearest`) computes its own map: in io_parallel
source = (i * ((in << 16) / out + 1)) >> 16, in io_stream every input row and column
repeated out / in times (integer scales only). The emitter refuses a node whose map differs
from the one hls4ml would compute, naming both, rather than emit a different resize.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from fxq.cost import Cost, memory
from fxq.native.cpp import elementwise
from fxq.onnx_convert import attrs_of, present, refuse, text_attr
from fxq.op import Op
from fxq.ops.registry import converter, rule

RESIZE = Op.define("RESIZE", kind="layout")     # attr index: per spatial axis, source positions


@converter("Resize")
def convert_resize(ctx, node):
    mode = text_attr(attrs_of(node), "mode", "nearest")
    if mode != "nearest":
        raise refuse(ctx, node, f"mode {mode!r} is not supported (only nearest)")
    shape = ctx.shape(node.input[0])
    if len(shape) not in (2, 3):
        raise refuse(ctx, node, f"input {ctx.describe(node.input[0])}: only 1D (N,C,L) and 2D "
                     "(N,C,H,W) resizes are supported")
    for name in present(node.input[1:]):
        if not ctx.is_const(name):
            raise refuse(ctx, node, f"input {name!r} is not a constant (scales, sizes and roi "
                         "must be)")
    index = source_index(ctx, node, shape)
    ctx.emit(node, RESIZE, [node.input[0]], index=index)


@converter("Gather")
def convert_gather(ctx, node):
    """A Gather of constant positions along one spatial axis copies input elements: a
    resize of that axis (what fxq's ONNX export writes for one)."""
    if ctx.is_const(node.input[0]) or not ctx.is_const(node.input[1]):
        raise refuse(ctx, node, "only constant indices into a computed tensor are supported")
    shape = ctx.shape(node.input[0])
    rank = len(shape) + 1
    axis = int(attrs_of(node).get("axis", 0))
    axis = axis + rank if axis < 0 else axis
    positions = np.asarray(ctx.consts[node.input[1]])
    if len(shape) not in (2, 3) or axis < 2 or positions.ndim != 1:
        raise refuse(ctx, node, f"axis {axis} of {ctx.describe(node.input[0])} with indices "
                     f"of shape {positions.shape}: only 1-D indices along a spatial axis of an "
                     "(N,C,L) or (N,C,H,W) input are supported")
    size = shape[axis - 1]
    if positions.size and not -size <= positions.min() <= positions.max() < size:
        raise refuse(ctx, node, f"indices outside the axis of {size}")
    index = [tuple(range(n)) for n in shape[1:]]
    index[axis - 2] = tuple(int(p) % size for p in positions)
    ctx.emit(node, RESIZE, [node.input[0]], index=tuple(index))


@rule("onnx", RESIZE)
def export_resize(ex, node):
    """One Gather per spatial axis the resize changes."""
    x, index = node.inputs[0], node.attrs["index"]
    shape = ex.graph.shape(x)
    moved = [(axis, p) for axis, p in enumerate(index, start=2)
             if tuple(p) != tuple(range(shape[axis - 1]))]
    if not moved:
        ex.node("Identity", [x], [node.output], node.name)
    for i, (axis, positions) in enumerate(moved):
        last = i == len(moved) - 1
        out = node.output if last else ex.fresh(f"{node.output}/axis{axis}")
        ex.node("Gather", [x, ex.const(positions, ex.fresh(f"{node.name}/index{axis}"),
                                       np.int64)], [out],
                node.name if last else ex.fresh(f"{node.name}/axis{axis}"), axis=axis)
        x = out


def source_index(ctx, node, shape: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
    """Per spatial axis, the input position each output position copies, found by running
    onnx's reference Resize on positions (exact: they are small integers in float32)."""
    from onnx.reference import ReferenceEvaluator

    channels, spatial = shape[0], shape[1:]
    # a batch of two, or the model's declared batch: sizes that fix it must fix it to that
    batch = ctx.declared_batch or 2
    positions = np.arange(int(np.prod(spatial)), dtype=np.float32).reshape(spatial)
    x = np.broadcast_to(positions, (batch, channels) + tuple(spatial)).copy()
    constants = [numpy_helper.from_array(ctx.consts[n], n) for n in present(node.input[1:])]
    single = helper.make_graph(
        [node], "resize", [helper.make_tensor_value_info(node.input[0], onnx.TensorProto.FLOAT,
                                                         list(x.shape))],
        [helper.make_tensor_value_info(node.output[0], onnx.TensorProto.FLOAT, None)],
        initializer=constants)
    model = helper.make_model(single, opset_imports=[helper.make_opsetid("", ctx.opset)])
    try:
        (out,) = ReferenceEvaluator(model).run(None, {node.input[0]: x})
    except Exception as exc:                         # onnx's evaluator refuses the node
        raise refuse(ctx, node, f"onnx's reference cannot run it ({type(exc).__name__}: "
                     f"{exc})") from None
    out = np.asarray(out)
    if out.ndim != x.ndim or out.shape[:2] != (batch, channels):
        raise refuse(ctx, node, f"it resizes the batch or channel axis ((N, {channels}, ...) to"
                     f" ({'N' if out.shape[0] == batch else out.shape[0]}, {out.shape[1]}, "
                     "...)); only spatial axes are supported")
    src = out[0, 0].astype(np.int64)
    if not np.array_equal(out, np.broadcast_to(src, out.shape)) or \
            not np.array_equal(src, out[0, 0]):
        raise refuse(ctx, node, "its output is not a copy of input elements")
    if len(spatial) == 1:
        return (tuple(int(i) for i in src),)
    rows, cols = src[:, 0] // spatial[1], src[0, :] % spatial[1]
    if not np.array_equal(src, rows[:, None] * spatial[1] + cols[None, :]):
        raise refuse(ctx, node, "its output is not a separable copy of input rows and columns")
    return tuple(int(i) for i in rows), tuple(int(i) for i in cols)


@rule("shape", RESIZE)
def resize_shape(x, *, index):
    if len(index) != len(x) - 2:
        raise ValueError(f"{len(index)} index maps for {len(x) - 2} spatial axes")
    for size, positions in zip(x[2:], index):
        if positions and not 0 <= min(positions) <= max(positions) < size:
            raise ValueError(f"source positions outside an axis of {size}")
    return tuple(x[:2]) + tuple(len(p) for p in index)


def gather(x, index):
    for axis, positions in enumerate(index, start=2):
        x = np.take(x, np.asarray(positions, dtype=np.int64), axis=axis)
    return x


@rule("float", RESIZE)
def resize(x, *, index):
    return gather(x, index)


@rule("fixed", RESIZE)
def resize_fixed(fx, x):
    return gather(x, fx.node.attrs["index"])


# -- hls4ml ------------------------------------------------------------------------------------

def hls4ml_index(size: int, new_size: int, io_type: str) -> tuple[int, ...] | None:
    """The source positions hls4ml's resize_nearest reads, or None where it cannot resize
    (io_stream repeats by an integer ratio only)."""
    if io_type == "io_stream":
        if new_size % size:
            return None
        return tuple(i // (new_size // size) for i in range(new_size))
    ratio = ((size << 16) // new_size) + 1
    return tuple((i * ratio) >> 16 for i in range(new_size))


@rule("hls", RESIZE)
def resize_hls(builder, node, fx):
    from fxq.hls.layout import channels_last    # (fxq.hls imports the ops)

    x = node.inputs[0]
    builder.as_channels_last(node, x)
    c, *spatial = builder.shape(x)
    index = fx.node.attrs["index"]
    io = str(builder.settings.io_type)
    for axis, (size, positions) in enumerate(zip(spatial, index)):
        theirs = hls4ml_index(size, len(positions), io)
        if theirs != tuple(positions):
            builder.fail(node, f"along spatial axis {axis} this resize copies input positions "
                         f"{list(positions)}; hls4ml's resize_nearest in {io} "
                         + (f"copies {list(theirs)}" if theirs is not None else
                            f"repeats by integer ratios only ({size} -> {len(positions)})"))
    (h, w), (nh, nw) = ([1] + spatial)[-2:], ([1] + [len(p) for p in index])[-2:]
    layer = {"class_name": "Resize", "algorithm": "nearest", "align_corners": False,
             "in_height": h, "in_width": w, "out_height": nh, "out_width": nw, "n_chan": c}
    builder.add(node, layer, builder.precisions(result=fx.result),
                channels_last(builder.shape(node.output)))


# -- native and cost ---------------------------------------------------------------------------

@rule("native", RESIZE)
def resize_native(g, fx, x, y):
    source = gather(np.arange(x.size).reshape((1,) + x.shape), fx.node.attrs["index"])
    elementwise(g, y, f"AT({x.var}, {g.static(source.ravel())}[e])[b]")


@rule("cost", RESIZE)
def resize_cost(estimator, node, fx):
    """io_parallel: wires (every output is an input element). io_stream: one input row
    held in registers (or memory), each output pixel written in a cycle of its own."""
    if not estimator.stream():
        return Cost(latency=0, ii=1)
    x = node.inputs[0]
    shape = estimator.g.shape(x)
    row = (shape[-1] if len(shape) > 2 else 1) * shape[0] * fx.result.width
    bram, lut = memory(row)
    pixels = estimator.pixels(node.output)
    return Cost(latency=pixels, ii=pixels, lut=lut, bram18=bram, ff=shape[0] * fx.result.width)
