"""Choosing fixed-point formats from data: bit-width settings, the dynamic fixed-point search
(Qiu et al. 2016) and its static baseline, and the per-layer error measures of a result."""
from __future__ import annotations

from typing import Any, Callable

from fxq.analysis.bits import BitConfig, ConfigError, check_bits, load_config
from fxq.analysis.refine import quantize_graph
from fxq.analysis.search import METHODS, NodeChoice, SearchResult
from fxq.ir import Graph
from fxq.task import TASKS
from fxq.quantized import QuantizedGraph


def quantize(graph: Graph, calib: Any, bits: int | None = None, *,
             weight_bits: int | None = None, act_bits: int | None = None,
             config: BitConfig | str | None = None, method: str = "dynamic",
             objective: str | None = None, io_type: str = "io_parallel",
             progress: Callable[[str], None] | None = None,
             refine: bool = False, bias_correction: bool = True,
             weight_rounding: str | None = None, task: str | None = None) -> QuantizedGraph:
    """A QuantizedGraph with every format chosen from calibration data `calib`.

    Bit widths: `bits` for weights and feature maps alike, `weight_bits` / `act_bits` apart,
    or a `config` (a BitConfig or the path of a TOML file) for per-kind and per-layer widths;
    the keyword arguments override the config's global widths. `method` is "dynamic" (a
    fractional length per layer, Qiu et al.) or "static" (one for all). `objective` is the
    error the greedy search minimizes: "l1" (the paper's) or "l2". With `refine` (dynamic),
    its choice is then refined against the network's output (fxq.analysis.refine).
    `bias_correction` (on by default; dynamic): each Dense and Conv bias is corrected by its
    layer's mean error on the calibration data where that lowers the layer's error
    (Nagel et al. 2019); the result's graph holds those biases, the float model `graph`'s.
    `weight_rounding` "adaround" (dynamic) rounds each Dense/Conv weight up or down as
    AdaRound finds best for the layer's output (fxq.analysis.adaround; the config's
    setting, "nearest" by default, otherwise).
    `task` "classify" says the graph outputs are class scores read by an argmax (BitConfig's
    class_scores): they may saturate their largest values; otherwise ("regression",
    "anomaly" or None) each output holds its whole calibrated range.
    """
    if task is not None and task not in TASKS:
        raise ConfigError(f"task {task!r}: expected one of {', '.join(TASKS)}")
    if isinstance(config, str):
        config = load_config(config)
    config = config or BitConfig()
    if bits is not None:
        config = config.with_overrides(weight_bits=bits, act_bits=bits)
    config = config.with_overrides(weight_bits=weight_bits, act_bits=act_bits,
                                   objective=objective, weight_rounding=weight_rounding,
                                   class_scores=True if task == "classify" else None)
    return quantize_graph(graph, calib, config, method=method, io_type=io_type,
                          progress=progress, refine=refine,
                          bias_correction=bias_correction).q


__all__ = ["BitConfig", "ConfigError", "check_bits", "METHODS", "NodeChoice", "SearchResult", "load_config",
           "quantize", "quantize_graph"]
