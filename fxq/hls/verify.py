"""C-simulate the emitted hls4ml project and compare it with fxq's simulation bit for bit.

The oracle is hls4ml's own C simulation: the project is compiled with g++ (hls4ml's
build_lib.sh) and run through its ctypes bridge, with every layer traced. Builds are cached
by the content of the generated sources, so verifying the same project twice compiles once.
"""
from __future__ import annotations

import contextlib
import ctypes
import hashlib
import io
import multiprocessing
import os
import shutil
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from fxq.cache import build_cache_dir
from fxq.data import bind_inputs
from fxq.errors import FxqError
from fxq.fixed import to_float
from fxq.hls.emit import build_model_graph, prepare_dir
from fxq.hls.layout import to_hls
from fxq.memory import batch_size
from fxq.ir import Op
from fxq.quantized import QuantizedGraph
from fxq.target import Target

CSIM_TIMEOUT_S = 1800
VERIFY_BATCH = 64             # samples per C simulation call at most (progress, memory)


class CSimulationError(FxqError):
    """hls4ml's C simulation of the project could not be built or run."""


def _source_digest(project_dir: str, project: str) -> str:
    """Hash of everything the library depends on: firmware sources, weights, the bridge, and
    the project's absolute path, which build_lib.sh compiles in as WEIGHTS_DIR: the C
    simulation reads its weights from there at run time, so a library built for another
    directory would read another project's (or no) weights."""
    h = hashlib.sha256(os.path.abspath(project_dir).encode())
    paths = [os.path.join(project_dir, f"{project}_bridge.cpp")]
    firmware = os.path.join(project_dir, "firmware")
    for root, dirs, files in os.walk(firmware):
        dirs.sort()
        if os.path.relpath(root, firmware).startswith("ap_types"):
            continue                     # shipped with hls4ml, identical for one version
        paths += [os.path.join(root, f) for f in sorted(files) if not f.endswith(".so")]
    for path in paths:
        h.update(os.path.relpath(path, project_dir).encode())
        with open(path, "rb") as f:
            h.update(f.read())
    return h.hexdigest()[:24]


def compile_cached(model) -> None:
    """model.compile(), reusing a shared library built earlier from identical sources."""
    model.write()
    project_dir = model.config.get_output_dir()
    project = model.config.get_project_name()
    digest = _source_digest(project_dir, project)
    cached = os.path.join(build_cache_dir(), f"{digest}.so")
    if not os.path.exists(cached):
        with contextlib.redirect_stdout(io.StringIO()):
            model._compile()
        lib = model._top_function_lib._name
        os.makedirs(build_cache_dir(), exist_ok=True)
        tmp = f"{cached}.{os.getpid()}.tmp"          # (another process may build it too)
        shutil.copyfile(lib, tmp)
        os.replace(tmp, cached)
        return
    stamp = model.config.get_config_value("Stamp")
    lib = os.path.join(project_dir, "firmware", f"{project}-{stamp}.so")
    shutil.copyfile(cached, lib)
    model._top_function_lib = ctypes.cdll.LoadLibrary(lib)


def _isolated(run, out_dir: str):
    """run() in a forked child: an assertion inside the C simulation (ap_fixed aborts on
    some conversions it cannot represent) then ends the child, not the caller.

    The child inherits the parent's threads' locks as they were at the fork, so it must only
    call into the already loaded library; compiling, writing files and loading happen in the
    parent. A child that does not answer within CSIM_TIMEOUT_S is killed and reported."""
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)

    def child():
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                send.send(("ok", run()))
        except BaseException as exc:  # reported to the parent as one line
            send.send(("error", f"{type(exc).__name__}: {exc}"))
        finally:
            send.close()

    process = context.Process(target=child)
    process.start()
    send.close()
    try:
        if not receive.poll(CSIM_TIMEOUT_S):
            process.kill()
            process.join()
            raise CSimulationError(f"{out_dir}: the C simulation gave no result within "
                                   f"{CSIM_TIMEOUT_S} s")
        status, payload = receive.recv()
    except EOFError:
        process.join()
        raise CSimulationError(f"{out_dir}: the C simulation aborted (exit code "
                               f"{process.exitcode}); an ap_fixed assertion fails on one of "
                               "the project's type conversions") from None
    process.join()
    if status != "ok":
        raise CSimulationError(f"{out_dir}: the C simulation failed: {payload}")
    return payload


@dataclass
class LayerReport:
    layer: str              # hls4ml layer name
    tensor: str             # the IR tensor it holds
    compared: int
    mismatches: int
    first: list[tuple[int, int, float, float]] = field(default_factory=list)
    # (sample, element in hls4ml order, fxq value, C simulation value)


