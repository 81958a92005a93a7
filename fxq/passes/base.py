"""The contract of passes and transforms, and the driver that runs them in linear time.

Two kinds of graph rewrite, apart:

* A **Pass** keeps the float function (the same float outputs up to rounding); the
  normalizing pipeline after import is made of them.
* A **Transform** may change values (pruning, factorization, weight sharing, ...); it runs
  only when a user's pipeline asks for it, and what it changed is reported.

Both are small objects with two halves:

* ``match(graph, node)`` looks at one node (and its neighbours, through the graph's indexed
  `producer`/`consumers`) and returns whatever the rewrite needs, or None. It never changes
  anything.
* ``rewrite(graph, match)`` returns an `Edit`: the nodes to remove, the nodes to put where
  the first of them stood, tensor renames, new params. It does not build a graph.

`run_pipeline` sweeps the graph once per round: every node is matched against the current
graph, non-overlapping edits are collected, and the whole round's edits are applied in one
rebuild. Rounds repeat until no pass matches, so the cost is linear in graph size per round
(the number of rounds follows the longest chain of dependent rewrites, not the graph). It
returns the new graph and a `Change` per edit: which rewrite, which nodes, what it did.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import numpy as np

from fxq.ir import Graph, Node, Tensor

MAX_ROUNDS = 10_000


@dataclass(frozen=True)
class Edit:
    """One rewrite's effect. `rename` maps old tensor names to new ones for every reader and
    writer left in the graph (so `{y: x}` makes y's readers read x)."""

    remove: tuple[Node, ...] = ()
    insert: tuple[Node, ...] = ()
    rename: Mapping[str, str] = field(default_factory=dict)
    params: Mapping[str, np.ndarray] = field(default_factory=dict)
    tensors: Mapping[str, Tensor] = field(default_factory=dict)
    encodings: Mapping[str, Any] = field(default_factory=dict)   # how new params are stored
    what: str = ""


@dataclass(frozen=True)
class Change:
    """What one edit changed: the rewrite's name, the nodes removed and inserted."""

    rewrite: str
    removed: tuple[str, ...]
    inserted: tuple[str, ...]
    what: str = ""


class Rewrite:
    """Shared by Pass and Transform: `match`, then `rewrite` into an Edit."""

    changes_values = False

    def check(self, graph: Graph) -> None:
        """Refuse (an FxqError naming the problem) settings that do not fit `graph`, before
        anything runs: a layer name that is not a node, ..."""

    def match(self, graph: Graph, node: Node) -> Any | None:
        raise NotImplementedError

    def rewrite(self, graph: Graph, match: Any) -> Edit:
        raise NotImplementedError

    @property
    def name(self) -> str:
        return type(self).__name__

    def __repr__(self) -> str:
        return f"{self.name}()"


class Pass(Rewrite):
    """A rewrite that keeps the float function."""


class Transform(Rewrite):
    """A rewrite that may change the float function; run only when asked for."""

    changes_values = True


def _apply(graph: Graph, edits: list[Edit]) -> Graph:
    removed = {n.name for e in edits for n in e.remove}
    at = {e.remove[0].name: e.insert for e in edits if e.remove}
    rename: dict[str, str] = {}
    params: dict[str, np.ndarray] = {}
    tensors: dict[str, Tensor] = {}
    encodings: dict[str, Any] = {}
    for e in edits:
        rename.update(e.rename)
        params.update(e.params)
        tensors.update(e.tensors)
        encodings.update(e.encodings)
    nodes: list[Node] = []
    for node in graph.nodes:
        if node.name in at:
            nodes.extend(at[node.name])
        if node.name not in removed:
            nodes.append(node)
    if rename:
        nodes = [n.with_(inputs=tuple(rename.get(t, t) for t in n.inputs),
                         outputs=tuple(rename.get(t, t) for t in n.outputs)) for n in nodes]
    return graph.rebuild(nodes, tensors=tensors, params=params, encodings=encodings)


def _touches(graph: Graph, edit: Edit) -> set[str]:
    """Names of the nodes an edit reads or changes: removed ones and every node reading or
    writing a renamed tensor."""
    out = {n.name for n in edit.remove}
    for old, new in edit.rename.items():
        for t in (old, new):
            out.update(n.name for n in graph.consumers(t))
            producer = graph.producer(t)
            if producer is not None:
                out.add(producer.name)
    return out


def run_round(graph: Graph, rewrites: Iterable[Rewrite]) -> tuple[Graph, list[Change]]:
    """One sweep: every rewrite matched at every node, non-overlapping edits applied."""
    edits: list[Edit] = []
    changes: list[Change] = []
    busy: set[str] = set()
    for rewrite in rewrites:
        for node in graph.nodes:
            if node.name in busy:
                continue
            found = rewrite.match(graph, node)
            if found is None:
                continue
            edit = rewrite.rewrite(graph, found)
            touched = _touches(graph, edit)
            if touched & busy:
                continue                       # overlaps an earlier edit: next round
            busy |= touched
            edits.append(edit)
            changes.append(Change(rewrite.name, tuple(n.name for n in edit.remove),
                                  tuple(n.name for n in edit.insert), edit.what))
        if edits:
            break                 # later rewrites match against the rewritten graph
    return (_apply(graph, edits) if edits else graph), changes


def run_pipeline(graph: Graph, rewrites: Iterable[Rewrite]) -> tuple[Graph, list[Change]]:
    """Rounds of `run_round` until nothing matches; the graph and every change made."""
    rewrites = tuple(rewrites)
    for rewrite in rewrites:
        rewrite.check(graph)
    changes: list[Change] = []
    for _ in range(MAX_ROUNDS):
        graph, made = run_round(graph, rewrites)
        if not made:
            return graph, changes
        changes.extend(made)
    raise RuntimeError(f"rewrites {rewrites} did not reach a fixed point in {MAX_ROUNDS} "
                       "rounds")


def sole_consumer(graph: Graph, tensor: str) -> Node | None:
    """The one node reading `tensor`, if exactly one does and it is not a graph output."""
    users = graph.consumers(tensor)
    if len(users) != 1 or tensor in graph.outputs:
        return None
    return users[0]
