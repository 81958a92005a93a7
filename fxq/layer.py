"""The fixed-point types of one node (LayerTypes) and what a bit-accurate kernel sees (FixedNode).

Parameters carry their types by role: `LayerTypes.params` maps each role of the node's op
(`Op.params`: "weight", "bias", "scale", "shift", "operand", ...; LeakyReLU's "alpha") to
its FixedType, so no stage guesses a type from a parameter's position.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

from fxq.errors import FxqError
from fxq.fixed import FixedType, Overflow, Rounding, quantize
from fxq.ir import FrozenMap, Graph, Node

# hls4ml's defaults for the lookup-table activations (backends/fpga/fpga_backend.py)
DEFAULT_TABLE = FixedType(18, 10)
DEFAULT_SOFTMAX_TABLE = FixedType(18, 10, True, Rounding.RND, Overflow.SAT)
DEFAULT_TABLE_SIZE = 1024
DEFAULT_SOFTMAX_ACCUM = FixedType(22, 10, True, Rounding.RND, Overflow.SAT)
IO_TYPES = ("io_parallel", "io_stream")


class QuantizationError(FxqError):
    """The fixed-point types given for a graph are incomplete or cannot be implemented."""


@dataclass(frozen=True)
class LayerTypes:
    """The fixed-point types of one node.

    result: the node's output. params: the type of each parameter by role (see the module
    docstring). accum: the accumulator of Dense, Conv and average pooling (and the exp-sum
    of Softmax). table/table_size: the lookup table of Sigmoid, Tanh (table_t) and Softmax
    (exp_table_t); inv_table and inv_inp: Softmax's reciprocal table and its index type.
    """

    result: FixedType
    params: Mapping[str, FixedType] = field(default_factory=FrozenMap)
    accum: FixedType | None = None
    table: FixedType | None = None
    table_size: int = DEFAULT_TABLE_SIZE
    inv_table: FixedType | None = None
    inv_inp: FixedType | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.params, FrozenMap):
            object.__setattr__(self, "params", FrozenMap(self.params))

    def param(self, role: str) -> FixedType | None:
        return self.params.get(role)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LayerTypes):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def _key(self) -> tuple:
        return (self.result, tuple(sorted(self.params.items())), self.accum, self.table,
                self.table_size, self.inv_table, self.inv_inp)


@dataclass(frozen=True)
class FixedNode:
    """Everything a bit-accurate kernel knows about one node."""

    node: Node
    inputs: tuple[FixedType, ...]          # types of the activation inputs, in order
    layer: LayerTypes
    params: tuple[np.ndarray, ...]         # raw parameter values, in input (role) order
    param_types: tuple[FixedType, ...]
    io_type: str
    roles: tuple[str, ...] = ()            # the role of each parameter, in the same order
    # constants a kernel derives from the above once (weight sums, limb plans), by name
    derived: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def result(self) -> FixedType:
        return self.layer.result

    def param(self, role: str) -> tuple[np.ndarray, FixedType] | None:
        """(raw values, type) of the parameter with this role, None if the node has none."""
        if role not in self.roles:
            return None
        i = self.roles.index(role)
        return self.params[i], self.param_types[i]

    def derive(self, name: str, make: Callable[[], Any]) -> Any:
        """make(), computed on the first call for this name and kept."""
        if name not in self.derived:
            self.derived[name] = make()
        return self.derived[name]

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["derived"] = {}              # caches (limb plans, ...) are rebuilt on use
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)


def typed_params(node: Node, graph: Graph,
                 layer: LayerTypes) -> list[tuple[str, str, FixedType | None]]:
    """(role, tensor name, type) of each parameter input of `node`."""
    return [(role, name, layer.param(role)) for role, name in graph.param_inputs(node)]


def fixed_node(graph: Graph, node: Node, inputs: tuple[FixedType, ...], layer: LayerTypes,
               io_type: str = "io_parallel",
               raw_params: Mapping[str, np.ndarray] | None = None) -> FixedNode:
    """The FixedNode of one node with the given types. Parameters come from `raw_params`
    (a QuantizedGraph's) or are quantized here (the analysis tries candidate types node by
    node, outside any QuantizedGraph)."""
    triples = typed_params(node, graph, layer)
    params = tuple(raw_params[n] if raw_params is not None else quantize(graph.params[n], t)
                   for _, n, t in triples)
    return FixedNode(node=node, inputs=tuple(inputs), layer=layer, params=params,
                     param_types=tuple(t for _, _, t in triples), io_type=io_type,
                     roles=tuple(r for r, _, _ in triples))


def softmax_layer(result: FixedType) -> LayerTypes:
    """Softmax with hls4ml's default table, reciprocal and sum types."""
    return LayerTypes(result=result, table=DEFAULT_SOFTMAX_TABLE,
                      inv_table=DEFAULT_SOFTMAX_TABLE, inv_inp=DEFAULT_SOFTMAX_TABLE,
                      accum=DEFAULT_SOFTMAX_ACCUM)
