"""Value-changing graph transforms (pruning, weight sharing, ...), run by name from a user's pipeline.

The registry and the CLI/TOML readers are in fxq.transforms.registry; each transform is one
module here that defines it and registers it.
"""
from fxq.transforms import prune, share  # noqa: F401  (each registers itself)
from fxq.transforms.registry import (REGISTRY, Setting, TransformError, describe, from_cli,
                                     from_toml, make, pipeline, register)

__all__ = ["REGISTRY", "Setting", "TransformError", "describe", "from_cli", "from_toml",
           "make", "pipeline", "register"]
