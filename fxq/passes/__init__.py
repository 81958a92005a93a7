"""Normalizing passes (run after import, keep the float function) and the driver."""
from __future__ import annotations

from typing import Iterable

from fxq.ir import Graph
from fxq.passes.base import (Change, Edit, Pass, Rewrite, Transform, run_pipeline,
                             run_round, sole_consumer)
from fxq.passes.drop_identity import DropIdentity
from fxq.passes.fold_batchnorm import FoldBatchNorm
from fxq.passes.fold_pad import FoldPad
from fxq.passes.fuse_bias import FuseBias

PIPELINE: tuple[Pass, ...] = (DropIdentity(), FoldBatchNorm(), FuseBias(), FoldPad())


def normalize(graph: Graph, pipeline: Iterable[Pass] | None = None) -> Graph:
    """Run `pipeline` (the standard one by default) to a fixed point."""
    return run_pipeline(graph, PIPELINE if pipeline is None else pipeline)[0]


__all__ = ["PIPELINE", "Change", "Edit", "Pass", "Rewrite", "Transform", "normalize",
           "run_pipeline", "run_round", "sole_consumer", "DropIdentity", "FoldBatchNorm",
           "FuseBias", "FoldPad"]