@dataclass
class VerifyResult:
    samples: int
    compared: int           # output values compared
    mismatches: int         # output values that differ
    layers: list[LayerReport]
    # (tensor, why) of every node output whose values the C simulation did not give back
    uncompared: list[tuple[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.mismatches == 0 and all(r.mismatches == 0 for r in self.layers)

    def __str__(self) -> str:
        lines = [f"{self.samples} samples, {self.compared} output values: "
                 f"{self.mismatches} mismatches against the C simulation"]
        for r in self.layers:
            if r.mismatches:
                lines.append(f"  layer {r.layer} ({r.tensor}): {r.mismatches} of {r.compared}"
                             " differ; first: " + ", ".join(
                                 f"sample {s} [{i}] fxq {a!r} csim {b!r}"
                                 for s, i, a, b in r.first))
        for tensor, why in self.uncompared:
            lines.append(f"  not compared: {tensor}: {why}")
        return "\n".join(lines)


def _compare(layer: str, tensor: str, ours: np.ndarray, theirs: np.ndarray) -> LayerReport:
    theirs = theirs.reshape(ours.shape)
    bad = np.argwhere(ours != theirs)
    first = [(int(s), int(i), float(ours[s, i]), float(theirs[s, i])) for s, i in bad[:5]]
    return LayerReport(layer, tensor, ours.size, len(bad), first)


# hls4ml's io_parallel convolution compiles in g++ in a time that grows faster than its
# outputs. Measured on this 2-core machine, one layer per project (build_lib.sh, 3.2 s of it
# the rest of the project), at 2,048 and 8,192 outputs: 3x3 Conv 8 -> 8 channels 17 and
# 81 s, 3x3 16 -> 8 38 s (2,048), 1x1 8 -> 8 5 and 41 s, depthwise 3x3 20 and 65 s, 2x2
# max pooling 0.2 s. The model below follows those points within about 1.6x; io_stream
# builds do not grow with the maps.
GXX_BASE_S = 3.2
GXX_LIMIT_S = 3600.0
WINDOWED = (Op.CONV, Op.MAX_POOL, Op.AVG_POOL)


def _layer_gxx_seconds(q: QuantizedGraph, node) -> float:
    outputs = int(np.prod(q.graph.shape(node.output))) / 2048
    if node.op is not Op.CONV:
        return 0.5 * outputs
    w = q.graph.params[node.inputs[1]]
    if node.attrs["groups"] == w.shape[0] == q.graph.shape(node.inputs[0])[0]:
        return 20.0 * outputs ** 0.86                         # depthwise
    macs = int(np.prod(w.shape[1:]))                          # per output
    return (3.4 + 0.2 * macs) * outputs ** 1.2


def gxx_seconds(q: QuantizedGraph, settings: Target) -> tuple[float, str | None]:
    """The estimated g++ time of the project's C simulation, and its slowest windowed layer
    (io_parallel only; io_stream builds take seconds)."""
    if str(settings.io_type) != "io_parallel":
        return 0.0, None
    layers = [(_layer_gxx_seconds(q, n), n.name) for n in q.graph.nodes if n.op in WINDOWED]
    total = GXX_BASE_S + sum(t for t, _ in layers)
    return total, max(layers)[1] if layers else None


def refuse_unbuildable(q: QuantizedGraph, settings: Target) -> float:
    """The estimated g++ seconds of the build; CSimulationError when over the limit."""
    seconds, largest = gxx_seconds(q, settings)
    if seconds > GXX_LIMIT_S:
        size = int(np.prod(q.graph.shape(q.graph.node(largest).output)))
        raise CSimulationError(
            f"the io_parallel C simulation would take g++ about {seconds / 60:.0f} min to "
            f"build (its slowest windowed layer, {largest!r}, has {size:,} outputs; fxq "
            f"refuses above {GXX_LIMIT_S / 60:.0f} min): verify the design in io_stream "
            "(--io stream), whose build does not grow with the feature maps")
    return seconds


def hls_inputs(q: QuantizedGraph, e, raw: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The project's inputs: raw input values as doubles, in hls4ml's element order."""
    return [np.ascontiguousarray(to_hls(to_float(raw[n], q.types[n]), e.order(n)))
            for n in q.graph.inputs]


def verify(q: QuantizedGraph, out_dir, x: Any, *, backend: str = "Vitis",
           io_type: str | None = None, strategy: str = "latency", reuse_factor: int = 1,
           overwrite: bool = False, engine: str = "numpy",
           target: Target | None = None,
           progress: Callable[[str], None] | None = None) -> VerifyResult:
    """Emit `q` to `out_dir`, C-simulate it on `x` and compare every traced layer and every
    output with `q.simulate` bit for bit. Values are compared as the doubles the C
    simulation returns, which hold every fixed-point value up to 53 bits exactly.
    `engine` is the simulate engine whose outputs are compared ("numpy", the reference,
    or "native"); the traced inner layers always come from NumPy. The samples run in
    batches whose size follows the memory fxq may use; `progress(message)` is told of the
    build and of each batch."""
    say = progress or (lambda _: None)
    settings = target or Target(backend=backend, io_type=io_type or q.io_type,
                                strategy=strategy, reuse_factor=reuse_factor)
    q = q.with_io_type(str(settings.io_type))
    bound = bind_inputs(q.graph, x)
    n = next(iter(bound.values())).shape[0]
    # per sample: fxq's raw and real values of every tensor, the C simulation's trace of
    # each, and working copies
    batch = min(batch_size(q.graph, 8 * 5, "verify"), VERIFY_BATCH)
    seconds = refuse_unbuildable(q, settings)
    out_dir = os.fspath(out_dir)
    model, e = build_model_graph(q, out_dir, settings, trace=True)
    prepare_dir(out_dir, overwrite)
    say("building the C simulation (hls4ml's build_lib.sh, g++; cached by its sources"
        + (f"; estimated {seconds / 60:.0f} min" if seconds > 120 else "") + ")")
    try:
        compile_cached(model)                         # in this process: g++ and dlopen
    except Exception as exc:                          # hls4ml raises a bare Exception
        raise CSimulationError(f"{out_dir}: the C simulation failed: "
                               f"{type(exc).__name__}: {exc}") from None
    model.compile = lambda: None                      # trace() would compile again
    by_layer = {layer: t for t, layer in e.layer_of.items() if t not in q.graph.inputs}
    outputs = {t: LayerReport(e.layer_of[t], t, 0, 0) for t in q.graph.outputs}
    layers: dict[str, LayerReport] = {}
    traced: set[str] = set()
    for start in range(0, n, batch):
        stop = min(n, start + batch)
        say(f"C simulation: samples {start + 1}-{stop} of {n}")
        part = {k: v[start:stop] for k, v in bound.items()}
        raw = q.evaluate(part)
        if engine != "numpy":
            out = q.simulate(part, raw=True, engine=engine)
            raw.update(out if isinstance(out, dict) else {q.graph.outputs[0]: out})
        inputs = hls_inputs(q, e, raw)
        y, trace = _isolated(lambda inputs=inputs: model.trace(
            inputs[0] if len(inputs) == 1 else inputs), out_dir)
        ys = y if isinstance(y, list) else [y]
        m = stop - start
        for t, theirs in zip(q.graph.outputs, ys):
            _merge(outputs[t], _compare(e.layer_of[t], t, _ours(q, e, raw, t),
                                        np.asarray(theirs, np.float64).reshape(m, -1)), start)
        for layer, t in by_layer.items():
            if layer in trace:
                traced.add(layer)
                report = _compare(layer, t, _ours(q, e, raw, t),
                                  np.asarray(trace[layer], np.float64).reshape(m, -1))
                _merge(layers.setdefault(layer, LayerReport(layer, t, 0, 0)), report, start)
        del raw, trace, y, ys, inputs
    uncompared = []
    for node in q.graph.nodes:
        layer = e.layer_of[node.output]
        if layer in traced or node.output in q.graph.outputs:
            continue
        why = (f"an alias of graph input {layer!r}" if layer not in by_layer else
               f"hls4ml's trace has no output for its layer {layer!r} (hls4ml removes "
               "or inlines such layers); its values reach the next traced layer")
        uncompared.append((node.output, why))
    out_reports = list(outputs.values())
    return VerifyResult(n, sum(r.compared for r in out_reports),
                        sum(r.mismatches for r in out_reports), list(layers.values()),
                        uncompared)


def _ours(q: QuantizedGraph, e, raw, tensor: str) -> np.ndarray:
    return to_hls(to_float(raw[tensor], q.types[tensor]), e.order(tensor))


def _merge(total: LayerReport, part: LayerReport, offset: int) -> None:
    """Add one batch's comparison (its samples from `offset`) to the running report."""
    total.compared += part.compared
    total.mismatches += part.mismatches
    room = 5 - len(total.first)
    total.first.extend((s + offset, i, a, b) for s, i, a, b in part.first[:max(room, 0)])
