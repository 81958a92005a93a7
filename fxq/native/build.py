"""Compile the generated simulation with g++, cache the library, run it through ctypes.

Libraries are cached by the hash of their source, the compiler command and the CPU's
instruction-set flags (they are built with -march=native), in the build cache the C
simulations use (FXQ_BUILD_CACHE, default ~/.cache/fxq/builds).
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from fxq.cache import build_cache_dir
from fxq.errors import FxqError
from fxq.native.codegen import Program

HERE = os.path.dirname(os.path.abspath(__file__))
# OpenMP threads that wait (at the end of a run, or for work) spin for about 3 us, then
# sleep (libgomp reads these when it is first loaded, by the first simulation library).
# Spinning longer steals the core another process, or a slower thread of the same run,
# needs; not spinning at all makes every run pay a sleep and a wake-up at its final
# barrier (about a block's work apart): 1.2x on a small MLP at 2,000 samples. A user's own
# setting of either variable is kept.
if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    os.environ["GOMP_SPINCOUNT"] = "300"
CXX = os.environ.get("CXX", "g++")
# -fno-math-errno and -fno-trapping-math change no value (no floating-point flag or errno
# is read): they let floor() vectorize, the input quantization's rounding
FLAGS = ["-O3", "-march=native", "-std=c++20", "-fwrapv", "-fopenmp", "-fPIC",
         "-fno-math-errno", "-fno-trapping-math"]
# the source is compiled twice, at once: the simulation that counts overflows, and the one
# that does not (faster); one library holds both
VARIANTS = ("FXQ_COUNTING=1", "FXQ_COUNTING=0")
COMPILE_TIMEOUT_S = 600
FREE_CORES_TTL_S = 0.05     # how long a count of the free cores is used
_free = [0, -1e9]           # the last count, when it was read


def threads_free() -> int:
    """OpenMP threads for the next run: the cores this process may use that no other task
    is running on now (/proc/loadavg's count of runnable tasks, this one included), at
    least 1; 0 (OpenMP's own choice) when the user set OMP_NUM_THREADS or the count cannot
    be read. A thread that shares its core with a busy process makes the run wait for its
    last block at the end (up to a scheduler slice): with another process keeping one of
    2 cores busy, one thread measured faster than two. Read at most every
    FREE_CORES_TTL_S seconds."""
    if "OMP_NUM_THREADS" in os.environ:
        return 0
    now = time.monotonic()
    if now - _free[1] < FREE_CORES_TTL_S:
        return _free[0]
    try:
        with open("/proc/loadavg") as f:
            threads = free_cores(f.read(), len(os.sched_getaffinity(0)))
    except (OSError, ValueError, IndexError, AttributeError):
        return 0
    _free[:] = [threads, now]
    return threads


def free_cores(loadavg: str, cores: int) -> int:
    """Of `cores`, those no other runnable task holds, at least 1, from the text of
    /proc/loadavg (its fourth field: runnable tasks/all tasks, the reader among them)."""
    running = int(loadavg.split()[3].split("/")[0])
    return max(1, min(cores, cores - (running - 1)))


class NativeBuildError(FxqError):
    """The native simulation could not be compiled (no g++, a compiler error) or run."""


@lru_cache(maxsize=1)
def _machine_tag() -> str:
    """The CPU flags -march=native compiles for (a library built on another CPU may use
    instructions this one lacks)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "")
    except OSError:
        flags = ""
    return hashlib.sha256(flags.encode()).hexdigest()[:12]


@lru_cache(maxsize=16)
def _digest(source: str, compiler: str) -> str:
    """The build's identity: source, runtime header, compiler command and CPU flags
    (hashed once per source: "auto" asks whether a build exists on every call)."""
    with open(os.path.join(HERE, "runtime.h"), "rb") as f:
        runtime = f.read()
    h = hashlib.sha256(source.encode() + runtime
                       + " ".join([compiler] + FLAGS + list(VARIANTS)).encode()
                       + _machine_tag().encode())
    return h.hexdigest()[:24]


def cached_library(source: str) -> str:
    """Where the shared library built from `source` is cached (it may not exist yet)."""
    return os.path.join(build_cache_dir(), f"native-{_digest(source, CXX)}.so")


def is_built(source: str) -> bool:
    return os.path.exists(cached_library(source))


def library_path(source: str) -> str:
    """The shared library built from `source`, compiled now unless cached."""
    path = cached_library(source)
    if os.path.exists(path):
        return path
    if shutil.which(CXX) is None:
        raise NativeBuildError(f"the native simulation needs a C++ compiler ({CXX}) on PATH")
    os.makedirs(build_cache_dir(), exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="fxq-native-") as tmp:
        src = os.path.join(tmp, "sim.cpp")
        with open(src, "w") as f:
            f.write(source)
        out = os.path.join(tmp, "sim.so")
        objects = [os.path.join(tmp, f"sim{i}.o") for i in range(len(VARIANTS))]
        compiles = [subprocess.Popen([CXX, *FLAGS, f"-D{v}", "-I", HERE, "-c", src, "-o", o],
                                     stderr=subprocess.PIPE, text=True)
                    for v, o in zip(VARIANTS, objects)]
        try:
            for c in compiles:
                _finished(c)
        finally:                       # one failed: the other stops before tmp goes
            for c in compiles:
                if c.poll() is None:
                    c.kill()
                    c.communicate()
        _finished(subprocess.Popen([CXX, "-shared", "-fopenmp", *objects, "-o", out],
                                   stderr=subprocess.PIPE, text=True))
        shutil.copyfile(out, path + f".{os.getpid()}.tmp")
        os.replace(path + f".{os.getpid()}.tmp", path)
    return path


def _finished(process: subprocess.Popen) -> None:
    """Wait for a compiler process; a NativeBuildError with its first error line if it
    failed or ran past COMPILE_TIMEOUT_S."""
    try:
        _, stderr = process.communicate(timeout=COMPILE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise NativeBuildError(f"{CXX} ran past {COMPILE_TIMEOUT_S} s on the native "
                               "simulation") from None
    if process.returncode != 0:
        lines = stderr.strip().splitlines() or ["(no output)"]
        first = next((line for line in lines if "error" in line), lines[0])
        raise NativeBuildError(f"{CXX} failed on the native simulation: {first}")


@dataclass
class Run:
    """What one simulation gives: the raw outputs by name, and per tensor (graph inputs and
    node outputs) how many of its values overflowed in the conversion to its type."""

    outputs: dict[str, np.ndarray]
    overflows: dict[str, int]


class NativeSimulator:
    """A compiled simulation of one QuantizedGraph."""

    def __init__(self, program: Program):
        self.program = program
        self.library_path = library_path(program.source)
        self._lib = ctypes.CDLL(self.library_path)
        self._entry = {}
        for kind in ("real", "real32", "raw"):
            fn = getattr(self._lib, f"fxq_run_{kind}")
            fn.restype = ctypes.c_int
            fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                           ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int]
            self._entry[kind] = fn
        self._params = (ctypes.c_void_p * max(1, len(program.params)))(
            *[a.ctypes.data for a in program.params])

    def run(self, real: dict[str, np.ndarray], quantize, count: bool = True,
            scales: list[float] | None = None) -> Run:
        """Raw int64 outputs, batch first, from real inputs (name -> float64 or float32
        (N, *shape), float32 read as such when every input is), quantized to their types in
        C++, and with `count` the overflow counts (without, the library's variant that
        counts nothing runs, and Run.overflows is empty). With `scales` (2^-frac of each
        output's type), real outputs instead: float64 raw * scale, fxq.fixed.to_float's
        values. Inputs it cannot quantize (NaN, infinities, values beyond 2^62 LSBs) go
        through `quantize` (real -> (raw inputs, their overflow counts), the NumPy
        reference, which refuses or handles them) and run_raw."""
        single = all(real[name].dtype == np.float32 for name, _ in self.program.inputs)
        dtype, kind = (np.float32, "real32") if single else (np.float64, "real")
        ins = [np.ascontiguousarray(real[name], dtype=dtype) for name, _ in self.program.inputs]
        status, run = self._call(kind, ins, count, scales)
        if status:
            raw, counts = quantize(real)
            run = self.run_raw(raw, count, scales)
            if count:
                run.overflows.update(counts)
        return run

    def run_raw(self, raw: dict[str, np.ndarray], count: bool = True,
                scales: list[float] | None = None) -> Run:
        """Raw int64 outputs (with `scales`, real ones, as run's), batch first, from raw
        int64 inputs (name -> (N, *shape)), and with `count` the overflow counts (none at
        the inputs)."""
        ins = [np.ascontiguousarray(raw[name], dtype=np.int64)
               for name, _ in self.program.inputs]
        status, run = self._call("raw", ins, count, scales)
        if status:                     # raw inputs always convert: the buffers failed
            raise NativeBuildError("the native simulation could not allocate its buffers")
        return run

    def _call(self, kind: str, ins: list[np.ndarray], count: bool,
              scales: list[float] | None) -> tuple[int, Run]:
        n = ins[0].shape[0] if ins else 0
        dtype = np.int64 if scales is None else np.float64
        outs = [np.empty((n,) + shape, dtype=dtype) for _, shape in self.program.outputs]
        counts = np.zeros(len(self.program.counted), dtype=np.int64)
        scale = None if scales is None else np.asarray(scales, dtype=np.float64)
        if scale is not None and scale.shape != (len(outs),):
            raise ValueError(f"{len(outs)} output scales expected, got {scale.shape}")
        in_ptrs = (ctypes.c_void_p * max(1, len(ins)))(*[a.ctypes.data for a in ins])
        out_ptrs = (ctypes.c_void_p * max(1, len(outs)))(*[a.ctypes.data for a in outs])
        status = self._entry[kind](in_ptrs, out_ptrs, self._params, n,
                                   counts.ctypes.data if count else None,
                                   None if scale is None else scale.ctypes.data,
                                   threads_free()) if n else 0
        overflows = dict(zip(self.program.counted, counts.tolist())) if count else {}
        return status, Run({name: a for (name, _), a in zip(self.program.outputs, outs)},
                           overflows)
