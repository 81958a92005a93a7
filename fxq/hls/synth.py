"""Vendor synthesis of an emitted project, and reading its reports.

`synthesize` runs the vendor HLS tool through hls4ml's build (C synthesis, and logic
synthesis with vsynth=True) where the tool is on PATH; `read_synthesis` reads the reports a
run left in the project (hls4ml's Vivado/Vitis report parser), whichever machine ran it.
The figures come back as plain numbers, kept apart from fxq's own estimate.
"""
from __future__ import annotations

import contextlib
import io
import os
import shutil
from typing import Any

from fxq.errors import FxqError

# the command hls4ml's build calls for each backend
VENDOR_TOOLS = {"Vitis": "vitis-run", "Vivado": "vivado_hls"}


class SynthesisError(FxqError):
    """No vendor tool, no reports, or the tool failed."""


def vendor_tool(backend: str) -> str | None:
    """The path of the backend's vendor tool, or None when it is not on PATH."""
    return shutil.which(VENDOR_TOOLS[backend])


def _number(text: str | None) -> float | int | None:
    if text is None:
        return None
    text = str(text).strip()
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return None


def read_synthesis(hls_dir: str) -> dict[str, Any]:
    """The C-synthesis and (when run) logic-synthesis figures of the project in `hls_dir`:
    {"csynth": {...}, "vivado_synth": {...}}; SynthesisError when there is no report."""
    from hls4ml.report import parse_vivado_report

    if not os.path.isfile(os.path.join(hls_dir, "project.tcl")):
        raise SynthesisError(f"{hls_dir}: not an hls4ml project (no project.tcl)")
    with contextlib.redirect_stdout(io.StringIO()):      # the parser prints as it goes
        try:
            raw = parse_vivado_report(hls_dir) or {}
        except Exception as exc:                          # a damaged report
            raise SynthesisError(f"{hls_dir}: cannot read the synthesis reports: "
                                 f"{type(exc).__name__}: {exc}") from None
    out: dict[str, Any] = {}
    c = raw.get("CSynthesisReport")
    if c:
        out["csynth"] = {
            "latency_best": _number(c.get("BestLatency")),
            "latency_worst": _number(c.get("WorstLatency")),
            "ii_min": _number(c.get("IntervalMin")), "ii_max": _number(c.get("IntervalMax")),
            "clock_target_ns": _number(c.get("TargetClockPeriod")),
            "clock_estimated_ns": _number(c.get("EstimatedClockPeriod")),
            "dsp": _number(c.get("DSP")), "lut": _number(c.get("LUT")),
            "ff": _number(c.get("FF")), "bram18": _number(c.get("BRAM_18K")),
            "uram": _number(c.get("URAM")),
            "available": {k.lower(): _number(c.get("Available" + key)) for k, key in
                          (("dsp", "DSP"), ("lut", "LUT"), ("ff", "FF"),
                           ("bram18", "BRAM_18K"), ("uram", "URAM"))},
        }
    v = raw.get("VivadoSynthReport")
    if v:
        out["vivado_synth"] = {"dsp": _number(v.get("DSP48E")), "lut": _number(v.get("LUT")),
                               "ff": _number(v.get("FF")), "bram18": _number(v.get("BRAM_18K")),
                               "uram": _number(v.get("URAM"))}
    if not out:
        raise SynthesisError(f"{hls_dir}: no synthesis report found (run `fxq synth` where "
                             "the vendor tool is installed)")
    return out


def synthesize(model, backend: str, *, vsynth: bool = False) -> dict[str, Any]:
    """Run C synthesis (and logic synthesis with vsynth) of a written hls4ml ModelGraph
    with the vendor tool, then read its reports."""
    tool = VENDOR_TOOLS[backend]
    if vendor_tool(backend) is None:
        raise SynthesisError(f"the {backend} backend needs `{tool}` on PATH, and it is not "
                             "here; fxq's estimate is in report.json (`fxq report OUT`), or "
                             "run `fxq synth` where the tool is installed")
    try:
        model.build(csim=False, synth=True, vsynth=vsynth)
    except Exception as exc:                             # hls4ml raises bare Exceptions
        raise SynthesisError(f"{tool} failed: {type(exc).__name__}: {exc}") from None
    return read_synthesis(model.config.get_output_dir())
