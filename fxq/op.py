"""Op: the kind of an IR node. Open: an op module defines its own with `Op.define`.

Each Op is one object per name (compared by identity, pickled by name) that knows what
every stage needs before any rule runs: its parameter roles in input order (the roles of
the node's parameter inputs: "weight", "bias", "scale", ...), the layer kind the bit
configuration addresses it by, and whether it only moves elements (layout ops keep their
input type). What each stage does with it (shape, kernels, type rule, emitters, cost) is
registered in fxq.ops.registry under the same Op.

The core ops are defined here; an op module adds one with

    HARD_SIGMOID = Op.define("HARD_SIGMOID", kind="activation")

which also makes it reachable as `Op.HARD_SIGMOID`. Defining a name twice is refused.
"""
from __future__ import annotations

import importlib
import sys
from typing import ClassVar

from fxq.errors import FxqError

KINDS = ("conv", "dense", "batch_norm", "activation", "pool", "merge", "layout")


class Op:
    """An operation kind. Make one with `Op.define`; look one up by name with `Op.named`."""

    __slots__ = ("name", "params", "kind", "constants", "module")
    _defined: ClassVar[dict[str, "Op"]] = {}

    def __init__(self, name: str, params: tuple[str, ...], kind: str,
                 constants: tuple[str, ...]):
        self.name, self.params, self.kind, self.constants = name, params, kind, constants

    @classmethod
    def define(cls, name: str, *, kind: str, params: tuple[str, ...] = (),
               constants: tuple[str, ...] = ()) -> "Op":
        """A new op kind `name` (upper-case), its bit-configuration `kind` (one of KINDS),
        the roles of its parameter inputs in order, and the roles of the constants from its
        attributes that get a fixed-point type of their own (LeakyReLU's "alpha"). Refuses
        a name defined before."""
        if not name.isidentifier() or name.upper() != name:
            raise ValueError(f"op name {name!r}: expected an upper-case identifier")
        if name in cls._defined or hasattr(cls, name):
            raise RuntimeError(f"op {name} is defined twice")
        if kind not in KINDS:
            raise ValueError(f"op {name}: kind {kind!r} is not one of {KINDS}")
        op = cls(name, tuple(params), kind, tuple(constants))
        op.module = sys._getframe(1).f_globals.get("__name__", __name__)
        cls._defined[name] = op
        setattr(cls, name, op)
        return op

    @classmethod
    def named(cls, name: str) -> "Op":
        """The op called `name`, among those defined so far (importing fxq.ops defines
        every op module's)."""
        try:
            return cls._defined[name]
        except KeyError:
            raise FxqError(f"unknown op {name!r}") from None

    @classmethod
    def all(cls) -> tuple["Op", ...]:
        return tuple(cls._defined.values())

    @property
    def roles(self) -> tuple[str, ...]:
        """Every typed role: the parameter inputs', then the constants'."""
        return self.params + self.constants

    @property
    def is_layout(self) -> bool:
        """Moves or copies elements only: its result keeps its input's type."""
        return self.kind == "layout"

    def __reduce__(self):
        return (_unpickle, (self.module, self.name))

    def __copy__(self) -> "Op":
        return self

    def __deepcopy__(self, memo) -> "Op":
        return self

    def __repr__(self) -> str:
        return f"Op.{self.name}"

    def __lt__(self, other: "Op") -> bool:           # sorting for stable listings
        return self.name < other.name


def _unpickle(module: str, name: str) -> Op:
    """The op `name`, importing the module that defines it (in a fresh process)."""
    importlib.import_module(module)
    return Op.named(name)


# The core ops. Inputs in brackets are parameters, in the order of `params`.
Op.define("DENSE", kind="dense", params=("weight", "bias"))
#   x, [W (in, out)], optional [b (out,)]; y = x @ W + b, last axis
Op.define("CONV", kind="conv", params=("weight", "bias"))
#   x, [W (out, in/groups, *k)], optional [b]; attrs: strides, pads, groups
Op.define("BATCH_NORM", kind="batch_norm", params=("scale", "shift"))
#   x, [scale (C,)], [shift (C,)]; y = x * scale + shift, channel axis 1
Op.define("ADD", kind="merge", params=("operand",))       # a, b (either may be a param)
Op.define("MUL", kind="merge", params=("operand",))       # a, b (either may be a param)
Op.define("SUB", kind="merge")                             # a - b, both activations
Op.define("CONCAT", kind="merge")                          # a, b, ...; attr axis
Op.define("RELU", kind="activation")
Op.define("LEAKY_RELU", kind="activation", constants=("alpha",))   # attr alpha
Op.define("CLIP", kind="activation")                       # attrs lo, hi (ReLU6: 0..6)
Op.define("SIGMOID", kind="activation")
Op.define("TANH", kind="activation")
Op.define("SOFTMAX", kind="activation")                    # attr axes, normalized together
Op.define("MAX_POOL", kind="pool")                         # attrs kernel, strides, pads
Op.define("AVG_POOL", kind="pool")                         # + count_include_pad
Op.define("GLOBAL_AVG_POOL", kind="pool")
Op.define("GLOBAL_MAX_POOL", kind="pool")
Op.define("FLATTEN", kind="layout")                        # per-sample flatten to one axis
Op.define("RESHAPE", kind="layout")                        # to the output's per-sample shape
Op.define("TRANSPOSE", kind="layout")                      # attr perm (batched, perm[0] == 0)
Op.define("PAD", kind="layout")                            # attrs pads (begin..., end...), value
Op.define("IDENTITY", kind="layout")                       # Identity, Dropout; removed by a pass
