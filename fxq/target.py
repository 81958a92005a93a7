"""Target: the one settings object for the hardware a design is built for.

Backend, io type, strategy, reuse factors (one for the model, and per layer), part and
clock, each validated once when the Target is made: a bad value is one FxqError naming the
setting and what it accepts. `emit_hls`, `estimate`, `verify` and the CLI take a Target.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, Mapping

from fxq.devices import find_device
from fxq.errors import FxqError
from fxq.ir import FrozenMap

DEFAULT_PART = "xcvu13p-flga2577-2-e"


class TargetError(FxqError):
    """A target setting is invalid."""


class Backend(StrEnum):
    VITIS = "Vitis"
    VIVADO = "Vivado"


class IoType(StrEnum):
    PARALLEL = "io_parallel"      # every element of a tensor on its own wires
    STREAM = "io_stream"          # one pixel's channels per cycle, through FIFOs


class Strategy(StrEnum):
    LATENCY = "latency"           # weights as constants, products unrolled
    RESOURCE = "resource"         # weights in memory, products shared over reuse cycles


def _enum(kind: type[StrEnum], value: Any, what: str) -> StrEnum:
    if isinstance(value, kind):
        return value
    for member in kind:
        if isinstance(value, str) and value.lower() == member.value.lower():
            return member
    raise TargetError(f"{what} {value!r}: expected one of "
                      f"{', '.join(m.value for m in kind)}")


def _reuse(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise TargetError(f"{what} {value!r}: expected an integer >= 1")
    return value


@dataclass(frozen=True)
class Target:
    backend: Backend = Backend.VITIS
    io_type: IoType = IoType.PARALLEL
    strategy: Strategy = Strategy.LATENCY
    reuse_factor: int = 1
    part: str = DEFAULT_PART
    clock_ns: float = 5.0
    layer_reuse: Mapping[str, int] = field(default_factory=FrozenMap)   # node name -> R
    project: str = "myproject"

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "backend", _enum(Backend, self.backend, "backend"))
        set_(self, "io_type", _enum(IoType, self.io_type, "io_type"))
        set_(self, "strategy", _enum(Strategy, self.strategy, "strategy"))
        _reuse(self.reuse_factor, "reuse_factor")
        set_(self, "layer_reuse", FrozenMap({str(k): _reuse(v, f"reuse factor of layer {k!r}")
                                             for k, v in dict(self.layer_reuse).items()}))
        if isinstance(self.clock_ns, bool) or not isinstance(self.clock_ns, (int, float)) \
                or not self.clock_ns > 0 or self.clock_ns == float("inf"):
            raise TargetError(f"clock_ns {self.clock_ns!r}: expected a positive number")
        if not isinstance(self.part, str):
            raise TargetError(f"part {self.part!r}: expected a part name")
        find_device(self.part)                # an unknown part is refused, naming the known

    def reuse_for(self, node: str) -> int:
        """The reuse factor of one layer: its own where given, else the model's."""
        return self.layer_reuse.get(node, self.reuse_factor)

    @property
    def device(self):
        return find_device(self.part)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["layer_reuse"] = dict(self.layer_reuse)
        return {k: (str(v) if isinstance(v, StrEnum) else v) for k, v in d.items()}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "Target":
        names = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in names})
