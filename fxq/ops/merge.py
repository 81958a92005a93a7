"""Add, Sub, Mul and Concat: shape rules, float and fixed kernels.

The fixed kernels mirror nnet_merge.h: the exact sum, difference or product of the two
inputs, cast once to the result type; Concat casts each input to the result type. A
constant operand (a parameter, of Add and Mul) is held in the layer's weight type; x - c
is imported as Add(x, -c), so Sub has two activations.
"""
from __future__ import annotations

import numpy as np

from fxq.op import Op
from fxq.fixed import cast, requantize
from fxq.ops.fixed_math import aligned_sum
from fxq.layer import LayerTypes
from fxq.ops.registry import fixed_kernel, float_kernel, rule, shape_rule


@shape_rule(Op.ADD, Op.SUB, Op.MUL)
def broadcast_shape(a, b):
    return tuple(np.broadcast_shapes(tuple(a), tuple(b)))


@float_kernel(Op.ADD)
def add(a, b):
    return a + b


@float_kernel(Op.SUB)
def sub(a, b):
    return a - b


@float_kernel(Op.MUL)
def mul(a, b):
    return a * b


@shape_rule(Op.CONCAT)
def concat_shape(*shapes, axis):
    out = list(shapes[0])
    out[axis] = sum(s[axis] for s in shapes)
    return tuple(out)


@float_kernel(Op.CONCAT)
def concat(*arrays, axis):
    return np.concatenate(arrays, axis=axis)


# -- bit-accurate kernels ------------------------------------------------------------------

def _operands(fx, raws):
    """The two raw operands with their types; a parameter operand comes second."""
    if len(raws) == 2:
        return raws[0], fx.inputs[0], raws[1], fx.inputs[1]
    const = fx.params[0][None]
    return raws[0], fx.inputs[0], const, fx.param_types[0]


@fixed_kernel(Op.ADD)
def add_fixed(fx, *raws):
    a, at, b, bt = _operands(fx, raws)
    total, frac = aligned_sum(a, at.frac, b, bt.frac)
    return requantize(total, frac, fx.result, 64)


@fixed_kernel(Op.SUB)
def sub_fixed(fx, a, b):
    total, frac = aligned_sum(a, fx.inputs[0].frac, -b, fx.inputs[1].frac)
    return requantize(total, frac, fx.result, 64)


@fixed_kernel(Op.MUL)
def mul_fixed(fx, *raws):
    a, at, b, bt = _operands(fx, raws)
    return requantize(a * b, at.frac + bt.frac, fx.result, 64)


@fixed_kernel(Op.CONCAT)
def concat_fixed(fx, *raws):
    parts = [cast(r, t, fx.result) for r, t in zip(raws, fx.inputs)]
    return np.concatenate(parts, axis=fx.node.attrs["axis"])


# -- the search's type rules ---------------------------------------------------------------

@rule("types", Op.ADD, Op.SUB, Op.MUL)
def arithmetic_types(search, node, ins, widths):
    """A constant operand by minimum error at the weight width."""
    params = search.params_of(node)
    types = {"operand": search.param_type(params["operand"], widths.weight, "operand")} \
        if "operand" in params else {}
    return search.choose(node, ins, widths.act, True,
                         lambda t: LayerTypes(result=t, params=types))


@rule("types", Op.CONCAT)
def concat_types(search, node, ins, widths):
    return search.choose(node, ins, widths.act, any(t.signed for t in ins),
                         lambda t: LayerTypes(result=t))
