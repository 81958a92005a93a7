"""Normalizing rewrites, run to a fixed point after import."""
from fxq.passes.base import Pass, normalize
from fxq.passes.drop_identity import DropIdentity
from fxq.passes.fold_batchnorm import FoldBatchNorm
from fxq.passes.fuse_bias import FuseBias

PIPELINE: tuple[Pass, ...] = (DropIdentity(), FoldBatchNorm(), FuseBias())

__all__ = ["PIPELINE", "Pass", "normalize", "DropIdentity", "FoldBatchNorm", "FuseBias"]
