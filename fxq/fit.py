"""Fitting a design to its part: what the estimate overuses, and per-layer reuse factors
chosen so that it fits (`fxq compile --fit`).

hls4ml takes a reuse factor per Dense and Conv layer; the fit chooses among those it builds
as given (fxq.reuse), so a fitted design is built as estimated.

The fit is greedy and starts from the given reuse factors (lowest latency first): while the
estimate exceeds `max_util` of the part in some resource, the layer using most of the
resource that is most over gets its next larger reuse factor (at least double, so a layer
climbs in a few steps). It stops when the design fits, or refuses, naming the resource, when
no layer can reuse more; it refuses at once when the layers without a reuse factor (pooling,
merges, activations, FIFOs) alone exceed the limit.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from fxq.errors import FxqError
from fxq.estimate import Estimate, estimate
from fxq.hls.emit import EmitError, plan
from fxq.layer import QuantizationError
from fxq.quantized import QuantizedGraph
from fxq.reuse import REUSABLE, built_reuse, reuse_choices
from fxq.target import Target

RESOURCES = ("dsp", "lut", "ff", "bram18")
NAMES = {"dsp": "DSP", "lut": "LUT", "ff": "FF", "bram18": "BRAM18"}
class FitError(FxqError):
    """The design does not fit the part (or cannot be made to); `need` says what is over
    in a few words."""

    def __init__(self, message: str, need: str = ""):
        super().__init__(message)
        self.need = need or message


@dataclass(frozen=True)
class Overuse:
    resource: str
    used: int
    available: int

    @property
    def share(self) -> float:
        return self.used / self.available if self.available else float("inf")

    def __str__(self) -> str:
        return (f"{NAMES[self.resource]} {self.used:,} of {self.available:,} "
                f"({self.share:.0%})")


def _over(used: dict[str, float], device, max_util: float) -> list[Overuse]:
    """The resources `used` needs more than `max_util` of the device's, most over first."""
    out = [Overuse(r, int(used[r]), getattr(device, r)) for r in RESOURCES
           if used[r] > max_util * getattr(device, r)]
    return sorted(out, key=lambda o: -o.share)


def _at(max_util: float) -> str:
    return "" if max_util == 1 else f" at {max_util:.0%} utilization"


def overuse(est: Estimate, max_util: float) -> list[Overuse]:
    """The resources the estimate uses more than `max_util` of, most over first."""
    return _over({r: getattr(est.total, r) for r in RESOURCES}, est.device, max_util)


def describe(est: Estimate, max_util: float, over: list[Overuse]) -> str:
    return (f"the estimate does not fit {est.device.part}{_at(max_util)}: "
            + ", ".join(map(str, over)))


VARIES = ("strategy", "io_type")


def fit(q: QuantizedGraph, target: Target, max_util: float = 1.0, *,
        vary: tuple[str, ...] = ()) -> tuple[Target, Estimate]:
    """A Target with per-layer reuse factors whose estimate uses at most `max_util` of every
    resource of the part, and that estimate; FitError when none exists.

    `vary` lets the fit change more than reuse factors where the given settings cannot fit:
    "strategy" tries hls4ml's resource strategy after the given one, "io_type" io_stream
    after io_parallel; the settings are tried in order of lower latency (the given ones,
    then another strategy, then another io type) and the first that fits is returned."""
    if not 0 < max_util <= 1:
        raise FitError(f"max_util {max_util!r}: expected a fraction in (0, 1]")
    unknown = sorted(set(vary) - set(VARIES))
    if unknown:
        raise FitError(f"cannot vary {', '.join(unknown)}: expected some of {VARIES}")
    settings = [target]
    if "strategy" in vary and str(target.strategy) != "resource":
        settings.append(replace(target, strategy="resource"))
    if "io_type" in vary and str(target.io_type) != "io_stream":
        settings += [replace(t, io_type="io_stream") for t in list(settings)]
    failures = []
    for t in settings:
        try:
            qt = q.with_io_type(str(t.io_type))
            if len(settings) > 1:
                plan(qt, t)               # a setting hls4ml cannot build is not a choice
            return _fit_reuse(qt, t, max_util)
        except (FitError, QuantizationError, EmitError) as exc:
            failures.append((t, exc))
    if len(failures) == 1:
        raise failures[0][1]
    tried = "; ".join(f"{t.strategy} strategy, {t.io_type}: {getattr(exc, 'need', exc)}"
                      for t, exc in failures)
    raise FitError(f"no setting tried fits {target.part}{_at(max_util)}: {tried}", tried)


def _fit_reuse(q: QuantizedGraph, target: Target, max_util: float) -> tuple[Target, Estimate]:
    """The fit of reuse factors alone, for the strategy and io type of `target`."""
    layers = [n for n in q.graph.nodes if n.op in REUSABLE]
    choices = {n.name: reuse_choices(q, n, target.strategy) for n in layers}
    reuse = {n.name: built_reuse(q, n, target.strategy, target.reuse_for(n.name))
             for n in layers}
    # what no reuse factor changes: the layers that do not reuse (pooling, merges,
    # activations, FIFOs); if they alone are over, no choice fits (say so at once)
    base = estimate(q, target=replace(target, layer_reuse={**target.layer_reuse, **reuse}))
    fixed = [e for e in base.layers if e.name not in choices]
    floor = _over({r: sum(getattr(e.cost, r) for e in fixed) for r in RESOURCES},
                  base.device, max_util)
    if floor:
        need = "the layers without reuse factors alone need " + ", ".join(map(str, floor))
        raise FitError(f"the design cannot fit {base.device.part}{_at(max_util)}: {need} "
                       "(try --strategy resource, --io stream, --fit-vary strategy --fit-vary "
                       "io_type to let --fit choose them, or fewer bits)", need)
    while True:
        current = replace(target, layer_reuse={**target.layer_reuse, **reuse})
        est = estimate(q, target=current)
        over = overuse(est, max_util)
        if not over:
            return current, est
        worst = over[0].resource
        by_use = sorted(est.layers, key=lambda e: -getattr(e.cost, worst))
        for e in by_use:
            if e.name not in reuse or getattr(e.cost, worst) <= 0:
                continue
            bigger = [r for r in choices[e.name] if r >= 2 * reuse[e.name]]
            if bigger:
                reuse[e.name] = bigger[0]
                break
        else:
            raise FitError(describe(est, max_util, over) + "; no reuse factor of the Dense "
                           f"and Conv layers lowers the {NAMES[worst]} further (try "
                           "--strategy resource, --io stream, --fit-vary strategy --fit-vary "
                           "io_type to let --fit choose them, or fewer bits)",
                           ", ".join(map(str, over)) + " at the largest reuse factors")


__all__ = ["FitError", "Overuse", "describe", "fit", "overuse"]
