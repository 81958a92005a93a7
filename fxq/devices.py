"""The FPGA device catalog (hw/devices.toml): resource totals and DSP port widths per part.

`find_device(part)` accepts any hls4ml part string whose device name is in the catalog
("xczu9eg-ffvb1156-2-e", "xc7z020clg400-1") and refuses others, listing the known ones.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from fxq.errors import FxqError

CATALOG = Path(__file__).resolve().parent.parent / "hw" / "devices.toml"


class DeviceError(FxqError):
    """The part is not in fxq's device catalog."""


@dataclass(frozen=True)
class Device:
    name: str          # device name, the start of its part strings
    part: str          # a full part string (the default package and speed grade)
    family: str
    lut: int
    ff: int
    dsp: int
    bram18: int
    uram: int
    dsp_a: int         # DSP multiplier port widths (signed bits), e.g. 27 x 18
    dsp_b: int


@lru_cache(maxsize=1)
def catalog() -> dict[str, Device]:
    with open(CATALOG, "rb") as f:
        data = tomllib.load(f)
    return {name: Device(name=name, **fields) for name, fields in data["device"].items()}


def find_device(part: str) -> Device:
    """The catalog entry of `part` (the longest device name it starts with)."""
    devices = catalog()
    matches = [d for name, d in devices.items() if part.lower().startswith(name)]
    if not matches:
        raise DeviceError(f"part {part!r} is not in fxq's device catalog ({CATALOG.name}); "
                          f"known: {', '.join(d.part for d in devices.values())}")
    return max(matches, key=lambda d: len(d.name))
