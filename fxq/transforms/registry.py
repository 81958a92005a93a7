"""The registry of value-changing transforms by name, and the pipeline a user configures.

A transform is a `fxq.passes.Transform` (match, then rewrite into an Edit) registered here
under a name with its settings and their checks, so the CLI (``--transform
prune:sparsity=0.5``, repeatable) and a TOML file (``[[transform]]`` tables, run in file
order, before the CLI's) can name it:

    [[transform]]
    name = "prune"
    sparsity = 0.7
    layers = ["fc1", "fc2"]        # optional: only these nodes

`pipeline(specs)` makes the Transform objects; `fxq.compile(..., transforms=...)` runs them
after normalization and before the fixed-point search, and the report lists every change.
Adding a transform is one module that defines it and calls `register`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

from fxq.config_file import read_toml
from fxq.errors import FxqError
from fxq.passes.base import Transform


class TransformError(FxqError):
    """A transform named or set up wrongly."""


@dataclass(frozen=True)
class Setting:
    """One setting of a transform: its parser from a CLI string, and its check of a value
    (the reason it is wrong, or None)."""

    parse: Callable[[str], Any]
    check: Callable[[Any], str | None]
    required: bool = False
    help: str = ""


@dataclass(frozen=True)
class Spec:
    make: Callable[..., Transform]
    settings: Mapping[str, Setting]
    help: str


REGISTRY: dict[str, Spec] = {}


def register(name: str, make: Callable[..., Transform], settings: Mapping[str, Setting],
             help: str) -> None:
    if name in REGISTRY:
        raise RuntimeError(f"two transforms named {name}")
    REGISTRY[name] = Spec(make, dict(settings), help)


def make(name: str, values: Mapping[str, Any], where: str = "") -> Transform:
    """The transform `name` with `values`; TransformError naming `where`, the transform and
    the setting for an unknown name, a missing, unknown or bad setting."""
    at = f"{where}: " if where else ""
    spec = REGISTRY.get(name)
    if spec is None:
        raise TransformError(f"{at}unknown transform {name!r} (known: "
                             f"{', '.join(sorted(REGISTRY)) or 'none'})")
    for key, value in values.items():
        setting = spec.settings.get(key)
        if setting is None:
            raise TransformError(f"{at}transform {name}: unknown setting {key!r} (expected "
                                 f"{', '.join(spec.settings)})")
        why = setting.check(value)
        if why:
            raise TransformError(f"{at}transform {name}: {key} = {value!r}: {why}")
    for key, setting in spec.settings.items():
        if setting.required and key not in values:
            raise TransformError(f"{at}transform {name}: the setting {key!r} is required")
    return spec.make(**values)


def from_cli(text: str) -> Transform:
    """``name:key=value,key=value`` (a list value is ``a+b+c``)."""
    name, _, rest = text.partition(":")
    name = name.strip()
    spec = REGISTRY.get(name)
    values: dict[str, Any] = {}
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, raw = item.partition("=")
        if not eq:
            raise TransformError(f"--transform {text}: {item!r} is not key=value")
        setting = spec.settings.get(key.strip()) if spec is not None else None
        if setting is None:
            values[key.strip()] = raw                       # make() names the problem
            continue
        try:
            values[key.strip()] = setting.parse(raw.strip())
        except ValueError:
            raise TransformError(f"--transform {text}: {key.strip()} = {raw!r} is not a "
                                 f"valid value ({setting.help})") from None
    return make(name, values, f"--transform {text}")


def from_toml(path: str) -> list[Transform]:
    """The ``[[transform]]`` tables of a TOML file, in order."""
    data = read_toml(path, TransformError)
    tables = data.get("transform", [])
    if not isinstance(tables, list):
        raise TransformError(f"{path}: transform: expected [[transform]] tables")
    out = []
    for i, table in enumerate(tables, start=1):
        if not isinstance(table, dict) or "name" not in table:
            raise TransformError(f"{path}: [[transform]] number {i} has no name")
        values = {k: v for k, v in table.items() if k != "name"}
        out.append(make(str(table["name"]), values, f"{path}: [[transform]] number {i}"))
    return out


def pipeline(config: str | None = None, cli: Iterable[str] = ()) -> tuple[Transform, ...]:
    """The transforms of a TOML file's [[transform]] tables, then the CLI's, in order."""
    return tuple((from_toml(config) if config else []) + [from_cli(t) for t in cli])


def _names(v) -> str | None:
    if not isinstance(v, (list, tuple)) or not all(isinstance(n, str) for n in v) or not v:
        return "expected a non-empty list of node names"
    return None


# the optional setting of a transform restricted to some layers
LAYERS = Setting(lambda s: s.split("+"), _names, help="node names joined by +")


class LayerTransform(Transform):
    """A transform of the Dense and Conv layers, or of those named in `layers`."""

    OPS: tuple = ()                 # the ops it applies to
    WHAT = "only Dense and Conv layers"

    def __init__(self, layers: list[str] | None = None):
        self.layers = None if layers is None else tuple(layers)

    def check(self, graph) -> None:
        check_layers(graph, self.name, self.layers, self.OPS, self.WHAT)

    def selects(self, node) -> bool:
        return node.op in self.OPS and (self.layers is None or node.name in self.layers)

    def weight(self, graph, node) -> str:
        return dict(graph.param_inputs(node))["weight"]


def check_layers(graph, transform: str, layers, ops, what: str) -> None:
    """Refuse `layers` naming no node of `graph`, or a node whose op is not in `ops`."""
    for layer in layers or ():
        try:
            node = graph.node(layer)
        except KeyError:
            raise TransformError(f"transform {transform}: layer {layer!r} is not a node of "
                                 "the graph") from None
        if node.op not in ops:
            raise TransformError(f"transform {transform}: layer {layer!r} is a "
                                 f"{node.op.name}; {what}")


def describe() -> str:
    """Every registered transform and its settings, for --help."""
    return "; ".join(f"{n}: {s.help} ({', '.join(s.settings)})" for n, s in sorted(REGISTRY.items()))
