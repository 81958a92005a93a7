"""One registry of every op's rules, stage by stage; duplicates refused, gaps named.

An op's definition is its rules for every stage, registered under its `Op`:

* ``shape``: ``rule(*shapes, **attrs) -> shape``. Shapes are *batched* with a batch of 1 for
  activations and the real shape for parameters, so rules follow ONNX semantics directly;
  the caller strips the batch axis.
* ``float``: ``kernel(*arrays, **attrs) -> ndarray``, batched float64 in and out.
* ``fixed``: ``kernel(fx, *raws) -> ndarray``, the bit-accurate integer kernel: `fx` is the
  node's `FixedNode` (its types and raw parameters), `raws` the int64 raw values of its
  activation inputs, batch first; it returns the raw int64 values of its result type.
* ``check``: ``check(node, ins, layer, graph) -> str | None``: constraints on the node's
  types (`ins` its input types, `layer` its LayerTypes) beyond their being given; the reason
  they cannot be implemented, or None. Optional: an op without one has none.
* ``types``: ``rule(search, node, ins, widths) -> LayerTypes``: the analysis's choice of the
  node's types (fxq.analysis.search).
* ``hls``: ``emit(builder, node, fx)``: the hls4ml layer dicts (fxq.hls.emit).
* ``native``: ``emit(gen, fx, *in_buffers, out_buffer)``: the native engine's C++
  (fxq.native.codegen).
* ``cost``: ``rule(estimator, node, fx) -> Cost``: the estimator's cycles and resources
  (fxq.estimate).
* ``onnx``: ``export(exporter, node)``: the ONNX nodes and initializers that compute it
  (fxq.onnx_export), for the float32 ONNX model `fxq compress` writes.
* ``rtl``: ``trace(tracer, node, fx, *inputs) -> FixedVariableArray``: the node as da4ml
  logic (fxq.rtl.trace), for `fxq rtl`. Optional: layout ops without one move elements.

ONNX converters are registered by ONNX op type (``converter("Gemm")``). A stage that meets an
op without its rule raises MissingRule, naming the op, the node and the stage; nothing falls
back to a default.
"""
from __future__ import annotations

from typing import Callable

from fxq.errors import FxqError
from fxq.op import Op

STAGES = {
    "shape": "shape rule", "float": "float kernel", "fixed": "bit-accurate kernel",
    "check": "type check", "types": "type rule for the search", "hls": "hls4ml emitter",
    "native": "native-engine emitter", "cost": "cost rule", "onnx": "ONNX exporter",
    "rtl": "RTL tracer",
}
# stages an op may lack: no check means no constraint; no RTL tracer means `fxq rtl`
# refuses the op (the open RTL path covers the ops of fxq.rtl.trace)
OPTIONAL = frozenset({"check", "rtl"})

RULES: dict[str, dict[Op, Callable]] = {stage: {} for stage in STAGES}
CONVERTERS: dict[str, Callable] = {}


class MissingRule(FxqError):
    """An op has no rule for a stage: that stage cannot handle it."""


def rule(stage: str, *ops: Op) -> Callable[[Callable], Callable]:
    """Register the decorated function as `stage`'s rule for each of `ops`."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}: expected one of {sorted(STAGES)}")

    def register(fn: Callable) -> Callable:
        for op in ops:
            if op in RULES[stage]:
                raise RuntimeError(f"two {STAGES[stage]}s registered for {op.name}")
            RULES[stage][op] = fn
        return fn

    return register


def lookup(stage: str, op: Op, where: str = "") -> Callable:
    """`op`'s rule for `stage`; MissingRule naming op, `where` (a node) and stage if none."""
    found = find(stage, op)
    if found is None:
        at = f"node {where!r}: " if where else ""
        raise MissingRule(f"{at}fxq cannot {_VERBS[stage]} op {op.name} yet (it has no "
                          f"{STAGES[stage]})")
    return found


def find(stage: str, op: Op) -> Callable | None:
    """`op`'s rule for `stage`, or None (for optional stages and engines that decline)."""
    return RULES[stage].get(op)


# Stages that treat layout ops by their kind alone: their result keeps the input's type
# (the search) and they are wires (the estimator).
BY_KIND = frozenset({"types", "cost"})


def missing(op: Op) -> list[str]:
    """The required stages `op` has no rule for (tests hold every op to none)."""
    return [s for s in STAGES if s not in OPTIONAL and op not in RULES[s]
            and not (s in BY_KIND and op.is_layout)]


def converter(*op_types: str) -> Callable[[Callable], Callable]:
    """Register the decorated function as the ONNX converter of each of `op_types`."""
    def register(fn: Callable) -> Callable:
        for op_type in op_types:
            if op_type in CONVERTERS:
                raise RuntimeError(f"two converters for {op_type}")
            CONVERTERS[op_type] = fn
        return fn

    return register


_VERBS = {"shape": "infer the shape of", "float": "run", "fixed": "simulate",
          "check": "check the types of", "types": "choose the types of",
          "hls": "emit to hls4ml", "native": "compile natively", "cost": "estimate",
          "onnx": "export to ONNX", "rtl": "write as RTL"}


def shape_rule(*ops: Op) -> Callable:
    return rule("shape", *ops)


def float_kernel(*ops: Op) -> Callable:
    return rule("float", *ops)


def fixed_kernel(*ops: Op) -> Callable:
    return rule("fixed", *ops)
