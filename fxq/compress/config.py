"""What to compress and how: one `Methods` for every layer, overridden per layer.

    fxq compress MODEL.onnx --calib DATA.npz -o OUT.onnx --prune 0.7 --share 16
    [compress]                   # in fxq.toml: the same settings for every layer
    prune = 0.7
    [layer."fc1"]                # and per layer (beside its widths)
    prune = 0.9
    weights = "ternary"

Methods by layer (Dense and Conv): `prune` (a fraction in [0, 1)) with `prune_by`
magnitude|obd and `prune_structure` weight|channel|column (weight, unstructured: `prune` is the fraction
of weights set to zero; channel: whole output channels removed with the inputs reading
them; as the setting of every layer, `prune` is then the fraction of the network's Dense
and Conv MACs removed, per layer the fraction of the layer's output channels; column: the
blocks of weights one multiplier of hls4ml's resource strategy computes at `reuse_factor`
R, so the multiplier goes (Dense layers only; Conv layers are left alone by the default
setting)); for a low-rank factorization one of `rank` (an integer >= 1), `svd_energy` (a
fraction in (0, 1] of the layer's response energy kept) or `rank_params` (a fraction in
(0, 1) of the weights kept: as the setting of every layer, of the layers' weights together,
the ranks chosen per layer from sensitivity curves (fxq.compress.ranks); per layer, of its
own; a layer's rank setting replaces the default's); `share` (K >= 2 shared values) or
`weights` ternary|ttq|binary|pow2 (ttq: ternary with a scale per sign, {-a_n, 0, a_p}).
Every bad value is a CompressError naming the setting (and the layer).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Mapping

from fxq.errors import FxqError
from fxq.ir import Graph, Op

PRUNE_BY = ("magnitude", "obd")
PRUNE_STRUCTURES = ("weight", "channel", "column")
WEIGHT_SETS = ("ternary", "ttq", "binary", "pow2")
LAYER_OPS = (Op.DENSE, Op.CONV)


def factorable(node) -> bool:
    """Dense and ungrouped Conv layers: the ones a low-rank factorization applies to."""
    return node.op is Op.DENSE or (node.op is Op.CONV and node.attrs["groups"] == 1)


class CompressError(FxqError):
    """A compression setting that is wrong, or does not fit the graph."""


def _fraction(v, where: str, *, closed_top: bool = False, open_bottom: bool = False) -> float:
    ok = not isinstance(v, bool) and isinstance(v, (int, float))
    if ok:
        ok = (0 < v if open_bottom else 0 <= v) and (v <= 1 if closed_top else v < 1)
    if not ok:
        span = f"{'(' if open_bottom else '['}0, 1{']' if closed_top else ')'}"
        raise CompressError(f"{where} = {v!r}: expected a fraction in {span}")
    return float(v)


def _integer(v, where: str, least: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < least:
        raise CompressError(f"{where} = {v!r}: expected an integer of at least {least}")
    return int(v)


def _choice(v, where: str, choices: tuple[str, ...]) -> str:
    if v not in choices:
        raise CompressError(f"{where} = {v!r}: expected one of {', '.join(choices)}")
    return str(v)


@dataclass(frozen=True)
class Methods:
    """The compression of one layer (or the default of every layer)."""

    prune: float | None = None
    prune_by: str = "magnitude"
    prune_structure: str = "weight"
    reuse_factor: int | None = None      # column pruning's reuse factor
    rank: int | None = None
    svd_energy: float | None = None
    rank_params: float | None = None     # low rank: the weights kept, ranks by sensitivity
    share: int | None = None
    weights: str | None = None

    def checked(self, where: str) -> "Methods":
        """Itself when every value is valid, else a CompressError naming `where`."""
        at = f"{where}: " if where else ""
        if self.prune is not None:
            _fraction(self.prune, f"{at}prune")
        _choice(self.prune_by, f"{at}prune_by", PRUNE_BY)
        _choice(self.prune_structure, f"{at}prune_structure", PRUNE_STRUCTURES)
        if self.reuse_factor is not None:
            _integer(self.reuse_factor, f"{at}reuse_factor", 1)
        if self.prune_structure == "column" and self.prune and self.reuse_factor is None:
            raise CompressError(f"{at}column pruning needs the reuse factor its columns align "
                                "to (reuse_factor, --reuse-factor)")
        if self.rank is not None:
            _integer(self.rank, f"{at}rank", 1)
        if self.svd_energy is not None:
            _fraction(self.svd_energy, f"{at}svd_energy", closed_top=True, open_bottom=True)
        if self.rank_params is not None:
            _fraction(self.rank_params, f"{at}rank_params", open_bottom=True)
        if self.share is not None:
            _integer(self.share, f"{at}share", 2)
        if self.weights is not None:
            _choice(self.weights, f"{at}weights", WEIGHT_SETS)
        if sum(v is not None for v in (self.rank, self.svd_energy, self.rank_params)) > 1:
            raise CompressError(f"{at}rank, svd_energy and rank_params: give one of them")
        if self.share is not None and self.weights is not None:
            raise CompressError(f"{at}share and weights = {self.weights!r}: a layer's weights "
                                "are either shared values or a weight set")
        if self.low_rank and (self.prune is not None or self.share is not None or
                              self.weights is not None):
            raise CompressError(f"{at}a low-rank layer is not also pruned, shared or given a "
                                "weight set")
        return self

    @property
    def low_rank(self) -> bool:
        return self.rank is not None or self.svd_energy is not None or \
            self.rank_params is not None

    @property
    def weight_pruning(self) -> bool:
        """Single weights or reuse-aligned columns of them (the weight-pruning pass)."""
        return self.prune is not None and self.prune > 0 and \
            self.prune_structure in ("weight", "column")

    @property
    def channel_pruning(self) -> bool:
        return self.prune is not None and self.prune > 0 and self.prune_structure == "channel"

    @property
    def any(self) -> bool:
        return self.low_rank or self.weight_pruning or self.channel_pruning or \
            self.share is not None or self.weights is not None

    def to_json(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


KEYS = tuple(f.name for f in fields(Methods))
RANK_KEYS = ("rank", "svd_energy", "rank_params")     # one of them chooses a layer's rank


def _override(default: Methods, keys: Mapping[str, Any]) -> Methods:
    """`default` with a layer's keys; a layer's own rank setting replaces the default's."""
    if any(k in keys for k in RANK_KEYS):
        default = replace(default, **{k: None for k in RANK_KEYS})
    return replace(default, **keys)


