"""fxq's graph IR: one small, typed representation that flows through every stage.

Conventions every stage relies on:

* Activation tensors carry a *per-sample* static shape (`Tensor.shape` excludes the batch
  axis). At run time arrays are batched: axis 0 is the batch, the rest is `Tensor.shape`.
* Axis attributes (`axis`, `perm`, `axes`) are in the batched convention, normalized to
  non-negative values, so a kernel can hand them to NumPy directly. Axis 0 (the batch) is
  never reduced, moved or concatenated over; the importer refuses graphs that would.
* Layout is the ONNX layout the model declared (NCHW / NCW for convolutions).
* Parameters (weights, biases, constants) live in `Graph.params`, keyed by the tensor name
  that nodes list among their inputs. A node's first inputs are activations, then params,
  in the order of its op's parameter roles (`Op.params`: weight, bias, scale, ...).
* Ops are open (fxq/op.py): an op module defines its own; fxq.ops.registry holds each op's
  rule for every stage.
* Nodes are immutable and listed in topological order; rewrites return a new Graph.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any, Iterable, Mapping

import numpy as np

from fxq.encoding import matches
from fxq.op import Op

__all__ = ["FrozenMap", "Graph", "Node", "Op", "Tensor"]


class FrozenMap(Mapping):
    """A read-only mapping that pickles and deep-copies (MappingProxyType does neither)."""

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, Any] | Iterable[tuple[str, Any]] = ()):
        self._items = dict(items)

    def __getitem__(self, key: str) -> Any:
        return self._items[key]

    def __iter__(self):
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"FrozenMap({self._items!r})"

    def __reduce__(self):
        return (FrozenMap, (self._items,))


def _freeze(attrs: Mapping[str, Any]) -> Mapping[str, Any]:
    return attrs if isinstance(attrs, FrozenMap) else FrozenMap(attrs)


@dataclass(frozen=True, slots=True)
class Tensor:
    """An activation tensor: its name and per-sample shape (batch axis excluded)."""

    name: str
    shape: tuple[int, ...]

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))


@dataclass(frozen=True, slots=True)
class Node:
    """One operation. `name` is unique in its graph; `attrs` is read-only."""

    name: str
    op: Op
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attrs: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "attrs", _freeze(self.attrs))

    @property
    def output(self) -> str:
        """The single output every IR op has."""
        return self.outputs[0]

    def with_(self, **changes: Any) -> "Node":
        return replace(self, **changes)


@dataclass(frozen=True, eq=False)
class Graph:
    """A validated dataflow graph. Construct through `Graph.build`, which checks it."""

    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    nodes: tuple[Node, ...]
    tensors: Mapping[str, Tensor]
    params: Mapping[str, np.ndarray]
    # how some parameters are stored (fxq.encoding): the dense values stay in `params`
    encodings: Mapping[str, Any] = field(default_factory=FrozenMap)

    @classmethod
    def build(cls, name: str, inputs: Iterable[str], outputs: Iterable[str],
              nodes: Iterable[Node], tensors: Mapping[str, Tensor],
              params: Mapping[str, np.ndarray],
              encodings: Mapping[str, Any] | None = None) -> "Graph":
        """Make a graph, keeping only the tensors, params and encodings the nodes use, and
        check it.

        Raises ValueError (a bug in the caller, not a user error) when the graph is not in
        topological order, a name is defined twice, a tensor has no shape, or an encoding
        does not reproduce its parameter.
        """
        nodes = tuple(nodes)
        used = set(inputs) | set(outputs)
        for node in nodes:
            used.update(node.inputs)
            used.update(node.outputs)
        graph = cls(name=name, inputs=tuple(inputs), outputs=tuple(outputs), nodes=nodes,
                    tensors=FrozenMap({k: v for k, v in tensors.items() if k in used}),
                    params=FrozenMap({k: v for k, v in params.items() if k in used}),
                    encodings=FrozenMap({k: v for k, v in (encodings or {}).items()
                                         if k in used}))
        graph.check()
        return graph

    def check(self) -> None:
        defined = set(self.inputs) | set(self.params)
        names: set[str] = set()
        for node in self.nodes:
            if node.name in names:
                raise ValueError(f"node name {node.name!r} is used twice")
            names.add(node.name)
            for name in node.inputs:
                if name not in defined:
                    raise ValueError(f"node {node.name!r} reads {name!r} before it is defined")
            for name in node.outputs:
                if name in defined:
                    raise ValueError(f"tensor {name!r} is defined twice")
                if name not in self.tensors:
                    raise ValueError(f"tensor {name!r} has no shape")
                defined.add(name)
        for name in self.outputs:
            if name not in defined or name in self.params:
                raise ValueError(f"graph output {name!r} is not computed by the graph")
        for name, encoding in self.encodings.items():
            if name not in self.params or not matches(encoding, self.params[name]):
                raise ValueError(f"the {encoding.kind} encoding of {name!r} does not "
                                 "reproduce its values")

    def __getstate__(self) -> dict:
        """The fields only (the lookup index is rebuilt on use)."""
        return {k: v for k, v in self.__dict__.items() if k != "_index"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)

    # -- queries ---------------------------------------------------------------------

    def is_param(self, name: str) -> bool:
        return name in self.params

    @cached_property
    def _index(self) -> tuple[dict[str, Node], dict[str, list[Node]], dict[str, Node]]:
        """(tensor -> producer, tensor -> consumers, node name -> node), built once, so
        every lookup is O(1) and a pass over the graph is linear in its size."""
        producers: dict[str, Node] = {}
        consumers: dict[str, list[Node]] = {}
        by_name: dict[str, Node] = {}
        for node in self.nodes:
            by_name[node.name] = node
            for name in node.outputs:
                producers[name] = node
            for name in dict.fromkeys(node.inputs):
                consumers.setdefault(name, []).append(node)
        return producers, consumers, by_name

    def producer(self, tensor: str) -> Node | None:
        return self._index[0].get(tensor)

    def consumers(self, tensor: str) -> list[Node]:
        return list(self._index[1].get(tensor, ()))

    def node(self, name: str) -> Node:
        return self._index[2][name]

    def clamp_reader(self, tensor: str) -> Node | None:
        """The node that alone reads `tensor` (not a graph output) when it is a ReLU or a Clip
        with a lower bound >= 0: its output holds the same values for every tensor the clamp
        maps alike; else None."""
        readers = self.consumers(tensor)
        if len(readers) != 1 or tensor in self.outputs:
            return None
        node = readers[0]
        if node.op is Op.RELU or (node.op is Op.CLIP and node.attrs["lo"] >= 0):
            return node
        return None

    def activation_inputs(self, node: Node) -> list[str]:
        return [name for name in node.inputs if name not in self.params]

    def last_readers(self) -> dict[str, int]:
        """The index of the last node reading each activation tensor (a tensor no node
        reads is absent): where a walk in node order may drop it."""
        last = {}
        for i, node in enumerate(self.nodes):
            for name in self.activation_inputs(node):
                last[name] = i
        return last

    def param_inputs(self, node: Node) -> list[tuple[str, str]]:
        """(role, tensor name) of each parameter input of `node`, roles from its op."""
        names = [name for name in node.inputs if name in self.params]
        if len(names) > len(node.op.params):
            raise ValueError(f"node {node.name!r} ({node.op.name}) has {len(names)} parameters;"
                             f" its op has the roles {node.op.params}")
        return list(zip(node.op.params, names))

    def shape(self, tensor: str) -> tuple[int, ...]:
        """Per-sample shape of an activation tensor."""
        return self.tensors[tensor].shape

    # -- rewriting -------------------------------------------------------------------

    def rebuild(self, nodes: Iterable[Node], *, tensors: Mapping[str, Tensor] | None = None,
                params: Mapping[str, np.ndarray] | None = None,
                outputs: Iterable[str] | None = None,
                encodings: Mapping[str, Any] | None = None) -> "Graph":
        """A new graph with these nodes; new tensors, params and encodings are merged over
        the old. A parameter given a new value loses its old encoding unless given one."""
        all_tensors = dict(self.tensors)
        all_tensors.update(tensors or {})
        all_params = dict(self.params)
        all_params.update(params or {})
        all_encodings = {k: v for k, v in self.encodings.items() if k not in (params or {})}
        all_encodings.update(encodings or {})
        return Graph.build(self.name, self.inputs,
                           self.outputs if outputs is None else outputs,
                           nodes, all_tensors, all_params, all_encodings)

    # -- running ---------------------------------------------------------------------

    def run(self, x: Any) -> Any:
        """Float reference result.

        `x` is an array (single-input graphs) or a mapping from input name to array, batch
        first. Returns one float64 array for single-output graphs, else a dict by name.
        """
        from fxq.reference import run_graph

        return run_graph(self, x)

    # -- printing --------------------------------------------------------------------

    def __str__(self) -> str:
        lines = [f"graph {self.name}: inputs {', '.join(self._fmt(n) for n in self.inputs)}"]
        for node in self.nodes:
            args = ", ".join(n if n in self.params else self._fmt(n) for n in node.inputs)
            attrs = "".join(f" {k}={v}" for k, v in node.attrs.items())
            lines.append(f"  {self._fmt(node.output)} = {node.op.name}({args}){attrs}"
                         f"  # {node.name}")
        lines.append(f"  outputs {', '.join(self.outputs)}")
        return "\n".join(lines)

    def _fmt(self, tensor: str) -> str:
        shape = "x".join(str(d) for d in self.tensors[tensor].shape)
        return f"{tensor}[N,{shape}]" if shape else f"{tensor}[N]"