@dataclass(frozen=True)
class CompressConfig:
    """The default `Methods` and per-layer overrides (only the keys a layer sets)."""

    default: Methods = Methods()
    layers: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @staticmethod
    def of(layers: Mapping[str, Mapping[str, Any]] | None = None, **default: Any) -> "CompressConfig":
        """From keyword settings for every layer and a table of per-layer ones."""
        base = Methods(**{k: v for k, v in default.items() if v is not None}).checked("")
        for name, keys in (layers or {}).items():
            unknown = sorted(set(keys) - set(KEYS))
            if unknown:
                raise CompressError(f"layer {name!r}: unknown compression setting "
                                    f"{unknown[0]!r} (expected {', '.join(KEYS)})")
            _override(base, keys).checked(f"layer {name!r}")
        return CompressConfig(base, {k: dict(v) for k, v in (layers or {}).items()})

    def for_layer(self, name: str) -> Methods:
        return _override(self.default, self.layers.get(name, {}))

    @property
    def any(self) -> bool:
        return self.default.any or any(Methods(**v).any for v in self.layers.values())

    def check(self, graph: Graph) -> None:
        """Refuse a per-layer setting for a node the graph lacks or cannot compress."""
        for name in self.layers:
            try:
                node = graph.node(name)
            except KeyError:
                raise CompressError(f"layer {name!r} in the compression settings is not a "
                                    "node of the graph") from None
            if node.op not in LAYER_OPS and self.for_layer(name).any:
                raise CompressError(f"layer {name!r} is a {node.op.name}; only Dense and Conv "
                                    "layers are compressed")
            m = self.for_layer(name)
            if any(k in self.layers[name] for k in RANK_KEYS) and not factorable(node):
                raise CompressError(f"layer {name!r}: low-rank factorization applies to Dense "
                                    f"and ungrouped Conv layers (it has "
                                    f"{node.attrs['groups']} groups)")
            if node.op is not Op.DENSE and m.prune and m.prune_structure == "column":
                raise CompressError(f"layer {name!r}: column pruning applies to Dense layers "
                                    "(hls4ml unrolls only those of io_parallel designs)")

    def with_default(self, **settings: Any) -> "CompressConfig":
        """This config with these default settings (None ones left as they are)."""
        given = {k: v for k, v in settings.items() if v is not None}
        return CompressConfig(replace(self.default, **given).checked(""), self.layers)

    def to_json(self) -> dict:
        return {"default": self.default.to_json(),
                "layers": {k: dict(v) for k, v in self.layers.items()}}


def from_toml(path: str) -> CompressConfig:
    """The [compress] table and the compression keys of [layer."name"] tables of a TOML
    file (fxq.analysis.load_config reads the widths of the same file)."""
    from fxq.config_file import read_toml

    data = read_toml(path, CompressError)
    default = data.get("compress", {})
    if not isinstance(default, dict):
        raise CompressError(f"{path}: compress: expected a [compress] table")
    unknown = sorted(set(default) - set(KEYS))
    if unknown:
        raise CompressError(f"{path}: [compress]: unknown key {unknown[0]!r} (expected "
                            f"{', '.join(KEYS)})")
    layers = {name: {k: v for k, v in table.items() if k in KEYS}
              for name, table in data.get("layer", {}).items() if isinstance(table, dict)}
    try:
        return CompressConfig.of({k: v for k, v in layers.items() if v}, **default)
    except CompressError as exc:
        raise CompressError(f"{path}: {exc}") from None
